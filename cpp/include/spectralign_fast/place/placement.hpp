// Sparse least-squares placement of tiles in model space (spectralign's
// Placement.rigid / Placement.affine), solved with Eigen sparse matrices.
//
// Model. A match (t1, t2, p1, p2, w) says that point p1 = (x, y) of tile t1
// and point p2 of tile t2 lie at the same place in model space. Each tile t
// has a transform T_t from tile coordinates to model space:
//   rigid:  T_t(p) = p + X_t                (X_t = (x, y) per tile)
//   affine: T_t(p) = A_t p + X_t            (2x3 matrix [A_t | X_t] per tile)
// and the energy E = sum_matches w |T_t1(p1) - T_t2(p2)|^2 is minimised.
//
// Gauge (per connected component of the match graph), as spectralign:
//   mean:  sum_t X_t = 0 and, for affine, sum_t A_t = n_tiles * I
//          (Lagrange constraints, eliminated exactly through a reference tile);
//   fixed: one tile has X = 0 (rigid) or T = identity (affine).
//
// The x and y rows decouple: one sparse system (1 unknown per tile for
// rigid, 3 for affine) is factored once and solved for both rows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spectralign_fast {

// Cholesky: CHOLMOD's supernodal factorisation when built with it, else
// Eigen's SimplicialLDLT. SimplicialLDLT: always Eigen's.
enum class PlacementSolver { Auto, Cholesky, SimplicialLDLT, CG };

// True when this build has SuiteSparse CHOLMOD for PlacementSolver::Cholesky.
bool placement_has_cholmod();
enum class PlacementPreconditioner { IncompleteCholesky, Jacobi };

struct PlacementOptions {
    bool affine = false;
    std::int64_t fix = -1;            // tile index fixed to the identity, or -1
    bool separate_components = false; // false: a disconnected graph is an error
    PlacementSolver solver = PlacementSolver::Auto;
    PlacementPreconditioner preconditioner = PlacementPreconditioner::Jacobi;  // cg only (measured faster than IC)
    double cg_tolerance = 1e-12;      // relative residual |r| / |b| of each CG solve
    int cg_max_iterations = 0;        // 0: 10 * unknowns (capped)
    std::int64_t auto_cholesky_limit = 0;  // unknowns above which Auto uses CG; 0: built-in (4M)
};

struct PlacementResult {
    // rigid: n_tiles x 2 (x, y); affine: n_tiles x 2 x 3 ([A | X] rows), row-major
    std::vector<double> params;
    std::vector<std::int64_t> component;  // component label of each tile, 0..n_components-1
    std::int64_t n_components = 0;
    std::int64_t unknowns = 0;            // size of the sparse system that was solved
    std::int64_t nonzeros = 0;            // stored (lower-triangle) nonzeros of that system
    std::string solver;                   // "cholmod", "ldlt" or "cg"
    int cg_iterations = 0;                // largest over the right-hand sides (cg only)
    double cg_error = 0;                  // largest relative residual (cg only)
    double pivot_ratio = 0;               // smallest / largest LDL^T pivot (cholesky only)
    // wall-clock seconds: assembly (incl. checks), ordering, factorisation
    // (cg: preconditioner), solves
    double assemble_s = 0, analyze_s = 0, factor_s = 0, solve_s = 0;
};

// Connected components of the match graph: label per tile (0-based, in
// order of each component's lowest tile index). Throws std::invalid_argument
// for tile indices outside [0, n_tiles).
std::vector<std::int64_t> placement_components(std::int64_t n_tiles, std::int64_t n_matches,
                                               const std::int64_t* t1, const std::int64_t* t2,
                                               std::int64_t* n_components);

// Solve the placement. p1, p2: n_matches x 2 (x, y) row-major; w: n_matches
// weights (> 0). Every tile 0..n_tiles-1 must occur in a match with another
// tile. Throws std::invalid_argument for bad input, a disconnected graph
// (unless separate_components) and an ill-posed system.
PlacementResult place(std::int64_t n_tiles, std::int64_t n_matches, const std::int64_t* t1,
                      const std::int64_t* t2, const double* p1, const double* p2, const double* w,
                      const PlacementOptions& options);

// Similarity placement: tile t maps p to s_t R_t p + X_t (rotation, uniform
// scale, translation; 4 unknowns (a, b, tx, ty) with s R = [[a, -b], [b, a]]),
// the weighted least-squares fit of all matches, with tile `fix` the
// identity (the gauge). Unlike an affine placement it cannot shear or scale
// one axis, which narrow overlaps determine poorly. Solved as one sparse
// system (Eigen's simplicial LDL^T). Returns n_tiles x 2 x 3 row-major
// [[a, -b, tx], [b, a, ty]]. Throws std::invalid_argument for bad input, a
// tile without matches, a disconnected graph or an ill-posed system.
struct SimilarityResult {
    std::vector<double> params;
    std::int64_t unknowns = 0, nonzeros = 0;
    double pivot_ratio = 0;
    double assemble_s = 0, factor_s = 0, solve_s = 0;
};
SimilarityResult place_similarity(std::int64_t n_tiles, std::int64_t n_matches, const std::int64_t* t1,
                                  const std::int64_t* t2, const double* p1, const double* p2, const double* w,
                                  std::int64_t fix);

}  // namespace spectralign_fast

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
// Regularised affine (regularize = lam > 0, with prior transforms S_t, e.g.
// the similarity placement): E + lam * sum_t W_t ||T_t - S_t||^2, where W_t
// is the summed weight of tile t's matches and the norm is taken in the
// centred, scaled basis of every tile (c0 the mean of all matched points in
// tile coordinates, L their RMS distance from c0):
//   ||T - S||^2 = |(T - S)(c0)|^2 + L^2 ||A_T - A_S||_F^2,
// i.e. both terms are squared model-space displacements, so lam is
// dimensionless: lam = 1 pulls a tile toward S_t as hard as all its matches
// together pull it toward its neighbours. The regulariser makes the system
// positive definite (no constraints); the solution is then mapped by one
// global affine transform into the gauge above. prior_centre = mc and
// prior_linear = ml weight the two terms: mc |(T - S)(c0)|^2 + ml L^2
// ||A_T - A_S||_F^2 (ml small: the tile centres are pulled toward the
// prior's, the linear parts left to the matches; mc small: the linear parts
// pulled, the centres nearly free). Both > 0 keeps the system definite.
//
// The x and y rows decouple: one sparse system (1 unknown per tile for
// rigid, 3 for affine) is factored once and solved for both rows.
//
// Iterative refinement: after a direct (Cholesky / LDL^T) solve the residual
// of the normal equations (and of the gauge constraints) is recomputed from
// the matches themselves (each match's misfit formed translation first, so
// that large model coordinates cancel exactly; the similarity system in long
// double) and the correction solved with the same factor, while that lowers
// the residual (refine_steps at most).
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
    double regularize = 0;            // affine only: lam >= 0 (see above); 0: plain affine
    const double* prior = nullptr;    // lam > 0: n_tiles x 2 x 3 row-major [A | X] prior transforms
    double prior_centre = 1;          // lam > 0: multiplier of the centre's pull |(T - S)(c0)|^2
    double prior_linear = 1;          // lam > 0: multiplier of the linear part's pull L^2 ||A_T - A_S||^2
    int refine_steps = 3;             // most refinement steps after a direct solve (0: none)
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
    int refine_steps = 0;                 // refinement steps taken (each lowered the residual)
    // 2-norm of the normal equations' residual before and after refinement
    // (units: weight x model px; 0 when not refined)
    double residual_initial = 0, residual_final = 0;
    // wall-clock seconds: assembly (incl. checks), ordering, factorisation
    // (cg: preconditioner), solves, refinement
    double assemble_s = 0, analyze_s = 0, factor_s = 0, solve_s = 0, refine_s = 0;
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
// scale, translation), the weighted least-squares fit of all matches, with
// tile `fix` the identity (the gauge). Unlike an affine placement it cannot
// shear or scale one axis, which narrow overlaps determine poorly. Solved as
// one sparse Hermitian system in 2 complex unknowns per tile (s R = a + ib
// acting on x + iy, and the translation), with CHOLMOD when built with it
// (solver Auto or Cholesky) or Eigen's simplicial LDL^T, then refined as
// place(). `reference` (default: `fix`) is the tile held at the identity in
// the solve; the result is then moved by one global similarity so that tile
// `fix` is the identity. A reference in the middle of the match graph keeps
// the system far better conditioned than one at a corner (a 1000 x 1000
// grid: pivot ratio 4.5e-7 against 3.4e-8) and the least-squares misfit,
// measured in the reference tile's scale, from shrinking tiles far from it.
// Returns n_tiles x 2 x 3 row-major [[a, -b, tx], [b, a, ty]].
// Throws std::invalid_argument for bad input, a tile without matches, a
// disconnected graph or an ill-posed system.
struct SimilarityResult {
    std::vector<double> params;
    std::int64_t unknowns = 0, nonzeros = 0;  // complex unknowns and nonzeros
    std::string solver;                       // "cholmod" or "ldlt"
    double pivot_ratio = 0;
    int refine_steps = 0;
    double residual_initial = 0, residual_final = 0;
    double assemble_s = 0, analyze_s = 0, factor_s = 0, solve_s = 0, refine_s = 0;
};
SimilarityResult place_similarity(std::int64_t n_tiles, std::int64_t n_matches, const std::int64_t* t1,
                                  const std::int64_t* t2, const double* p1, const double* p2, const double* w,
                                  std::int64_t fix, PlacementSolver solver = PlacementSolver::Auto,
                                  int refine_steps = 3, std::int64_t reference = -1);

}  // namespace spectralign_fast

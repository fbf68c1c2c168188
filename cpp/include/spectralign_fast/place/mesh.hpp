// Elastic mesh alignment of serial sections: every section gets the same
// regular triangle mesh over the shared canvas, and the node displacements of
// all sections are solved jointly by sparse least squares.
//
// Coordinates: points are (x, y) = (column, row) in canvas pixels (the
// affine-aligned model space of every section). The mesh has ny x nx nodes;
// node (r, c) rests at (origin_x + c * spacing, origin_y + r * spacing); each
// cell is split along its (r, c)-(r+1, c+1) diagonal into two triangles, and a
// point takes its displacement from the three nodes of its triangle by
// barycentric interpolation (outside the mesh, linear extrapolation from the
// nearest cell).
//
// Model. Section z's mesh is a "push" map: the affine-aligned section's point
// p goes to p + v_z(p) in the aligned output. A match (za, pa, zb, pb, w) says
// point pa of section za and point pb of section zb show the same tissue, so
//     pa + v_za(pa) = pb + v_zb(pb).
// The energy
//     E = sum_m w_m |pa_m + v_za(pa_m) - pb_m - v_zb(pb_m)|^2
//       + stiffness * sum_z sum_edges |v_z,i - v_z,j|^2
//       + pull * sum_z sum_nodes |v_z,i|^2
// is quadratic in the node displacements, since the match points are data:
// the springs are linear (displacement differences along every triangle
// edge; rest lengths and directions are the section's own affine geometry,
// exact to first order in the displacement gradient, which the affine
// alignment keeps small), x and y decouple, and one sparse Cholesky factor
// serves both. `pull` fixes the gauge (a displacement common to all sections)
// and holds unmatched regions at the affine solution. Rendering needs the
// inverse (output pixel q shows the section at the p with p + v_z(p) = q):
// the mesh is piecewise affine, so it is inverted exactly triangle by
// triangle (mesh_field, mesh_inverse).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spectralign_fast {

struct MeshGrid {
    std::int64_t ny = 0, nx = 0;  // nodes per column and per row (each >= 2)
    double spacing = 0;           // node pitch (canvas pixels, > 0)
    double origin_x = 0, origin_y = 0;
};

// Cholesky: CHOLMOD's supernodal factorisation (its BLAS on one thread) when
// built with it, else Eigen's simplicial LDL^T, with one step of iterative
// refinement. CG: conjugate gradients with an incomplete-Cholesky
// preconditioner (natural order), to cg_tolerance. Auto: CG, and the factor
// when CG does not converge and there are at most auto_cholesky_limit
// unknowns per coordinate (a factor costs the cube of a section's node count
// per section: whole sections are its separators).
enum class MeshSolver { Auto, Cholesky, CG };

struct MeshOptions {
    double stiffness = 1.0;  // weight of each edge spring
    double pull = 1e-3;      // weight pulling each node to zero displacement (> 0)
    MeshSolver solver = MeshSolver::Auto;
    std::int64_t auto_cholesky_limit = 0;  // 0: built-in (see mesh.cpp)
    double cg_tolerance = 1e-10;           // relative residual |r| / |b| of each CG solve
    int cg_max_iterations = 0;             // 0: 20000
};

struct MeshResult {
    // n_sections x ny x nx x 2 (x, y) node displacements, row-major.
    std::vector<double> displacement;
    // n_matches x 2: pa + v_za(pa) - pb - v_zb(pb).
    std::vector<double> residual;
    // Inverted (or degenerate) triangles per section after the solve.
    std::vector<std::int64_t> inverted;
    std::int64_t unknowns = 0, nonzeros = 0;
    std::string solver;  // "cholmod", "ldlt" or "cg"
    int cg_iterations = 0;  // largest over x and y (cg only)
    double cg_error = 0;    // largest relative residual (cg only)
    double assemble_s = 0, factor_s = 0, solve_s = 0;
};

// Solve the joint mesh. za, zb: section indices of each match (0 <= z <
// n_sections, za != zb); pa, pb: n_matches x 2 (x, y); w: weights (> 0).
// Throws std::invalid_argument for bad input or a singular system.
MeshResult solve_mesh(std::int64_t n_sections, const MeshGrid& grid, std::int64_t n_matches,
                      const std::int64_t* za, const std::int64_t* zb, const double* pa, const double* pb,
                      const double* w, const MeshOptions& options);

// Barycentric interpolation of one section's node displacements (ny x nx x 2)
// at n points (x, y); out: n x 2.
void mesh_interpolate(const MeshGrid& grid, const double* displacement, std::int64_t n, const double* points,
                      double* out);

// The inverse of one section's push map at n points q (x, y): the p with
// p + v(p) = q, found triangle by triangle (exact where the mesh is not
// folded; outside the deformed mesh, through the nearest cell's affine map).
// out: n x 2.
void mesh_inverse(const MeshGrid& grid, const double* displacement, std::int64_t n, const double* points,
                  double* out);

// Displacement field for the warp core (sample::warp_field) over canvas
// rows [row0, row0 + h) and columns [col0, col0 + w): output pixel (i, j) at
// canvas q = (x, y) = (col0 + j, row0 + i) pulls from the input array index
// M * (p_y, p_x, 1) with p = the inverse push map at q (mesh_inverse), M a
// 3x3 homogeneous matrix in array order (row, col), row-major. out: h x w x 2
// float32, (row, col) offsets from (i, j), the source position rounded to
// 1/256 px so that any split of a canvas into regions samples bit for bit the
// same positions. Bit-identical for every thread count.
void mesh_field(const MeshGrid& grid, const double* displacement, std::int64_t row0, std::int64_t col0,
                std::int64_t h, std::int64_t w, const double* matrix, float* out, int threads);

}  // namespace spectralign_fast

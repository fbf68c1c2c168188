// Vectorised 2-D LDDMM block kernels (lddmm_simd.cpp).
#pragma once

#include <cstdint>

namespace spectralign_fast::reg::lddmmkit {

// A 2-D grid for the block kernels: n0 x n1 points, index = (x - o) * inv.
struct Cell2 {
    int n0 = 0, n1 = 0;
    double o0 = 0.0, o1 = 0.0, inv0 = 1.0, inv1 = 1.0;
};

// Whether flow_step_2d and adjoint_step_2d read the pack (the AVX-512 kernels, on CPUs that
// have it, unless SPECTRALIGN_NO_AVX512=1 is in the environment; the tests compare both).
bool packed_steps();

// The velocity of one time step (n0 x n1 nodes, (x, y) per node) packed by cell:
// 8 values per node (i0, i1), the corners 00, 01, 10, 11 of the cell it starts,
// two components each; zeros where the cell would leave the grid. The kernels
// below read one cell with one 64-byte load.
void pack_velocity_2d(const double* v, int n0, int n1, double* pack);

// y = x + sdt * v(x) for points whose bilinear cell lies inside the grid; their
// cell in base0/base1; base0 = -1 marks the others (y = x). v: the step's
// velocity, pack: its pack_velocity_2d (what the AVX-512 kernel reads).
void flow_step_2d(const double* v, const double* pack, const Cell2& g, const double* x0, const double* x1,
                  double* y0, double* y1, int count, double sdt, int* base0, int* base1);

// The adjoint of x' = x - dt v(x) at x: the splat of -dt w_q g onto the four
// corners (8 values per point: corners 00, 01, 10, 11, two components each)
// and g <- g - dt Dv(x)^T g; base0 = -1 marks points left to the caller.
void adjoint_step_2d(const double* v, const double* pack, const Cell2& g, const double* x0, const double* x1,
                     double* gx0, double* gx1, int count, double dt, int* base0, int* base1, double* splat);

// One channel sampled with the border rule; and weight * its gradient added to (gx0, gx1).
void sample_border_2d(const double* img, const Cell2& g, const double* x0, const double* x1, int count,
                      double* out);
// Both at once from one stencil: the sample, and the gradient (no weight) in gr0, gr1.
void sample_grad_border_2d(const double* img, const Cell2& g, const double* x0, const double* x1, int count,
                           double* out, double* gr0, double* gr1);
// The contrast map's residual over a block of at most contrast_block points:
// r_c = coeffs(0, c) + sum_k coeffs(k + 1, c) ai_k - jt_c (channel planes
// `plane` apart, cI <= 7, cJ <= 8), e[j] = sum_c r_c^2 and, when wk is not
// null, wk[k * stride + j] = w inv_sm2 sum_c r_c coeffs(k + 1, c).
inline constexpr int contrast_block = 256;
void contrast_residual(const double* ai, const double* jt, std::int64_t plane, const double* coeffs, int cI, int cJ,
                       const double* w, double inv_sm2, int count, double* e, double* wk, int stride);

// out[j] = scale * exp(arg[j]) (glibc's vector exp where the build found libmvec).
void scaled_exp(const double* arg, double scale, int count, double* out);

// adjoint_step_2d's splats (every point inside: base0 >= 0) added to a box
// buffer (two values per node, `row` nodes per row, first node (lo0, lo1)):
// neighbouring points mostly share a cell, so a cell's run of points is
// summed first and added once.
void splat_runs_2d(const int* base0, const int* base1, const double* splat, int count, int lo0, int lo1,
                   std::int64_t row, double* buf);

}  // namespace spectralign_fast::reg::lddmmkit

namespace spectralign_fast::reg::lddmmkit {

// A 3-D grid for the block kernels.
struct Cell3 {
    int n0 = 0, n1 = 0, n2 = 0;
    double o0 = 0.0, o1 = 0.0, o2 = 0.0, inv0 = 1.0, inv1 = 1.0, inv2 = 1.0;
};

// The 3-D Euler step and its adjoint, as the 2-D ones, from a velocity of three components
// packed 24 values per node (pack_velocity_3d: corner q = 4 b0 + 2 b1 + b2 of the cell starting
// at the node, three components each; zeros where the cell leaves the grid); the splats are 24
// values per point. Only where packed_steps() (the AVX-512 kernels; elsewhere the caller's
// general path does the work).
void pack_velocity_3d(const double* v, int n0, int n1, int n2, double* pack);
void flow_step_3d(const double* pack, const Cell3& g, const double* x0, const double* x1, const double* x2,
                  double* y0, double* y1, double* y2, int count, double sdt, int* base0, int* base1, int* base2);
void adjoint_step_3d(const double* pack, const Cell3& g, const double* x0, const double* x1, const double* x2,
                     double* gx0, double* gx1, double* gx2, int count, double dt, int* base0, int* base1,
                     int* base2, double* splat);
// adjoint_step_3d's splats (points with base0 < 0 skipped: the caller's) added to a box
// buffer (three values per node, box origin lo and strides stride per axis), summed along
// runs of points in one cell.
void splat_runs_3d(const int* base0, const int* base1, const int* base2, const double* splat, int count,
                   const std::int64_t* lo, const std::int64_t* stride, double* buf);

// One channel of a 3-D image sampled with the border rule; and weight * its gradient added.
void sample_border_3d(const double* img, const Cell3& g, const double* x0, const double* x1, const double* x2,
                      int count, double* out);
void gradient_border_3d(const double* img, const Cell3& g, const double* x0, const double* x1, const double* x2,
                        const double* weight, int count, double* gx0, double* gx1, double* gx2);

}  // namespace spectralign_fast::reg::lddmmkit

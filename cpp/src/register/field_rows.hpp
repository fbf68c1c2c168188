// Vectorised row kernels of the displacement-field algebra (field_rows.cpp),
// over a chunk of one row, with AVX-512 / AVX2 / baseline clones chosen at
// load time. The warps are field_common.hpp's scalar interpolate()'s
// interior path in the same order (gathers; the scalar code's bits). The
// compositions read each corner row of the field as one vector and blend in
// float, within a few ulp of the scalar double sum. Built without FMA
// contraction, so every clone gives the same bits. Callers use these only
// for fields under 2^31 values.
#pragma once

#include <cstdint>

namespace spectralign_fast::reg::fieldkit {

// The longest chunk a row kernel takes (callers split rows; stack buffers).
constexpr int kRowChunk = 128;

// A 3-D field d2 (n0 x n1 x n2 voxels, 3 floats each) for compose_chunk3.
struct ComposeGrid3 {
    const float* d = nullptr;
    int n0 = 0, n1 = 0, n2 = 0;
    double B[9] = {};   // the linear part applied to d1's vectors
    double t = 1.0;     // time scaling of d2's values
};

// comp[j] = float(t d2(i + B u[j]) + u[j]) for j in [0, count) at index
// (i0, i1, j0 + j), where every corner of d2's cell exists (DIPY's "inside"),
// else 0; inside[j] says which. mag[j]: |comp / spacing| when spacing is not
// null, else |comp|^2 (0 where not inside); with neither spacing nor mag, no
// magnitudes. u may be comp (in place).
void compose_chunk3(const ComposeGrid3& g, const float* u, int count, double i0, double i1, int j0,
                    const double* spacing, float* comp, double* mag, int* inside);

// 2-D counterparts (fields of 2 floats per pixel; n2 unused, B and W 2 x 2
// in the first four values of B / W, B's 2 x 3 affine rows of 3 in warp).
void compose_chunk2(const ComposeGrid3& g, const float* u, int count, double i0, int j0, const double* spacing,
                    float* comp, double* mag, int* inside);
void update_compose_chunk2(const ComposeGrid3& g, float* p, int count, double i0, int j0, const double* spacing,
                           float* q, double* mag, int* inside, double eps, double maxlen);
void damped_update2(float* p, const float* q, const double* spacing, std::int64_t count, double eps,
                    double maxlen);

// A 3-D float image for warp_chunk3, sampled at W u + B (i, 1).
struct WarpGrid3 {
    const float* img = nullptr;
    int n0 = 0, n1 = 0, n2 = 0;
    double W[9] = {};   // the linear part applied to the field's vectors
    double zW[3] = {};  // W's translation times 0.0 (apply()'s h = 0 term)
    double B[12] = {};  // the index-to-image affine, rows of 4
};

// out[j] = the image at W u[j] + B (i0, i1, j0 + j, 1) (field_warp.cpp's
// linear path with A = identity) where every corner of its cell exists;
// status[j] = 1 there, 0 where the point is outside (-1, n) on some axis
// (out 0), 2 on the edge, left to the caller's scalar interpolation.
void warp_chunk3(const WarpGrid3& g, const float* u, int count, double i0, double i1, int j0, float* out,
                 int* status);
void warp_chunk2(const WarpGrid3& g, const float* u, int count, double i0, int j0, float* out, int* status);

// The inversion's fused step: p[j] -= factor q[j] (invert_impl's damped
// update with eps and maxlen, factor from |q[j] / spacing|, recomputed as
// the last pass made it), then q, mag and inside from p as compose_chunk3
// with spacing.
void update_compose_chunk3(const ComposeGrid3& g, float* p, int count, double i0, double i1, int j0,
                           const double* spacing, float* q, double* mag, int* inside, double eps, double maxlen);

// p[j] -= factor q[j] for count 3-D voxels, factor from |q[j] / spacing| as
// in update_compose_chunk3 (the inversion's last update).
void damped_update3(float* p, const float* q, const double* spacing, std::int64_t count, double eps,
                    double maxlen);

// normalize_step's two passes over a run of count voxels (D = 2 or 3):
// |v / spacing|^2 of each voxel into sq (summed as the scalar loop does), and
// every value divided by nrm.
void squared_norms(const float* v, std::int64_t count, int D, const double* spacing, double* sq);
void divide_all(float* v, std::int64_t count, double nrm);

}  // namespace spectralign_fast::reg::fieldkit

// The vectorised inner loops of the affine metrics (metric_rows.cpp): jitter
// offsets for a batch of fixed points, and the moving image's d-linear value
// and gradient at the mapped points. Each works on separate coordinate arrays
// so that GCC vectorises it (AVX-512 / AVX2 / baseline clones chosen at load
// time); every lane computes its point alone, so results do not depend on the
// clone or on how points are batched.
#pragma once

#include <algorithm>
#include <cstdint>

namespace spectralign_fast::reg::metrickit {

// Mutual information keeps this many bins free at each end of both axes, for
// the moving image's cubic window.
constexpr int kPad = 2;

// A mixing hash of a voxel's flat index (32 bits: three 10-bit offsets fit).
inline std::uint32_t jitter_hash(std::uint64_t flat, std::uint32_t seed) {
    std::uint32_t x = static_cast<std::uint32_t>(flat) ^
                      (static_cast<std::uint32_t>(flat >> 32) * 0x9E3779B9u) ^ seed;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

// Axis a's offset in [-0.5, 0.5): bits 22-31 (axis 0), 12-21, 2-11 of the hash.
inline double jitter_offset(std::uint32_t h, int a) {
    return (double((h >> (22 - 10 * a)) & 1023u) + 0.5) * (1.0 / 1024.0) - 0.5;
}

// The moving image (float32, C order, every extent >= 2, fewer than 2^31
// voxels) and the fixed-index -> moving-index map (top d rows, row major).
struct MovingView {
    const float* data = nullptr;
    int n[3] = {0, 0, 0};
    double m[3][4] = {};
};

// A point's weight falls smoothly from 1 to 0 over the last kEdgeRamp voxels
// before the moving image's edge (smoothstep of the distance to the edge, per
// axis, multiplied), so that the metric and its gradient stay continuous as
// points cross the edge: with a hard in/out rule the value jumps by one
// point's share each time, and line searches stall on the jumps.
constexpr double kEdgeRamp = 1.0;

// The weight factor of coordinate y on an axis of [0, hi] and its derivative
// with respect to y; 0 outside (NaN included).
inline double edge_ramp(double y, double hi, double& slope) {
    const bool in = (y >= 0.0) & (y <= hi);
    const double yc = in ? y : 0.0;
    const bool low = yc < hi - yc;
    const double t = std::min((low ? yc : hi - yc) * (1.0 / kEdgeRamp), 1.0);
    slope = in ? (low ? 6.0 : -6.0) * t * (1.0 - t) * (1.0 / kEdgeRamp) : 0.0;
    return in ? t * t * (3.0 - 2.0 * t) : 0.0;
}

// x_a[j] += the jitter offset of point flat[j], kept inside [0, hi_a].
void jitter_2d(const std::uint64_t* flat, int count, std::uint32_t seed, const double* hi, double* x0, double* x1);
void jitter_3d(const std::uint64_t* flat, int count, std::uint32_t seed, const double* hi, double* x0, double* x1,
               double* x2);

// The moving image at the mapped points: value, gradient per array axis, and
// the point's edge weight (edge_ramp on every axis, multiplied; 0 where the
// mapped point lies outside [0, n - 1] on some axis, and then the other
// outputs are unspecified). NaN coordinates count as outside.
void sample_2d(const MovingView& mv, const double* x0, const double* x1, int count, double* value, double* g0,
               double* g1, double* weight);
void sample_3d(const MovingView& mv, const double* x0, const double* x1, const double* x2, int count,
               double* value, double* g0, double* g1, double* g2, double* weight);

}  // namespace spectralign_fast::reg::metrickit

namespace spectralign_fast::reg::metrickit {

// Mutual-information bins: the moving value's cubic window starts at bin
// first = j0 - 1 (j0 = the clamped coordinate's floor).
struct BinMap {
    double offset = 0.0, scale = 1.0;  // coordinate = offset + value * scale
    int nbins = 32;
};

// For the taken points (weight[j] > 0 and fixed_bin[j] >= 0): cell[j] = the
// joint-histogram index of the window's first cell (fixed_bin * nbins + first)
// and w0..w3 its four weights times the point's weight; cell[j] = -1 for the
// others.
void mi_windows(const double* value, const double* weight, const std::int16_t* fixed_bin, int count,
                const BinMap& bins, std::int32_t* cell, double* w0, double* w1, double* w2, double* w3);
// Keeps the value of the taken points (NaN for the others) and the d gradient
// components (axis-major, `stride` apart) as float.
void keep_samples(const double* value, const double* const* grad, int d, const double* weight,
                  const std::int16_t* fixed_bin, const float* fixed, int count, float* kept_value,
                  float* kept_grad, std::int64_t stride);

// dv[j] = sum_c dw_c(value[j]) * log_ratio[fixed_bin[j] * nbins + first + c]
// (0 where value[j] is NaN): the derivative of MI's sum with respect to the
// moving intensity, up to the bin scale; and edge[j] = (sum_c w_c(value[j]) *
// log_ratio[...] - mi) / scale, the derivative with respect to the point's
// weight on the same scale (0 where value[j] is NaN).
void mi_weights(const float* value, const std::int16_t* fixed_bin, int count, const BinMap& bins,
                const double* log_ratio, double mi, double* dv, double* edge);

// The gradient pass: acc[r * (d + 1) + c] += sum_j a_r[j] * x_c[j] (x_d = 1)
// with a_r[j] = weight[j] * dv[j] * g_r[j] + edge[j] * d(weight)/dy_r at point
// j, the weight recomputed as sample_2d/3d computes it and g_r the kept moving
// gradient; in eight interleaved partial sums added in a fixed order.
void gradient_terms_2d(const MovingView& mv, const double* x0, const double* x1, int count, const double* dv,
                       const double* edge, const float* g0, const float* g1, double* acc);
void gradient_terms_3d(const MovingView& mv, const double* x0, const double* x1, const double* x2, int count,
                       const double* dv, const double* edge, const float* g0, const float* g1, const float* g2,
                       double* acc);

}  // namespace spectralign_fast::reg::metrickit

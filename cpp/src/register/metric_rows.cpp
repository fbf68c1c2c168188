// Vectorised batch kernels of the affine metrics (see metric_rows.hpp).
#include "metric_rows.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/simd_clones.hpp"

namespace spectralign_fast::reg::metrickit {

SPECTRALIGN_CLONES
void jitter_2d(const std::uint64_t* __restrict flat, int count, std::uint32_t seed, const double* hi,
               double* __restrict x0, double* __restrict x1) {
    const double h0 = hi[0], h1 = hi[1];
    for (int j = 0; j < count; ++j) {
        const std::uint32_t h = jitter_hash(flat[j], seed);
        x0[j] = std::min(std::max(x0[j] + jitter_offset(h, 0), 0.0), h0);
        x1[j] = std::min(std::max(x1[j] + jitter_offset(h, 1), 0.0), h1);
    }
}

SPECTRALIGN_CLONES
void jitter_3d(const std::uint64_t* __restrict flat, int count, std::uint32_t seed, const double* hi,
               double* __restrict x0, double* __restrict x1, double* __restrict x2) {
    const double h0 = hi[0], h1 = hi[1], h2 = hi[2];
    for (int j = 0; j < count; ++j) {
        const std::uint32_t h = jitter_hash(flat[j], seed);
        x0[j] = std::min(std::max(x0[j] + jitter_offset(h, 0), 0.0), h0);
        x1[j] = std::min(std::max(x1[j] + jitter_offset(h, 1), 0.0), h1);
        x2[j] = std::min(std::max(x2[j] + jitter_offset(h, 2), 0.0), h2);
    }
}

SPECTRALIGN_CLONES
void sample_2d(const MovingView& mv, const double* __restrict x0, const double* __restrict x1, int count,
               double* __restrict value, double* __restrict g0, double* __restrict g1,
               double* __restrict weight) {
    const double m00 = mv.m[0][0], m01 = mv.m[0][1], m02 = mv.m[0][2];
    const double m10 = mv.m[1][0], m11 = mv.m[1][1], m12 = mv.m[1][2];
    const double hi0 = double(mv.n[0] - 1), hi1 = double(mv.n[1] - 1);
    const int top0 = mv.n[0] - 2, top1 = mv.n[1] - 2, s0 = mv.n[1];
    const float* __restrict p = mv.data;
    for (int j = 0; j < count; ++j) {
        const double y0 = m00 * x0[j] + m01 * x1[j] + m02;
        const double y1 = m10 * x0[j] + m11 * x1[j] + m12;
        // Written so that NaN fails too; outside points read voxel 0.
        const bool in = (y0 >= 0.0) & (y0 <= hi0) & (y1 >= 0.0) & (y1 <= hi1);
        const double c0 = in ? y0 : 0.0, c1 = in ? y1 : 0.0;
        const int i0 = std::min(int(c0), top0), i1 = std::min(int(c1), top1);
        const double fy = c0 - double(i0), fx = c1 - double(i1);
        const int k = i0 * s0 + i1;
        const double a = p[k], b = p[k + 1], c = p[k + s0], e = p[k + s0 + 1];
        const double top = a + fx * (b - a), bottom = c + fx * (e - c);
        value[j] = top + fy * (bottom - top);
        g0[j] = bottom - top;
        g1[j] = (1.0 - fy) * (b - a) + fy * (e - c);
        double slope;
        weight[j] = edge_ramp(y0, hi0, slope) * edge_ramp(y1, hi1, slope);
    }
}

SPECTRALIGN_CLONES
void sample_3d(const MovingView& mv, const double* __restrict x0, const double* __restrict x1,
               const double* __restrict x2, int count, double* __restrict value, double* __restrict g0,
               double* __restrict g1, double* __restrict g2, double* __restrict weight) {
    const double m00 = mv.m[0][0], m01 = mv.m[0][1], m02 = mv.m[0][2], m03 = mv.m[0][3];
    const double m10 = mv.m[1][0], m11 = mv.m[1][1], m12 = mv.m[1][2], m13 = mv.m[1][3];
    const double m20 = mv.m[2][0], m21 = mv.m[2][1], m22 = mv.m[2][2], m23 = mv.m[2][3];
    const double hi0 = double(mv.n[0] - 1), hi1 = double(mv.n[1] - 1), hi2 = double(mv.n[2] - 1);
    const int top0 = mv.n[0] - 2, top1 = mv.n[1] - 2, top2 = mv.n[2] - 2;
    const int sy = mv.n[2], sz = mv.n[1] * mv.n[2];
    const float* __restrict p = mv.data;
    for (int j = 0; j < count; ++j) {
        const double y0 = m00 * x0[j] + m01 * x1[j] + m02 * x2[j] + m03;
        const double y1 = m10 * x0[j] + m11 * x1[j] + m12 * x2[j] + m13;
        const double y2 = m20 * x0[j] + m21 * x1[j] + m22 * x2[j] + m23;
        const bool in = (y0 >= 0.0) & (y0 <= hi0) & (y1 >= 0.0) & (y1 <= hi1) & (y2 >= 0.0) & (y2 <= hi2);
        const double c0 = in ? y0 : 0.0, c1 = in ? y1 : 0.0, c2 = in ? y2 : 0.0;
        const int i0 = std::min(int(c0), top0), i1 = std::min(int(c1), top1), i2 = std::min(int(c2), top2);
        const double fz = c0 - double(i0), fy = c1 - double(i1), fx = c2 - double(i2);
        const int k = i0 * sz + i1 * sy + i2;
        const double v000 = p[k], v001 = p[k + 1], v010 = p[k + sy], v011 = p[k + sy + 1];
        const double v100 = p[k + sz], v101 = p[k + sz + 1], v110 = p[k + sz + sy], v111 = p[k + sz + sy + 1];
        const double dx00 = v001 - v000, dx01 = v011 - v010, dx10 = v101 - v100, dx11 = v111 - v110;
        const double a00 = v000 + fx * dx00, a01 = v010 + fx * dx01;
        const double a10 = v100 + fx * dx10, a11 = v110 + fx * dx11;
        const double b0 = a00 + fy * (a01 - a00), b1 = a10 + fy * (a11 - a10);
        value[j] = b0 + fz * (b1 - b0);
        g0[j] = b1 - b0;
        g1[j] = (1.0 - fz) * (a01 - a00) + fz * (a11 - a10);
        const double c00 = dx00 + fy * (dx01 - dx00), c10 = dx10 + fy * (dx11 - dx10);
        g2[j] = c00 + fz * (c10 - c00);
        double slope;
        weight[j] = edge_ramp(y0, hi0, slope) * edge_ramp(y1, hi1, slope) * edge_ramp(y2, hi2, slope);
    }
}

}  // namespace spectralign_fast::reg::metrickit

namespace spectralign_fast::reg::metrickit {

namespace {

constexpr int kLanes = 8;

}  // namespace

SPECTRALIGN_CLONES
void gradient_terms_2d(const MovingView& mv, const double* __restrict x0, const double* __restrict x1, int count,
                       const double* __restrict dv, const double* __restrict edge, const float* __restrict g0,
                       const float* __restrict g1, double* acc) {
    const double m00 = mv.m[0][0], m01 = mv.m[0][1], m02 = mv.m[0][2];
    const double m10 = mv.m[1][0], m11 = mv.m[1][1], m12 = mv.m[1][2];
    const double hi0 = double(mv.n[0] - 1), hi1 = double(mv.n[1] - 1);
    double part[6][kLanes] = {};
    const int whole = count - count % kLanes;
    auto add = [&](int j, int l) {
        const double y0 = m00 * x0[j] + m01 * x1[j] + m02;
        const double y1 = m10 * x0[j] + m11 * x1[j] + m12;
        double s0, s1;
        const double r0 = edge_ramp(y0, hi0, s0), r1 = edge_ramp(y1, hi1, s1);
        // Points not taken have dv = edge = 0 and may carry NaN gradients.
        const double main = dv[j] * r0 * r1;
        const double a = (main != 0.0 ? main * double(g0[j]) : 0.0) + edge[j] * s0 * r1;
        const double b = (main != 0.0 ? main * double(g1[j]) : 0.0) + edge[j] * r0 * s1;
        part[0][l] += a * x0[j];
        part[1][l] += a * x1[j];
        part[2][l] += a;
        part[3][l] += b * x0[j];
        part[4][l] += b * x1[j];
        part[5][l] += b;
    };
    for (int j = 0; j < whole; j += kLanes)
        for (int l = 0; l < kLanes; ++l) add(j + l, l);
    for (int j = whole; j < count; ++j) add(j, j - whole);
    for (int k = 0; k < 6; ++k)
        for (int l = 0; l < kLanes; ++l) acc[k] += part[k][l];
}

SPECTRALIGN_CLONES
void gradient_terms_3d(const MovingView& mv, const double* __restrict x0, const double* __restrict x1,
                       const double* __restrict x2, int count, const double* __restrict dv,
                       const double* __restrict edge, const float* __restrict g0, const float* __restrict g1,
                       const float* __restrict g2, double* acc) {
    const double m00 = mv.m[0][0], m01 = mv.m[0][1], m02 = mv.m[0][2], m03 = mv.m[0][3];
    const double m10 = mv.m[1][0], m11 = mv.m[1][1], m12 = mv.m[1][2], m13 = mv.m[1][3];
    const double m20 = mv.m[2][0], m21 = mv.m[2][1], m22 = mv.m[2][2], m23 = mv.m[2][3];
    const double hi0 = double(mv.n[0] - 1), hi1 = double(mv.n[1] - 1), hi2 = double(mv.n[2] - 1);
    double part[12][kLanes] = {};
    const int whole = count - count % kLanes;
    auto add = [&](int j, int l) {
        const double y0 = m00 * x0[j] + m01 * x1[j] + m02 * x2[j] + m03;
        const double y1 = m10 * x0[j] + m11 * x1[j] + m12 * x2[j] + m13;
        const double y2 = m20 * x0[j] + m21 * x1[j] + m22 * x2[j] + m23;
        double s0, s1, s2;
        const double r0 = edge_ramp(y0, hi0, s0), r1 = edge_ramp(y1, hi1, s1), r2 = edge_ramp(y2, hi2, s2);
        const double main = dv[j] * r0 * r1 * r2;
        const double a = (main != 0.0 ? main * double(g0[j]) : 0.0) + edge[j] * s0 * r1 * r2;
        const double b = (main != 0.0 ? main * double(g1[j]) : 0.0) + edge[j] * r0 * s1 * r2;
        const double c = (main != 0.0 ? main * double(g2[j]) : 0.0) + edge[j] * r0 * r1 * s2;
        part[0][l] += a * x0[j];
        part[1][l] += a * x1[j];
        part[2][l] += a * x2[j];
        part[3][l] += a;
        part[4][l] += b * x0[j];
        part[5][l] += b * x1[j];
        part[6][l] += b * x2[j];
        part[7][l] += b;
        part[8][l] += c * x0[j];
        part[9][l] += c * x1[j];
        part[10][l] += c * x2[j];
        part[11][l] += c;
    };
    for (int j = 0; j < whole; j += kLanes)
        for (int l = 0; l < kLanes; ++l) add(j + l, l);
    for (int j = whole; j < count; ++j) add(j, j - whole);
    for (int k = 0; k < 12; ++k)
        for (int l = 0; l < kLanes; ++l) acc[k] += part[k][l];
}

SPECTRALIGN_CLONES
void mi_windows(const double* __restrict value, const double* __restrict weight,
                const std::int16_t* __restrict fixed_bin, int count, const BinMap& bins,
                std::int32_t* __restrict cell, double* __restrict w0, double* __restrict w1, double* __restrict w2,
                double* __restrict w3) {
    const double lo = double(kPad), hi = double(bins.nbins - kPad), offset = bins.offset, scale = bins.scale;
    const int top = bins.nbins - kPad - 1, nb = bins.nbins;
    for (int j = 0; j < count; ++j) {
        const double c = std::min(std::max(offset + value[j] * scale, lo), hi);
        const int j0 = std::min(int(c), top);
        const double t = c - double(j0), t2 = t * t, t3 = t2 * t, u = 1.0 - t;
        const double wt = weight[j] * (1.0 / 6.0);
        w0[j] = wt * u * u * u;
        w1[j] = wt * (3.0 * t3 - 6.0 * t2 + 4.0);
        w2[j] = wt * (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0);
        w3[j] = wt * t3;
        const int fb = fixed_bin[j];
        cell[j] = (weight[j] > 0.0) & (fb >= 0) ? fb * nb + j0 - 1 : -1;
    }
}

void keep_samples(const double* value, const double* const* grad, int d, const double* weight,
                  const std::int16_t* fixed_bin, const float* fixed, int count, float* kept_value,
                  float* kept_grad, std::int64_t stride) {
    for (int j = 0; j < count; ++j) {
        const bool fixed_ok = fixed_bin ? fixed_bin[j] >= 0 : fixed[j] == fixed[j];
        const bool taken = weight[j] > 0.0 && fixed_ok;
        kept_value[j] = taken ? static_cast<float>(value[j]) : std::numeric_limits<float>::quiet_NaN();
    }
    for (int a = 0; a < d; ++a) {
        float* out = kept_grad + std::int64_t(a) * stride;
        const double* g = grad[a];
        for (int j = 0; j < count; ++j) out[j] = static_cast<float>(g[j]);
    }
}

SPECTRALIGN_CLONES
void mi_weights(const float* __restrict value, const std::int16_t* __restrict fixed_bin, int count,
                const BinMap& bins, const double* __restrict log_ratio, double mi, double* __restrict dv,
                double* __restrict edge) {
    const double lo = double(kPad), hi = double(bins.nbins - kPad), offset = bins.offset, scale = bins.scale;
    const double inv_scale = 1.0 / scale;
    const int top = bins.nbins - kPad - 1, nb = bins.nbins;
    for (int j = 0; j < count; ++j) {
        const double v = value[j];
        const bool ok = v == v;
        const double c = ok ? std::min(std::max(offset + v * scale, lo), hi) : lo;
        const int j0 = std::min(int(c), top);
        const double t = c - double(j0), t2 = t * t, t3 = t2 * t, u = 1.0 - t;
        const int fb = ok ? int(fixed_bin[j]) : kPad;
        const int k = fb * nb + j0 - 1;
        const double l0 = log_ratio[k], l1 = log_ratio[k + 1], l2 = log_ratio[k + 2], l3 = log_ratio[k + 3];
        const double s = -0.5 * u * u * l0 + (1.5 * t2 - 2.0 * t) * l1 + (-1.5 * t2 + t + 0.5) * l2 + 0.5 * t2 * l3;
        const double level = (u * u * u * l0 + (3.0 * t3 - 6.0 * t2 + 4.0) * l1 +
                              (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) * l2 + t3 * l3) * (1.0 / 6.0);
        dv[j] = ok ? s : 0.0;
        edge[j] = ok ? (level - mi) * inv_scale : 0.0;
    }
}

}  // namespace spectralign_fast::reg::metrickit

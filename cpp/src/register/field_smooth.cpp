// Gaussian smoothing of SyN steps (every component of an interleaved field,
// the same sigma on every axis): scipy's kernel (truncate 4) and "reflect"
// edges like smooth.cpp, but in float32 and vectorised across outputs, since
// the step is renormalised right after and needs no scipy-exact bits (the
// affine path keeps the exact gaussian_smooth). Each output element sums its
// taps in the same order whatever the vector width or thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/parallel.hpp"
#include "core/simd_clones.hpp"
#include "field_common.hpp"
#include "gaussian_kernel.hpp"

namespace spectralign_fast::reg {

namespace {

// dst[e] = sum_k w[k] src[k][e] for e < n, each output adding its taps in
// order from 0 (0 + w0 s0 + w1 s1 + ...; contracted to FMAs on the clones
// that have them, as any such loop is), 64 outputs at a time held in
// registers across the taps instead of reloading the output for every tap.
typedef float F16 __attribute__((vector_size(64), aligned(4)));

SPECTRALIGN_CLONES void taps(float* dst, const float* const* src, const float* w, int ntaps, std::int64_t n) {
    std::int64_t c = 0;
    for (; c + 64 <= n; c += 64) {
        F16 a0 = {}, a1 = {}, a2 = {}, a3 = {};
        for (int k = 0; k < ntaps; ++k) {
            const float* s = src[k] + c;
            const float wk = w[k];
            a0 += wk * *reinterpret_cast<const F16*>(s);
            a1 += wk * *reinterpret_cast<const F16*>(s + 16);
            a2 += wk * *reinterpret_cast<const F16*>(s + 32);
            a3 += wk * *reinterpret_cast<const F16*>(s + 48);
        }
        *reinterpret_cast<F16*>(dst + c) = a0;
        *reinterpret_cast<F16*>(dst + c + 16) = a1;
        *reinterpret_cast<F16*>(dst + c + 32) = a2;
        *reinterpret_cast<F16*>(dst + c + 48) = a3;
    }
    // The rest 16 at a time; a last partial group as the 16 outputs ending at n (the ones
    // already made are made again, to the same bits: a 3-D line of 95 voxels x 3 components
    // would leave 13 outputs of scalar sums, as costly as the rest of the line).
    for (; c < n && n >= 16; c += 16) {
        c = std::min(c, n - 16);
        F16 a0 = {};
        for (int k = 0; k < ntaps; ++k) a0 += w[k] * *reinterpret_cast<const F16*>(src[k] + c);
        *reinterpret_cast<F16*>(dst + c) = a0;
    }
    for (; c < n; ++c) {  // lines of under 16 values
        float a = 0.0f;
        for (int k = 0; k < ntaps; ++k) a += w[k] * src[k][c];
        dst[c] = a;
    }
}

// Outputs kSmoothRows lines of an outer-axis pass at once (lines i .. i + Rows - 1
// of a column block), sharing each source line's loads: source line j
// (0 <= j < ntaps + Rows - 1) is tap j - q of output line q. Each output
// still adds its taps in order from 0, so the bits are taps()'s; the loads
// per output fall from ntaps to (ntaps + Rows - 1) / Rows (the smoothing was
// bound by them, not by its multiply-adds).
constexpr int kSmoothRows = 4;

SPECTRALIGN_CLONES void taps_rows(float* const* dst, const float* const* src, const float* w, int ntaps,
                                  std::int64_t n) {
    constexpr int Rows = kSmoothRows;
    std::int64_t c = 0;
    for (; c + 32 <= n; c += 32) {
        F16 acc[Rows][2] = {};
        // Source line j feeds outputs q with 0 <= j - q < ntaps: some of them in the first and
        // last Rows - 1 lines, all of them (no tests) in between.
        const auto line = [&](int j, auto every) {
            const F16 s0 = *reinterpret_cast<const F16*>(src[j] + c);
            const F16 s1 = *reinterpret_cast<const F16*>(src[j] + c + 16);
            // The hardware streams 2 r + Rows lines at once; the next block's start is fetched ahead.
            __builtin_prefetch(src[j] + c + 64);
            __builtin_prefetch(src[j] + c + 80);
#pragma GCC unroll 8
            for (int q = 0; q < Rows; ++q) {
                const int k = j - q;
                if (decltype(every)::value || (k >= 0 && k < ntaps)) {
                    acc[q][0] += w[k] * s0;
                    acc[q][1] += w[k] * s1;
                }
            }
        };
        const int steady_end = std::max(ntaps, Rows - 1);
        int j = 0;
        for (; j < Rows - 1; ++j) line(j, std::false_type{});
        for (; j < steady_end; ++j) line(j, std::true_type{});
        for (; j < ntaps + Rows - 1; ++j) line(j, std::false_type{});
#pragma GCC unroll 8
        for (int q = 0; q < Rows; ++q) {
            *reinterpret_cast<F16*>(dst[q] + c) = acc[q][0];
            *reinterpret_cast<F16*>(dst[q] + c + 16) = acc[q][1];
        }
    }
    for (; c < n && n >= 16; c += 16) {  // the last group ends at n, as in taps()
        c = std::min(c, n - 16);
        F16 acc[Rows] = {};
        for (int j = 0; j < ntaps + Rows - 1; ++j) {
            const F16 s0 = *reinterpret_cast<const F16*>(src[j] + c);
#pragma GCC unroll 8
            for (int q = 0; q < Rows; ++q) {
                const int k = j - q;
                if (k >= 0 && k < ntaps) acc[q] += w[k] * s0;
            }
        }
#pragma GCC unroll 8
        for (int q = 0; q < Rows; ++q) *reinterpret_cast<F16*>(dst[q] + c) = acc[q];
    }
    for (; c < n; ++c)
        for (int q = 0; q < Rows; ++q) {
            float a = 0.0f;
            for (int k = 0; k < ntaps; ++k) a += w[k] * src[k + q][c];
            dst[q][c] = a;
        }
}

std::vector<float> kernel(double sigma) {
    const std::vector<double> w = gaussian_kernel(sigma);
    return std::vector<float>(w.begin(), w.end());
}

// Along an axis with `inner` contiguous values per index (outer slabs of n x
// inner), in column blocks: a block's 2 r + 1 source rows stay in cache
// while the outputs along the axis are summed (each output still adds its
// taps in kernel order, so the bits do not depend on the blocking).
constexpr std::int64_t kSmoothBlock = 512;

void smooth_outer_axis(const float* in, float* out, std::int64_t outer, std::int64_t n, std::int64_t inner,
                       const std::vector<float>& w, int threads) {
    const int radius = static_cast<int>(w.size() / 2);
    const std::int64_t blocks = (inner + kSmoothBlock - 1) / kSmoothBlock;
    parallel_for_runs(static_cast<std::size_t>(outer * blocks), threads,
                      [&] { return std::vector<const float*>(w.size() + kSmoothRows - 1); },
                      [&](std::vector<const float*>& src, std::size_t unit) {
        const std::int64_t o = std::int64_t(unit) / blocks, c0 = (std::int64_t(unit) % blocks) * kSmoothBlock;
        const std::int64_t width = std::min(kSmoothBlock, inner - c0);
        const float* slab = in + o * n * inner + c0;
        float* dst[kSmoothRows];
        std::int64_t i = 0;
        for (; i + kSmoothRows <= n; i += kSmoothRows) {
            for (int j = -radius; j < radius + kSmoothRows; ++j)
                src[std::size_t(j + radius)] = slab + reflect_index(i + j, n) * inner;
            for (int q = 0; q < kSmoothRows; ++q) dst[q] = out + (o * n + i + q) * inner + c0;
            taps_rows(dst, src.data(), w.data(), int(w.size()), width);
        }
        for (; i < n; ++i) {
            for (int k = -radius; k <= radius; ++k) src[std::size_t(k + radius)] = slab + reflect_index(i + k, n) * inner;
            taps(out + (o * n + i) * inner + c0, src.data(), w.data(), int(w.size()), width);
        }
    });
}

// Along the last axis: each line (n voxels of `comps` values) padded by
// reflection, then out[e] = sum_k w[k] padded[e + k comps] for every e.
void smooth_last_axis(const float* in, float* out, std::int64_t lines, std::int64_t n, int comps,
                      const std::vector<float>& w, int threads) {
    const int radius = static_cast<int>(w.size() / 2);
    parallel_for_runs(static_cast<std::size_t>(lines), threads,
                      [&] {
                          const auto padded = static_cast<std::size_t>((n + 2 * radius) * comps);
                          return std::make_pair(std::vector<float>(padded), std::vector<const float*>(w.size()));
                      },
                      [&](std::pair<std::vector<float>, std::vector<const float*>>& st, std::size_t o) {
                          std::vector<float>& line = st.first;
                          const float* src = in + std::int64_t(o) * n * comps;
                          // The line itself in one copy; only the reflected ends voxel by voxel (a copy
                          // call per voxel of 2-3 floats was 8 % of cc_steps).
                          std::copy(src, src + n * comps, line.data() + std::int64_t(radius) * comps);
                          const auto reflect = [&](std::int64_t i) {
                              const float* from = src + reflect_index(i, n) * comps;
                              float* to = line.data() + (i + radius) * comps;
                              for (int c = 0; c < comps; ++c) to[c] = from[c];
                          };
                          for (std::int64_t i = -radius; i < 0; ++i) reflect(i);
                          for (std::int64_t i = n; i < n + radius; ++i) reflect(i);
                          for (std::size_t k = 0; k < w.size(); ++k)
                              st.second[k] = line.data() + std::int64_t(k) * comps;
                          taps(out + std::int64_t(o) * n * comps, st.second.data(), w.data(), int(w.size()),
                               n * comps);
                      });
}

}  // namespace

void smooth_field_components(float* field, const FieldShape& s, double sigma, int threads) {
    if (!std::isfinite(sigma) || sigma < 0.0 || sigma > 1e4)
        throw std::invalid_argument("the smoothing sigma must be finite, >= 0 and at most 1e4");
    if (sigma == 0.0) return;
    const int d = s.ndim;
    const std::int64_t total = s.voxels() * d;
    const std::vector<float> w = kernel(sigma);
    // Every pass writes all of its output: no zero fill of the work buffer.
    const std::unique_ptr<float[]> work(new float[static_cast<std::size_t>(total)]);
    float* cur = field;
    float* next = work.get();
    for (int a = 0; a < d - 1; ++a) {
        std::int64_t outer = 1, inner = d;
        for (int b = 0; b < a; ++b) outer *= s.shape[b];
        for (int b = a + 1; b < d; ++b) inner *= s.shape[b];
        smooth_outer_axis(cur, next, outer, s.shape[a], inner, w, threads);
        std::swap(cur, next);
    }
    // Into `field` directly (in place when the outer passes ended there: each
    // line is copied out before it is written), so no final copy.
    smooth_last_axis(cur, field, total / (s.shape[d - 1] * d), s.shape[d - 1], d, w, threads);
}

}  // namespace spectralign_fast::reg

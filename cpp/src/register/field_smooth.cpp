// Gaussian smoothing of SyN steps (every component of an interleaved field,
// the same sigma on every axis): scipy's kernel (truncate 4) and "reflect"
// edges like smooth.cpp, but in float32 and vectorised across outputs, since
// the step is renormalised right after and needs no scipy-exact bits (the
// affine path keeps the exact gaussian_smooth). Each output element sums its
// taps in the same order whatever the vector width or thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/parallel.hpp"
#include "core/simd_clones.hpp"
#include "field_common.hpp"
#include "gaussian_kernel.hpp"

namespace spectralign_fast::reg {

namespace {

SPECTRALIGN_CLONES void axpy(float* acc, const float* src, float w, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) acc[i] += w * src[i];
}

std::vector<float> kernel(double sigma) {
    const std::vector<double> w = gaussian_kernel(sigma);
    return std::vector<float>(w.begin(), w.end());
}

// Along an axis with `inner` contiguous values per index (outer slabs of n x inner).
void smooth_outer_axis(const float* in, float* out, std::int64_t outer, std::int64_t n, std::int64_t inner,
                       const std::vector<float>& w, int threads) {
    const int radius = static_cast<int>(w.size() / 2);
    parallel_for(static_cast<std::size_t>(outer * n), threads, [] { return 0; }, [&](int&, std::size_t unit) {
        const std::int64_t o = std::int64_t(unit) / n, i = std::int64_t(unit) % n;
        float* dst = out + (o * n + i) * inner;
        std::fill(dst, dst + inner, 0.0f);
        const float* slab = in + o * n * inner;
        for (int k = -radius; k <= radius; ++k)
            axpy(dst, slab + reflect_index(i + k, n) * inner, w[std::size_t(k + radius)], inner);
    });
}

// Along the last axis: each line (n voxels of `comps` values) padded by
// reflection, then out[e] = sum_k w[k] padded[e + k comps] for every e.
void smooth_last_axis(const float* in, float* out, std::int64_t lines, std::int64_t n, int comps,
                      const std::vector<float>& w, int threads) {
    const int radius = static_cast<int>(w.size() / 2);
    parallel_for(static_cast<std::size_t>(lines), threads,
                 [&] { return std::vector<float>(static_cast<std::size_t>((n + 2 * radius) * comps)); },
                 [&](std::vector<float>& line, std::size_t o) {
                     const float* src = in + std::int64_t(o) * n * comps;
                     for (std::int64_t i = -radius; i < n + radius; ++i)
                         std::copy(src + reflect_index(i, n) * comps, src + reflect_index(i, n) * comps + comps,
                                   line.data() + (i + radius) * comps);
                     float* dst = out + std::int64_t(o) * n * comps;
                     std::fill(dst, dst + n * comps, 0.0f);
                     for (std::size_t k = 0; k < w.size(); ++k)
                         axpy(dst, line.data() + std::int64_t(k) * comps, w[k], n * comps);
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
    std::vector<float> work(static_cast<std::size_t>(total));
    float* cur = field;
    float* next = work.data();
    for (int a = 0; a < d - 1; ++a) {
        std::int64_t outer = 1, inner = d;
        for (int b = 0; b < a; ++b) outer *= s.shape[b];
        for (int b = a + 1; b < d; ++b) inner *= s.shape[b];
        smooth_outer_axis(cur, next, outer, s.shape[a], inner, w, threads);
        std::swap(cur, next);
    }
    smooth_last_axis(cur, next, total / (s.shape[d - 1] * d), s.shape[d - 1], d, w, threads);
    std::swap(cur, next);
    if (cur != field) std::copy(cur, cur + total, field);
}

}  // namespace spectralign_fast::reg

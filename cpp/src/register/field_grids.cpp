// Displacement fields on a coarser grid than their images (SyN's
// field_spacing): a step restricted to every f-th voxel (tent average, then
// the rest of its Gaussian on the coarse grid), and a coarse field brought
// back to the image grid (d-linear). Each output row depends only on its own
// index, so the bits do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/parallel.hpp"
#include "field_common.hpp"
#include "field_grids.hpp"

namespace spectralign_fast::reg {

using namespace fieldkit;

namespace {

// scipy's 'reflect' edge (d c b a | a b c d | d c b a) for |k| < 2 n.
inline std::int64_t reflect(std::int64_t k, std::int64_t n) {
    if (k < 0) k = -k - 1;
    if (k >= n) k = 2 * n - k - 1;
    return std::clamp<std::int64_t>(k, 0, n - 1);
}

// The tent restriction in one pass over the input: each coarse row blends
// the (2 f - 1)^(D-1) input rows around it (weights (f - |k|) / f^2 per axis,
// scipy's 'reflect' edge) into a line buffer, then takes every f-th voxel
// of the line with the same weights along the last axis.
template <int D>
void restrict_impl(const float* field, const FieldShape& s, int f, const FieldShape& cs, float* out, int threads) {
    const Grid<D> g(s), gc(cs);
    const int taps = 2 * f - 1;
    std::vector<float> w(static_cast<std::size_t>(taps));
    for (int k = 0; k < taps; ++k) w[static_cast<std::size_t>(k)] = float(f - std::abs(k - (f - 1))) / float(f * f);
    const std::int64_t n_last = g.n[D - 1], m_last = gc.n[D - 1], line_len = n_last * D;
    parallel_for_runs(
        static_cast<std::size_t>(gc.rows()), threads,
        [&] { return std::vector<float>(static_cast<std::size_t>(line_len)); },
        [&](std::vector<float>& line, std::size_t row) {
            std::int64_t idx[D];
            gc.row_index(std::int64_t(row), idx);
            float* L = line.data();
            std::fill(L, L + line_len, 0.0f);
            // The input rows under this coarse row: one axis (2-D) or two (3-D) of taps.
            const int taps1 = D == 3 ? taps : 1;
            for (int a = 0; a < taps; ++a) {
                const std::int64_t i0 = reflect(std::int64_t(f) * idx[0] + a - (f - 1), g.n[0]);
                for (int b = 0; b < taps1; ++b) {
                    std::int64_t offset = i0 * g.stride[0];
                    float wt = w[static_cast<std::size_t>(a)];
                    if constexpr (D == 3) {
                        offset += reflect(std::int64_t(f) * idx[1] + b - (f - 1), g.n[1]) * g.stride[1];
                        wt *= w[static_cast<std::size_t>(b)];
                    }
                    const float* src = field + offset * D;
                    for (std::int64_t k = 0; k < line_len; ++k) L[k] += wt * src[k];
                }
            }
            float* dst = out + std::int64_t(row) * m_last * D;
            for (std::int64_t j = 0; j < m_last; ++j) {
                float acc[D] = {};
                for (int c = 0; c < taps; ++c) {
                    const std::int64_t src = reflect(std::int64_t(f) * j + c - (f - 1), n_last);
                    for (int k = 0; k < D; ++k) acc[k] += w[static_cast<std::size_t>(c)] * L[src * D + k];
                }
                for (int k = 0; k < D; ++k) dst[j * D + k] = acc[k];
            }
        });
}

template <int D>
void upsample_impl(const float* coarse, const FieldShape& cs, int f, const FieldShape& os, float* out, int threads) {
    const Grid<D> gc(cs), go(os);
    const std::int64_t rows = go.rows(), nlast = go.n[D - 1];
    parallel_for_runs(
        static_cast<std::size_t>(rows), threads,
        [&] { return std::vector<float>(static_cast<std::size_t>(gc.n[D - 1] * D)); },
        [&](std::vector<float>& blend, std::size_t row) {
            std::int64_t idx[D];
            go.row_index(std::int64_t(row), idx);
            upsample_row<D>(coarse, gc, f, idx, nlast, blend.data(), out + std::int64_t(row) * nlast * D);
        });
}

void check_factor(int factor) {
    if (factor < 1 || factor > 16) throw std::invalid_argument("the field grid factor must be 1 to 16");
}

}  // namespace

std::int64_t coarse_extent(std::int64_t n, int factor) {
    check_factor(factor);
    if (n < 1) throw std::invalid_argument("a grid extent must be >= 1");
    return (n - 1 + factor - 1) / factor + 1;
}

void restrict_field(const float* field, const FieldShape& s, int factor, double sigma, float* out, int threads) {
    check_shape(s, "field");
    check_factor(factor);
    if (!std::isfinite(sigma) || sigma < 0.0 || sigma > 1e4)
        throw std::invalid_argument("sigma must be finite, >= 0 and at most 1e4");
    FieldShape cs = s;
    for (int a = 0; a < s.ndim; ++a) cs.shape[a] = coarse_extent(s.shape[a], factor);
    with_dim(s.ndim, [&](auto dim) { restrict_impl<decltype(dim)::value>(field, s, factor, cs, out, threads); });
    // The tent's variance per axis is (f^2 - 1) / 6 voxels^2: the Gaussian on the coarse grid
    // supplies the rest of sigma^2, in coarse voxels.
    const double tent = (double(factor) * factor - 1.0) / 6.0;
    const double rest = sigma * sigma - tent;
    if (rest > 0.0) smooth_field_components(out, cs, std::sqrt(rest) / factor, threads);
}

void upsample_field(const float* coarse, const FieldShape& cs, int factor, const FieldShape& out_shape, float* out,
                    int threads) {
    check_shape(cs, "field");
    check_shape(out_shape, "out_shape");
    check_factor(factor);
    if (cs.ndim != out_shape.ndim) throw std::invalid_argument("out_shape must have the field's dimension");
    for (int a = 0; a < cs.ndim; ++a)
        if (cs.shape[a] != coarse_extent(out_shape.shape[a], factor))
            throw std::invalid_argument("the coarse field's axis " + std::to_string(a) + " has " +
                                        std::to_string(cs.shape[a]) + " nodes; a grid of " +
                                        std::to_string(out_shape.shape[a]) + " at factor " +
                                        std::to_string(factor) + " needs " +
                                        std::to_string(coarse_extent(out_shape.shape[a], factor)));
    with_dim(cs.ndim, [&](auto dim) { upsample_impl<decltype(dim)::value>(coarse, cs, factor, out_shape, out, threads); });
}

}  // namespace spectralign_fast::reg

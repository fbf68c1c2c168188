#include "shift.hpp"

#include <algorithm>
#include <cmath>

#include "core/simd_clones.hpp"
#include "kernels.hpp"

namespace spectralign_fast::sample {

namespace {

SPECTRALIGN_CLONES void combine_rows_impl(const float* const* src, const float* weight, int taps,
                                          float* out, std::size_t n) {
    if (taps == 2) {
        const float* a = src[0];
        const float* b = src[1];
        const float wa = weight[0], wb = weight[1];
#pragma omp simd
        for (std::size_t k = 0; k < n; ++k) out[k] = wa * a[k] + wb * b[k];
        return;
    }
    const float* a = src[0];
    const float* b = src[1];
    const float* c = src[2];
    const float* d = src[3];
    const float wa = weight[0], wb = weight[1], wc = weight[2], wd = weight[3];
#pragma omp simd
    for (std::size_t k = 0; k < n; ++k) out[k] = wa * a[k] + wb * b[k] + wc * c[k] + wd * d[k];
}

// out[x] = sum_j weight[j] * row[x + base + j] for x in [lo, hi), where
// every read lies inside the row (the caller clamps the rest).
SPECTRALIGN_CLONES void combine_shifted(const float* row, const float* weight, int taps, int base,
                                        float* out, int lo, int hi) {
    if (taps == 2) {
        const float wa = weight[0], wb = weight[1];
#pragma omp simd
        for (int x = lo; x < hi; ++x) out[x] = wa * row[x + base] + wb * row[x + base + 1];
        return;
    }
    const float wa = weight[0], wb = weight[1], wc = weight[2], wd = weight[3];
#pragma omp simd
    for (int x = lo; x < hi; ++x)
        out[x] = wa * row[x + base] + wb * row[x + base + 1] + wc * row[x + base + 2] + wd * row[x + base + 3];
}

}  // namespace

ShiftTaps shift_taps(double delta, int n, bool cubic) {
    // Beyond the frame every sample is an edge pixel anyway; the clamp keeps
    // the integer arithmetic in range.
    delta = std::clamp(delta, -static_cast<double>(n) - 4.0, static_cast<double>(n) + 4.0);
    const double fl = std::floor(delta);
    const float t = static_cast<float>(delta - fl);
    ShiftTaps taps;
    if (!cubic) {
        taps.base = static_cast<int>(fl);
        taps.count = 2;
        taps.weight[0] = 1.0f - t;
        taps.weight[1] = t;
    } else {
        taps.base = static_cast<int>(fl) - 1;
        taps.count = 4;
        kern::catmull_rom_weights(t, taps.weight);
    }
    return taps;
}

void combine_rows(const float* const* src, const ShiftTaps& taps, float* out, std::size_t n) {
    combine_rows_impl(src, taps.weight, taps.count, out, n);
}

void shift_row(const float* row, const ShiftTaps& taps, int n, float* out) {
    // Interior: every tap inside the row.
    const int lo = std::clamp(-taps.base, 0, n);
    const int hi = std::clamp(n - (taps.base + taps.count - 1), lo, n);
    auto edge = [&](int x) {
        float v = 0;
        for (int j = 0; j < taps.count; ++j) v += taps.weight[j] * row[std::clamp(x + taps.base + j, 0, n - 1)];
        out[x] = v;
    };
    for (int x = 0; x < lo; ++x) edge(x);
    if (hi > lo) combine_shifted(row, taps.weight, taps.count, taps.base, out, lo, hi);
    for (int x = hi; x < n; ++x) edge(x);
}

}  // namespace spectralign_fast::sample

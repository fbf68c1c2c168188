#include "match/swim_kernels.hpp"

#include <cstddef>

#include "core/simd_clones.hpp"

namespace spectralign_fast {
namespace kernels {

namespace {

// Columns of prefetch in the transposes: each column sits on its own page,
// out of reach of the hardware prefetcher.
constexpr int transpose_ahead = 16;

}  // namespace

SPECTRALIGN_CLONES RowSums row_sums(const float* x, const float* apo_x, int n) {
    double s = 0, ss = 0, sa = 0;
#pragma omp simd reduction(+ : s, ss, sa)
    for (int j = 0; j < n; ++j) {
        const double v = x[j];
        s += v;
        ss += v * v;
        sa += v * apo_x[j];
    }
    return {s, ss, sa};
}

SPECTRALIGN_CLONES void row_pack(const WindowRow& first, const WindowRow& second, float* out, int n) {
    const float *x1 = first.x, *a1 = first.apo_x, *x2 = second.x, *a2 = second.apo_x;
    const float ay1 = first.ay, g1 = first.gray, o1 = first.offset, s1 = first.scale;
    const float ay2 = second.ay, g2 = second.gray, o2 = second.offset, s2 = second.scale;
#pragma omp simd
    for (int j = 0; j < n; ++j) {
        out[2 * j] = ((x1[j] - g1) * (ay1 * a1[j]) - o1) * s1;
        out[2 * j + 1] = ((x2[j] - g2) * (ay2 * a2[j]) - o2) * s2;
    }
}

SPECTRALIGN_CLONES void row_mirror(const float* row, float* mirrored, int n, int count) {
    mirrored[0] = row[0];
    mirrored[1] = row[1];
#pragma omp simd
    for (int c = 1; c < count; ++c) {
        mirrored[2 * c] = row[2 * (n - c)];
        mirrored[2 * c + 1] = row[2 * (n - c) + 1];
    }
}

SPECTRALIGN_CLONES float row_max(const float* x, int n) {
    float best = x[0];
#pragma omp simd reduction(max : best)
    for (int k = 0; k < n; ++k) best = x[k] > best ? x[k] : best;
    return best;
}

void transpose_rows(const void* src, std::size_t src_stride, int rows, int n, void* dst, std::size_t dst_stride) {
    // 64-bit moves: one complex float each.
    const unsigned long long* in = static_cast<const unsigned long long*>(src);
    unsigned long long* out = static_cast<unsigned long long*>(dst);
    for (int k = 0; k < n; ++k) {
        if (k + transpose_ahead < n) prefetch_line<1>(out + (k + transpose_ahead) * dst_stride);
        unsigned long long* column = out + k * dst_stride;
        for (int g = 0; g < rows; ++g) column[g] = in[static_cast<std::size_t>(g) * src_stride + k];
    }
}

void transpose_columns(const void* src, std::size_t src_stride, int count, int rows, void* dst,
                       std::size_t dst_stride) {
    const unsigned long long* in = static_cast<const unsigned long long*>(src);
    unsigned long long* out = static_cast<unsigned long long*>(dst);
    for (int k = 0; k < count; ++k) {
        if (k + transpose_ahead < count) prefetch_line<0>(in + (k + transpose_ahead) * src_stride);
        const unsigned long long* column = in + k * src_stride;
        for (int g = 0; g < rows; ++g) out[static_cast<std::size_t>(g) * dst_stride + k] = column[g];
    }
}

}  // namespace kernels
}  // namespace spectralign_fast

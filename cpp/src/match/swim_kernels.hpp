// Row kernels of the swim hot path. On x86-64 Linux with GCC each has
// AVX-512 and AVX2+FMA clones chosen at load time (the default build stays
// baseline x86-64, so wheels remain portable; -march=native is an opt-in
// CMake option). The AVX-512 clone measured 9-12% faster per iteration here.
#pragma once

#include <cstddef>

namespace spectralign_fast {
namespace kernels {

// Asks for the cache line holding p: for_write 1 to write it, 0 to read it.
template <int for_write>
inline void prefetch_line(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, for_write, 3);
#else
    (void)p;
#endif
}

// Accumulated in double: squares of float32 pixels overflow float beyond
// |x| ~ 1e19, which would silently look like a window without contrast.
struct RowSums {
    double sum = 0;      // sum of x
    double sum_sq = 0;   // sum of x^2
    double sum_apo = 0;  // sum of x * apo_x
};

RowSums row_sums(const float* x, const float* apo_x, int n);

// One row of a window about to be normalized: out = ((x - gray) * (ay *
// apo_x) - offset) * scale. A window that is not apodized has apo_x = 1,
// ay = 1 and offset = 0.
struct WindowRow {
    const float* x;
    const float* apo_x;
    float ay, gray, offset, scale;
};

// Normalizes one row of each window into one complex row: the first window
// in the real parts, the second in the imaginary parts (out holds 2n floats).
void row_pack(const WindowRow& first, const WindowRow& second, float* out, int n);

// mirrored[c] = row[(n - c) % n] for c < count: the partner bins -k of one
// row of a full complex spectrum, reversed so they line up with bins k
// (the `w` of spectral::whiten_packed, fft/spectral.hpp).
void row_mirror(const float* row, float* mirrored, int n, int count);

float row_max(const float* x, int n);

// Complex values (re, im interleaved as std::complex<float> pairs of floats).
// dst[k * dst_stride + g] = src[g * src_stride + k] for g < rows, k < n: a
// group of rows stored as the first entries of n columns.
void transpose_rows(const void* src, std::size_t src_stride, int rows, int n, void* dst, std::size_t dst_stride);
// dst[g * dst_stride + k] = src[k * src_stride + g] for g < rows, k < count:
// the inverse, a group of rows gathered back from `count` columns.
void transpose_columns(const void* src, std::size_t src_stride, int count, int rows, void* dst,
                       std::size_t dst_stride);

}  // namespace kernels
}  // namespace spectralign_fast

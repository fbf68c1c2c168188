// Row functions of the sample core: each fills one output row (the last
// axis) of a warp. One function per (input type, output type, dimension,
// kernel, index width), compiled with SIMD clones in rows_*.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "spectralign_fast/sample/warp.hpp"

namespace spectralign_fast::sample::detail {

constexpr int kLanes = 16;  // output pixels per block (one AVX-512 float vector)
constexpr int kMaxSpan = 32;  // longest block of the linear span path
constexpr int kTapPad = 6;  // tap tables cover indices [-kTapPad, n + kTapPad)

// The array sampled from (the image, or its B-spline coefficients).
struct Source {
    const void* data = nullptr;
    int ndim = 2;
    int n[3] = {1, 1, 1};             // sizes, array axis order
    std::int64_t stride[3] = {0, 0, 1};  // in elements
    bool constant = true;   // Boundary::Constant: cval outside [0, n - 1]
    float cval = 0.0f;
    double offset = 0.0;    // added to every coordinate (B-spline padding)
    // Cubic kernels: tap index -> element index along each axis, for taps
    // in [-kTapPad, n + kTapPad) (mirror for Constant, clamp for Nearest).
    const int* taps[3] = {nullptr, nullptr, nullptr};
};

// One output row: affine (coordinate = p + k * d for output column k) or a
// displacement field (coordinate = o + (0, .., k) + field[k]).
struct Row {
    double p[3] = {0, 0, 0};
    double d[3] = {0, 0, 0};
    // 1 / d[a] where the caller has it at hand (0: not): spares the span
    // plan's divisions (rows of a few hundred pixels, as the Renderer's);
    // results are the same either way.
    double inv_d[3] = {0, 0, 0};
    const float* field = nullptr;  // n * ndim floats, or null (affine)
    int n = 0;
    void* out = nullptr;
    // 3-D affine rows: element offset from a pixel's source cell to the
    // cell of the same pixel one output plane later (0: none). The linear
    // span path prefetches that plane's new source rows (a hint only; the
    // arithmetic does not depend on it).
    std::int64_t next_plane = 0;
};

using RowFn = void (*)(const Source&, const Row&);

// The row function for this combination (in = out type except for
// BSpline3, which reads float32 coefficients); idx32: every element offset
// fits in an int (faster gathers).
RowFn pick_row(Dtype in, Dtype out, int ndim, Kernel k, bool idx32);

RowFn pick_linear(Dtype t, int ndim, bool idx32);
RowFn pick_nearest(Dtype t, int ndim, bool idx32);
RowFn pick_cubic(Dtype in, Dtype out, int ndim, Kernel k, bool idx32);

// 2-D rows of any pixel type with float32 output (the Renderer's samples):
// Nearest, Linear or CatmullRom.
RowFn pick_row_to_float(Dtype in, Kernel k, bool idx32);
RowFn pick_linear_to_float(Dtype t, bool idx32);
RowFn pick_nearest_to_float(Dtype t, bool idx32);
RowFn pick_catrom_to_float(Dtype t, bool idx32);

// Tap index -> element index along an axis of n samples, for taps in
// [-kTapPad, n + kTapPad): scipy's mirror map or a clamp (see warp.cpp).
std::vector<int> tap_table(std::int64_t n, bool mirror);

}  // namespace spectralign_fast::sample::detail

// Row functions for the cubic kernels: Catmull-Rom on the pixels, B-spline on
// float32 coefficients (any output type) (see row_impl.hpp): one per pixel type,
// dimension and index width, each with AVX-512 / AVX2 / baseline clones.
#include <cstdint>

#include "core/simd_clones.hpp"
#include "row_impl.hpp"

namespace spectralign_fast::sample::detail {

namespace {

using u8 = std::uint8_t;
using u16 = std::uint16_t;
using f32 = float;
using i32 = int;
using i64 = std::int64_t;

#define SF_ROW(NAME, TIN, TOUT, D, K, IDX)                                                \
    SPECTRALIGN_CLONES void NAME##_##TOUT##_##D##_##IDX(const Source& s, const Row& r) { \
        row_impl<TIN, TOUT, D, Kernel::K, IDX>(s, r);                                     \
    }
SF_ROW(catrom, u8, u8, 2, CatmullRom, i32)
SF_ROW(catrom, u8, u8, 2, CatmullRom, i64)
SF_ROW(catrom, u8, u8, 3, CatmullRom, i32)
SF_ROW(catrom, u8, u8, 3, CatmullRom, i64)
SF_ROW(catrom, u16, u16, 2, CatmullRom, i32)
SF_ROW(catrom, u16, u16, 2, CatmullRom, i64)
SF_ROW(catrom, u16, u16, 3, CatmullRom, i32)
SF_ROW(catrom, u16, u16, 3, CatmullRom, i64)
SF_ROW(catrom, f32, f32, 2, CatmullRom, i32)
SF_ROW(catrom, f32, f32, 2, CatmullRom, i64)
SF_ROW(catrom, f32, f32, 3, CatmullRom, i32)
SF_ROW(catrom, f32, f32, 3, CatmullRom, i64)
SF_ROW(bspline, f32, u8, 2, BSpline3, i32)
SF_ROW(bspline, f32, u8, 2, BSpline3, i64)
SF_ROW(bspline, f32, u8, 3, BSpline3, i32)
SF_ROW(bspline, f32, u8, 3, BSpline3, i64)
SF_ROW(bspline, f32, u16, 2, BSpline3, i32)
SF_ROW(bspline, f32, u16, 2, BSpline3, i64)
SF_ROW(bspline, f32, u16, 3, BSpline3, i32)
SF_ROW(bspline, f32, u16, 3, BSpline3, i64)
SF_ROW(bspline, f32, f32, 2, BSpline3, i32)
SF_ROW(bspline, f32, f32, 2, BSpline3, i64)
SF_ROW(bspline, f32, f32, 3, BSpline3, i32)
SF_ROW(bspline, f32, f32, 3, BSpline3, i64)

// 2-D rows with float32 output from integer pixels (the Renderer blends in
// float32 before its own rounding).
#define SF_ROWF(NAME, TIN, K, IDX)                                                      \
    SPECTRALIGN_CLONES void NAME##_##TIN##f_2_##IDX(const Source& s, const Row& r) { \
        row_impl<TIN, f32, 2, Kernel::K, IDX>(s, r);                                    \
    }
SF_ROWF(catrom, u8, CatmullRom, i32)
SF_ROWF(catrom, u8, CatmullRom, i64)
SF_ROWF(catrom, u16, CatmullRom, i32)
SF_ROWF(catrom, u16, CatmullRom, i64)

#undef SF_ROW
#undef SF_ROWF

RowFn pick_catrom(Dtype t, int ndim, bool idx32) {
    const bool three = ndim == 3;
    switch (t) {
        case Dtype::U8:
            if (three) return idx32 ? catrom_u8_3_i32 : catrom_u8_3_i64;
            return idx32 ? catrom_u8_2_i32 : catrom_u8_2_i64;
        case Dtype::U16:
            if (three) return idx32 ? catrom_u16_3_i32 : catrom_u16_3_i64;
            return idx32 ? catrom_u16_2_i32 : catrom_u16_2_i64;
        case Dtype::F32:
            if (three) return idx32 ? catrom_f32_3_i32 : catrom_f32_3_i64;
            return idx32 ? catrom_f32_2_i32 : catrom_f32_2_i64;
    }
    return nullptr;
}

RowFn pick_bspline(Dtype t, int ndim, bool idx32) {
    const bool three = ndim == 3;
    switch (t) {
        case Dtype::U8:
            if (three) return idx32 ? bspline_u8_3_i32 : bspline_u8_3_i64;
            return idx32 ? bspline_u8_2_i32 : bspline_u8_2_i64;
        case Dtype::U16:
            if (three) return idx32 ? bspline_u16_3_i32 : bspline_u16_3_i64;
            return idx32 ? bspline_u16_2_i32 : bspline_u16_2_i64;
        case Dtype::F32:
            if (three) return idx32 ? bspline_f32_3_i32 : bspline_f32_3_i64;
            return idx32 ? bspline_f32_2_i32 : bspline_f32_2_i64;
    }
    return nullptr;
}

}  // namespace

RowFn pick_cubic(Dtype in, Dtype out, int ndim, Kernel k, bool idx32) {
    if (k == Kernel::BSpline3) return in == Dtype::F32 ? pick_bspline(out, ndim, idx32) : nullptr;
    return in == out ? pick_catrom(in, ndim, idx32) : nullptr;
}

RowFn pick_catrom_to_float(Dtype t, bool idx32) {
    switch (t) {
        case Dtype::U8: return idx32 ? catrom_u8f_2_i32 : catrom_u8f_2_i64;
        case Dtype::U16: return idx32 ? catrom_u16f_2_i32 : catrom_u16f_2_i64;
        case Dtype::F32: return idx32 ? catrom_f32_2_i32 : catrom_f32_2_i64;
    }
    return nullptr;
}

}  // namespace spectralign_fast::sample::detail

// Row functions for the linear kernel (see row_impl.hpp): one per pixel type,
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
SF_ROW(linear, u8, u8, 2, Linear, i32)
SF_ROW(linear, u8, u8, 2, Linear, i64)
SF_ROW(linear, u8, u8, 3, Linear, i32)
SF_ROW(linear, u8, u8, 3, Linear, i64)
SF_ROW(linear, u16, u16, 2, Linear, i32)
SF_ROW(linear, u16, u16, 2, Linear, i64)
SF_ROW(linear, u16, u16, 3, Linear, i32)
SF_ROW(linear, u16, u16, 3, Linear, i64)
SF_ROW(linear, f32, f32, 2, Linear, i32)
SF_ROW(linear, f32, f32, 2, Linear, i64)
SF_ROW(linear, f32, f32, 3, Linear, i32)
SF_ROW(linear, f32, f32, 3, Linear, i64)

// 2-D rows with float32 output from integer pixels (the Renderer blends in
// float32 before its own rounding).
#define SF_ROWF(NAME, TIN, K, IDX)                                                      \
    SPECTRALIGN_CLONES void NAME##_##TIN##f_2_##IDX(const Source& s, const Row& r) { \
        row_impl<TIN, f32, 2, Kernel::K, IDX>(s, r);                                    \
    }
SF_ROWF(linear, u8, Linear, i32)
SF_ROWF(linear, u8, Linear, i64)
SF_ROWF(linear, u16, Linear, i32)
SF_ROWF(linear, u16, Linear, i64)

#undef SF_ROW
#undef SF_ROWF

}  // namespace

RowFn pick_linear(Dtype t, int ndim, bool idx32) {
    const bool three = ndim == 3;
    switch (t) {
        case Dtype::U8:
            if (three) return idx32 ? linear_u8_3_i32 : linear_u8_3_i64;
            return idx32 ? linear_u8_2_i32 : linear_u8_2_i64;
        case Dtype::U16:
            if (three) return idx32 ? linear_u16_3_i32 : linear_u16_3_i64;
            return idx32 ? linear_u16_2_i32 : linear_u16_2_i64;
        case Dtype::F32:
            if (three) return idx32 ? linear_f32_3_i32 : linear_f32_3_i64;
            return idx32 ? linear_f32_2_i32 : linear_f32_2_i64;
    }
    return nullptr;
}

RowFn pick_linear_to_float(Dtype t, bool idx32) {
    switch (t) {
        case Dtype::U8: return idx32 ? linear_u8f_2_i32 : linear_u8f_2_i64;
        case Dtype::U16: return idx32 ? linear_u16f_2_i32 : linear_u16f_2_i64;
        case Dtype::F32: return idx32 ? linear_f32_2_i32 : linear_f32_2_i64;
    }
    return nullptr;
}

}  // namespace spectralign_fast::sample::detail

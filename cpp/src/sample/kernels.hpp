// The sample core's building blocks, shared by warp, the Renderer and stack
// registration: interpolation weights, float -> index splitting and the
// pixel conversion. Header-only so every caller's hot loop inlines them.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__GNUC__)
#define SF_INLINE __attribute__((always_inline)) inline
#define SF_INLINE_LAMBDA __attribute__((always_inline))
#else
#define SF_INLINE inline
#define SF_INLINE_LAMBDA
#endif

namespace spectralign_fast::sample::kern {

// floor() through an int conversion, which vectorises on every x86 level
// (SSE2 has no roundps); x must lie well inside the int range.
SF_INLINE int floor_int(float x) {
    const int i = static_cast<int>(x);
    return i - (x < static_cast<float>(i) ? 1 : 0);
}

SF_INLINE int clampi(int x, int lo, int hi) { return x < lo ? lo : (x > hi ? hi : x); }

// Linear interpolation in the form the Renderer has always used (exact at
// t = 0, and exactly a when a == b).
SF_INLINE float lerp(float a, float b, float t) { return a + t * (b - a); }

// Catmull-Rom (Keys, a = -0.5) weights of the taps at -1, 0, 1, 2 for a
// sample at fraction t in [0, 1): an interpolating cubic (no prefilter),
// exactly (0, 1, 0, 0) at t = 0.
SF_INLINE void catmull_rom_weights(float t, float w[4]) {
    w[0] = ((-0.5f * t + 1.0f) * t - 0.5f) * t;
    w[1] = (1.5f * t - 2.5f) * t * t + 1.0f;
    w[2] = ((-1.5f * t + 2.0f) * t + 0.5f) * t;
    w[3] = (0.5f * t - 0.5f) * t * t;
}

// Cubic B-spline weights of the taps at -1, 0, 1, 2 (scipy's
// get_spline_interpolation_weights, order 3: the last weight is one minus
// the others). Applied to prefiltered coefficients this interpolates.
SF_INLINE void bspline3_weights(float t, float w[4]) {
    const float y = t, z = 1.0f - t;
    w[0] = z * z * z * (1.0f / 6.0f);
    w[1] = (y * y * (y - 2.0f) * 3.0f + 4.0f) * (1.0f / 6.0f);
    w[2] = (z * z * (z - 2.0f) * 3.0f + 4.0f) * (1.0f / 6.0f);
    w[3] = 1.0f - w[0] - w[1] - w[2];
}

// Output conversion: floats pass through (NaN included); integers are
// rounded half up and clamped to the type's range, NaN giving 0 (scipy's
// rule).
template <class T>
SF_INLINE T to_pixel(float v) {
    if constexpr (std::is_same_v<T, float>) {
        return v;
    } else {
        const float hi = static_cast<float>(std::numeric_limits<T>::max());
        const float c = v > 0.0f ? (v < hi ? v : hi) : 0.0f;
        return static_cast<T>(static_cast<int>(c + 0.5f));
    }
}

}  // namespace spectralign_fast::sample::kern

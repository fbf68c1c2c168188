// Branch-free float log/exp that GCC and Clang vectorise, for whitening
// whole spectra: std::pow costs more than the FFTs it follows.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cstring>

namespace spectralign_fast {
namespace fastmath {

#if defined(__GNUC__) || defined(__clang__)
inline float bits_to_float(std::int32_t i) { return __builtin_bit_cast(float, i); }
inline std::int32_t float_to_bits(float f) { return __builtin_bit_cast(std::int32_t, f); }
#else
inline float bits_to_float(std::int32_t i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}
inline std::int32_t float_to_bits(float f) {
    std::int32_t i;
    std::memcpy(&i, &f, sizeof i);
    return i;
}
#endif

// Everything below is straight-line arithmetic (selects are written as
// arithmetic on 0/1 values, clamps as min/max) so loops calling it vectorise.
inline float clampf(float x, float lo, float hi) { return std::min(std::max(x, lo), hi); }

// Natural log for x in [FLT_MIN, FLT_MAX].
inline float log_positive(float x) {
    const std::int32_t bits = float_to_bits(x);
    float e = static_cast<float>(((bits >> 23) & 0xff) - 126);
    float m = bits_to_float((bits & 0x007fffff) | 0x3f000000);  // [0.5, 1)
    // Map the mantissa to [sqrt(0.5), sqrt(2)) for accuracy.
    const float small = static_cast<float>(m < 0.70710678f);  // 0 or 1
    e -= small;
    m = m + small * m - 1.0f;
    const float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y *= m * z;
    y += -2.12194440e-4f * e;
    y -= 0.5f * z;
    return m + y + 0.693359375f * e;
}

// exp(x) for x in about [-87, 88] (clamped).
inline float exp_bounded(float x) {
    x = clampf(x, -87.0f, 88.0f);
    // Round x / ln 2 to the nearest integer by the 1.5 * 2^23 trick.
    const float magic = 12582912.0f;
    const float fn = (x * 1.44269504088896341f + magic) - magic;
    x -= fn * 0.693359375f;
    x -= fn * -2.12194440e-4f;
    const float z = x * x;
    float p = 1.9875691500e-4f;
    p = p * x + 1.3981999507e-3f;
    p = p * x + 8.3334519073e-3f;
    p = p * x + 4.1665795894e-2f;
    p = p * x + 1.6666665459e-1f;
    p = p * x + 5.0000001201e-1f;
    p = p * z + x + 1.0f;
    const std::int32_t n = static_cast<std::int32_t>(fn);
    // 2^n as two factors so that n up to +-127 stays representable.
    const std::int32_t n1 = n >> 1, n2 = n - n1;
    return p * bits_to_float((n1 + 127) << 23) * bits_to_float((n2 + 127) << 23);
}

// log2(x) for x in [FLT_MIN, FLT_MAX], absolute error < 4e-6: exponent plus
// the atanh series of the mantissa reduced to [sqrt(1/2), sqrt(2)).
inline float log2_positive(float x) {
    const std::int32_t bits = float_to_bits(x);
    float e = static_cast<float>(((bits >> 23) & 0xff) - 127);
    float m = bits_to_float((bits & 0x007fffff) | 0x3f800000);  // [1, 2)
    const float big = static_cast<float>(m > 1.41421356f);        // 0 or 1
    e += big;
    m *= 1.0f - 0.5f * big;
    const float t = (m - 1.0f) / (m + 1.0f);  // |t| <= 0.1716
    const float t2 = t * t;
    // 2/ln2 * (t + t^3/3 + t^5/5 + t^7/7)
    const float series = t * (2.88539008f + t2 * (0.961796694f + t2 * (0.577078016f + t2 * 0.412198583f)));
    return e + series;
}

// 2^y for y in about [-126, 127] (clamped), relative error < 3e-6.
inline float exp2_bounded(float y) {
    y = clampf(y, -126.0f, 126.0f);
    const float magic = 12582912.0f;  // 1.5 * 2^23: rounds to nearest
    const float n = (y + magic) - magic;
    const float f = y - n;  // [-0.5, 0.5]
    // Taylor series of 2^f = e^(f ln2) to degree 5
    const float p = 1.0f + f * (0.693147181f + f * (0.240226507f + f * (0.0555041087f +
                                f * (0.00961812911f + f * 0.00133335581f))));
    return p * bits_to_float((static_cast<std::int32_t>(n) + 127) << 23);
}

// x^a for x > 0 (x is clamped to [FLT_MIN, FLT_MAX]); relative error below
// 5e-6 over the float range for |a| <= 0.5 (measured), ample for whitening.
inline float pow_positive(float x, float a) {
    return exp2_bounded(a * log2_positive(clampf(x, FLT_MIN, FLT_MAX)));
}

}  // namespace fastmath
}  // namespace spectralign_fast

// Branch-free float log/exp (Cephes polynomials, about 1e-7 relative error)
// that GCC and Clang vectorise, for whitening whole spectra: std::pow costs
// more than the FFTs it follows.
#pragma once

#include <cfloat>
#include <cstdint>
#include <cstring>

namespace spectralign_fast {
namespace fastmath {

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

// Natural log for x in [FLT_MIN, FLT_MAX].
inline float log_positive(float x) {
    const std::int32_t bits = float_to_bits(x);
    float e = static_cast<float>(((bits >> 23) & 0xff) - 126);
    float m = bits_to_float((bits & 0x007fffff) | 0x3f000000);  // [0.5, 1)
    // Map mantissa to [sqrt(0.5), sqrt(2)) for accuracy.
    const bool small = m < 0.70710678f;
    e -= small ? 1.0f : 0.0f;
    m = small ? m + m - 1.0f : m - 1.0f;
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

// exp(x) for x in about [-87, 88].
inline float exp_bounded(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float fn = static_cast<float>(static_cast<std::int32_t>(x * 1.44269504088896341f +
                                                                  (x < 0 ? -0.5f : 0.5f)));
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
    // Split 2^n into two factors so n up to +-127 stays representable.
    const std::int32_t n1 = n / 2, n2 = n - n1;
    return p * bits_to_float((n1 + 127) << 23) * bits_to_float((n2 + 127) << 23);
}

// x^a for x > 0 (x is clamped to [FLT_MIN, FLT_MAX]).
inline float pow_positive(float x, float a) {
    x = x < FLT_MIN ? FLT_MIN : (x > FLT_MAX ? FLT_MAX : x);
    return exp_bounded(a * log_positive(x));
}

}  // namespace fastmath
}  // namespace spectralign_fast

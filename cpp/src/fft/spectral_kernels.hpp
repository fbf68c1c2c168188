// Element-wise pieces of the spectral kernels (fft/spectral.hpp), inlined
// into every kernel that needs them, SIMD clones included, so that each
// operation is written once. Private to the core.
#pragma once

#include <cstddef>

#include "core/fastmath.hpp"

namespace spectralign_fast {
namespace spectral {
namespace detail {

// (re, im) = (ar + i ai) (br + i bi). Every complex product of the spectral
// code goes through here, so that all of them have the same expression tree
// (with FMA, GCC contracts a * b - c * d according to that tree).
inline void complex_mul(float ar, float ai, float br, float bi, float& re, float& im) {
    re = ar * br - ai * bi;
    im = ar * bi + ai * br;
}

// sq[k] <- (sq[k])^half_exponent for k < n: the whitening factors |p|^whiten
// from the squared magnitudes |p|^2 (clamped to [FLT_MIN, FLT_MAX] by
// pow_positive: zero bins get a finite factor and stay zero).
inline void whitening_factors(float* sq, std::size_t n, float half_exponent) {
#pragma omp simd
    for (std::size_t k = 0; k < n; ++k) sq[k] = fastmath::pow_positive(sq[k], half_exponent);
}

}  // namespace detail
}  // namespace spectral
}  // namespace spectralign_fast

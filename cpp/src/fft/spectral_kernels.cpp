// The SIMD kernels of the spectral toolkit (fft/spectral.hpp).
#include "spectralign_fast/fft/spectral.hpp"

#include "core/simd_clones.hpp"
#include "fft/spectral_kernels.hpp"

namespace spectralign_fast {
namespace spectral {

using detail::complex_mul;
using detail::whitening_factors;

SPECTRALIGN_CLONES void cross_power(const float* f, const float* r, float* p, float* copy, float half_exponent,
                                    std::size_t n, float* scratch) {
    if (half_exponent == 0.0f) {
        if (copy == nullptr) {
#pragma omp simd
            for (std::size_t k = 0; k < n; ++k)
                complex_mul(f[2 * k], f[2 * k + 1], r[2 * k], r[2 * k + 1], p[2 * k], p[2 * k + 1]);
            return;
        }
#pragma omp simd
        for (std::size_t k = 0; k < n; ++k) {
            float pr, pi;
            complex_mul(f[2 * k], f[2 * k + 1], r[2 * k], r[2 * k + 1], pr, pi);
            p[2 * k] = pr;
            p[2 * k + 1] = pi;
            copy[2 * k] = pr;
            copy[2 * k + 1] = pi;
        }
        return;
    }
#pragma omp simd
    for (std::size_t k = 0; k < n; ++k) {
        float pr, pi;
        complex_mul(f[2 * k], f[2 * k + 1], r[2 * k], r[2 * k + 1], pr, pi);
        p[2 * k] = pr;
        p[2 * k + 1] = pi;
        scratch[k] = pr * pr + pi * pi;
    }
    whitening_factors(scratch, n, half_exponent);
    if (copy == nullptr) {
#pragma omp simd
        for (std::size_t k = 0; k < n; ++k) {
            p[2 * k] *= scratch[k];
            p[2 * k + 1] *= scratch[k];
        }
        return;
    }
#pragma omp simd
    for (std::size_t k = 0; k < n; ++k) {
        const float re = p[2 * k] * scratch[k], im = p[2 * k + 1] * scratch[k];
        p[2 * k] = re;
        p[2 * k + 1] = im;
        copy[2 * k] = re;
        copy[2 * k + 1] = im;
    }
}

SPECTRALIGN_CLONES void whiten(float* p, float* copy, float half_exponent, std::size_t n, float* scratch) {
    if (half_exponent != 0.0f) {
#pragma omp simd
        for (std::size_t k = 0; k < n; ++k) scratch[k] = p[2 * k] * p[2 * k] + p[2 * k + 1] * p[2 * k + 1];
        whitening_factors(scratch, n, half_exponent);
#pragma omp simd
        for (std::size_t k = 0; k < n; ++k) {
            p[2 * k] *= scratch[k];
            p[2 * k + 1] *= scratch[k];
        }
    }
    if (copy != nullptr) {
#pragma omp simd
        for (std::size_t k = 0; k < 2 * n; ++k) copy[k] = p[k];
    }
}

SPECTRALIGN_CLONES float whiten_packed(const float* u, const float* w, float* out, const float* rx, float ry_re,
                                       float ry_im, float half_exponent, int n, float* scratch) {
#pragma omp simd
    for (int k = 0; k < n; ++k) {
        const float ur = u[2 * k], ui = u[2 * k + 1];
        const float wr = w[2 * k], wi = w[2 * k + 1];
        const float qr = 0.5f * (ur * wi + ui * wr);  // A conj(B)
        const float qi = 0.25f * ((ur * ur + ui * ui) - (wr * wr + wi * wi));
        float tr, ti, pr, pi;
        complex_mul(ry_re, ry_im, rx[2 * k], rx[2 * k + 1], tr, ti);  // the subpixel ramp
        complex_mul(qr, qi, tr, ti, pr, pi);
        out[2 * k] = pr;
        out[2 * k + 1] = pi;
        scratch[k] = pr * pr + pi * pi;
    }
    whitening_factors(scratch, static_cast<std::size_t>(n), half_exponent);
    float energy = 0;
#pragma omp simd reduction(+ : energy)
    for (int k = 0; k < n; ++k) {
        const float re = out[2 * k] * scratch[k], im = out[2 * k + 1] * scratch[k];
        out[2 * k] = re;
        out[2 * k + 1] = im;
        energy += re * re + im * im;
    }
    return energy;
}

// Plain float arithmetic: std::complex's operator* checks for NaN and inf,
// and does not vectorise.
void ramp_row(float* row, const float* rx, float ry_re, float ry_im, int n) {
    for (int k = 0; k < n; ++k) {
        float tr, ti;
        complex_mul(rx[2 * k], rx[2 * k + 1], ry_re, ry_im, tr, ti);
        float re, im;
        complex_mul(row[2 * k], row[2 * k + 1], tr, ti, re, im);
        row[2 * k] = re;
        row[2 * k + 1] = im;
    }
}

}  // namespace spectral
}  // namespace spectralign_fast

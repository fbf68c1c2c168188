#include "swim_kernels.hpp"

#include "fastmath.hpp"
#include "simd_clones.hpp"

namespace spectralign_fast {
namespace kernels {

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

SPECTRALIGN_CLONES void row_apodize_normalize(const float* x, float* out, const float* apo_x,
                                              float ay, float gray, float offset, float scale,
                                              int n) {
#pragma omp simd
    for (int j = 0; j < n; ++j) out[j] = ((x[j] - gray) * (ay * apo_x[j]) - offset) * scale;
}

SPECTRALIGN_CLONES void row_normalize(const float* x, float* out, float mean, float scale, int n) {
#pragma omp simd
    for (int j = 0; j < n; ++j) out[j] = (x[j] - mean) * scale;
}

SPECTRALIGN_CLONES float row_whiten(float* s, const float* m, const float* rx, float ry_re,
                                    float ry_im, float half_exponent, int n, float* scratch) {
    // Three passes so the costly power runs over a contiguous float array
    // (full vector width) instead of interleaved complex values.
#pragma omp simd
    for (int k = 0; k < n; ++k) {
        const float ar = s[2 * k], ai = s[2 * k + 1];
        const float br = m[2 * k], bi = m[2 * k + 1];
        const float qr = ar * br + ai * bi;  // S conj(M)
        const float qi = ai * br - ar * bi;
        const float tr = ry_re * rx[2 * k] - ry_im * rx[2 * k + 1];  // subpixel ramp
        const float ti = ry_re * rx[2 * k + 1] + ry_im * rx[2 * k];
        const float pr = qr * tr - qi * ti;
        const float pi = qr * ti + qi * tr;
        s[2 * k] = pr;
        s[2 * k + 1] = pi;
        scratch[k] = pr * pr + pi * pi;
    }
#pragma omp simd
    for (int k = 0; k < n; ++k) scratch[k] = fastmath::pow_positive(scratch[k], half_exponent);
    float energy = 0;
#pragma omp simd reduction(+ : energy)
    for (int k = 0; k < n; ++k) {
        const float re = s[2 * k] * scratch[k], im = s[2 * k + 1] * scratch[k];
        s[2 * k] = re;
        s[2 * k + 1] = im;
        energy += re * re + im * im;
    }
    return energy;
}

SPECTRALIGN_CLONES float row_max(const float* x, int n) {
    float best = x[0];
#pragma omp simd reduction(max : best)
    for (int k = 0; k < n; ++k) best = x[k] > best ? x[k] : best;
    return best;
}

}  // namespace kernels
}  // namespace spectralign_fast

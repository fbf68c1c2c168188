// The spectral toolkit: what the matcher (match/swim) and stack registration
// (stackreg) both do to spectra, in one place, for 2-D and 3-D alike.
//
//   - FFT-friendly sizes: n whose only prime factors are 2, 3, 5 and 7.
//   - Phase ramps: exp(i w_k delta) over the bins of one axis.
//   - Cross power and whitening: P = F conj(R), scaled by |P|^whiten.
//
// Spectra are arrays of complex values with the real and imaginary parts
// interleaved (std::complex<float> seen as floats), so the kernels below take
// float pointers and counts of complex values. The kernels are SIMD-cloned
// (core/simd_clones.hpp) except where noted.
#pragma once

#include <complex>
#include <cstddef>

namespace spectralign_fast {
namespace spectral {

// ---- sizes ----------------------------------------------------------------------

// Whether n >= 1 has no prime factor above 7 (FFTW's fast sizes: it is
// several times slower on sizes with a large prime factor; 544 = 32 x 17 ran
// at a quarter of 512's speed).
bool is_fast_size(int n);
// The smallest fast size >= n (1 for n <= 1): stack registration's padded
// Fourier-shift frames. (The montage's window sizes are chosen in Python,
// spectralign_fast.match.pairs.fft_size: the largest 2^a 3^b 5^c <= v that
// is a multiple of 4, a rule of its own.)
int next_fast_size(int n);

// ---- bins and phase ramps ----------------------------------------------------------

// The signed frequency of bin k of an n-point transform: k for k <= (n-1)/2,
// k - n above (the Nyquist bin n/2 of an even axis counts as -n/2).
inline int signed_bin(int k, int n) { return k <= (n - 1) / 2 ? k : k - n; }

// How phase_ramp evaluates its exponentials. Both are exact to ~1e-13 in
// double before rounding to float, but they may round to different floats
// (rarely): each caller keeps the one its results were always made with, so
// they stay bit-identical.
enum class RampEvaluation {
    direct,    // std::polar per bin (stack registration's Fourier shifts)
    rotation,  // one sincos, then rotation by recurrence in double (the matcher, every iteration)
};

// out[k] = scale * exp(i 2 pi signed_bin(k, n) delta / n) for the first
// `count` bins of an n-point axis (count <= n; n / 2 + 1 for the last axis of
// a half spectrum). The Nyquist bin of an even axis gets the real
// scale * cos(pi delta), so the spectrum of a real signal stays Hermitian.
// Multiplying a spectrum by it shifts the signal by -delta (samples it at
// x + delta).
void phase_ramp(std::complex<float>* out, int n, int count, double delta, double scale = 1.0,
                RampEvaluation evaluation = RampEvaluation::direct);

// row[k] *= ry * rx[k] for k < n: one row of a spectrum times a separable
// phase ramp (rx along the row, ry the row's own factor). Not SIMD-cloned:
// stack registration's Fourier shifts were always made without FMA, and
// contracting into FMA would change their last bits.
void ramp_row(float* row, const float* rx, float ry_re, float ry_im, int n);

// ---- cross power and whitening -----------------------------------------------------
//
// Whitening scales each bin p of a cross-power spectrum by |p|^whiten =
// (|p|^2)^half_exponent, half_exponent = whiten / 2 (whiten in [-1, 0]:
// 0 plain cross-correlation, -1 phase correlation), with a fast vectorised
// power (core/fastmath.hpp) whose argument is clamped to [FLT_MIN, FLT_MAX]:
// a zero bin stays zero, and nothing overflows. Each kernel runs three passes
// so the costly power reads a contiguous float array (scratch, n floats) at
// full vector width.

// p = f r (r holds conj(R) already: the cross-power spectrum), whitened
// unless half_exponent is 0; the result also goes to copy unless it is null
// (a c2r destroys its input). p may alias f.
void cross_power(const float* f, const float* r, float* p, float* copy, float half_exponent, std::size_t n,
                 float* scratch);

// p whitened in place unless half_exponent is 0; then copied to copy unless
// it is null.
void whiten(float* p, float* copy, float half_exponent, std::size_t n, float* scratch);

// The matcher's fused form, for two real windows packed as z = a + i b and
// transformed together, Z = FFT(z): with U = Z[k] (`u`) and W = Z[-k] (`w`,
// the partner bins already gathered to line up with k), A conj(B) =
// (Im(U W) / 2, (|U|^2 - |W|^2) / 4). Writes out[k] = A conj(B) (ry rx[k])
// whitened (always: half_exponent 0 gives factors of exactly 1), n complex
// values; returns the sum of |out[k]|^2. out may alias u.
float whiten_packed(const float* u, const float* w, float* out, const float* rx, float ry_re, float ry_im,
                    float half_exponent, int n, float* scratch);

}  // namespace spectral
}  // namespace spectralign_fast

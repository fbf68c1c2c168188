// The spectral toolkit's scalar parts: FFT-friendly sizes and phase ramps
// (the kernels are in spectral_kernels.cpp).
#include "spectralign_fast/fft/spectral.hpp"

#include <cmath>
#include <initializer_list>
#include <stdexcept>

namespace spectralign_fast {
namespace spectral {

namespace {

constexpr double kTwoPi = 6.283185307179586476925;

}  // namespace

bool is_fast_size(int n) {
    if (n < 1) return false;
    for (int p : {2, 3, 5, 7})
        while (n % p == 0) n /= p;
    return n == 1;
}

int next_fast_size(int n) {
    if (n <= 1) return 1;
    // Fast sizes are dense (within 3% of any n >= 100), so this is short.
    for (int m = n;; ++m) {
        if (is_fast_size(m)) return m;
        if (m == 2147483647) throw std::overflow_error("no FFT-friendly size above this one fits an int");
    }
}

void phase_ramp(std::complex<float>* out, int n, int count, double delta, double scale, RampEvaluation evaluation) {
    const int nyquist = n % 2 == 0 ? n / 2 : -1;
    if (evaluation == RampEvaluation::direct) {
        for (int k = 0; k < count; ++k)
            out[k] = k == nyquist ? std::complex<float>(static_cast<float>(scale * std::cos(kTwoPi * delta / 2)), 0.0f)
                                  : std::complex<float>(std::polar(scale, kTwoPi * signed_bin(k, n) * delta / n));
        return;
    }
    // Rotation: bins 1 .. (n-1)/2 walk up from 1 by e^{i w_1 delta}, the
    // negative bins walk down from n-1 (k' = -1) by its conjugate.
    const std::complex<double> step = std::polar(1.0, kTwoPi * delta / n);
    std::complex<double> z = 1.0;
    for (int k = 0; k < count && k <= (n - 1) / 2; ++k) {
        out[k] = std::complex<float>(z * scale);
        z *= step;
    }
    if (nyquist >= 0 && nyquist < count)
        out[nyquist] = std::complex<float>(static_cast<float>(scale * std::cos(kTwoPi * delta / 2)), 0.0f);
    if (count <= n / 2 + 1) return;  // no negative bins asked for
    z = std::conj(step);
    for (int k = n - 1; k > n / 2; --k) {
        if (k < count) out[k] = std::complex<float>(z * scale);
        z *= std::conj(step);
    }
}

}  // namespace spectral
}  // namespace spectralign_fast

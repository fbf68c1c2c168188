// The raised-cosine taper (apodisation) that stack registration applies to
// frames and references before their FFT: a frame's edges are in the same
// place in every frame, and without a taper the cyclic transform's jump at
// them correlates at zero lag, which whitened correlation lets win over the
// content (frames lock onto the reference's position).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace spectralign_fast::stackreg_detail {

// Raised-cosine taper of n samples: 1 in the middle, falling to 0 over
// round(fraction * n) samples at each end (sampled at pixel centres).
inline std::vector<float> taper_window(int n, double fraction) {
    constexpr double kPi = 3.141592653589793238462;
    std::vector<float> w(static_cast<std::size_t>(n), 1.0f);
    const double len = fraction * n;
    if (len < 1) return w;
    for (int i = 0; i < n; ++i) {
        const double p = std::min(i + 0.5, n - i - 0.5);
        if (p < len) w[static_cast<std::size_t>(i)] = static_cast<float>(0.5 * (1.0 - std::cos(kPi * p / len)));
    }
    return w;
}

// x (a frame of shape, rank 2 or 3) *= the separable window, one vector per axis.
inline void apply_taper(float* x, const std::vector<int>& shape, const std::vector<std::vector<float>>& window) {
    const int rank = static_cast<int>(shape.size());
    const std::size_t cols = static_cast<std::size_t>(shape.back());
    const std::size_t rows = static_cast<std::size_t>(shape[rank - 2]);
    const std::size_t planes = rank == 3 ? static_cast<std::size_t>(shape[0]) : 1;
    const float* wx = window[rank - 1].data();
    for (std::size_t z = 0; z < planes; ++z)
        for (std::size_t y = 0; y < rows; ++y) {
            const float wy = window[rank - 2][y] * (rank == 3 ? window[0][z] : 1.0f);
            float* row = x + (z * rows + y) * cols;
            for (std::size_t c = 0; c < cols; ++c) row[c] *= wy * wx[c];
        }
}

}  // namespace spectralign_fast::stackreg_detail

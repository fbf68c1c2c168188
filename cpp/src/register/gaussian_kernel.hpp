// scipy.ndimage.gaussian_filter's kernel (truncate = 4) and its "reflect"
// edge rule, shared by the exact smoothing (smooth.cpp) and the SyN step
// smoothing (field_smooth.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace spectralign_fast::reg {

// Normalised weights for offsets -r..r, r = int(4 sigma + 0.5).
inline std::vector<double> gaussian_kernel(double sigma) {
    const int radius = static_cast<int>(4.0 * sigma + 0.5);
    std::vector<double> w(static_cast<std::size_t>(2 * radius + 1));
    double sum = 0.0;
    for (int k = -radius; k <= radius; ++k) {
        const double v = std::exp(-0.5 * double(k) * double(k) / (sigma * sigma));
        w[static_cast<std::size_t>(k + radius)] = v;
        sum += v;
    }
    for (double& v : w) v /= sum;
    return w;
}

// scipy's "reflect" (d c b a | a b c d | d c b a) for any offset, also when
// the kernel is wider than the axis.
inline std::int64_t reflect_index(std::int64_t i, std::int64_t n) {
    const std::int64_t period = 2 * n;
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - 1 - i;
}

}  // namespace spectralign_fast::reg

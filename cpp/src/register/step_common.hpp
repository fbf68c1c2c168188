// Shared pieces of the SyN metrics: image gradients as DIPY's metrics take
// them, and per-component Gaussian smoothing of a step.
#pragma once

#include <vector>

#include "field_common.hpp"
#include "spectralign_fast/register/metric.hpp"

namespace spectralign_fast::reg::fieldkit {

// numpy.gradient of `img` at voxel v (indices idx), divided by the spacing
// (rounded to float32, as DIPY's float32 arrays hold it), then turned by the
// direction (d x d, row major) unless that is the identity.
template <int D>
inline void image_gradient(const float* img, const Grid<D>& g, const std::int64_t* idx, std::int64_t v,
                           const double* spacing, const double* direction, bool turn, double* out) {
    float raw[D];
    for (int a = 0; a < D; ++a)
        raw[a] = static_cast<float>(double(np_gradient(img, v, idx[a], g.n[a], g.stride[a])) / spacing[a]);
    if (!turn) {
        for (int a = 0; a < D; ++a) out[a] = raw[a];
        return;
    }
    for (int r = 0; r < D; ++r) {
        double acc = 0.0;
        for (int c = 0; c < D; ++c) acc += direction[r * D + c] * double(raw[c]);
        out[r] = static_cast<float>(acc);
    }
}

inline bool direction_is_identity(const double* direction, int d) {
    for (int r = 0; r < d; ++r)
        for (int c = 0; c < d; ++c)
            if (direction[r * d + c] != (r == c ? 1.0 : 0.0)) return false;
    return true;
}

// Sums over a fixed number of chunks of rows (independent of the thread
// count), reduced in chunk order: deterministic reductions.
constexpr std::int64_t kReductionChunks = 64;

}  // namespace spectralign_fast::reg::fieldkit

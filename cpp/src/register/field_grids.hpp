// One row of a field kept on every f-th voxel, brought to the image grid
// (upsample_field's rule, shared with the warp that reads such a field
// directly). Internal to the register kernels.
#pragma once

#include <algorithm>
#include <cstdint>

#include "field_common.hpp"

namespace spectralign_fast::reg::fieldkit {

// Node and fraction of index i along an axis of nc nodes spaced f apart:
// the last node takes weight 1 alone.
inline void coarse_split(std::int64_t i, int f, std::int64_t nc, std::int64_t& c0, std::int64_t& c1, float& r) {
    c0 = i / f;
    r = float(i % f) * (1.0f / float(f));
    c1 = std::min(c0 + 1, nc - 1);
}

// The image-grid row at idx (its first D - 1 indices) of the coarse field,
// d-linear in float: the 2^(D-1) coarse rows around it blended into `blend`
// (gc.n[D-1] x D floats), then every voxel of the row from its two nodes
// into `out` (nlast x D floats).
template <int D>
inline void upsample_row(const float* coarse, const Grid<D>& gc, int f, const std::int64_t* idx, std::int64_t nlast,
                         float* __restrict blend, float* __restrict out) {
    const std::int64_t clast = gc.n[D - 1], row_len = clast * D;
    std::int64_t a0, a1, b0 = 0, b1 = 0;
    float ra, rb = 0.0f;
    coarse_split(idx[0], f, gc.n[0], a0, a1, ra);
    if constexpr (D == 3) coarse_split(idx[1], f, gc.n[1], b0, b1, rb);
    const std::int64_t s0 = gc.stride[0] * D, s1 = D == 3 ? gc.stride[1] * D : 0;
    const float* p00 = coarse + a0 * s0 + b0 * s1;
    const float* p01 = coarse + a0 * s0 + b1 * s1;
    const float* p10 = coarse + a1 * s0 + b0 * s1;
    const float* p11 = coarse + a1 * s0 + b1 * s1;
    const float qa = 1.0f - ra, qb = 1.0f - rb;
    for (std::int64_t k = 0; k < row_len; ++k)
        blend[k] = qa * (qb * p00[k] + rb * p01[k]) + ra * (qb * p10[k] + rb * p11[k]);
    for (std::int64_t j = 0; j < nlast; ++j) {
        std::int64_t c0, c1;
        float r;
        coarse_split(j, f, clast, c0, c1, r);
        const float q = 1.0f - r;
        for (int k = 0; k < D; ++k) out[j * D + k] = q * blend[c0 * D + k] + r * blend[c1 * D + k];
    }
}

}  // namespace spectralign_fast::reg::fieldkit

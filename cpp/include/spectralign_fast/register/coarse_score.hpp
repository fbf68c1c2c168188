// The global initialiser's candidate score (see coarse_score.cpp): Studholme's
// normalised mutual information (H(A) + H(B)) / H(A, B) - 1 of a static
// coarse image's bins and a moving coarse image pulled through an affine map.
// Conventions: float32 / int16 arrays in C order, coordinates are ARRAY
// INDICES in array axis order; `matrix` is the (d + 1) x (d + 1) homogeneous
// map, row major, from a static index to a moving index.
#pragma once

#include <cstdint>

namespace spectralign_fast::reg {

struct CoarseImages {
    int ndim = 2;
    const std::int16_t* static_bins = nullptr;  // static shape; bin in [0, nbins), -1 = no sample
    std::int64_t static_shape[3] = {0, 0, 0};
    const float* moving = nullptr;        // moving shape; [0, 1] inside its field of view, -1 beyond
    const float* moving_mask = nullptr;   // moving shape or nullptr; a sample needs >= 0.5 there
    std::int64_t moving_shape[3] = {0, 0, 0};
};

struct CoarseScore {
    double nmi = 0.0;          // 0 when the overlap is empty or its joint entropy is 0
    std::int64_t overlap = 0;  // static samples that took part
};

// Throws std::invalid_argument for a non-finite matrix, nbins outside
// [2, 4096] or images of the wrong dimension or size.
CoarseScore coarse_nmi(const CoarseImages& images, const double* matrix, int nbins);

}  // namespace spectralign_fast::reg

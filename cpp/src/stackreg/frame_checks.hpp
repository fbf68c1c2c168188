// Checks shared by the stack-registration sources (stackreg.cpp, mean.cpp).
#pragma once

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace spectralign_fast::stackreg_detail {

// Frames are 2-D images or 3-D volumes with positive extents.
inline void check_frame_shape(const std::vector<int>& shape) {
    if (shape.size() != 2 && shape.size() != 3)
        throw std::invalid_argument("frames must be 2-D images or 3-D volumes, got " +
                                    std::to_string(shape.size()) + " dimensions");
    for (int n : shape)
        if (n < 1) throw std::invalid_argument("frame shape must be positive");
}

// Whether a frame's displacement is finite on every axis (NaN marks a frame
// without an estimate).
inline bool finite_shift(const double* d, std::size_t rank) {
    for (std::size_t a = 0; a < rank; ++a)
        if (!std::isfinite(d[a])) return false;
    return true;
}

}  // namespace spectralign_fast::stackreg_detail

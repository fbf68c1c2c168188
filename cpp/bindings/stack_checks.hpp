// Argument checks shared by the stack-registration bindings
// (bind_stackreg.cpp, bind_blocks.cpp).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "pybind.hpp"

namespace spectralign_fast::bindings {

// Frame shape of an array whose first axis counts frames (or planes).
inline std::vector<int> frame_shape(const py::array& a, const char* what) {
    if (a.ndim() != 3 && a.ndim() != 4)
        throw std::invalid_argument(std::string(what) + " must have 3 or 4 dimensions (a stack of 2-D "
                                    "frames or of 3-D volumes), got " + std::to_string(a.ndim()));
    std::vector<int> shape;
    for (py::ssize_t a_ = 1; a_ < a.ndim(); ++a_) {
        if (a.shape(a_) < 1) throw std::invalid_argument(std::string(what) + " has empty frames");
        if (a.shape(a_) > INT32_MAX) throw std::invalid_argument(std::string(what) + " frames are too large");
        shape.push_back(static_cast<int>(a.shape(a_)));
    }
    return shape;
}

// The array a call on `frames` writes its result to: `out` when given,
// checked (the frames' shape, `dtype`, C order, writeable, not the frames
// themselves), else a new array of the frames' shape and `dtype`. `out` is
// taken as a plain array and checked, never converted: a converted copy
// would receive the result and be thrown away.
inline py::array output_array(const py::array& frames, const std::optional<py::array>& out,
                              const py::dtype& dtype) {
    if (!out) return py::array(dtype, std::vector<py::ssize_t>(frames.shape(), frames.shape() + frames.ndim()));
    py::array result = *out;
    bool same = result.ndim() == frames.ndim();
    for (py::ssize_t a = 0; same && a < frames.ndim(); ++a) same = result.shape(a) == frames.shape(a);
    if (!same) throw std::invalid_argument("out must have the shape of frames");
    if (!result.dtype().equal(dtype) || !(result.flags() & py::array::c_style) || !result.writeable())
        throw std::invalid_argument("out must be a writeable C-contiguous " + std::string(py::str(dtype)) +
                                    " array");
    if (result.data() == frames.data()) throw std::invalid_argument("out must not be the input array");
    return result;
}

}  // namespace spectralign_fast::bindings

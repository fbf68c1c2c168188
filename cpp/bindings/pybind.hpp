// The one place the bindings include pybind11 from.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "spectralign_fast/image_ops.hpp"

namespace py = pybind11;

namespace spectralign_fast::bindings {

// The only array type images cross the boundary as: float32, C order. A
// different dtype or layout is converted here, once (forcecast).
using FloatImage = py::array_t<float, py::array::c_style | py::array::forcecast>;
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

inline ImageView image_view(const FloatImage& img, const char* what) {
    if (img.ndim() != 2)
        throw std::invalid_argument(std::string(what) + " must be 2-D, got " +
                                    std::to_string(img.ndim()) + " dimensions");
    if (img.shape(0) < 1 || img.shape(1) < 1)
        throw std::invalid_argument(std::string(what) + " is empty");
    if (img.shape(0) > INT32_MAX || img.shape(1) > INT32_MAX)
        throw std::invalid_argument(std::string(what) + " is too large");
    return ImageView(img.data(), static_cast<int>(img.shape(0)), static_cast<int>(img.shape(1)));
}

void bind_config(py::module_& m);
void bind_image(py::module_& m);
void bind_matcher(py::module_& m);
void bind_placement(py::module_& m);
void bind_render(py::module_& m);
void bind_sample(py::module_& m);
void bind_stackreg(py::module_& m);

}  // namespace spectralign_fast::bindings

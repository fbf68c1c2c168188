// The one place the bindings include pybind11 from.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "spectralign_fast/core/image_ops.hpp"

namespace py = pybind11;

namespace spectralign_fast::bindings {

// The only array type images cross the boundary as: float32, C order. A
// different dtype or layout is converted here, once (forcecast).
using FloatImage = py::array_t<float, py::array::c_style | py::array::forcecast>;
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

// The core reads arrays through typed pointers, so their data must sit at an address aligned
// for the type. forcecast keeps a C-contiguous array at an odd address as it is (a buffer
// deserialised by Dask, np.frombuffer(..., offset=1)); the Python layer makes the one copy
// (_validate.as_core_array), and this refuses anything that slipped past it.
inline void check_aligned(const py::array& a, const std::string& what) {
    const auto align = static_cast<std::uintptr_t>(a.itemsize() > 8 ? 8 : a.itemsize());
    if (align > 1 && reinterpret_cast<std::uintptr_t>(a.data()) % align != 0)
        throw std::invalid_argument(what + " is not aligned in memory; pass numpy.require(a, "
                                    "requirements='CA') (the library's own calls do this)");
}

// An array as a C-contiguous native array of type T: forcecast copies only
// when the caller's array is not already one (the Python layer makes that one
// copy itself, so here it is usually a no-op).
template <class T>
py::array contiguous(const py::array& a) {
    return py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
}

inline ImageView image_view(const FloatImage& img, const char* what) {
    check_aligned(img, what);
    if (img.ndim() != 2)
        throw std::invalid_argument(std::string(what) + " must be 2-D, got " +
                                    std::to_string(img.ndim()) + " dimensions");
    if (img.shape(0) < 1 || img.shape(1) < 1)
        throw std::invalid_argument(std::string(what) + " is empty");
    if (img.shape(0) > INT32_MAX || img.shape(1) > INT32_MAX)
        throw std::invalid_argument(std::string(what) + " is too large");
    return ImageView(img.data(), static_cast<int>(img.shape(0)), static_cast<int>(img.shape(1)));
}

// Each fills one submodule of _core (see module.cpp).
void bind_config(py::module_ m);
void bind_image(py::module_ m);
void bind_matcher(py::module_ m);
void bind_placement(py::module_ m);
void bind_mesh(py::module_ m);  // into the place submodule
void bind_render(py::module_ m);
// Ctrl-C in long core calls raises KeyboardInterrupt (interrupt.cpp).
void install_interrupts();
void bind_stackreg(py::module_ m);
void bind_blocks(py::module_ m);  // into the stackreg submodule
void bind_zstack(py::module_ m);
void bind_sample(py::module_ m);
void bind_register(py::module_ m);
void bind_register_fields(py::module_ m);
void bind_register_lddmm(py::module_ m);
#ifdef SPECTRALIGN_DEV_TOOLS
void bind_dev(py::module_ m);
#endif

}  // namespace spectralign_fast::bindings

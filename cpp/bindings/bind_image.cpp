#include <algorithm>
#include <array>
#include <cmath>

#include "pybind.hpp"
#include "spectralign_fast/core/image_ops.hpp"

namespace spectralign_fast::bindings {

namespace {

void check_window_size(long long w, long long h) {
    if (w < 1 || h < 1)
        throw std::invalid_argument("window size must be positive, got (" + std::to_string(w) + ", " +
                                    std::to_string(h) + ")");
    if (w > (1 << 16) || h > (1 << 16))
        throw std::invalid_argument("window size is absurdly large (limit 65536 per side)");
}

float border_value(const py::object& border) {
    if (border.is_none()) return kAutoBorder;
    const double b = border.cast<double>();
    if (!std::isfinite(b)) throw std::invalid_argument("border value must be finite or None");
    return static_cast<float>(b);
}

py::array_t<float> new_image(long long h, long long w) {
    return py::array_t<float>({static_cast<py::ssize_t>(h), static_cast<py::ssize_t>(w)});
}

}  // namespace

void bind_image(py::module_ m) {
    m.def(
        "straight_window",
        [](const FloatImage& img, double cx, double cy, int w, int h, const py::object& border) {
            const ImageView v = image_view(img, "image");
            check_window_size(w, h);
            if (!std::isfinite(cx) || !std::isfinite(cy))
                throw std::invalid_argument("window centre must be finite");
            const float b = border_value(border);
            auto out = new_image(h, w);
            float* o = out.mutable_data();
            py::gil_scoped_release release;
            extract_straight_window(v, cx, cy, w, h, b, o);
            return out;
        },
        py::arg("image"), py::arg("cx"), py::arg("cy"), py::arg("width"), py::arg("height"),
        py::arg("border") = py::none());

    m.def(
        "transformed_window",
        [](const FloatImage& img, double cx, double cy, std::array<double, 4> lin, int w, int h,
           const py::object& border) {
            const ImageView v = image_view(img, "image");
            check_window_size(w, h);
            if (!std::isfinite(cx) || !std::isfinite(cy))
                throw std::invalid_argument("window centre must be finite");
            for (double x : lin)
                if (!std::isfinite(x)) throw std::invalid_argument("transform must be finite");
            const float b = border_value(border);
            auto out = new_image(h, w);
            float* o = out.mutable_data();
            py::gil_scoped_release release;
            extract_transformed_window(v, cx, cy, lin.data(), w, h, b, o);
            return out;
        },
        py::arg("image"), py::arg("cx"), py::arg("cy"), py::arg("linear"), py::arg("width"),
        py::arg("height"), py::arg("border") = py::none());

    m.def(
        "apodized",
        [](const FloatImage& img, const py::object& gray) {
            const ImageView v = image_view(img, "image");
            const float g = border_value(gray);
            auto out = new_image(v.rows, v.cols);
            float* o = out.mutable_data();
            py::gil_scoped_release release;
            std::copy(v.data, v.data + static_cast<std::size_t>(v.rows) * v.cols, o);
            apodize(o, v.rows, v.cols, g);
            return out;
        },
        py::arg("image"), py::arg("gray") = py::none(),
        "Apodized copy: outer quarter on each side fades to `gray` (default: the image mean).");

    m.def(
        "warp_affine",
        [](const FloatImage& img, std::array<double, 6> inv, double x0, double y0, int w, int h,
           double border) {
            const ImageView v = image_view(img, "image");
            check_window_size(w, h);
            for (double x : inv)
                if (!std::isfinite(x)) throw std::invalid_argument("transform must be finite");
            if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(border))
                throw std::invalid_argument("origin and border must be finite");
            auto out = new_image(h, w);
            float* o = out.mutable_data();
            py::gil_scoped_release release;
            warp_affine(v, inv.data(), x0, y0, w, h, static_cast<float>(border), o);
            return out;
        },
        py::arg("image"), py::arg("inverse"), py::arg("x0"), py::arg("y0"), py::arg("width"),
        py::arg("height"), py::arg("border") = 0.0);

    m.def(
        "all_finite",
        [](const py::array_t<float, py::array::forcecast>& img) {
            // Any row stride (no copy of strided views); columns must be contiguous.
            if (img.ndim() != 2) throw std::invalid_argument("image must be 2-D");
            if (img.shape(1) > 1 && img.strides(1) != static_cast<py::ssize_t>(sizeof(float)))
                throw std::invalid_argument("image columns must be contiguous");
            if (img.shape(0) < 1 || img.shape(1) < 1) return true;
            // A row stride shorter than a row (broadcast rows, sliding windows) would make the
            // pass read past the buffer: such rows must be copied first (the callers do).
            const auto fsz = static_cast<py::ssize_t>(sizeof(float));
            if (img.strides(0) < 0 || img.strides(0) % fsz != 0 ||
                (img.shape(0) > 1 && img.strides(0) < img.shape(1) * fsz))
                throw std::invalid_argument("image rows must not overlap (stride of a row at least a row); "
                                            "pass numpy.ascontiguousarray(image)");
            check_aligned(img, "image");
            const ImageView v(img.data(), static_cast<int>(img.shape(0)), static_cast<int>(img.shape(1)),
                              img.shape(0) > 1 ? img.strides(0) / fsz : img.shape(1));
            py::gil_scoped_release release;
            return all_finite(v);
        },
        py::arg("image"), "True when every pixel is finite (one vectorised pass, GIL released).");
}

}  // namespace spectralign_fast::bindings

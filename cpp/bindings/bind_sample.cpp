// _core.sample: the N-D warp core (spectralign_fast.warp is the public face).
#include <cstdint>
#include <string>
#include <vector>

#include "pybind.hpp"
#include "spectralign_fast/sample/warp.hpp"

namespace spectralign_fast::bindings {

namespace {

using sample::Boundary;
using sample::Dtype;
using sample::Kernel;

Kernel parse_kernel(const std::string& s) {
    if (s == "nearest") return Kernel::Nearest;
    if (s == "linear") return Kernel::Linear;
    if (s == "bspline3") return Kernel::BSpline3;
    if (s == "catmull-rom") return Kernel::CatmullRom;
    throw std::invalid_argument("kernel must be 'nearest', 'linear', 'bspline3' or 'catmull-rom', got '" +
                                s + "'");
}

Boundary parse_mode(const std::string& s) {
    if (s == "constant") return Boundary::Constant;
    if (s == "nearest") return Boundary::Nearest;
    throw std::invalid_argument("mode must be 'constant' or 'nearest', got '" + s + "'");
}

Dtype dtype_of(const py::array& a) {
    const py::dtype dt = a.dtype();
    if (dt.equal(py::dtype::of<std::uint8_t>())) return Dtype::U8;
    if (dt.equal(py::dtype::of<std::uint16_t>())) return Dtype::U16;
    if (dt.equal(py::dtype::of<float>())) return Dtype::F32;
    throw py::type_error("image has unsupported dtype " + std::string(py::str(dt)) +
                         " (use uint8, uint16 or float32)");
}

struct Image {
    py::array keep;
    sample::Grid grid;
};

Image image_grid(const py::array& image) {
    if (image.ndim() != 2 && image.ndim() != 3)
        throw std::invalid_argument("image must be 2-D or 3-D, got " + std::to_string(image.ndim()) +
                                    " dimensions");
    Image im;
    const Dtype t = dtype_of(image);
    switch (t) {
        case Dtype::U8: im.keep = contiguous<std::uint8_t>(image); break;
        case Dtype::U16: im.keep = contiguous<std::uint16_t>(image); break;
        case Dtype::F32: im.keep = contiguous<float>(image); break;
    }
    if (!im.keep) throw py::error_already_set();
    check_aligned(im.keep, "image");
    im.grid.data = im.keep.data();
    im.grid.type = t;
    im.grid.ndim = static_cast<int>(image.ndim());
    for (int a = 0; a < im.grid.ndim; ++a) im.grid.shape[a] = image.shape(a);
    return im;
}

sample::WarpOptions options(const std::string& kernel, const std::string& mode, double cval,
                            int threads) {
    sample::WarpOptions opt;
    opt.kernel = parse_kernel(kernel);
    opt.boundary = parse_mode(mode);
    opt.cval = static_cast<float>(cval);
    opt.threads = threads;
    return opt;
}

py::array new_output(const Image& im, const std::vector<std::int64_t>& shape) {
    for (std::int64_t s : shape)
        if (s < 1) throw std::invalid_argument("output_shape must be positive along every axis");
    std::vector<py::ssize_t> s(shape.begin(), shape.end());
    return py::array(im.keep.dtype(), s);
}

}  // namespace

void bind_sample(py::module_ sm) {

    sm.def(
        "warp_affine",
        [](const py::array& image, const DoubleArray& matrix, const std::vector<std::int64_t>& output_shape,
           const std::string& kernel, const std::string& mode, double cval, int threads) {
            Image im = image_grid(image);
            const int D = im.grid.ndim;
            if (matrix.ndim() != 2 || matrix.shape(0) != D + 1 || matrix.shape(1) != D + 1)
                throw std::invalid_argument("matrix must have shape (ndim + 1, ndim + 1)");
            if (static_cast<int>(output_shape.size()) != D)
                throw std::invalid_argument("output_shape must have one entry per image axis");
            const sample::WarpOptions opt = options(kernel, mode, cval, threads);
            py::array out = new_output(im, output_shape);
            void* o = out.mutable_data();
            const double* M = matrix.data();
            py::gil_scoped_release release;
            sample::warp_affine(im.grid, M, output_shape.data(), o, opt);
            return out;
        },
        py::arg("image"), py::arg("matrix"), py::arg("output_shape"), py::arg("kernel"),
        py::arg("mode"), py::arg("cval"), py::arg("threads"));

    sm.def(
        "warp_field",
        [](const py::array& image, const py::array_t<float, py::array::c_style | py::array::forcecast>& field,
           const std::string& kernel, const std::string& mode, double cval, int threads) {
            Image im = image_grid(image);
            const int D = im.grid.ndim;
            if (field.ndim() != D + 1 || field.shape(D) != D)
                throw std::invalid_argument("field must have shape output_shape + (ndim,)");
            std::vector<std::int64_t> shape(static_cast<std::size_t>(D));
            for (int a = 0; a < D; ++a) shape[static_cast<std::size_t>(a)] = field.shape(a);
            const sample::WarpOptions opt = options(kernel, mode, cval, threads);
            py::array out = new_output(im, shape);
            void* o = out.mutable_data();
            check_aligned(field, "field");
            const float* f = field.data();
            py::gil_scoped_release release;
            sample::warp_field(im.grid, f, shape.data(), o, opt);
            return out;
        },
        py::arg("image"), py::arg("field"), py::arg("kernel"), py::arg("mode"), py::arg("cval"),
        py::arg("threads"));

    sm.def(
        "bspline_coefficients",
        [](const py::array& image, const std::string& mode, int threads) {
            Image im = image_grid(image);
            const Boundary b = parse_mode(mode);
            if (threads < 0) throw std::invalid_argument("threads must be >= 0 (0 = all cores)");
            std::int64_t shape[3];
            int pad = 0;
            std::vector<float> coef;
            {
                py::gil_scoped_release release;
                coef = sample::bspline3_coefficients(im.grid, b, threads, shape, pad);
            }
            std::vector<py::ssize_t> s(shape, shape + im.grid.ndim);
            py::array_t<float> out(s);
            std::copy(coef.begin(), coef.end(), out.mutable_data());
            return py::make_tuple(out, pad);
        },
        py::arg("image"), py::arg("mode"), py::arg("threads"));
}

}  // namespace spectralign_fast::bindings

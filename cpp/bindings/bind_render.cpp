#include <string>
#include <vector>

#include "pybind.hpp"
#include "spectralign_fast/render/render.hpp"

namespace spectralign_fast::bindings {

namespace {

Interp parse_interp(const std::string& s) {
    if (s == "linear") return Interp::Linear;
    if (s == "nearest") return Interp::Nearest;
    if (s == "cubic") return Interp::Cubic;
    throw std::invalid_argument("interpolation must be 'linear', 'nearest' or 'cubic', got '" + s +
                                "'");
}

PixelType pixel_type_of(const py::dtype& dt, const std::string& what) {
    // equal(), not is(): an unpickled array (e.g. one sent to a Dask worker) has its own dtype object.
    if (dt.equal(py::dtype::of<std::uint8_t>())) return PixelType::U8;
    if (dt.equal(py::dtype::of<std::uint16_t>())) return PixelType::U16;
    if (dt.equal(py::dtype::of<float>())) return PixelType::F32;
    throw std::invalid_argument(what + " has unsupported dtype " + std::string(py::str(dt)) +
                                " (use uint8, uint16 or float32)");
}

PixelType parse_pixel_type(const std::string& s) {
    if (s == "uint8") return PixelType::U8;
    if (s == "uint16") return PixelType::U16;
    if (s == "float32") return PixelType::F32;
    throw std::invalid_argument("unsupported dtype '" + s + "' (use uint8, uint16 or float32)");
}

py::dtype dtype_of(PixelType t) {
    switch (t) {
        case PixelType::U8: return py::dtype::of<std::uint8_t>();
        case PixelType::U16: return py::dtype::of<std::uint16_t>();
        case PixelType::F32: break;
    }
    return py::dtype::of<float>();
}

// A view of a 2-D array whose rows are contiguous; no copy is made.
RenderTile tile_view(const py::array& a, const double* fwd, const std::string& what) {
    if (a.ndim() != 2)
        throw std::invalid_argument(what + " must be 2-D, got " + std::to_string(a.ndim()) +
                                    " dimensions");
    if (a.shape(0) < 1 || a.shape(1) < 1) throw std::invalid_argument(what + " is empty");
    if (a.shape(0) > INT32_MAX || a.shape(1) > INT32_MAX)
        throw std::invalid_argument(what + " is too large");
    const py::ssize_t isz = a.itemsize();
    if ((a.shape(1) > 1 && a.strides(1) != isz) || a.strides(0) < 0 || a.strides(0) % isz != 0 ||
        (a.shape(0) > 1 && a.strides(0) < a.shape(1) * isz))
        throw std::invalid_argument(what + " must have contiguous rows (use np.ascontiguousarray)");
    check_aligned(a, what);
    RenderTile t;
    t.data = a.data();
    t.width = static_cast<int>(a.shape(1));
    t.height = static_cast<int>(a.shape(0));
    t.row_stride = a.shape(0) > 1 ? a.strides(0) / isz : t.width;
    for (int k = 0; k < 6; ++k) t.fwd[k] = fwd[k];
    return t;
}

const double* transforms_data(const DoubleArray& tf, std::size_t n) {
    if (tf.ndim() != 3 || static_cast<std::size_t>(tf.shape(0)) != n || tf.shape(1) != 2 ||
        tf.shape(2) != 3)
        throw std::invalid_argument("transforms must have shape (N, 2, 3)");
    return tf.data();
}

Canvas make_canvas(double x0, double y0, long long w, long long h) {
    Canvas c;
    c.x0 = x0;
    c.y0 = y0;
    c.width = w;
    c.height = h;
    return c;
}

using FloatCanvas = py::array_t<float, py::array::c_style>;
using DoubleCanvas = py::array_t<double, py::array::c_style>;

template <class Array>
auto accumulator(Array& a, const Canvas& c, const char* what) {
    if (a.ndim() != 2 || a.shape(0) != c.height || a.shape(1) != c.width)
        throw std::invalid_argument(std::string(what) + " does not match the canvas");
    return a.mutable_data();
}

// render_canvas and render_window: window = (row0, col0, rows, cols) of the canvas, or
// None for all of it.
py::tuple render_to_array(const py::list& images, const DoubleArray& transforms, const Canvas& c,
                          const py::object& window, const std::string& interp, double blend,
                          double fill, int threads, bool want_coverage, const std::string& dtype,
                          bool coverage_bits) {
    const std::size_t n = images.size();
    const double* tf = transforms_data(transforms, n);
    const PixelType type = parse_pixel_type(dtype);
    std::vector<py::array> keep;
    std::vector<RenderTile> tiles;
    keep.reserve(n);
    tiles.reserve(n);
    for (std::size_t k = 0; k < n; ++k) {
        const std::string what = "image " + std::to_string(k);
        keep.push_back(py::reinterpret_borrow<py::array>(images[k]));
        if (pixel_type_of(keep.back().dtype(), what) != type)
            throw std::invalid_argument("all images must have the same dtype (" + what + " differs)");
        tiles.push_back(tile_view(keep.back(), tf + 6 * k, what));
    }
    RenderOptions opt;
    opt.interp = parse_interp(interp);
    opt.blend = blend;
    opt.fill = static_cast<float>(fill);
    opt.threads = threads;
    if (c.width < 1 || c.height < 1)
        throw std::invalid_argument("canvas is empty (" + std::to_string(c.width) + " x " +
                                    std::to_string(c.height) + " pixels)");
    Window win{0, 0, c.height, c.width};
    if (!window.is_none()) {
        const auto w = window.cast<std::vector<long long>>();
        if (w.size() != 4) throw std::invalid_argument("window must be (row0, col0, rows, cols)");
        win = Window{w[0], w[1], w[2], w[3]};
        if (win.rows < 1 || win.cols < 1 || win.row0 < 0 || win.col0 < 0 ||
            win.row0 > c.height - win.rows || win.col0 > c.width - win.cols)
            throw std::invalid_argument("the window is empty or not inside the canvas");
    }
    py::array out(dtype_of(type), {static_cast<py::ssize_t>(win.rows), static_cast<py::ssize_t>(win.cols)});
    py::object cov = py::none();
    std::uint8_t* cov_ptr = nullptr;
    if (want_coverage && coverage_bits) {
        if (win.col0 % 8 != 0)
            throw std::invalid_argument("a coverage bit mask needs a window starting at a multiple of 8 columns");
        py::array_t<std::uint8_t> cv({static_cast<py::ssize_t>(win.rows), static_cast<py::ssize_t>((win.cols + 7) / 8)});
        cov_ptr = cv.mutable_data();
        cov = cv;
    } else if (want_coverage) {
        py::array_t<bool> cv({static_cast<py::ssize_t>(win.rows), static_cast<py::ssize_t>(win.cols)});
        cov_ptr = reinterpret_cast<std::uint8_t*>(cv.mutable_data());
        cov = cv;
    }
    void* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        render_window(tiles, type, c, win, opt, o, static_cast<std::ptrdiff_t>(win.cols), cov_ptr,
                      want_coverage && coverage_bits);
    }
    return py::make_tuple(out, cov);
}

}  // namespace

void bind_render(py::module_ m) {
    m.def(
        "render_canvas",
        [](const py::list& images, const DoubleArray& transforms, double x0, double y0,
           long long width, long long height, const std::string& interp, double blend,
           double fill, int threads, bool want_coverage, const std::string& dtype,
           const py::object& window, bool coverage_bits) {
            return render_to_array(images, transforms, make_canvas(x0, y0, width, height), window,
                                   interp, blend, fill, threads, want_coverage, dtype, coverage_bits);
        },
        py::arg("images"), py::arg("transforms"), py::arg("x0"), py::arg("y0"), py::arg("width"),
        py::arg("height"), py::arg("interpolation"), py::arg("blend"), py::arg("fill"),
        py::arg("threads"), py::arg("coverage"), py::arg("dtype"), py::arg("window") = py::none(),
        py::arg("coverage_bits") = false,
        "Render tiles (uint8/uint16/float32, all one dtype) into a new canvas; output pixel (i, j) "
        "shows model point (x0 + j, y0 + i). With window=(row0, col0, rows, cols) only those "
        "pixels, bit for bit as in the whole canvas. Returns (image, coverage or None); with "
        "coverage_bits=True the coverage is a uint8 bit mask as numpy.packbits(mask, axis=1) "
        "gives it (the window must start at a multiple of 8 columns).");

    m.def(
        "accumulate_tile",
        [](const py::array& image, const DoubleArray& transform, double x0, double y0,
           long long width, long long height, const std::string& interp, double blend,
           DoubleCanvas& num, FloatCanvas& den, int threads) {
            if (transform.size() != 6) throw std::invalid_argument("transform must be 2x3");
            const PixelType type = pixel_type_of(image.dtype(), "image");
            const RenderTile t = tile_view(image, transform.data(), "image");
            const Canvas c = make_canvas(x0, y0, width, height);
            double* nm = accumulator(num, c, "num");
            float* dn = accumulator(den, c, "den");
            RenderOptions opt;
            opt.interp = parse_interp(interp);
            opt.blend = blend;
            opt.threads = threads;
            py::gil_scoped_release release;
            accumulate_tile(t, type, c, opt, nm, dn);
        },
        py::arg("image"), py::arg("transform"), py::arg("x0"), py::arg("y0"), py::arg("width"),
        py::arg("height"), py::arg("interpolation"), py::arg("blend"), py::arg("num"),
        py::arg("den"), py::arg("threads"));

    m.def(
        "finalize_canvas",
        [](DoubleCanvas& num, FloatCanvas& den, bool hard, double fill, const std::string& dtype,
           int threads, bool want_coverage) {
            if (num.ndim() != 2) throw std::invalid_argument("num must be 2-D");
            const Canvas c = make_canvas(0, 0, num.shape(1), num.shape(0));
            const double* nm = accumulator(num, c, "num");
            const float* dn = accumulator(den, c, "den");
            const PixelType type = parse_pixel_type(dtype);
            py::array out(dtype_of(type), {static_cast<py::ssize_t>(c.height),
                                           static_cast<py::ssize_t>(c.width)});
            py::object cov = py::none();
            std::uint8_t* cov_ptr = nullptr;
            if (want_coverage) {
                py::array_t<bool> cv({static_cast<py::ssize_t>(c.height),
                                      static_cast<py::ssize_t>(c.width)});
                cov_ptr = reinterpret_cast<std::uint8_t*>(cv.mutable_data());
                cov = cv;
            }
            void* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                finalize_canvas(nm, dn, c, type, hard, static_cast<float>(fill), threads, o,
                                cov_ptr);
            }
            return py::make_tuple(out, cov);
        },
        py::arg("num"), py::arg("den"), py::arg("hard"), py::arg("fill"), py::arg("dtype"),
        py::arg("threads"), py::arg("coverage"));

    m.def(
        "tile_coverage",
        [](const DoubleArray& transforms, const py::array_t<long long, py::array::c_style |
                                                                           py::array::forcecast>& sizes,
           double x0, double y0, long long width, long long height, bool all_tiles, int threads) {
            const std::size_t n = static_cast<std::size_t>(sizes.ndim() == 2 ? sizes.shape(0) : 0);
            if (sizes.ndim() != 2 || sizes.shape(1) != 2)
                throw std::invalid_argument("sizes must have shape (N, 2) with (width, height) rows");
            const double* tf = transforms_data(transforms, n);
            std::vector<RenderTile> tiles(n);
            for (std::size_t k = 0; k < n; ++k) {
                const long long w = sizes.data()[2 * k], h = sizes.data()[2 * k + 1];
                if (w < 1 || h < 1 || w > INT32_MAX || h > INT32_MAX)
                    throw std::invalid_argument("tile " + std::to_string(k) + " has a bad size");
                tiles[k].width = static_cast<int>(w);
                tiles[k].height = static_cast<int>(h);
                for (int q = 0; q < 6; ++q) tiles[k].fwd[q] = tf[6 * k + q];
            }
            const Canvas c = make_canvas(x0, y0, width, height);
            if (width < 1 || height < 1) throw std::invalid_argument("canvas is empty");
            py::array_t<bool> mask({static_cast<py::ssize_t>(height), static_cast<py::ssize_t>(width)});
            std::uint8_t* mp = reinterpret_cast<std::uint8_t*>(mask.mutable_data());
            {
                py::gil_scoped_release release;
                tile_coverage(tiles, c, all_tiles, threads, mp);
            }
            return mask;
        },
        py::arg("transforms"), py::arg("sizes"), py::arg("x0"), py::arg("y0"), py::arg("width"),
        py::arg("height"), py::arg("all_tiles"), py::arg("threads"),
        "Bool mask of output pixels inside any (all_tiles=False) or every tile's area.");
}

}  // namespace spectralign_fast::bindings

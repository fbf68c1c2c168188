#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pybind.hpp"
#include "spectralign_fast/core/threads.hpp"
#include "spectralign_fast/stackreg/blocks.hpp"

namespace spectralign_fast::bindings {

namespace {

FieldInterpolation parse_upsampling(const std::string& name) {
    if (name == "linear") return FieldInterpolation::linear;
    if (name == "cubic") return FieldInterpolation::cubic;
    throw std::invalid_argument("upsampling must be 'linear' or 'cubic', got '" + name + "'");
}

ShiftInterpolation parse_warp_interpolation(const std::string& name) {
    if (name == "linear") return ShiftInterpolation::linear;
    if (name == "cubic") return ShiftInterpolation::cubic;
    throw std::invalid_argument("interpolation must be 'linear' or 'cubic', got '" + name + "'");
}

void check_frames(const FloatImage& frames, int rows, int cols) {
    if (frames.ndim() != 3 || frames.shape(1) != rows || frames.shape(2) != cols)
        throw std::invalid_argument("frames must have shape (n, " + std::to_string(rows) + ", " +
                                    std::to_string(cols) + ")");
    check_aligned(frames, "frames");
}

// The grid arrays: (n, ny, nx, 2) or (ny, nx, 2) with one centre per block row/column.
void check_centers(const DoubleArray& cy, const DoubleArray& cx, py::ssize_t ny, py::ssize_t nx) {
    if (cy.ndim() != 1 || cx.ndim() != 1 || cy.shape(0) != ny || cx.shape(0) != nx)
        throw std::invalid_argument("centers_y and centers_x must hold one centre per block row and column");
}

class BlockRegCore {
public:
    BlockRegCore(const FloatImage& reference, std::vector<int> starts_y, std::vector<int> starts_x,
                 std::vector<int> block, float whiten, std::vector<int> max_shift, double taper) {
        if (reference.ndim() != 2) throw std::invalid_argument("reference must be a 2-D frame");
        if (block.size() != 2) throw std::invalid_argument("block must hold (rows, columns)");
        if (max_shift.size() != 2) throw std::invalid_argument("max_shift must hold (rows, columns)");
        check_aligned(reference, "reference");
        BlockRegOptions opt;
        opt.whiten = whiten;
        opt.max_shift[0] = max_shift[0];
        opt.max_shift[1] = max_shift[1];
        opt.taper = taper;
        const float* data = reference.data();
        const int rows = static_cast<int>(reference.shape(0)), cols = static_cast<int>(reference.shape(1));
        py::gil_scoped_release release;
        core_ = std::make_unique<BlockRegistrar>(data, rows, cols, std::move(starts_y), std::move(starts_x),
                                                 block[0], block[1], opt);
    }

    py::tuple fit(const FloatImage& frames, std::optional<DoubleArray> prior, int threads,
                  py::ssize_t ny, py::ssize_t nx) const {
        check_frames(frames, core_->rows(), core_->cols());
        if (static_cast<std::size_t>(ny * nx) != core_->blocks())
            throw std::invalid_argument("ny * nx does not match the number of blocks");
        const auto n = frames.shape(0);
        const double* p = nullptr;
        if (prior) {
            if (prior->ndim() != 2 || prior->shape(0) != n || prior->shape(1) != 2)
                throw std::invalid_argument("prior must have shape (frames, 2)");
            check_aligned(*prior, "prior");
            p = prior->data();
        }
        py::array_t<double> deltas({n, ny, nx, static_cast<py::ssize_t>(2)});
        py::array_t<float> quality({n, ny, nx});
        py::array_t<std::int8_t> status(n);
        double* d = deltas.mutable_data();
        float* q = quality.mutable_data();
        std::int8_t* s = status.mutable_data();
        const float* f = frames.data();
        {
            py::gil_scoped_release release;
            core_->fit(f, static_cast<std::size_t>(n), p, threads, d, q, s);
        }
        return py::make_tuple(deltas, quality, status);
    }

    std::size_t blocks() const { return core_->blocks(); }

private:
    std::unique_ptr<BlockRegistrar> core_;
};

py::array_t<float> field(const DoubleArray& grid, const DoubleArray& cy, const DoubleArray& cx, int rows, int cols,
                         const std::string& upsampling) {
    if (grid.ndim() != 3 || grid.shape(2) != 2) throw std::invalid_argument("grid must have shape (ny, nx, 2)");
    check_centers(cy, cx, grid.shape(0), grid.shape(1));
    if (rows < 1 || cols < 1) throw std::invalid_argument("rows and cols must be positive");
    const FieldInterpolation up = parse_upsampling(upsampling);
    py::array_t<float> out({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols), static_cast<py::ssize_t>(2)});
    const double* g = grid.data();
    const double* y = cy.data();
    const double* x = cx.data();
    float* o = out.mutable_data();
    const int ny = static_cast<int>(grid.shape(0)), nx = static_cast<int>(grid.shape(1));
    {
        py::gil_scoped_release release;
        block_field(g, ny, nx, y, x, rows, cols, up, o);
    }
    return out;
}

py::array warp(const FloatImage& frames, const DoubleArray& grids, const DoubleArray& cy, const DoubleArray& cx,
               const std::string& upsampling, const std::string& interpolation, int threads,
               std::optional<py::array> out) {
    if (frames.ndim() != 3) throw std::invalid_argument("frames must have shape (n, rows, cols)");
    const auto n = frames.shape(0);
    if (grids.ndim() != 4 || grids.shape(0) != n || grids.shape(3) != 2)
        throw std::invalid_argument("grids must have shape (frames, ny, nx, 2)");
    check_centers(cy, cx, grids.shape(1), grids.shape(2));
    const FieldInterpolation up = parse_upsampling(upsampling);
    const ShiftInterpolation interp = parse_warp_interpolation(interpolation);
    resolve_threads(threads);  // validates
    py::array result;
    if (out) {
        result = *out;
        bool same = result.ndim() == 3;
        for (py::ssize_t a = 0; same && a < 3; ++a) same = result.shape(a) == frames.shape(a);
        if (!same) throw std::invalid_argument("out must have the shape of frames");
        if (!result.dtype().equal(py::dtype::of<float>()) || !(result.flags() & py::array::c_style) ||
            !result.writeable())
            throw std::invalid_argument("out must be a writeable C-contiguous float32 array");
        if (result.data() == static_cast<const void*>(frames.data()))
            throw std::invalid_argument("out must not be the input array");
    } else {
        result = py::array_t<float>({n, frames.shape(1), frames.shape(2)});
    }
    check_aligned(frames, "frames");
    check_aligned(grids, "grids");
    check_aligned(result, "out");
    const float* f = frames.data();
    const double* g = grids.data();
    const double* y = cy.data();
    const double* x = cx.data();
    float* o = static_cast<float*>(result.mutable_data());
    const int rows = static_cast<int>(frames.shape(1)), cols = static_cast<int>(frames.shape(2));
    const int ny = static_cast<int>(grids.shape(1)), nx = static_cast<int>(grids.shape(2));
    {
        py::gil_scoped_release release;
        warp_block_frames(f, static_cast<std::size_t>(n), rows, cols, g, ny, nx, y, x, up, interp, threads, o);
    }
    return result;
}

}  // namespace

void bind_blocks(py::module_ m) {
    py::class_<BlockRegCore>(m, "BlockRegCore")
        .def(py::init<const FloatImage&, std::vector<int>, std::vector<int>, std::vector<int>, float, std::vector<int>,
                      double>(),
             py::arg("reference"), py::arg("starts_y"), py::arg("starts_x"), py::arg("block"), py::arg("whiten"),
             py::arg("max_shift"), py::arg("taper"),
             "reference: (rows, cols); blocks of shape `block` at the given top-left corners; the tapered block "
             "spectra are computed once here.")
        .def("fit", &BlockRegCore::fit, py::arg("frames"), py::arg("prior"), py::arg("threads"), py::arg("ny"),
             py::arg("nx"),
             "Returns (deltas (n, ny, nx, 2) float64 in array axis order, quality (n, ny, nx) float32, "
             "status (n,) int8: 0 ok, 1 not finite).")
        .def_property_readonly("blocks", &BlockRegCore::blocks);
    m.def("block_field", &field, py::arg("grid"), py::arg("centers_y"), py::arg("centers_x"), py::arg("rows"),
          py::arg("cols"), py::arg("upsampling"),
          "Dense (rows, cols, 2) float32 field of one block grid (ny, nx, 2).");
    m.def("warp_blocks", &warp, py::arg("frames"), py::arg("grids"), py::arg("centers_y"), py::arg("centers_x"),
          py::arg("upsampling"), py::arg("interpolation"), py::arg("threads"), py::arg("out") = py::none(),
          "Frame k sampled at x + field_k(x) (nearest-edge fill); a grid with NaN copies the frame.");
}

}  // namespace spectralign_fast::bindings

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pybind.hpp"
#include "stack_checks.hpp"
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

std::vector<std::vector<double>> as_centers(const std::vector<std::vector<double>>& centers, std::size_t rank) {
    if (centers.size() != rank) throw std::invalid_argument("centers needs one array per frame axis");
    return centers;
}

class BlockRegCore {
public:
    BlockRegCore(const FloatImage& reference, std::vector<std::vector<int>> starts, std::vector<int> block,
                 float whiten, std::vector<int> max_shift, double taper, bool taper_frames) {
        if (reference.ndim() != 2 && reference.ndim() != 3)
            throw std::invalid_argument("reference must be a 2-D frame or a 3-D volume");
        check_aligned(reference, "reference");
        BlockRegOptions opt;
        opt.whiten = whiten;
        opt.max_shift = std::move(max_shift);
        opt.taper = taper;
        opt.taper_frames = taper_frames;
        std::vector<int> shape;
        for (py::ssize_t k = 0; k < reference.ndim(); ++k) shape.push_back(static_cast<int>(reference.shape(k)));
        const float* data = reference.data();
        py::gil_scoped_release release;
        core_ = std::make_unique<BlockRegistrar>(data, shape, std::move(starts), std::move(block), opt);
    }

    py::tuple fit(const FloatImage& frames, std::optional<DoubleArray> prior, int threads) const {
        if (frame_shape(frames, "frames") != core_->shape())
            throw std::invalid_argument("frame shape does not match the reference shape");
        check_aligned(frames, "frames");
        const auto n = frames.shape(0);
        const auto rank = static_cast<py::ssize_t>(core_->rank());
        const auto nb = static_cast<py::ssize_t>(core_->blocks());
        const double* p = nullptr;
        if (prior) {
            if (prior->ndim() != 2 || prior->shape(0) != n || prior->shape(1) != rank)
                throw std::invalid_argument("prior must have shape (frames, frame dimensions)");
            check_aligned(*prior, "prior");
            p = prior->data();
        }
        py::array_t<double> deltas({n, nb, rank});
        py::array_t<float> quality({n, nb});
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

std::vector<int> grid_shape_of(const DoubleArray& grid, py::ssize_t first) {
    std::vector<int> g;
    for (py::ssize_t k = first; k + 1 < grid.ndim(); ++k) g.push_back(static_cast<int>(grid.shape(k)));
    if (grid.shape(grid.ndim() - 1) != static_cast<py::ssize_t>(g.size()))
        throw std::invalid_argument("the block grid's last axis must hold one displacement per frame axis");
    return g;
}

py::array_t<float> field(const DoubleArray& grid, const std::vector<std::vector<double>>& centers,
                         const std::vector<int>& shape, const std::string& upsampling) {
    if (grid.ndim() != 3 && grid.ndim() != 4)
        throw std::invalid_argument("grid must have shape (ny, nx, 2) or (nz, ny, nx, 3)");
    const std::vector<int> g = grid_shape_of(grid, 0);
    if (shape.size() != g.size()) throw std::invalid_argument("shape needs one size per grid axis");
    const FieldInterpolation up = parse_upsampling(upsampling);
    std::vector<py::ssize_t> dims(shape.begin(), shape.end());
    dims.push_back(static_cast<py::ssize_t>(shape.size()));
    for (int s_ : shape)
        if (s_ < 1) throw std::invalid_argument("shape must be positive");
    py::array_t<float> out(dims);
    const double* gp = grid.data();
    float* o = out.mutable_data();
    const auto c = as_centers(centers, shape.size());
    {
        py::gil_scoped_release release;
        block_field(gp, g, c, shape, up, o);
    }
    return out;
}

py::array warp(const FloatImage& frames, const DoubleArray& grids, const std::vector<std::vector<double>>& centers,
               const std::string& upsampling, const std::string& interpolation, int threads,
               std::optional<py::array> out) {
    const std::vector<int> shape = frame_shape(frames, "frames");
    const auto n = frames.shape(0);
    if (grids.ndim() != static_cast<py::ssize_t>(shape.size()) + 2 || grids.shape(0) != n)
        throw std::invalid_argument("grids must have shape (frames, *grid, frame dimensions)");
    const std::vector<int> g = grid_shape_of(grids, 1);
    const FieldInterpolation up = parse_upsampling(upsampling);
    const ShiftInterpolation interp = parse_warp_interpolation(interpolation);
    resolve_threads(threads);  // validates
    py::array result = output_array(frames, out, py::dtype::of<float>());
    check_aligned(frames, "frames");
    check_aligned(grids, "grids");
    check_aligned(result, "out");
    const float* f = frames.data();
    const double* gp = grids.data();
    float* o = static_cast<float*>(result.mutable_data());
    const auto c = as_centers(centers, shape.size());
    {
        py::gil_scoped_release release;
        warp_block_frames(f, static_cast<std::size_t>(n), shape, gp, g, c, up, interp, threads, o);
    }
    return result;
}

}  // namespace

void bind_blocks(py::module_ m) {
    py::class_<BlockRegCore>(m, "BlockRegCore")
        .def(py::init<const FloatImage&, std::vector<std::vector<int>>, std::vector<int>, float, std::vector<int>,
                      double, bool>(),
             py::arg("reference"), py::arg("starts"), py::arg("block"), py::arg("whiten"), py::arg("max_shift"),
             py::arg("taper"), py::arg("taper_frames") = true,
             "reference: one frame (2-D) or volume (3-D); blocks of shape `block` with corners at the "
             "product of `starts` (one list per axis); the tapered block spectra are computed once here.")
        .def("fit", &BlockRegCore::fit, py::arg("frames"), py::arg("prior"), py::arg("threads"),
             "Returns (deltas (n, blocks, ndim) float64 in array axis order, quality (n, blocks) float32, "
             "status (n,) int8: 0 ok, 1 not finite); blocks in row-major grid order.")
        .def_property_readonly("blocks", &BlockRegCore::blocks);
    m.def("block_field", &field, py::arg("grid"), py::arg("centers"), py::arg("shape"), py::arg("upsampling"),
          "Dense (*shape, ndim) float32 field of one block grid (*grid, ndim).");
    m.def("warp_blocks", &warp, py::arg("frames"), py::arg("grids"), py::arg("centers"), py::arg("upsampling"),
          py::arg("interpolation"), py::arg("threads"), py::arg("out") = py::none(),
          "Frame k sampled at x + field_k(x) (nearest-edge fill); a grid with NaN copies the frame.");
}

}  // namespace spectralign_fast::bindings

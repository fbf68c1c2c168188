#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pybind.hpp"
#include "stack_checks.hpp"
#include "spectralign_fast/stackreg/stackreg.hpp"
#include "spectralign_fast/match/swim.hpp"

namespace spectralign_fast::bindings {

namespace {

class StackRegCore {
public:
    StackRegCore(const FloatImage& references, float whiten, bool subpixel, std::vector<int> max_shift, bool refine,
                 std::vector<int> reference_box, double taper) {
        const std::vector<int> shape = frame_shape(references, "references");
        check_aligned(references, "references");
        if (references.shape(0) < 1) throw std::invalid_argument("at least one reference is needed");
        StackRegOptions opt;
        opt.whiten = whiten;
        opt.subpixel = subpixel;
        opt.max_shift = std::move(max_shift);
        opt.refine = refine;
        opt.reference_box = std::move(reference_box);
        opt.taper = taper;
        const float* data = references.data();
        const auto planes = static_cast<std::size_t>(references.shape(0));
        py::gil_scoped_release release;
        core_ = std::make_unique<StackRegistrar>(data, planes, shape, opt);
    }

    py::tuple fit(const FloatImage& frames, std::size_t first_plane, int threads, double self_weight,
                  std::optional<DoubleArray> self_deltas) const {
        const std::vector<int> shape = frame_shape(frames, "frames");
        if (shape != core_->shape())
            throw std::invalid_argument("frame shape does not match the reference shape");
        const auto n = static_cast<py::ssize_t>(frames.shape(0));
        const auto rank = static_cast<py::ssize_t>(shape.size());
        py::array_t<double> deltas({n, rank});
        py::array_t<std::int8_t> status(n);
        double* d = deltas.mutable_data();
        std::int8_t* s = status.mutable_data();
        const double* sd = nullptr;
        if (self_deltas) {
            if (self_deltas->ndim() != 2 || self_deltas->shape(0) != n || self_deltas->shape(1) != rank)
                throw std::invalid_argument("self_deltas must have shape (frames, frame dimensions)");
            sd = self_deltas->data();
        }
        check_aligned(frames, "frames");
        const float* f = frames.data();
        {
            py::gil_scoped_release release;
            core_->fit(f, static_cast<std::size_t>(n), first_plane, threads, d, s, self_weight, sd);
        }
        return py::make_tuple(deltas, status);
    }

    py::tuple refine(const FloatImage& frames, const DoubleArray& start, std::size_t first_plane, int threads) const {
        const std::vector<int> shape = frame_shape(frames, "frames");
        if (shape != core_->shape())
            throw std::invalid_argument("frame shape does not match the reference shape");
        const auto n = static_cast<py::ssize_t>(frames.shape(0));
        const auto rank = static_cast<py::ssize_t>(shape.size());
        if (start.ndim() != 2 || start.shape(0) != n || start.shape(1) != rank)
            throw std::invalid_argument("start must have shape (frames, frame dimensions)");
        check_aligned(frames, "frames");
        py::array_t<double> deltas({n, rank});
        std::copy(start.data(), start.data() + n * rank, deltas.mutable_data());
        py::array_t<std::int8_t> status(n);
        double* d = deltas.mutable_data();
        std::int8_t* s = status.mutable_data();
        const float* f = frames.data();
        {
            py::gil_scoped_release release;
            core_->refine(f, static_cast<std::size_t>(n), first_plane, threads, d, s);
        }
        return py::make_tuple(deltas, status);
    }

    std::vector<int> shape() const { return core_->shape(); }
    std::size_t planes() const { return core_->planes(); }

private:
    std::unique_ptr<StackRegistrar> core_;
};

ShiftInterpolation parse_interpolation(const std::string& name) {
    if (name == "linear") return ShiftInterpolation::linear;
    if (name == "cubic") return ShiftInterpolation::cubic;
    if (name == "fourier") return ShiftInterpolation::fourier;
    throw std::invalid_argument("interpolation must be 'linear', 'cubic' or 'fourier', got '" + name + "'");
}

// `out`: see output_array.
py::array stack_shift(const FloatImage& frames, const DoubleArray& deltas, const std::string& interpolation,
                      int threads, std::optional<py::array> out) {
    const std::vector<int> shape = frame_shape(frames, "frames");
    const ShiftInterpolation interp = parse_interpolation(interpolation);
    const auto n = static_cast<py::ssize_t>(frames.shape(0));
    if (deltas.ndim() != 2 || deltas.shape(0) != n || deltas.shape(1) != static_cast<py::ssize_t>(shape.size()))
        throw std::invalid_argument("deltas must have shape (frames, frame dimensions)");
    resolve_threads(threads);  // validates
    py::array result = output_array(frames, out, py::dtype::of<float>());
    check_aligned(frames, "frames");
    check_aligned(deltas, "deltas");
    check_aligned(result, "out");
    const float* f = frames.data();
    const double* d = deltas.data();
    float* o = static_cast<float*>(result.mutable_data());
    {
        py::gil_scoped_release release;
        shift_frames(f, static_cast<std::size_t>(n), shape, d, interp, threads, o);
    }
    return result;
}

// Integer shifts on the caller's dtype: a clamped copy (no conversion).
py::array stack_shift_integer(const py::array& frames, const DoubleArray& deltas, int threads,
                              std::optional<py::array> out) {
    if (!(frames.flags() & py::array::c_style)) throw std::invalid_argument("frames must be C-contiguous");
    const std::vector<int> shape = frame_shape(frames, "frames");
    const auto n = static_cast<py::ssize_t>(frames.shape(0));
    if (deltas.ndim() != 2 || deltas.shape(0) != n || deltas.shape(1) != static_cast<py::ssize_t>(shape.size()))
        throw std::invalid_argument("deltas must have shape (frames, frame dimensions)");
    resolve_threads(threads);  // validates
    py::array result = output_array(frames, out, frames.dtype());
    const void* f = frames.data();
    const double* d = deltas.data();
    void* o = result.mutable_data();
    const auto item = static_cast<std::size_t>(frames.itemsize());
    {
        py::gil_scoped_release release;
        shift_frames_integer(f, item, static_cast<std::size_t>(n), shape, d, threads, o);
    }
    return result;
}

// The float64 sum is taken as a plain array and checked, never converted:
// a converted copy would receive the sum and be thrown away.
void stack_accumulate_shifted(const FloatImage& frames, const DoubleArray& deltas, int threads, py::array sum) {
    const std::vector<int> shape = frame_shape(frames, "frames");
    const auto n = static_cast<py::ssize_t>(frames.shape(0));
    if (deltas.ndim() != 2 || deltas.shape(0) != n || deltas.shape(1) != static_cast<py::ssize_t>(shape.size()))
        throw std::invalid_argument("deltas must have shape (frames, frame dimensions)");
    bool same = sum.ndim() == static_cast<py::ssize_t>(shape.size());
    for (py::ssize_t a = 0; same && a < sum.ndim(); ++a) same = sum.shape(a) == shape[static_cast<std::size_t>(a)];
    if (!same || !sum.dtype().equal(py::dtype::of<double>()) || !(sum.flags() & py::array::c_style) ||
        !sum.writeable())
        throw std::invalid_argument("sum must be a writeable C-contiguous float64 array of one frame's shape");
    check_aligned(frames, "frames");
    check_aligned(deltas, "deltas");
    check_aligned(sum, "sum");
    resolve_threads(threads);  // validates
    const float* f = frames.data();
    const double* d = deltas.data();
    auto* out = static_cast<double*>(sum.mutable_data());
    py::gil_scoped_release release;
    accumulate_shifted(f, static_cast<std::size_t>(n), shape, d, threads, out);
}

}  // namespace

void bind_stackreg(py::module_ m) {
    py::class_<StackRegCore>(m, "StackRegCore")
        .def(py::init<const FloatImage&, float, bool, std::vector<int>, bool, std::vector<int>, double>(),
             py::arg("references"), py::arg("whiten"), py::arg("subpixel"), py::arg("max_shift"),
             py::arg("refine") = false, py::arg("reference_box") = std::vector<int>{}, py::arg("taper") = 0.0,
             "references: (planes, *frame_shape); spectra (and, with refine, the intensity "
             "refinement's gradients) are computed once here. reference_box: lows then exclusive "
             "highs per axis of the reference region the refinement trusts (empty: all). taper: "
             "raised-cosine fraction of each axis at both ends applied before the FFT (0: none).")
        .def("fit", &StackRegCore::fit, py::arg("frames"), py::arg("first_plane"), py::arg("threads"),
             py::arg("self_weight") = 0.0, py::arg("self_deltas") = py::none(),
             "Returns (deltas (n, ndim) float64 in array axis order, status (n,) int8: 0 ok, "
             "1 not finite (NaN deltas), 2 constant frame (zero deltas), 3 refine kept the FFT estimate).")
        .def("refine", &StackRegCore::refine, py::arg("frames"), py::arg("start"), py::arg("first_plane"),
             py::arg("threads"),
             "The intensity refinement alone (a core made with refine=True), from start (n, ndim) "
             "instead of the FFT peak. Returns (deltas, status) as fit.")
        .def_property_readonly("shape", &StackRegCore::shape)
        .def_property_readonly("planes", &StackRegCore::planes);
    m.def("shift_frames", &stack_shift, py::arg("frames"), py::arg("deltas"), py::arg("interpolation"),
          py::arg("threads"), py::arg("out") = py::none(),
          "Frame k sampled at x + deltas[k] (nearest-edge fill); NaN deltas copy the frame.");
    m.def("accumulate_shifted", &stack_accumulate_shifted, py::arg("frames"), py::arg("deltas"), py::arg("threads"),
          py::arg("sum"),
          "sum += each frame k sampled at x + deltas[k] as shift_frames' linear interpolation, added in "
          "float64 in frame order; frames with non-finite deltas are skipped.");
    m.def("shift_frames_integer", &stack_shift_integer, py::arg("frames"), py::arg("deltas"), py::arg("threads"),
          py::arg("out") = py::none(),
          "Frame k (any dtype, C-contiguous) copied from x + deltas[k] (whole numbers; nearest-edge fill); "
          "NaN deltas copy the frame.");
}

}  // namespace spectralign_fast::bindings

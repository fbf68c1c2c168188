#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pybind.hpp"
#include "spectralign_fast/stackreg/zshift.hpp"

namespace spectralign_fast::bindings {

namespace {

class ZStackCore {
public:
    ZStackCore(const FloatImage& planes, float whiten, float taper, std::vector<int> max_shift) {
        if (planes.ndim() != 3)
            throw std::invalid_argument("the reference z-stack must be 3-D (planes, rows, cols), got " +
                                        std::to_string(planes.ndim()) + " dimensions");
        if (planes.shape(1) > INT32_MAX || planes.shape(2) > INT32_MAX || planes.shape(0) > INT32_MAX)
            throw std::invalid_argument("the reference z-stack is too large");
        check_aligned(planes, "planes");
        ZStackOptions opt;
        opt.whiten = whiten;
        opt.taper = taper;
        opt.max_shift = std::move(max_shift);
        const float* data = planes.data();
        const int nz = static_cast<int>(planes.shape(0)), rows = static_cast<int>(planes.shape(1)),
                  cols = static_cast<int>(planes.shape(2));
        py::gil_scoped_release release;
        ref_ = std::make_unique<ZStackReference>(data, nz, rows, cols, std::move(opt));
    }

    py::array_t<float> correlate(const FloatImage& frames, int threads) const {
        if (frames.ndim() != 3 || frames.shape(1) != ref_->rows() || frames.shape(2) != ref_->cols())
            throw std::invalid_argument("frames must be (n, " + std::to_string(ref_->rows()) + ", " +
                                        std::to_string(ref_->cols()) + "): the reference planes' shape");
        check_aligned(frames, "frames");
        const auto n = static_cast<std::size_t>(frames.shape(0));
        py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(ref_->planes())});
        float* dst = out.mutable_data();
        const float* src = frames.data();
        {
            py::gil_scoped_release release;
            ref_->correlate(src, n, threads, dst);
        }
        return out;
    }

    int planes() const { return ref_->planes(); }

private:
    std::unique_ptr<ZStackReference> ref_;
};

}  // namespace

void bind_zstack(py::module_ m) {
    py::class_<ZStackCore>(m, "ZStackCore")
        .def(py::init<const FloatImage&, float, float, std::vector<int>>(), py::arg("planes"), py::arg("whiten"),
             py::arg("taper"), py::arg("max_shift"),
             "planes: (nz, rows, cols) reference z-stack; their spectra are computed once here.")
        .def("correlate", &ZStackCore::correlate, py::arg("frames"), py::arg("threads"),
             "(n, nz) float32: peak of the whitened cross-correlation of each frame with each plane "
             "(in [0, 1] for whiten=-1); NaN rows for frames with NaN or inf, 0 for constant frames.")
        .def_property_readonly("planes", &ZStackCore::planes);
}

}  // namespace spectralign_fast::bindings

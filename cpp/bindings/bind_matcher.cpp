#include <array>
#include <memory>
#include <mutex>
#include <string>

#include "pybind.hpp"
#include "spectralign_fast/match/swim.hpp"

namespace spectralign_fast::bindings {

namespace {

// What refine_many returns: one row per pair, each field a new array.
struct RefineManyResult {
    py::array_t<double> p1, p2;     // (N, 2) refined points
    py::array_t<double> shift;      // (N, 2) last iteration's shift
    py::array_t<double> peakwidth;  // (N, 2) last iteration's peak width
    py::array_t<double> snr;        // (N,)
    py::array_t<int> niters;        // (N,) iterations run
};

// Holds both images (keeping the arrays alive while the GIL is released)
// and a pool of workspaces, so repeated calls allocate nothing.
class MatcherCore {
public:
    MatcherCore(FloatImage image1, FloatImage image2)
        : image1_(std::move(image1)),
          image2_(std::move(image2)),
          view1_(image_view(image1_, "image 1")),
          view2_(image_view(image2_, "image 2")) {
        const ImageView* views[2] = {&view1_, &view2_};
        for (int k = 0; k < 2; ++k) {
            bool finite = true;
            {
                py::gil_scoped_release release;
                finite = all_finite(*views[k]);
            }
            if (!finite)
                throw std::invalid_argument(
                    "img" + std::to_string(k + 1) +
                    " contains NaN or inf pixels; replace them first (e.g. "
                    "numpy.nan_to_num(img, nan=img[numpy.isfinite(img)].mean()))");
        }
    }

    py::tuple refine(std::array<double, 2> p1, std::array<double, 2> p2, int width, int height,
                     int iters, double tolerance, float whiten, int peak_radius, bool apodize_both) {
        const RefineParams params =
            make_params(width, height, iters, tolerance, whiten, peak_radius, apodize_both);
        check_refine_params(view1_, view2_, params);
        check_refine_point(view1_, p1.data(), params, "point 1", 0);
        check_refine_point(view2_, p2.data(), params, "point 2", 0);
        RefineResult r;
        {
            py::gil_scoped_release release;
            std::unique_ptr<SwimWorkspace> ws = pool_.acquire(width, height);
            r = spectralign_fast::refine(view1_, view2_, p1.data(), p2.data(), params, *ws);
            pool_.release(std::move(ws));
        }
        py::array_t<double> its({static_cast<py::ssize_t>(r.iterations.size()), py::ssize_t{6}});
        double* o = its.mutable_data();
        for (const SwimResult& s : r.iterations) {
            *o++ = s.dx;
            *o++ = s.dy;
            *o++ = s.sx;
            *o++ = s.sy;
            *o++ = s.snr;
            *o++ = s.contrast ? 1.0 : 0.0;
        }
        return py::make_tuple(py::make_tuple(r.p1[0], r.p1[1]), py::make_tuple(r.p2[0], r.p2[1]), its);
    }

    RefineManyResult refine_many(const DoubleArray& P1, const DoubleArray& P2, int width, int height,
                                 int iters, double tolerance, float whiten, int peak_radius,
                                 bool apodize_both, int threads) {
        if (P1.ndim() != 2 || P1.shape(1) != 2 || P2.ndim() != 2 || P2.shape(1) != 2)
            throw std::invalid_argument("point arrays must have shape (N, 2)");
        if (P1.shape(0) != P2.shape(0))
            throw std::invalid_argument("point arrays must have the same length");
        const RefineParams params =
            make_params(width, height, iters, tolerance, whiten, peak_radius, apodize_both);
        resolve_threads(threads);  // validates
        const auto n = static_cast<py::ssize_t>(P1.shape(0));
        RefineManyResult r{py::array_t<double>({n, py::ssize_t{2}}), py::array_t<double>({n, py::ssize_t{2}}),
                           py::array_t<double>({n, py::ssize_t{2}}), py::array_t<double>({n, py::ssize_t{2}}),
                           py::array_t<double>(n), py::array_t<int>(n)};
        const RefineManyOutput out{r.p1.mutable_data(), r.p2.mutable_data(), r.shift.mutable_data(),
                                   r.peakwidth.mutable_data(), r.snr.mutable_data(), r.niters.mutable_data()};
        const double* a = P1.data();
        const double* b = P2.data();
        {
            py::gil_scoped_release release;
            spectralign_fast::refine_many(view1_, view2_, a, b, static_cast<std::size_t>(n), params,
                                          threads, out, &pool_);
        }
        return r;
    }

private:
    static RefineParams make_params(int width, int height, int iters, double tolerance, float whiten,
                                    int peak_radius, bool apodize_both) {
        RefineParams p;
        p.width = width;
        p.height = height;
        p.iterations = iters;
        p.tolerance = tolerance;
        p.swim.whiten = whiten;
        p.swim.peak_radius = peak_radius;
        p.swim.apodize_both = apodize_both;
        return p;
    }

    FloatImage image1_, image2_;
    ImageView view1_, view2_;
    WorkspacePool pool_{static_cast<std::size_t>(resolve_threads(0))};
};

}  // namespace

void bind_matcher(py::module_ m) {
    py::class_<RefineManyResult>(m, "RefineManyResult",
                                 "What MatcherCore.refine_many returns: one row per pair of points.")
        .def_readonly("p1", &RefineManyResult::p1, "(N, 2) float64: refined points in image 1.")
        .def_readonly("p2", &RefineManyResult::p2, "(N, 2) float64: refined points in image 2.")
        .def_readonly("shift", &RefineManyResult::shift, "(N, 2) float64: the last iteration's shift.")
        .def_readonly("peakwidth", &RefineManyResult::peakwidth,
                      "(N, 2) float64: the last iteration's correlation peak width.")
        .def_readonly("snr", &RefineManyResult::snr, "(N,) float64: the last iteration's signal-to-noise ratio.")
        .def_readonly("niters", &RefineManyResult::niters, "(N,) int32: iterations run per pair.")
        .def("__repr__", [](const RefineManyResult& r) {
            return "RefineManyResult(pairs=" + std::to_string(r.snr.shape(0)) + ")";
        });
    py::class_<MatcherCore>(m, "MatcherCore")
        .def(py::init<FloatImage, FloatImage>(), py::arg("image1"), py::arg("image2"))
        .def("refine", &MatcherCore::refine, py::arg("p1"), py::arg("p2"), py::arg("width"),
             py::arg("height"), py::arg("iters"), py::arg("tolerance"), py::arg("whiten"),
             py::arg("peak_radius"), py::arg("apodize_both"),
             "Returns ((x1, y1), (x2, y2), iterations) with one row (dx, dy, sx, sy, snr, "
             "contrast) per iteration.")
        .def("refine_many", &MatcherCore::refine_many, py::arg("P1"), py::arg("P2"), py::arg("width"),
             py::arg("height"), py::arg("iters"), py::arg("tolerance"), py::arg("whiten"),
             py::arg("peak_radius"), py::arg("apodize_both"), py::arg("threads"),
             "Refines N pairs of points (GIL released); returns a RefineManyResult.");
}

}  // namespace spectralign_fast::bindings

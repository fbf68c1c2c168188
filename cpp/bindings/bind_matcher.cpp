#include <array>
#include <memory>
#include <mutex>

#include "pybind.hpp"
#include "spectralign_fast/match/swim.hpp"

namespace spectralign_fast::bindings {

namespace {

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

    py::dict refine_many(const DoubleArray& P1, const DoubleArray& P2, int width, int height,
                         int iters, double tolerance, float whiten, int peak_radius, bool apodize_both,
                         int threads) {
        if (P1.ndim() != 2 || P1.shape(1) != 2 || P2.ndim() != 2 || P2.shape(1) != 2)
            throw std::invalid_argument("point arrays must have shape (N, 2)");
        if (P1.shape(0) != P2.shape(0))
            throw std::invalid_argument("point arrays must have the same length");
        const RefineParams params =
            make_params(width, height, iters, tolerance, whiten, peak_radius, apodize_both);
        resolve_threads(threads);  // validates
        const auto n = static_cast<py::ssize_t>(P1.shape(0));
        py::array_t<double> p1_out({n, py::ssize_t{2}}), p2_out({n, py::ssize_t{2}});
        py::array_t<double> shift({n, py::ssize_t{2}}), peakwidth({n, py::ssize_t{2}});
        py::array_t<double> snr(n);
        py::array_t<int> niters(n);
        const RefineManyOutput out{p1_out.mutable_data(), p2_out.mutable_data(), shift.mutable_data(),
                                   peakwidth.mutable_data(), snr.mutable_data(), niters.mutable_data()};
        const double* a = P1.data();
        const double* b = P2.data();
        {
            py::gil_scoped_release release;
            spectralign_fast::refine_many(view1_, view2_, a, b, static_cast<std::size_t>(n), params,
                                          threads, out, &pool_);
        }
        py::dict d;
        d["p1"] = p1_out;
        d["p2"] = p2_out;
        d["shift"] = shift;
        d["peakwidth"] = peakwidth;
        d["snr"] = snr;
        d["niters"] = niters;
        return d;
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

void bind_matcher(py::module_& m) {
    py::class_<MatcherCore>(m, "MatcherCore")
        .def(py::init<FloatImage, FloatImage>(), py::arg("image1"), py::arg("image2"))
        .def("refine", &MatcherCore::refine, py::arg("p1"), py::arg("p2"), py::arg("width"),
             py::arg("height"), py::arg("iters"), py::arg("tolerance"), py::arg("whiten"),
             py::arg("peak_radius"), py::arg("apodize_both"),
             "Returns ((x1, y1), (x2, y2), iterations) with one row (dx, dy, sx, sy, snr, "
             "contrast) per iteration.")
        .def("refine_many", &MatcherCore::refine_many, py::arg("P1"), py::arg("P2"), py::arg("width"),
             py::arg("height"), py::arg("iters"), py::arg("tolerance"), py::arg("whiten"),
             py::arg("peak_radius"), py::arg("apodize_both"), py::arg("threads"));
    m.def("_set_fused_min_pixels", &set_fused_min_pixels, py::arg("pixels"),
          "Benchmarks and tests: windows of at least `pixels` (width * height) take the matcher's fused "
          "path in matchers made from now on (default 192 * 192; 0: always, a huge value: never). "
          "Returns the previous value.");
    m.def("_set_team_min_pixels", &set_team_min_pixels, py::arg("pixels"),
          "Benchmarks and tests: refine_many with threads >= 2 matches windows of at least `pixels` "
          "(width * height, fused path only) with teams of two threads per pair (default 640 * 640; "
          "0: always, a huge value: never). Returns the previous value.");
    m.def("_set_team_wait_limit", &set_team_wait_limit, py::arg("fraction"),
          "Tests: a team splits up (its threads then take pairs one each) when its leader waited "
          "for the helper more than this share of a pair's time, two pairs in a row (default 0.2; "
          "negative: after two pairs). Returns the previous value.");
}

}  // namespace spectralign_fast::bindings

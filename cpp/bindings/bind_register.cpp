// _core.register: intensity metrics with analytic gradients and Gaussian
// smoothing for affine registration (spectralign_fast.register is the public
// face; it validates everything in plain words first).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "pybind.hpp"
#include "spectralign_fast/register/coarse_score.hpp"
#include "spectralign_fast/register/metric.hpp"

namespace spectralign_fast::bindings {

namespace {

using MaskArray = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
using BinArray = py::array_t<std::int16_t, py::array::c_style | py::array::forcecast>;

reg::Volume volume_of(const FloatImage& a, const char* what) {
    check_aligned(a, what);
    if (a.ndim() != 2 && a.ndim() != 3)
        throw std::invalid_argument(std::string(what) + " must be 2-D or 3-D, got " +
                                    std::to_string(a.ndim()) + " dimensions");
    reg::Volume v;
    v.data = a.data();
    v.ndim = static_cast<int>(a.ndim());
    for (int k = 0; k < v.ndim; ++k) v.shape[k] = a.shape(k);
    return v;
}

void check_same_shape(const py::array& mask, const py::array& image, const char* what) {
    bool same = mask.ndim() == image.ndim();
    for (py::ssize_t k = 0; same && k < mask.ndim(); ++k) same = mask.shape(k) == image.shape(k);
    if (!same) throw std::invalid_argument(std::string(what) + " must have its image's shape");
}

// Owns (references) every array the setup points into, so the pointers stay
// valid for the object's lifetime; evaluate() only reads them.
class MetricCore {
public:
    MetricCore(const std::string& kind, FloatImage fixed, FloatImage moving, std::optional<MaskArray> fixed_mask,
               std::optional<MaskArray> moving_mask, std::optional<IndexArray> samples, int nbins,
               std::pair<double, double> fixed_range, std::pair<double, double> moving_range, bool jitter,
               std::uint64_t jitter_seed)
        : fixed_(std::move(fixed)), moving_(std::move(moving)) {
        reg::MetricSetup setup;
        if (kind == "mi")
            setup.kind = reg::MetricKind::MutualInformation;
        else if (kind == "cc")
            setup.kind = reg::MetricKind::Correlation;
        else
            throw std::invalid_argument("kind must be 'mi' or 'cc', got '" + kind + "'");
        setup.fixed = volume_of(fixed_, "fixed");
        setup.moving = volume_of(moving_, "moving");
        if (fixed_mask) {
            fixed_mask_ = *fixed_mask;
            check_same_shape(fixed_mask_, fixed_, "fixed_mask");
            setup.fixed_mask = fixed_mask_.data();
        }
        if (moving_mask) {
            moving_mask_ = *moving_mask;
            check_same_shape(moving_mask_, moving_, "moving_mask");
            setup.moving_mask = moving_mask_.data();
        }
        if (samples) {
            samples_ = *samples;
            check_aligned(samples_, "samples");
            if (samples_.ndim() != 1) throw std::invalid_argument("samples must be 1-D");
            setup.samples = samples_.data();
            setup.sample_count = samples_.shape(0);
        }
        setup.nbins = nbins;
        setup.fixed_min = fixed_range.first;
        setup.fixed_max = fixed_range.second;
        setup.moving_min = moving_range.first;
        setup.moving_max = moving_range.second;
        setup.jitter = jitter;
        setup.jitter_seed = jitter_seed;
        {
            // Validates shapes, samples and ranges once, here, where the caller sees it.
            py::gil_scoped_release release;
            engine_ = std::make_unique<reg::MetricEngine>(setup, 0);
        }
    }

    int ndim() const { return engine_->ndim(); }

    py::tuple evaluate(const DoubleArray& matrix, bool gradient, int threads) {
        const double* m = checked_matrix(matrix);
        reg::MetricValue v;
        {
            py::gil_scoped_release release;
            v = engine_->evaluate(m, gradient, threads);
        }
        const int d = ndim();
        py::object grad = py::none();
        if (gradient) {
            py::array_t<double> g({d, d + 1});
            std::copy(v.gradient.begin(), v.gradient.end(), g.mutable_data());
            grad = std::move(g);
        }
        return py::make_tuple(v.value, grad, v.overlap);
    }

    py::array_t<double> joint_histogram(const DoubleArray& matrix, int threads) {
        const double* m = checked_matrix(matrix);
        std::vector<double> h;
        {
            py::gil_scoped_release release;
            h = engine_->joint_histogram(m, threads);
        }
        const int nb = engine_->nbins();
        py::array_t<double> out({nb, nb});
        std::copy(h.begin(), h.end(), out.mutable_data());
        return out;
    }

private:
    const double* checked_matrix(const DoubleArray& matrix) const {
        const int d = ndim();
        if (matrix.ndim() != 2 || matrix.shape(0) != d + 1 || matrix.shape(1) != d + 1)
            throw std::invalid_argument("matrix must be (d + 1) x (d + 1) for a " + std::to_string(d) +
                                        "-D image");
        check_aligned(matrix, "matrix");
        return matrix.data();
    }

    FloatImage fixed_, moving_;
    MaskArray fixed_mask_, moving_mask_;
    IndexArray samples_;
    std::unique_ptr<reg::MetricEngine> engine_;
};

py::array_t<float> gaussian_smooth(const FloatImage& image, const DoubleArray& sigma, int threads) {
    check_aligned(image, "image");
    if (image.ndim() < 1 || image.ndim() > 3) throw std::invalid_argument("image must be 1-D, 2-D or 3-D");
    if (sigma.ndim() != 1 || sigma.shape(0) != image.ndim())
        throw std::invalid_argument("sigma must hold one value per image axis");
    reg::Volume v;
    v.data = image.data();
    v.ndim = static_cast<int>(image.ndim());
    for (int k = 0; k < v.ndim; ++k) v.shape[k] = image.shape(k);
    const double s[3] = {sigma.at(0), v.ndim > 1 ? sigma.at(1) : 0.0, v.ndim > 2 ? sigma.at(2) : 0.0};
    std::vector<float> out;
    {
        py::gil_scoped_release release;
        out = reg::gaussian_smooth(v, s, threads);
    }
    std::vector<py::ssize_t> shape(image.shape(), image.shape() + image.ndim());
    py::array_t<float> result(shape);
    std::copy(out.begin(), out.end(), result.mutable_data());
    return result;
}

py::tuple coarse_nmi(const BinArray& static_bins, const FloatImage& moving, const std::optional<FloatImage>& moving_mask,
                     const DoubleArray& matrix, int nbins) {
    check_aligned(static_bins, "static_bins");
    check_aligned(moving, "moving");
    check_aligned(matrix, "matrix");
    const py::ssize_t d = static_bins.ndim();
    if ((d != 2 && d != 3) || moving.ndim() != d)
        throw std::invalid_argument("static_bins and moving must both be 2-D or both 3-D");
    if (matrix.ndim() != 2 || matrix.shape(0) != d + 1 || matrix.shape(1) != d + 1)
        throw std::invalid_argument("matrix must be (d + 1) x (d + 1)");
    reg::CoarseImages im;
    im.ndim = static_cast<int>(d);
    im.static_bins = static_bins.data();
    im.moving = moving.data();
    for (py::ssize_t a = 0; a < d; ++a) {
        im.static_shape[a] = static_bins.shape(a);
        im.moving_shape[a] = moving.shape(a);
    }
    if (moving_mask) {
        check_aligned(*moving_mask, "moving_mask");
        check_same_shape(*moving_mask, moving, "moving_mask");
        im.moving_mask = moving_mask->data();
    }
    reg::CoarseScore score;
    {
        py::gil_scoped_release release;
        score = reg::coarse_nmi(im, matrix.data(), nbins);
    }
    return py::make_tuple(score.nmi, score.overlap);
}

}  // namespace

void bind_register(py::module_ m) {
    py::class_<MetricCore>(m, "MetricCore",
                           "A metric between a fixed and a moving image (float32, array order) at "
                           "affine maps from fixed to moving indices; holds references to its arrays.")
        .def(py::init<const std::string&, FloatImage, FloatImage, std::optional<MaskArray>,
                      std::optional<MaskArray>, std::optional<IndexArray>, int, std::pair<double, double>,
                      std::pair<double, double>, bool, std::uint64_t>(),
             py::arg("kind"), py::arg("fixed"), py::arg("moving"), py::kw_only(), py::arg("fixed_mask") = py::none(),
             py::arg("moving_mask") = py::none(), py::arg("samples") = py::none(), py::arg("nbins") = 32,
             py::arg("fixed_range") = std::make_pair(0.0, 1.0), py::arg("moving_range") = std::make_pair(0.0, 1.0),
             py::arg("jitter") = false, py::arg("jitter_seed") = 0)
        .def_property_readonly("ndim", &MetricCore::ndim)
        .def("evaluate", &MetricCore::evaluate, py::arg("matrix"), py::kw_only(), py::arg("gradient") = true,
             py::arg("threads") = 0,
             "(value, gradient (d, d + 1) or None, overlap voxel count) at the fixed-to-moving index map.")
        .def("joint_histogram", &MetricCore::joint_histogram, py::arg("matrix"), py::kw_only(),
             py::arg("threads") = 0, "The MI joint histogram (probabilities, fixed bins along rows).");
    m.def("coarse_nmi", &coarse_nmi, py::arg("static_bins"), py::arg("moving"), py::arg("moving_mask"),
          py::arg("matrix"), py::arg("nbins"),
          "(NMI, overlap) of static bins (-1 = no sample) and the moving image pulled through an "
          "index map (linear; -1 in moving = outside its field of view): the initialiser's score.");
    m.def("gaussian_smooth", &gaussian_smooth, py::arg("image"), py::arg("sigma"), py::kw_only(),
          py::arg("threads") = 0,
          "scipy.ndimage.gaussian_filter(image, sigma, mode='reflect', truncate=4) in float32.");
    bind_register_fields(m);
    bind_register_lddmm(m);
}

}  // namespace spectralign_fast::bindings

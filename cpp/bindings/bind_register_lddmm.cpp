// _core.register (continued): STalign's LDDMM. Arrays cross as float64, C
// order (one forcecast copy at most; the problem keeps its own copy of the
// images, so the caller's arrays are never written). Every call releases the
// GIL around the core.
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pybind.hpp"
#include "spectralign_fast/register/lddmm.hpp"

namespace spectralign_fast::bindings {

namespace {

using reg::LddmmEnergy;
using reg::LddmmProblem;
using reg::LddmmSettings;
using reg::Padding;
using reg::PhysGrid;

PhysGrid grid_of(const std::vector<std::int64_t>& shape, const DoubleArray& origin, const DoubleArray& spacing,
                 const char* what) {
    const auto d = static_cast<py::ssize_t>(shape.size());
    if (d != 2 && d != 3) throw std::invalid_argument(std::string(what) + " must be 2-D or 3-D");
    if (origin.size() != d || spacing.size() != d)
        throw std::invalid_argument(std::string(what) + ": origin and spacing need one entry per axis");
    PhysGrid g;
    g.ndim = static_cast<int>(d);
    for (int a = 0; a < g.ndim; ++a) {
        if (shape[std::size_t(a)] < 1) throw std::invalid_argument(std::string(what) + " has an empty axis");
        g.shape[a] = shape[std::size_t(a)];
        g.origin[a] = origin.data()[a];
        g.spacing[a] = spacing.data()[a];
    }
    return g;
}

// (channels, grid...) -> the grid's shape.
std::vector<std::int64_t> image_grid(const DoubleArray& img, const char* what) {
    check_aligned(img, what);
    if (img.ndim() != 3 && img.ndim() != 4)
        throw std::invalid_argument(std::string(what) + " must be (channels, rows, cols) or (channels, slices, rows, cols)");
    std::vector<std::int64_t> s;
    for (py::ssize_t a = 1; a < img.ndim(); ++a) s.push_back(img.shape(a));
    return s;
}

const double* points_of(const DoubleArray& p, int d, const char* what) {
    check_aligned(p, what);
    if (p.ndim() != 2 || p.shape(1) != d)
        throw std::invalid_argument(std::string(what) + " must have shape (n, " + std::to_string(d) + ")");
    return p.data();
}

py::array_t<double> sample(const DoubleArray& image, const DoubleArray& origin, const DoubleArray& spacing,
                           const DoubleArray& points, const std::string& padding, int threads) {
    const PhysGrid g = grid_of(image_grid(image, "image"), origin, spacing, "image");
    const double* p = points_of(points, g.ndim, "points");
    Padding pad;
    if (padding == "border")
        pad = Padding::border;
    else if (padding == "zeros")
        pad = Padding::zeros;
    else
        throw std::invalid_argument("padding must be 'border' or 'zeros'");
    const auto channels = static_cast<int>(image.shape(0));
    const std::int64_t n = points.shape(0);
    py::array_t<double> out({py::ssize_t(channels), py::ssize_t(n)});
    py::gil_scoped_release release;
    reg::lddmm_sample(image.data(), channels, g, p, n, pad, out.mutable_data(), threads);
    return out;
}

py::array_t<double> flow(const DoubleArray& v, const DoubleArray& origin, const DoubleArray& spacing,
                         const DoubleArray& points, std::optional<DoubleArray> matrix, bool forward, int threads) {
    check_aligned(v, "v");
    if (v.ndim() != 4 && v.ndim() != 5)
        throw std::invalid_argument("v must be (nt, rows, cols, 2) or (nt, slices, rows, cols, 3)");
    std::vector<std::int64_t> shape;
    for (py::ssize_t a = 1; a + 1 < v.ndim(); ++a) shape.push_back(v.shape(a));
    const PhysGrid g = grid_of(shape, origin, spacing, "the velocity grid");
    if (v.shape(v.ndim() - 1) != g.ndim)
        throw std::invalid_argument("v needs " + std::to_string(g.ndim) + " components on its last axis");
    const double* p = points_of(points, g.ndim, "points");
    const double* M = nullptr;
    if (matrix) {
        if (matrix->ndim() != 2 || matrix->shape(0) != g.ndim + 1 || matrix->shape(1) != g.ndim + 1)
            throw std::invalid_argument("the matrix must be (d+1) x (d+1)");
        M = matrix->data();
    }
    const std::int64_t n = points.shape(0);
    py::array_t<double> out({py::ssize_t(n), py::ssize_t(g.ndim)});
    std::copy(p, p + n * g.ndim, out.mutable_data());
    const auto nt = static_cast<int>(v.shape(0));
    py::gil_scoped_release release;
    reg::lddmm_flow_points(v.data(), nt, g, M, out.mutable_data(), n, forward, threads);
    return out;
}

py::array_t<double> rasterize(const DoubleArray& x, const DoubleArray& y, const DoubleArray& g, const DoubleArray& X,
                              const DoubleArray& Y, double dx, const DoubleArray& blur, bool wavelet_magnitude,
                              int threads) {
    const py::ssize_t n = x.size();
    if (y.size() != n || g.size() != n) throw std::invalid_argument("x, y and g must have the same length");
    py::array_t<double> out({blur.size(), Y.size(), X.size()});
    py::gil_scoped_release release;
    reg::rasterize_points(x.data(), y.data(), g.data(), n, X.data(), X.size(), Y.data(), Y.size(), dx, blur.data(),
                          static_cast<int>(blur.size()), wavelet_magnitude, out.mutable_data(), threads);
    return out;
}

// A copy of n values of the core's state as an array of `shape`.
py::array_t<double> copy_out(const double* p, const std::vector<py::ssize_t>& shape) {
    py::array_t<double> out(shape);
    std::copy(p, p + out.size(), out.mutable_data());
    return out;
}

void copy_in(double* p, const DoubleArray& a, py::ssize_t n, const char* what) {
    if (a.size() != n) throw std::invalid_argument(std::string(what) + " must have " + std::to_string(n) + " values");
    for (py::ssize_t k = 0; k < n; ++k)
        if (!std::isfinite(a.data()[k])) throw std::invalid_argument(std::string(what) + " must be finite");
    std::copy(a.data(), a.data() + n, p);
}

struct Problem {
    std::unique_ptr<LddmmProblem> core;
    std::vector<py::ssize_t> target_shape, v_shape;
    int d = 2;
    int cI = 1, cJ = 1;
};

Problem make_problem(const DoubleArray& I, const DoubleArray& I_origin, const DoubleArray& I_spacing,
                     const DoubleArray& J, const DoubleArray& J_origin, const DoubleArray& J_spacing,
                     const std::vector<std::int64_t>& v_shape, const DoubleArray& v_origin,
                     const DoubleArray& v_spacing, int nt, double a, double p, double sigmaM, double sigmaB,
                     double sigmaA, double sigmaR, double sigmaP, double ridge, std::optional<DoubleArray> points_I,
                     std::optional<DoubleArray> points_J, int threads) {
    const PhysGrid gI = grid_of(image_grid(I, "I"), I_origin, I_spacing, "the source grid");
    const PhysGrid gJ = grid_of(image_grid(J, "J"), J_origin, J_spacing, "the target grid");
    const PhysGrid gV = grid_of(v_shape, v_origin, v_spacing, "the velocity grid");
    LddmmSettings s;
    s.nt = nt;
    s.a = a;
    s.p = p;
    s.sigmaM = sigmaM;
    s.sigmaB = sigmaB;
    s.sigmaA = sigmaA;
    s.sigmaR = sigmaR;
    s.sigmaP = sigmaP;
    s.ridge = ridge;
    const double *pi = nullptr, *pj = nullptr;
    std::int64_t np = 0;
    if (points_I.has_value() != points_J.has_value())
        throw std::invalid_argument("give both points_I and points_J, or neither");
    if (points_I) {
        pi = points_of(*points_I, gI.ndim, "points_I");
        pj = points_of(*points_J, gI.ndim, "points_J");
        if (points_I->shape(0) != points_J->shape(0))
            throw std::invalid_argument("points_I and points_J must have the same number of points");
        np = points_I->shape(0);
    }
    Problem out;
    out.d = gI.ndim;
    out.cI = static_cast<int>(I.shape(0));
    out.cJ = static_cast<int>(J.shape(0));
    for (py::ssize_t k = 1; k < J.ndim(); ++k) out.target_shape.push_back(J.shape(k));
    out.v_shape.push_back(nt);
    for (auto n : v_shape) out.v_shape.push_back(py::ssize_t(n));
    out.v_shape.push_back(gI.ndim);
    {
        py::gil_scoped_release release;
        out.core = std::make_unique<LddmmProblem>(I.data(), out.cI, gI, J.data(), out.cJ, gJ, gV, s, pi, pj, np,
                                                  threads);
    }
    return out;
}

py::ssize_t count(const std::vector<py::ssize_t>& s) {
    py::ssize_t n = 1;
    for (auto k : s) n *= k;
    return n;
}

std::vector<py::ssize_t> with_channels(py::ssize_t c, const std::vector<py::ssize_t>& s) {
    std::vector<py::ssize_t> out{c};
    out.insert(out.end(), s.begin(), s.end());
    return out;
}

}  // namespace

void bind_register_lddmm(py::module_ m) {
    py::class_<LddmmEnergy>(m, "LddmmEnergy", "STalign's energy terms: total = matching + regularization + points.")
        .def_readonly("total", &LddmmEnergy::total)
        .def_readonly("matching", &LddmmEnergy::matching)
        .def_readonly("regularization", &LddmmEnergy::regularization)
        .def_readonly("points", &LddmmEnergy::points)
        .def("__repr__", [](const LddmmEnergy& e) {
            return "LddmmEnergy(total=" + std::to_string(e.total) + ", matching=" + std::to_string(e.matching) +
                   ", regularization=" + std::to_string(e.regularization) + ", points=" + std::to_string(e.points) +
                   ")";
        });
    py::class_<Problem>(m, "LddmmProblem",
                        "One LDDMM problem (STalign's energy): images channels first, grids as origin + spacing in "
                        "array axis order, velocity (nt, grid..., d). Holds its own copies of the inputs.")
        .def(py::init(&make_problem), py::arg("I"), py::arg("I_origin"), py::arg("I_spacing"), py::arg("J"),
             py::arg("J_origin"), py::arg("J_spacing"), py::arg("v_shape"), py::arg("v_origin"),
             py::arg("v_spacing"), py::kw_only(), py::arg("nt"), py::arg("a"), py::arg("p"), py::arg("sigmaM"),
             py::arg("sigmaB"), py::arg("sigmaA"), py::arg("sigmaR"), py::arg("sigmaP"), py::arg("ridge") = 0.1,
             py::arg("points_I") = py::none(), py::arg("points_J") = py::none(), py::arg("threads") = 0)
        .def_property(
            "velocity", [](Problem& p) { return copy_out(p.core->velocity(), p.v_shape); },
            [](Problem& p, const DoubleArray& a) { copy_in(p.core->velocity(), a, count(p.v_shape), "velocity"); })
        .def_property(
            "affine",
            [](Problem& p) {
                return copy_out(p.core->affine(), {py::ssize_t(p.d + 1), py::ssize_t(p.d + 1)});
            },
            [](Problem& p, const DoubleArray& a) {
                copy_in(p.core->affine(), a, py::ssize_t((p.d + 1) * (p.d + 1)), "affine");
            })
        .def_property(
            "WM", [](Problem& p) { return copy_out(p.core->weight_matching(), p.target_shape); },
            [](Problem& p, const DoubleArray& a) { copy_in(p.core->weight_matching(), a, count(p.target_shape), "WM"); })
        .def_property(
            "WA", [](Problem& p) { return copy_out(p.core->weight_artifact(), p.target_shape); },
            [](Problem& p, const DoubleArray& a) { copy_in(p.core->weight_artifact(), a, count(p.target_shape), "WA"); })
        .def_property(
            "WB", [](Problem& p) { return copy_out(p.core->weight_background(), p.target_shape); },
            [](Problem& p, const DoubleArray& a) {
                copy_in(p.core->weight_background(), a, count(p.target_shape), "WB");
            })
        .def_property(
            "muA", [](Problem& p) { return copy_out(p.core->mean_artifact(), {py::ssize_t(p.cJ)}); },
            [](Problem& p, const DoubleArray& a) { copy_in(p.core->mean_artifact(), a, p.cJ, "muA"); })
        .def_property(
            "muB", [](Problem& p) { return copy_out(p.core->mean_background(), {py::ssize_t(p.cJ)}); },
            [](Problem& p, const DoubleArray& a) { copy_in(p.core->mean_background(), a, p.cJ, "muB"); })
        .def(
            "fix_contrast",
            [](Problem& p, std::optional<DoubleArray> c) {
                if (!c) return p.core->fix_contrast(nullptr);
                if (c->size() != py::ssize_t((p.cI + 1) * p.cJ))
                    throw std::invalid_argument("the coefficients must be (channels_I + 1, channels_J)");
                p.core->fix_contrast(c->data());
            },
            py::arg("coefficients"), "Hold the contrast coefficients fixed (None: fit them every evaluation).")
        .def(
            "evaluate",
            [](Problem& p) {
                py::gil_scoped_release release;
                return p.core->evaluate();
            },
            "The energy at the current state (the contrast is fitted first).")
        .def(
            "step",
            [](Problem& p, double epL, double epT, double epV) {
                py::gil_scoped_release release;
                return p.core->step(epL, epT, epV);
            },
            py::arg("epL"), py::arg("epT"), py::arg("epV"),
            "One gradient step (STalign's update); returns the energy before it.")
        .def(
            "gradient",
            [](Problem& p) {
                py::array_t<double> gv(p.v_shape);
                py::array_t<double> gA({py::ssize_t(p.d + 1), py::ssize_t(p.d + 1)});
                LddmmEnergy e;
                {
                    py::gil_scoped_release release;
                    e = p.core->gradient(gv.mutable_data(), gA.mutable_data());
                }
                return py::make_tuple(e, gv, gA);
            },
            "The energy and its raw gradients (dE/dv, dE/dA) at the current state, unsmoothed.")
        .def(
            "update_weights",
            [](Problem& p, bool estimate_muA, bool estimate_muB, bool e_step) {
                py::gil_scoped_release release;
                p.core->update_weights(estimate_muA, estimate_muB, e_step);
            },
            py::arg("estimate_muA"), py::arg("estimate_muB"), py::arg("e_step"))
        .def_property_readonly("deformed_source",
                               [](Problem& p) {
                                   return copy_out(p.core->deformed_source().data(),
                                                   with_channels(p.cI, p.target_shape));
                               })
        .def_property_readonly("contrast_source",
                               [](Problem& p) {
                                   return copy_out(p.core->contrast_source().data(),
                                                   with_channels(p.cJ, p.target_shape));
                               })
        .def_property_readonly("contrast_coefficients", [](Problem& p) {
            return copy_out(p.core->contrast_coefficients().data(), {py::ssize_t(p.cI + 1), py::ssize_t(p.cJ)});
        });
    m.def("lddmm_sample", &sample, py::arg("image"), py::arg("origin"), py::arg("spacing"), py::arg("points"),
          py::kw_only(), py::arg("padding") = "border", py::arg("threads") = 0,
          "image (channels, grid...) sampled d-linearly at points (n, d) in physical coordinates: (channels, n).");
    m.def("lddmm_flow_points", &flow, py::arg("v"), py::arg("origin"), py::arg("spacing"), py::arg("points"),
          py::kw_only(), py::arg("matrix") = py::none(), py::arg("forward") = true, py::arg("threads") = 0,
          "Points (n, d) flowed through v (nt, grid..., d) by Euler steps; forward: flow then matrix, "
          "backward: matrix then the steps in reverse with -v. Returns a new array.");
    m.def("rasterize_points", &rasterize, py::arg("x"), py::arg("y"), py::arg("g"), py::arg("X"), py::arg("Y"),
          py::arg("dx"), py::arg("blur"), py::kw_only(), py::arg("wavelet_magnitude") = false, py::arg("threads") = 0,
          "STalign's rasterize: (len(blur), len(Y), len(X)).");
}

}  // namespace spectralign_fast::bindings

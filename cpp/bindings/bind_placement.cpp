#include <cstdint>
#include <string>

#include "pybind.hpp"
#include "spectralign_fast/place/placement.hpp"

namespace spectralign_fast::bindings {

namespace {

using IndexArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

void check_1d(const IndexArray& a, const char* what, py::ssize_t n) {
    if (a.ndim() != 1 || a.shape(0) != n)
        throw std::invalid_argument(std::string(what) + " must be a 1-D array of length " + std::to_string(n));
}

void check_points(const DoubleArray& a, const char* what, py::ssize_t n) {
    if (a.ndim() != 2 || a.shape(0) != n || a.shape(1) != 2)
        throw std::invalid_argument(std::string(what) + " must have shape (" + std::to_string(n) + ", 2)");
}

// The match arrays agree in length; returns it.
py::ssize_t check_match_arrays(const IndexArray& t1, const IndexArray& t2, const DoubleArray& p1,
                               const DoubleArray& p2, const DoubleArray& w) {
    const py::ssize_t n = t1.ndim() == 1 ? t1.shape(0) : -1;
    check_1d(t1, "t1", n);
    check_1d(t2, "t2", n);
    check_points(p1, "p1", n);
    check_points(p2, "p2", n);
    if (w.ndim() != 1 || w.shape(0) != n)
        throw std::invalid_argument("weights must be a 1-D array of length " + std::to_string(n));
    return n;
}

PlacementSolver parse_solver(const std::string& s) {
    if (s == "auto") return PlacementSolver::Auto;
    if (s == "cholesky") return PlacementSolver::Cholesky;
    if (s == "ldlt") return PlacementSolver::SimplicialLDLT;
    if (s == "cg") return PlacementSolver::CG;
    throw std::invalid_argument("solver must be 'auto', 'cholesky', 'ldlt' or 'cg', got '" + s + "'");
}

PlacementPreconditioner parse_preconditioner(const std::string& s) {
    if (s == "ic") return PlacementPreconditioner::IncompleteCholesky;
    if (s == "jacobi") return PlacementPreconditioner::Jacobi;
    throw std::invalid_argument("preconditioner must be 'ic' or 'jacobi', got '" + s + "'");
}

}  // namespace

void bind_placement(py::module_& m) {
    m.def(
        "placement_components",
        [](std::int64_t n_tiles, const IndexArray& t1, const IndexArray& t2) {
            const py::ssize_t n = t1.ndim() == 1 ? t1.shape(0) : -1;
            check_1d(t1, "t1", n);
            check_1d(t2, "t2", n);
            std::int64_t nc = 0;
            std::vector<std::int64_t> lab;
            {
                py::gil_scoped_release release;
                lab = placement_components(n_tiles, n, t1.data(), t2.data(), &nc);
            }
            py::array_t<std::int64_t> out(static_cast<py::ssize_t>(lab.size()));
            std::copy(lab.begin(), lab.end(), out.mutable_data());
            return py::make_tuple(out, nc);
        },
        py::arg("n_tiles"), py::arg("t1"), py::arg("t2"),
        "Connected components of the match graph: (label per tile, number of components).");

    m.def(
        "place",
        [](std::int64_t n_tiles, const IndexArray& t1, const IndexArray& t2, const DoubleArray& p1,
           const DoubleArray& p2, const DoubleArray& w, bool affine, std::int64_t fix, bool separate,
           const std::string& solver, const std::string& preconditioner, double tol, int maxiter,
           std::int64_t auto_limit) {
            const py::ssize_t n = check_match_arrays(t1, t2, p1, p2, w);
            if (!(tol > 0 && tol < 1)) throw std::invalid_argument("tol must be in (0, 1)");
            if (maxiter < 0) throw std::invalid_argument("maxiter must be >= 0");
            PlacementOptions opt;
            opt.affine = affine;
            opt.fix = fix;
            opt.separate_components = separate;
            opt.solver = parse_solver(solver);
            opt.preconditioner = parse_preconditioner(preconditioner);
            opt.cg_tolerance = tol;
            opt.cg_max_iterations = maxiter;
            opt.auto_cholesky_limit = auto_limit;
            PlacementResult r;
            {
                py::gil_scoped_release release;
                r = place(n_tiles, n, t1.data(), t2.data(), p1.data(), p2.data(), w.data(), opt);
            }
            std::vector<py::ssize_t> shape = affine ? std::vector<py::ssize_t>{n_tiles, 2, 3}
                                                    : std::vector<py::ssize_t>{n_tiles, 2};
            py::array_t<double> params(shape);
            std::copy(r.params.begin(), r.params.end(), params.mutable_data());
            py::array_t<std::int64_t> comp(static_cast<py::ssize_t>(r.component.size()));
            std::copy(r.component.begin(), r.component.end(), comp.mutable_data());
            py::dict d;
            d["params"] = params;
            d["component"] = comp;
            d["n_components"] = r.n_components;
            d["unknowns"] = r.unknowns;
            d["nonzeros"] = r.nonzeros;
            d["solver"] = r.solver;
            d["cg_iterations"] = r.cg_iterations;
            d["cg_error"] = r.cg_error;
            d["pivot_ratio"] = r.pivot_ratio;
            d["timings"] = py::dict(py::arg("assemble") = r.assemble_s, py::arg("analyze") = r.analyze_s,
                                    py::arg("factor") = r.factor_s, py::arg("solve") = r.solve_s);
            return d;
        },
        py::arg("n_tiles"), py::arg("t1"), py::arg("t2"), py::arg("p1"), py::arg("p2"), py::arg("w"),
        py::arg("affine"), py::arg("fix") = -1, py::arg("separate") = false, py::arg("solver") = "auto",
        py::arg("preconditioner") = "jacobi", py::arg("tol") = 1e-12, py::arg("maxiter") = 0,
        py::arg("auto_limit") = 0,
        "Sparse least-squares placement (see spectralign_fast.Placement). Releases the GIL while solving.");

    m.def(
        "place_similarity",
        [](std::int64_t n_tiles, const IndexArray& t1, const IndexArray& t2, const DoubleArray& p1,
           const DoubleArray& p2, const DoubleArray& w, std::int64_t fix) {
            const py::ssize_t n = check_match_arrays(t1, t2, p1, p2, w);
            SimilarityResult r;
            {
                py::gil_scoped_release release;
                r = place_similarity(n_tiles, n, t1.data(), t2.data(), p1.data(), p2.data(), w.data(), fix);
            }
            py::array_t<double> params(std::vector<py::ssize_t>{n_tiles, 2, 3});
            std::copy(r.params.begin(), r.params.end(), params.mutable_data());
            py::dict d;
            d["params"] = params;
            d["unknowns"] = r.unknowns;
            d["nonzeros"] = r.nonzeros;
            d["pivot_ratio"] = r.pivot_ratio;
            d["timings"] = py::dict(py::arg("assemble") = r.assemble_s, py::arg("analyze") = 0.0,
                                    py::arg("factor") = r.factor_s, py::arg("solve") = r.solve_s);
            return d;
        },
        py::arg("n_tiles"), py::arg("t1"), py::arg("t2"), py::arg("p1"), py::arg("p2"), py::arg("w"),
        py::arg("fix"),
        "Similarity placement (rotation, uniform scale, translation per tile; tile `fix` the identity) "
        "as one sparse least-squares solve. Releases the GIL while solving.");
}

}  // namespace spectralign_fast::bindings

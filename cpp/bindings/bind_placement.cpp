#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pybind.hpp"
#include "spectralign_fast/place/placement.hpp"

namespace spectralign_fast::bindings {

namespace {

// Wall-clock seconds of one placement call's stages (analyze is 0 where the
// solver has no separate ordering step).
struct SolveTimings {
    double assemble = 0, analyze = 0, factor = 0, solve = 0, refine = 0;
};

// What the iterative refinement after a direct solve did.
struct Refinement {
    int steps = 0;
    double residual_initial = 0, residual_final = 0;
};

// What solve returns (see PlacementResult in placement.hpp).
struct PlacementSolution {
    py::array_t<double> params;             // (tiles, 2) or, affine, (tiles, 2, 3)
    py::array_t<std::int64_t> component;    // (tiles,) component label per tile
    std::int64_t n_components = 0;
    std::int64_t unknowns = 0;
    std::int64_t nonzeros = 0;
    std::string solver;
    int cg_iterations = 0;
    double cg_error = 0;
    double pivot_ratio = 0;
    Refinement refinement;
    SolveTimings timings;
};

// What solve_similarity returns (see SimilarityResult in placement.hpp).
struct SimilaritySolution {
    py::array_t<double> params;  // (tiles, 2, 3)
    std::int64_t unknowns = 0;
    std::int64_t nonzeros = 0;
    std::string solver;
    double pivot_ratio = 0;
    Refinement refinement;
    SolveTimings timings;
};

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

void bind_placement(py::module_ m) {
    py::class_<SolveTimings>(m, "SolveTimings", "Wall-clock seconds of one placement call's stages.")
        .def_readonly("assemble", &SolveTimings::assemble, "Assembling the system (checks included).")
        .def_readonly("analyze", &SolveTimings::analyze, "Ordering (0 where the solver has none).")
        .def_readonly("factor", &SolveTimings::factor, "Factorisation (cg: the preconditioner).")
        .def_readonly("solve", &SolveTimings::solve, "The solves (the refinement's included).")
        .def_readonly("refine", &SolveTimings::refine,
                      "The iterative refinement (its residuals and solves; part of it is in solve too).")
        .def("__repr__", [](const SolveTimings& t) {
            return py::str("SolveTimings(assemble={!r}, analyze={!r}, factor={!r}, solve={!r}, refine={!r})")
                .format(t.assemble, t.analyze, t.factor, t.solve, t.refine);
        });
    py::class_<Refinement>(m, "Refinement",
                           "Iterative refinement after a direct solve: residuals of the normal equations "
                           "recomputed from the matches in extended precision, corrections solved with the "
                           "same factor while they lower the residual.")
        .def_readonly("steps", &Refinement::steps, "Corrections kept (each lowered the residual).")
        .def_readonly("residual_initial", &Refinement::residual_initial,
                      "2-norm of the normal equations' residual after the first solve (0: not refined).")
        .def_readonly("residual_final", &Refinement::residual_final, "The same after the refinement.")
        .def("__repr__", [](const Refinement& r) {
            return py::str("Refinement(steps={}, residual_initial={!r}, residual_final={!r})")
                .format(r.steps, r.residual_initial, r.residual_final);
        });
    py::class_<PlacementSolution>(m, "PlacementSolution", "What solve returns.")
        .def_readonly("params", &PlacementSolution::params,
                      "float64 (tiles, 2) translations or, affine, (tiles, 2, 3) [A | X] matrices.")
        .def_readonly("component", &PlacementSolution::component, "int64 (tiles,): component label per tile.")
        .def_readonly("n_components", &PlacementSolution::n_components)
        .def_readonly("unknowns", &PlacementSolution::unknowns, "Size of the sparse system solved.")
        .def_readonly("nonzeros", &PlacementSolution::nonzeros, "Stored (lower-triangle) nonzeros of it.")
        .def_readonly("solver", &PlacementSolution::solver, "'cholmod', 'ldlt' or 'cg'.")
        .def_readonly("cg_iterations", &PlacementSolution::cg_iterations,
                      "Largest over the right-hand sides (cg only).")
        .def_readonly("cg_error", &PlacementSolution::cg_error, "Largest relative residual (cg only).")
        .def_readonly("pivot_ratio", &PlacementSolution::pivot_ratio,
                      "Smallest / largest LDL^T pivot (Cholesky only).")
        .def_readonly("refinement", &PlacementSolution::refinement)
        .def_readonly("timings", &PlacementSolution::timings)
        .def("__repr__", [](const PlacementSolution& r) {
            return py::str("PlacementSolution(tiles={}, n_components={}, solver={!r}, unknowns={}, "
                           "nonzeros={}, cg_iterations={}, cg_error={!r}, pivot_ratio={!r}, timings={!r})")
                .format(r.params.shape(0), r.n_components, r.solver, r.unknowns, r.nonzeros,
                        r.cg_iterations, r.cg_error, r.pivot_ratio, r.timings);
        });
    py::class_<SimilaritySolution>(m, "SimilaritySolution", "What solve_similarity returns.")
        .def_readonly("params", &SimilaritySolution::params, "float64 (tiles, 2, 3) [A | X] matrices.")
        .def_readonly("unknowns", &SimilaritySolution::unknowns, "Complex unknowns of the sparse system solved.")
        .def_readonly("nonzeros", &SimilaritySolution::nonzeros, "Stored (lower-triangle) nonzeros of it.")
        .def_readonly("solver", &SimilaritySolution::solver, "'cholmod' or 'ldlt'.")
        .def_readonly("pivot_ratio", &SimilaritySolution::pivot_ratio, "Smallest / largest LDL^T pivot.")
        .def_readonly("refinement", &SimilaritySolution::refinement)
        .def_readonly("timings", &SimilaritySolution::timings)
        .def("__repr__", [](const SimilaritySolution& r) {
            return py::str("SimilaritySolution(tiles={}, unknowns={}, nonzeros={}, solver={!r}, pivot_ratio={!r}, "
                           "refinement={!r}, timings={!r})")
                .format(r.params.shape(0), r.unknowns, r.nonzeros, r.solver, r.pivot_ratio, r.refinement,
                        r.timings);
        });

    m.def(
        "connected_components",
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
        "solve",
        [](std::int64_t n_tiles, const IndexArray& t1, const IndexArray& t2, const DoubleArray& p1,
           const DoubleArray& p2, const DoubleArray& w, bool affine, std::int64_t fix, bool separate,
           const std::string& solver, const std::string& preconditioner, double tol, int maxiter,
           std::int64_t auto_limit, double regularize, const std::optional<DoubleArray>& prior, int refine,
           double prior_centre, double prior_linear) {
            const py::ssize_t n = check_match_arrays(t1, t2, p1, p2, w);
            if (!(tol > 0 && tol < 1)) throw std::invalid_argument("tol must be in (0, 1)");
            if (maxiter < 0) throw std::invalid_argument("maxiter must be >= 0");
            if (prior.has_value() &&
                (prior->ndim() != 3 || prior->shape(0) != n_tiles || prior->shape(1) != 2 || prior->shape(2) != 3))
                throw std::invalid_argument("prior must have shape (" + std::to_string(n_tiles) + ", 2, 3)");
            PlacementOptions opt;
            opt.affine = affine;
            opt.fix = fix;
            opt.separate_components = separate;
            opt.solver = parse_solver(solver);
            opt.preconditioner = parse_preconditioner(preconditioner);
            opt.cg_tolerance = tol;
            opt.cg_max_iterations = maxiter;
            opt.auto_cholesky_limit = auto_limit;
            opt.regularize = regularize;
            opt.prior = prior.has_value() ? prior->data() : nullptr;
            opt.prior_centre = prior_centre;
            opt.prior_linear = prior_linear;
            opt.refine_steps = refine;
            PlacementResult r;
            {
                py::gil_scoped_release release;
                r = place(n_tiles, n, t1.data(), t2.data(), p1.data(), p2.data(), w.data(), opt);
            }
            std::vector<py::ssize_t> shape = affine ? std::vector<py::ssize_t>{n_tiles, 2, 3}
                                                    : std::vector<py::ssize_t>{n_tiles, 2};
            PlacementSolution out;
            out.params = py::array_t<double>(shape);
            std::copy(r.params.begin(), r.params.end(), out.params.mutable_data());
            out.component = py::array_t<std::int64_t>(static_cast<py::ssize_t>(r.component.size()));
            std::copy(r.component.begin(), r.component.end(), out.component.mutable_data());
            out.n_components = r.n_components;
            out.unknowns = r.unknowns;
            out.nonzeros = r.nonzeros;
            out.solver = r.solver;
            out.cg_iterations = r.cg_iterations;
            out.cg_error = r.cg_error;
            out.pivot_ratio = r.pivot_ratio;
            out.refinement = Refinement{r.refine_steps, r.residual_initial, r.residual_final};
            out.timings = SolveTimings{r.assemble_s, r.analyze_s, r.factor_s, r.solve_s, r.refine_s};
            return out;
        },
        py::arg("n_tiles"), py::arg("t1"), py::arg("t2"), py::arg("p1"), py::arg("p2"), py::arg("w"),
        py::arg("affine"), py::arg("fix") = -1, py::arg("separate") = false, py::arg("solver") = "auto",
        py::arg("preconditioner") = "jacobi", py::arg("tol") = 1e-12, py::arg("maxiter") = 0,
        py::arg("auto_limit") = 0, py::arg("regularize") = 0.0, py::arg("prior") = py::none(),
        py::arg("refine") = 3, py::arg("prior_centre") = 1.0, py::arg("prior_linear") = 1.0,
        "Sparse least-squares placement (see spectralign_fast.Placement); returns a PlacementSolution. "
        "regularize > 0 (affine only) pulls each tile toward prior[t] ((tiles, 2, 3) [A | X]), its centre "
        "with prior_centre and its linear part with prior_linear times that weight; refine: most "
        "iterative-refinement steps after a direct solve. Releases the GIL while solving.");

    m.def(
        "solve_similarity",
        [](std::int64_t n_tiles, const IndexArray& t1, const IndexArray& t2, const DoubleArray& p1,
           const DoubleArray& p2, const DoubleArray& w, std::int64_t fix, const std::string& solver,
           int refine, std::int64_t reference) {
            const py::ssize_t n = check_match_arrays(t1, t2, p1, p2, w);
            const PlacementSolver which = parse_solver(solver);
            SimilarityResult r;
            {
                py::gil_scoped_release release;
                r = place_similarity(n_tiles, n, t1.data(), t2.data(), p1.data(), p2.data(), w.data(), fix, which,
                                     refine, reference);
            }
            SimilaritySolution out;
            out.params = py::array_t<double>(std::vector<py::ssize_t>{n_tiles, 2, 3});
            std::copy(r.params.begin(), r.params.end(), out.params.mutable_data());
            out.unknowns = r.unknowns;
            out.nonzeros = r.nonzeros;
            out.solver = r.solver;
            out.pivot_ratio = r.pivot_ratio;
            out.refinement = Refinement{r.refine_steps, r.residual_initial, r.residual_final};
            out.timings = SolveTimings{r.assemble_s, r.analyze_s, r.factor_s, r.solve_s, r.refine_s};
            return out;
        },
        py::arg("n_tiles"), py::arg("t1"), py::arg("t2"), py::arg("p1"), py::arg("p2"), py::arg("w"),
        py::arg("fix"), py::arg("solver") = "auto", py::arg("refine") = 3, py::arg("reference") = -1,
        "Similarity placement (rotation, uniform scale, translation per tile; tile `fix` the identity) "
        "as one sparse Hermitian least-squares solve (solver 'auto', 'cholesky' or 'ldlt'), refined as solve; "
        "reference (default fix): the tile held at the identity in the solve, the result then moved so that "
        "tile fix is; "
        "returns a SimilaritySolution. Releases the GIL while solving.");
}

}  // namespace spectralign_fast::bindings

// The elastic section mesh (place/mesh.hpp) in _core.place.
#include <cstdint>
#include <string>
#include <vector>

#include "pybind.hpp"
#include "spectralign_fast/place/mesh.hpp"

namespace spectralign_fast::bindings {

namespace {

using IndexArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

// What solve_mesh returns (see MeshResult in mesh.hpp).
struct MeshSolution {
    py::array_t<double> displacement;  // (sections, ny, nx, 2) (x, y)
    py::array_t<double> residual;      // (matches, 2)
    py::array_t<std::int64_t> inverted;  // (sections,)
    std::int64_t unknowns = 0, nonzeros = 0;
    std::string solver;
    int cg_iterations = 0;
    double cg_error = 0;
    double assemble_s = 0, factor_s = 0, solve_s = 0;
};

MeshGrid grid_of(std::int64_t ny, std::int64_t nx, double spacing, double origin_x, double origin_y) {
    MeshGrid g;
    g.ny = ny;
    g.nx = nx;
    g.spacing = spacing;
    g.origin_x = origin_x;
    g.origin_y = origin_y;
    return g;
}

void check_displacement(const DoubleArray& u, const MeshGrid& g) {
    check_aligned(u, "displacement");
    if (u.ndim() != 3 || u.shape(0) != g.ny || u.shape(1) != g.nx || u.shape(2) != 2)
        throw std::invalid_argument("displacement must have shape (" + std::to_string(g.ny) + ", " +
                                    std::to_string(g.nx) + ", 2)");
}

// fn(grid, displacement, n, points, out) at points (n, 2) (x, y) of one section's mesh.
template <class Fn>
py::array_t<double> at_points(const DoubleArray& u, double spacing, double origin_x, double origin_y,
                              const DoubleArray& points, Fn fn) {
    const MeshGrid g = grid_of(u.ndim() == 3 ? u.shape(0) : 0, u.ndim() == 3 ? u.shape(1) : 0, spacing, origin_x,
                               origin_y);
    check_displacement(u, g);
    if (points.ndim() != 2 || points.shape(1) != 2) throw std::invalid_argument("points must have shape (n, 2)");
    check_aligned(points, "points");
    const py::ssize_t n = points.shape(0);
    py::array_t<double> out({n, py::ssize_t{2}});
    double* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        fn(g, u.data(), n, points.data(), o);
    }
    return out;
}

template <class T>
py::array_t<T> to_array(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
    py::array_t<T> a(shape);
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
}

}  // namespace

void bind_mesh(py::module_ m) {
    py::class_<MeshSolution>(m, "MeshSolution", "What solve_mesh returns.")
        .def_readonly("displacement", &MeshSolution::displacement)
        .def_readonly("residual", &MeshSolution::residual)
        .def_readonly("inverted", &MeshSolution::inverted)
        .def_readonly("unknowns", &MeshSolution::unknowns)
        .def_readonly("nonzeros", &MeshSolution::nonzeros)
        .def_readonly("solver", &MeshSolution::solver)
        .def_readonly("cg_iterations", &MeshSolution::cg_iterations)
        .def_readonly("cg_error", &MeshSolution::cg_error)
        .def_readonly("assemble_s", &MeshSolution::assemble_s)
        .def_readonly("factor_s", &MeshSolution::factor_s)
        .def_readonly("solve_s", &MeshSolution::solve_s);

    m.def(
        "solve_mesh",
        [](std::int64_t n_sections, std::int64_t ny, std::int64_t nx, double spacing, double origin_x,
           double origin_y, const IndexArray& za, const IndexArray& zb, const DoubleArray& pa,
           const DoubleArray& pb, const DoubleArray& w, double stiffness, double pull, const std::string& solver,
           std::int64_t auto_limit, double tol, int maxiter) {
            const MeshGrid g = grid_of(ny, nx, spacing, origin_x, origin_y);
            const py::ssize_t n = za.ndim() == 1 ? za.shape(0) : -1;
            if (n < 0 || zb.ndim() != 1 || zb.shape(0) != n || w.ndim() != 1 || w.shape(0) != n)
                throw std::invalid_argument("za, zb and w must be 1-D arrays of one length");
            for (const DoubleArray* p : {&pa, &pb})
                if (p->ndim() != 2 || p->shape(0) != n || p->shape(1) != 2)
                    throw std::invalid_argument("pa and pb must have shape (" + std::to_string(n) + ", 2)");
            check_aligned(pa, "pa");
            check_aligned(pb, "pb");
            check_aligned(w, "w");
            MeshOptions opt;
            opt.stiffness = stiffness;
            opt.pull = pull;
            if (solver == "auto") opt.solver = MeshSolver::Auto;
            else if (solver == "cholesky") opt.solver = MeshSolver::Cholesky;
            else if (solver == "cg") opt.solver = MeshSolver::CG;
            else throw std::invalid_argument("solver must be 'auto', 'cholesky' or 'cg', got '" + solver + "'");
            if (!(tol > 0) || maxiter < 0 || auto_limit < 0)
                throw std::invalid_argument("tol must be positive, maxiter and auto_limit >= 0");
            opt.auto_cholesky_limit = auto_limit;
            opt.cg_tolerance = tol;
            opt.cg_max_iterations = maxiter;
            MeshResult r;
            {
                py::gil_scoped_release release;
                r = solve_mesh(n_sections, g, n, za.data(), zb.data(), pa.data(), pb.data(), w.data(), opt);
            }
            MeshSolution s;
            s.displacement = to_array(std::move(r.displacement), {n_sections, ny, nx, 2});
            s.residual = to_array(std::move(r.residual), {n, 2});
            s.inverted = to_array(std::move(r.inverted), {n_sections});
            s.unknowns = r.unknowns;
            s.nonzeros = r.nonzeros;
            s.solver = r.solver;
            s.cg_iterations = r.cg_iterations;
            s.cg_error = r.cg_error;
            s.assemble_s = r.assemble_s;
            s.factor_s = r.factor_s;
            s.solve_s = r.solve_s;
            return s;
        },
        py::arg("n_sections"), py::arg("ny"), py::arg("nx"), py::arg("spacing"), py::arg("origin_x"),
        py::arg("origin_y"), py::arg("za"), py::arg("zb"), py::arg("pa"), py::arg("pb"), py::arg("w"),
        py::arg("stiffness"), py::arg("pull"), py::arg("solver") = "auto", py::arg("auto_limit") = 0,
        py::arg("tol") = 1e-10, py::arg("maxiter") = 0,
        "Joint elastic mesh of all sections (see place/mesh.hpp); points (x, y) in canvas pixels.");

    m.def(
        "mesh_interpolate",
        [](const DoubleArray& u, double spacing, double origin_x, double origin_y, const DoubleArray& points) {
            return at_points(u, spacing, origin_x, origin_y, points, mesh_interpolate);
        },
        py::arg("displacement"), py::arg("spacing"), py::arg("origin_x"), py::arg("origin_y"), py::arg("points"),
        "Node displacements (ny, nx, 2) interpolated at points (n, 2) (x, y).");

    m.def(
        "mesh_inverse",
        [](const DoubleArray& u, double spacing, double origin_x, double origin_y, const DoubleArray& points) {
            return at_points(u, spacing, origin_x, origin_y, points, mesh_inverse);
        },
        py::arg("displacement"), py::arg("spacing"), py::arg("origin_x"), py::arg("origin_y"), py::arg("points"),
        "The p with p + v(p) = q for points q (n, 2) (x, y): the inverse of the push map.");

    m.def(
        "mesh_field",
        [](const DoubleArray& u, double spacing, double origin_x, double origin_y, std::int64_t row0,
           std::int64_t col0, std::int64_t h, std::int64_t w, const DoubleArray& matrix, int threads) {
            const MeshGrid g = grid_of(u.ndim() == 3 ? u.shape(0) : 0, u.ndim() == 3 ? u.shape(1) : 0, spacing,
                                       origin_x, origin_y);
            check_displacement(u, g);
            if (matrix.ndim() != 2 || matrix.shape(0) != 3 || matrix.shape(1) != 3)
                throw std::invalid_argument("matrix must have shape (3, 3)");
            if (h < 0 || w < 0 || h > INT32_MAX || w > INT32_MAX)
                throw std::invalid_argument("the field region size is out of range");
            py::array_t<float> out({static_cast<py::ssize_t>(h), static_cast<py::ssize_t>(w), py::ssize_t{2}});
            float* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                mesh_field(g, u.data(), row0, col0, h, w, matrix.data(), o, threads);
            }
            return out;
        },
        py::arg("displacement"), py::arg("spacing"), py::arg("origin_x"), py::arg("origin_y"), py::arg("row0"),
        py::arg("col0"), py::arg("h"), py::arg("w"), py::arg("matrix"), py::arg("threads"),
        "Displacement field (h, w, 2) (row, col) for the warp core over a canvas region.");
}

}  // namespace spectralign_fast::bindings

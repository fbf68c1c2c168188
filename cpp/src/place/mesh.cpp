// Joint elastic mesh of serial sections; see mesh.hpp for the model.
//
// Layout of the normal matrix. Unknown (z, i) is node i of section z, at
// z * N + i (N = ny * nx nodes per section); x and y share the matrix. A
// section's own couplings lie inside one triangle, so node i meets only the
// nodes at offsets 0, +-1, +-nx, +-(nx + 1): kept as the four upper offsets
// {0, 1, nx, nx + 1} per node. A match couples the triangle of pa in section
// za with the triangle of pb in section zb, which the flow keeps within a few
// cells of each other: those cross couplings are kept per (pair of sections,
// node of za) over the cell offsets [-K, K]^2, K the largest found (at most
// kMaxCellOffset).
#include "spectralign_fast/place/mesh.hpp"

#include <Eigen/IterativeLinearSolvers>
#include <Eigen/OrderingMethods>
#include <Eigen/SparseCore>
#ifdef SPECTRALIGN_HAVE_CHOLMOD
#include <Eigen/CholmodSupport>
#else
#include <Eigen/SparseCholesky>
#endif

#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/parallel.hpp"

namespace spectralign_fast {

namespace {

using I64 = std::int64_t;
using SpMat = Eigen::SparseMatrix<double, Eigen::ColMajor, I64>;
using Dense2 = Eigen::Matrix<double, Eigen::Dynamic, 2>;
#ifdef SPECTRALIGN_HAVE_CHOLMOD
using Factor = Eigen::CholmodSupernodalLLT<SpMat, Eigen::Lower>;
constexpr const char* kSolverName = "cholmod";
#else
using Factor = Eigen::SimplicialLDLT<SpMat, Eigen::Lower, Eigen::AMDOrdering<I64>>;
constexpr const char* kSolverName = "ldlt";
#endif

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// OpenBLAS (under CHOLMOD's supernodal kernels) sums in an order that depends
// on its thread count, so the factor's last bits would depend on the
// machine and on whoever set OPENBLAS_NUM_THREADS. The mesh solve runs its
// BLAS on one thread (found at run time; nothing to do for other BLAS
// builds), which makes it bit for bit reproducible everywhere.
class OneBlasThread {
public:
    OneBlasThread() : lock_(mutex()) {
        for (const char* name : {"libopenblas.so.0", "libblas.so.3"}) {
            void* h = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
            if (h == nullptr) continue;
            get_ = reinterpret_cast<int (*)()>(dlsym(h, "openblas_get_num_threads"));
            set_ = reinterpret_cast<void (*)(int)>(dlsym(h, "openblas_set_num_threads"));
            dlclose(h);  // still loaded: NOLOAD took a reference to a library already in use
            if (get_ != nullptr && set_ != nullptr) break;
            get_ = nullptr;
            set_ = nullptr;
        }
        if (set_ != nullptr) {
            saved_ = get_();
            set_(1);
        }
    }
    ~OneBlasThread() {
        if (set_ != nullptr) set_(saved_);
    }
    OneBlasThread(const OneBlasThread&) = delete;
    OneBlasThread& operator=(const OneBlasThread&) = delete;

private:
    static std::mutex& mutex() {
        static std::mutex m;
        return m;
    }
    std::lock_guard<std::mutex> lock_;
    int (*get_)() = nullptr;
    void (*set_)(int) = nullptr;
    int saved_ = 1;
};

struct Bary {
    I64 node[3];
    double w[3];
};

// The triangle holding (x, y) and its barycentric weights (outside the mesh:
// the nearest cell, extrapolated linearly).
inline Bary barycentric(const MeshGrid& g, double x, double y) {
    double fx = (x - g.origin_x) / g.spacing, fy = (y - g.origin_y) / g.spacing;
    const I64 c = std::clamp(static_cast<I64>(std::floor(fx)), I64{0}, g.nx - 2);
    const I64 r = std::clamp(static_cast<I64>(std::floor(fy)), I64{0}, g.ny - 2);
    fx -= double(c);
    fy -= double(r);
    const I64 n00 = r * g.nx + c;
    if (fx >= fy) return {{n00, n00 + 1, n00 + g.nx + 1}, {1 - fx, fx - fy, fy}};
    return {{n00, n00 + g.nx, n00 + g.nx + 1}, {1 - fy, fy - fx, fx}};
}

inline void interpolate(const Bary& b, const double* u, double out[2]) {
    out[0] = out[1] = 0;
    for (int k = 0; k < 3; ++k) {
        out[0] += b.w[k] * u[2 * b.node[k]];
        out[1] += b.w[k] * u[2 * b.node[k] + 1];
    }
}

// Stencil slot of the upper offset between nodes a <= b of one triangle.
inline int slot(const MeshGrid& g, I64 a, I64 b) {
    const I64 d = b - a;
    return d == 0 ? 0 : d == 1 ? 1 : d == g.nx ? 2 : 3;
}

void check_grid(const MeshGrid& g) {
    if (g.ny < 2 || g.nx < 2) throw std::invalid_argument("the mesh needs at least 2 x 2 nodes");
    if (!(g.spacing > 0) || !std::isfinite(g.spacing))
        throw std::invalid_argument("the mesh spacing must be a positive number");
    if (!std::isfinite(g.origin_x) || !std::isfinite(g.origin_y))
        throw std::invalid_argument("the mesh origin must be finite");
    if (g.ny > (I64{1} << 31) / g.nx) throw std::out_of_range("the mesh has too many nodes");
}

// Matches with za < zb (a match given the other way round is swapped: the
// residual only changes sign).
struct Matches {
    std::vector<I64> za, zb;
    std::vector<double> pa, pb, w;
};

bool inside(const MeshGrid& g, double x, double y) {
    const double fx = (x - g.origin_x) / g.spacing, fy = (y - g.origin_y) / g.spacing;
    return fx >= -1 && fx <= double(g.nx) && fy >= -1 && fy <= double(g.ny);
}

Matches normalised(const MeshGrid& g, I64 n_sections, I64 n, const I64* za, const I64* zb, const double* pa, const double* pb,
                   const double* w) {
    Matches m;
    m.za.resize(n);
    m.zb.resize(n);
    m.pa.resize(2 * n);
    m.pb.resize(2 * n);
    m.w.assign(w, w + n);
    for (I64 k = 0; k < n; ++k) {
        if (za[k] < 0 || za[k] >= n_sections || zb[k] < 0 || zb[k] >= n_sections)
            throw std::invalid_argument("match " + std::to_string(k) + " refers to a section outside [0, " +
                                        std::to_string(n_sections) + ")");
        if (za[k] == zb[k])
            throw std::invalid_argument("match " + std::to_string(k) + " ties section " + std::to_string(za[k]) +
                                        " to itself");
        if (!(w[k] > 0) || !std::isfinite(w[k]))
            throw std::invalid_argument("match " + std::to_string(k) + " has a weight that is not positive");
        for (int s = 0; s < 2; ++s)
            if (!std::isfinite(pa[2 * k + s]) || !std::isfinite(pb[2 * k + s]))
                throw std::invalid_argument("match " + std::to_string(k) + " has a non-finite point");
        for (const double* p : {pa + 2 * k, pb + 2 * k})
            if (!inside(g, p[0], p[1]))
                throw std::invalid_argument("match " + std::to_string(k) + " has a point outside the mesh (more "
                                            "than one cell beyond its nodes)");
        const bool swap = za[k] > zb[k];
        m.za[k] = swap ? zb[k] : za[k];
        m.zb[k] = swap ? za[k] : zb[k];
        for (int s = 0; s < 2; ++s) {
            m.pa[2 * k + s] = swap ? pb[2 * k + s] : pa[2 * k + s];
            m.pb[2 * k + s] = swap ? pa[2 * k + s] : pb[2 * k + s];
        }
    }
    return m;
}

constexpr I64 kMaxCellOffset = 8;

struct System {
    I64 nodes = 0;                           // per section
    I64 reach = 0;                           // K: cross couplings over cell offsets [-K, K]^2
    std::vector<std::array<double, 4>> own;  // per (section, node): upper stencil of its block
    std::vector<std::pair<I64, I64>> pairs;  // coupled sections (za < zb)
    std::map<std::pair<I64, I64>, I64> pair_index;
    std::vector<double> cross;               // per (pair, node of za, offset slot)
    Dense2 rhs;

    I64 slots() const { return (2 * reach + 1) * (2 * reach + 1); }
};

I64 cell_of(const MeshGrid& g, I64 node, I64& c) {
    c = node % g.nx;
    return node / g.nx;
}

void assemble(System& s, I64 n_sections, const MeshGrid& g, const Matches& m, const MeshOptions& opt) {
    const I64 N = s.nodes, n = static_cast<I64>(m.w.size());
    s.own.assign(static_cast<std::size_t>(n_sections * N), std::array<double, 4>{0, 0, 0, 0});
    s.rhs.setZero(n_sections * N, 2);
    for (I64 z = 0; z < n_sections; ++z)
        for (I64 r = 0; r < g.ny; ++r)
            for (I64 c = 0; c < g.nx; ++c) {
                const I64 i = r * g.nx + c;
                auto& d = s.own[z * N + i];
                d[0] += opt.pull;
                // springs on the edges to the right, below and diagonally below-right
                const I64 off[3] = {1, g.nx, g.nx + 1};
                const bool has[3] = {c + 1 < g.nx, r + 1 < g.ny, c + 1 < g.nx && r + 1 < g.ny};
                for (int e = 0; e < 3; ++e) {
                    if (!has[e]) continue;
                    d[0] += opt.stiffness;
                    s.own[z * N + i + off[e]][0] += opt.stiffness;
                    d[1 + e] -= opt.stiffness;
                }
            }
    std::vector<Bary> ba(static_cast<std::size_t>(n)), bb(static_cast<std::size_t>(n));
    s.reach = 1;
    for (I64 k = 0; k < n; ++k) {
        ba[k] = barycentric(g, m.pa[2 * k], m.pa[2 * k + 1]);
        bb[k] = barycentric(g, m.pb[2 * k], m.pb[2 * k + 1]);
        I64 ca, cb;
        const I64 ra = cell_of(g, ba[k].node[0], ca), rb = cell_of(g, bb[k].node[0], cb);
        s.reach = std::max(s.reach, std::max(std::abs(ra - rb), std::abs(ca - cb)) + 1);
    }
    if (s.reach > kMaxCellOffset + 1)
        throw std::invalid_argument("a match moves more than " + std::to_string(kMaxCellOffset) +
                                    " mesh cells between its sections; the affine alignment should leave far less "
                                    "(check it, or use a larger mesh spacing)");
    const I64 K = s.reach, width = 2 * K + 1;
    s.cross.assign(s.pairs.size() * static_cast<std::size_t>(N * s.slots()), 0.0);
    for (I64 k = 0; k < n; ++k) {
        const double wk = m.w[k];
        const I64 za = m.za[k], zb = m.zb[k];
        const I64 p = s.pair_index.at({za, zb});
        const double d[2] = {m.pa[2 * k] - m.pb[2 * k], m.pa[2 * k + 1] - m.pb[2 * k + 1]};
        const Bary& A = ba[k];
        const Bary& B = bb[k];
        for (int i = 0; i < 3; ++i)
            for (int c = 0; c < 2; ++c) {
                // r = a . U + d with a = +A on za's nodes, -B on zb's; K U = -sum w a d
                s.rhs(za * N + A.node[i], c) -= wk * A.w[i] * d[c];
                s.rhs(zb * N + B.node[i], c) += wk * B.w[i] * d[c];
            }
        for (int i = 0; i < 3; ++i)
            for (int j = i; j < 3; ++j) {
                const I64 alo = std::min(A.node[i], A.node[j]), ahi = std::max(A.node[i], A.node[j]);
                s.own[za * N + alo][slot(g, alo, ahi)] += wk * A.w[i] * A.w[j];
                const I64 blo = std::min(B.node[i], B.node[j]), bhi = std::max(B.node[i], B.node[j]);
                s.own[zb * N + blo][slot(g, blo, bhi)] += wk * B.w[i] * B.w[j];
            }
        for (int i = 0; i < 3; ++i) {
            I64 ca, cb;
            const I64 ra = cell_of(g, A.node[i], ca);
            for (int j = 0; j < 3; ++j) {
                const I64 rb = cell_of(g, B.node[j], cb);
                const I64 o = (rb - ra + K) * width + (cb - ca + K);
                s.cross[(p * N + A.node[i]) * s.slots() + o] -= wk * A.w[i] * B.w[j];
            }
        }
    }
}

SpMat matrix_of(const System& s, I64 n_sections, const MeshGrid& g) {
    const I64 N = s.nodes, K = s.reach, width = 2 * K + 1;
    std::vector<Eigen::Triplet<double, I64>> t;
    t.reserve(static_cast<std::size_t>(n_sections * N * 4 + static_cast<I64>(s.pairs.size()) * N * 9));
    const I64 off[4] = {0, 1, g.nx, g.nx + 1};
    for (I64 z = 0; z < n_sections; ++z)
        for (I64 i = 0; i < N; ++i)
            for (int o = 0; o < 4; ++o)
                if (i + off[o] < N && (o == 0 || s.own[z * N + i][o] != 0.0))
                    t.emplace_back(z * N + i + off[o], z * N + i, s.own[z * N + i][o]);
    for (std::size_t p = 0; p < s.pairs.size(); ++p) {
        const I64 za = s.pairs[p].first, zb = s.pairs[p].second;
        for (I64 i = 0; i < N; ++i) {
            const double* c = &s.cross[(static_cast<I64>(p) * N + i) * s.slots()];
            const I64 r = i / g.nx, col = i % g.nx;
            for (I64 o = 0; o < s.slots(); ++o) {
                if (c[o] == 0.0) continue;
                const I64 j = (r + o / width - K) * g.nx + (col + o % width - K);
                t.emplace_back(zb * N + j, za * N + i, c[o]);  // zb's rows follow za's: the lower triangle
            }
        }
    }
    SpMat Kmat(n_sections * N, n_sections * N);
    Kmat.setFromTriplets(t.begin(), t.end());
    return Kmat;
}

I64 count_inverted(const MeshGrid& g, const double* u) {
    I64 bad = 0;
    auto pos = [&](I64 node, double& x, double& y) {
        x = double(node % g.nx) * g.spacing + u[2 * node];
        y = double(node / g.nx) * g.spacing + u[2 * node + 1];
    };
    for (I64 r = 0; r + 1 < g.ny; ++r)
        for (I64 c = 0; c + 1 < g.nx; ++c) {
            const I64 n00 = r * g.nx + c;
            const I64 tri[2][3] = {{n00, n00 + 1, n00 + g.nx + 1}, {n00, n00 + g.nx + 1, n00 + g.nx}};
            for (const auto& t : tri) {
                double x[3], y[3];
                for (int k = 0; k < 3; ++k) pos(t[k], x[k], y[k]);
                // counter-clockwise in (x, y-down) at rest: positive area
                const double area = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0]);
                if (!(area > 1e-6 * g.spacing * g.spacing)) ++bad;
            }
        }
    return bad;
}

// p with p + v(p) = q: barycentric coordinates of q in the deformed triangle
// give p in the rest triangle; repeated until p stays in the triangle used.
void invert_one(const MeshGrid& g, const double* u, double qx, double qy, double& px, double& py) {
    double v[2];
    interpolate(barycentric(g, qx, qy), u, v);
    px = qx - v[0];
    py = qy - v[1];
    I64 last = -1;
    for (int it = 0; it < 16; ++it) {
        const Bary b = barycentric(g, px, py);
        const I64 key = b.node[0] * 2 + (b.node[1] == b.node[0] + 1 ? 0 : 1);
        if (key == last) return;
        last = key;
        double X[3], Y[3], RX[3], RY[3];
        for (int k = 0; k < 3; ++k) {
            RX[k] = g.origin_x + double(b.node[k] % g.nx) * g.spacing;
            RY[k] = g.origin_y + double(b.node[k] / g.nx) * g.spacing;
            X[k] = RX[k] + u[2 * b.node[k]];
            Y[k] = RY[k] + u[2 * b.node[k] + 1];
        }
        const double det = (X[1] - X[0]) * (Y[2] - Y[0]) - (X[2] - X[0]) * (Y[1] - Y[0]);
        if (!(std::abs(det) > 1e-12 * g.spacing * g.spacing)) return;  // degenerate: keep the estimate
        const double l1 = ((qx - X[0]) * (Y[2] - Y[0]) - (X[2] - X[0]) * (qy - Y[0])) / det;
        const double l2 = ((X[1] - X[0]) * (qy - Y[0]) - (qx - X[0]) * (Y[1] - Y[0])) / det;
        const double l0 = 1 - l1 - l2;
        px = l0 * RX[0] + l1 * RX[1] + l2 * RX[2];
        py = l0 * RY[0] + l1 * RY[1] + l2 * RY[2];
    }
}

// Auto solves by CG and falls back to the factor when CG does not converge
// and the system has at most this many unknowns per coordinate. Measured on
// 2 cores (bench/RESULTS.md): CG with an incomplete Cholesky of the natural
// (section by section) ordering took 85 iterations and 1.2 s where CHOLMOD's
// factor took 4.6 s at 109k nodes, and 200 iterations and 24 s at 1.09M
// nodes, where a factor would fill ~20 GB (the separators are whole sections).
constexpr I64 kAutoCholeskyLimit = 300000;

Dense2 solve_direct(const SpMat& K, const Dense2& rhs, MeshResult& res) {
    auto t = std::chrono::steady_clock::now();
    OneBlasThread one_blas_thread;
    Factor factor;
    factor.compute(K);
    if (factor.info() != Eigen::Success)
        throw std::invalid_argument("the mesh system is singular or not positive definite (pull too small?)");
    res.solver = kSolverName;
    res.factor_s = seconds_since(t);
    t = std::chrono::steady_clock::now();
    Dense2 u = factor.solve(rhs);
    // One step of iterative refinement against the residual in double.
    const Dense2 r = rhs - K.selfadjointView<Eigen::Lower>() * u;
    u += factor.solve(r);
    res.solve_s = seconds_since(t);
    return u;
}

Dense2 solve_cg(const SpMat& K, const Dense2& rhs, const MeshOptions& opt, MeshResult& res) {
    auto t = std::chrono::steady_clock::now();
    Eigen::ConjugateGradient<SpMat, Eigen::Lower, Eigen::IncompleteCholesky<double, Eigen::Lower,
                                                                            Eigen::NaturalOrdering<I64>>> cg;  // AMD: 3x the iterations
    cg.setTolerance(opt.cg_tolerance);
    cg.setMaxIterations(opt.cg_max_iterations > 0 ? opt.cg_max_iterations : 20000);
    cg.compute(K);
    if (cg.info() != Eigen::Success)
        throw std::invalid_argument("the mesh system's incomplete Cholesky preconditioner failed");
    res.solver = "cg";
    res.factor_s = seconds_since(t);
    t = std::chrono::steady_clock::now();
    Dense2 u(rhs.rows(), 2);
    for (int c = 0; c < 2; ++c) {
        u.col(c) = cg.solve(rhs.col(c));
        res.cg_iterations = std::max(res.cg_iterations, static_cast<int>(cg.iterations()));
        res.cg_error = std::max(res.cg_error, cg.error());
        if (cg.info() != Eigen::Success)
            throw std::invalid_argument("the mesh CG solve did not converge in " + std::to_string(cg.iterations()) +
                                        " iterations (relative residual " + std::to_string(cg.error()) +
                                        "); use solver='cholesky' or a looser tolerance");
    }
    res.solve_s = seconds_since(t);
    return u;
}

}  // namespace

MeshResult solve_mesh(I64 n_sections, const MeshGrid& grid, I64 n_matches, const I64* za, const I64* zb,
                      const double* pa, const double* pb, const double* w, const MeshOptions& opt) {
    check_grid(grid);
    if (n_sections < 1) throw std::invalid_argument("there are no sections");
    if (n_matches < 0) throw std::invalid_argument("the number of matches is negative");
    if (!(opt.pull > 0) || !std::isfinite(opt.pull)) throw std::invalid_argument("pull must be positive");
    if (!(opt.stiffness >= 0) || !std::isfinite(opt.stiffness))
        throw std::invalid_argument("stiffness must be zero or positive");
    const Matches m = normalised(grid, n_sections, n_matches, za, zb, pa, pb, w);
    System s;
    s.nodes = grid.ny * grid.nx;
    const I64 N = s.nodes;
    if (n_sections > (I64{1} << 40) / N) throw std::out_of_range("the mesh has too many unknowns");
    for (I64 k = 0; k < n_matches; ++k)
        if (s.pair_index.emplace(std::make_pair(m.za[k], m.zb[k]), static_cast<I64>(s.pairs.size())).second)
            s.pairs.emplace_back(m.za[k], m.zb[k]);

    MeshResult res;
    res.unknowns = n_sections * N;
    auto t = std::chrono::steady_clock::now();
    assemble(s, n_sections, grid, m, opt);
    const SpMat K = matrix_of(s, n_sections, grid);
    std::vector<double>().swap(s.cross);
    res.nonzeros = K.nonZeros();
    res.assemble_s = seconds_since(t);
    const I64 limit = opt.auto_cholesky_limit > 0 ? opt.auto_cholesky_limit : kAutoCholeskyLimit;
    Dense2 u;
    if (opt.solver == MeshSolver::Cholesky) {
        u = solve_direct(K, s.rhs, res);
    } else {
        try {
            u = solve_cg(K, s.rhs, opt, res);
        } catch (const std::invalid_argument&) {
            if (opt.solver == MeshSolver::CG || res.unknowns > limit) throw;
            u = solve_direct(K, s.rhs, res);  // badly conditioned (weak pull and springs): the exact factor
        }
    }
    if (!u.allFinite()) throw std::invalid_argument("the mesh solve produced non-finite displacements");
    res.displacement.resize(static_cast<std::size_t>(n_sections * N * 2));
    for (I64 k = 0; k < n_sections * N; ++k) {
        res.displacement[2 * k] = u(k, 0);
        res.displacement[2 * k + 1] = u(k, 1);
    }
    res.residual.resize(static_cast<std::size_t>(2 * n_matches));
    for (I64 k = 0; k < n_matches; ++k) {
        double ua[2], ub[2];
        interpolate(barycentric(grid, pa[2 * k], pa[2 * k + 1]), res.displacement.data() + 2 * za[k] * N, ua);
        interpolate(barycentric(grid, pb[2 * k], pb[2 * k + 1]), res.displacement.data() + 2 * zb[k] * N, ub);
        for (int c = 0; c < 2; ++c) res.residual[2 * k + c] = pa[2 * k + c] + ua[c] - pb[2 * k + c] - ub[c];
    }
    res.inverted.resize(static_cast<std::size_t>(n_sections));
    for (I64 z = 0; z < n_sections; ++z) res.inverted[z] = count_inverted(grid, res.displacement.data() + 2 * z * N);
    return res;
}

void mesh_interpolate(const MeshGrid& grid, const double* displacement, I64 n, const double* points, double* out) {
    check_grid(grid);
    for (I64 k = 0; k < n; ++k) {
        if (!std::isfinite(points[2 * k]) || !std::isfinite(points[2 * k + 1]))
            throw std::invalid_argument("point " + std::to_string(k) + " is not finite");
        interpolate(barycentric(grid, points[2 * k], points[2 * k + 1]), displacement, out + 2 * k);
    }
}

void mesh_inverse(const MeshGrid& grid, const double* displacement, I64 n, const double* points, double* out) {
    check_grid(grid);
    for (I64 k = 0; k < n; ++k) {
        if (!std::isfinite(points[2 * k]) || !std::isfinite(points[2 * k + 1]))
            throw std::invalid_argument("point " + std::to_string(k) + " is not finite");
        invert_one(grid, displacement, points[2 * k], points[2 * k + 1], out[2 * k], out[2 * k + 1]);
    }
}

void mesh_field(const MeshGrid& grid, const double* displacement, I64 row0, I64 col0, I64 h, I64 w,
                const double* M, float* out, int threads) {
    check_grid(grid);
    if (h < 0 || w < 0) throw std::invalid_argument("the field region has a negative size");
    for (int k = 0; k < 9; ++k)
        if (!std::isfinite(M[k])) throw std::invalid_argument("the field matrix is not finite");
    parallel_for(static_cast<std::size_t>(h), threads, [] { return 0; }, [&](int&, std::size_t i) {
        const double y = double(row0 + static_cast<I64>(i));
        float* o = out + static_cast<I64>(i) * w * 2;
        for (I64 j = 0; j < w; ++j) {
            double px, py;
            invert_one(grid, displacement, double(col0 + j), y, px, py);
            // Source positions on a 1/256 px grid: the offsets are then exact in float32 (below
            // 2^16 px) and the warp core's double sum gives the same position whatever the region's
            // origin, so a chunked write is bit for bit the whole render.
            const double sr = std::nearbyint((M[0] * py + M[1] * px + M[2]) * 256.0) / 256.0;
            const double sc = std::nearbyint((M[3] * py + M[4] * px + M[5]) * 256.0) / 256.0;
            o[2 * j] = static_cast<float>(sr - double(i));
            o[2 * j + 1] = static_cast<float>(sc - double(j));
        }
    });
}

}  // namespace spectralign_fast

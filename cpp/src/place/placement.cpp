// Sparse least-squares placement; see placement.hpp for the model.
//
// Linear algebra. Per component c pick a reference tile r_c (the fixed tile,
// or the component's first tile). The unknowns of all other ("free") tiles
// form T_o; the normal matrix Q splits into Q_oo (free x free, SPD for a
// well-posed problem), Q_or (free x reference) and Q_rr. With the Lagrange
// constraints sum_t T_t = d (mean gauge) the KKT system
//     Q_rr T_r + Q_ro T_o + lambda     = b_r
//     Q_or T_r + Q_oo T_o + C_o' lambda = b_o
//     T_r + C_o T_o                    = d
// is reduced exactly: T_o = y0 - Y1 T_r - Y2 lambda with y0 = Q_oo^-1 b_o,
// Y1 = Q_oo^-1 Q_or, Y2 = Q_oo^-1 C_o', leaving a small dense system in
// (T_r, lambda) per component. Q_oo is block diagonal over components, so
// the reference couplings of all components share right-hand-side columns.
// Rigid placement is translation invariant and b sums to zero per
// component, so there lambda = 0 and T_r can be set to 0 and the component
// mean subtracted afterwards (exactly the constrained solution).
#include "spectralign_fast/place/placement.hpp"

#include <Eigen/Dense>
#include <Eigen/IterativeLinearSolvers>
#include <Eigen/OrderingMethods>
#include <Eigen/SparseCholesky>

#ifdef SPECTRALIGN_HAVE_CHOLMOD
#include <cholmod.h>
#endif
#include <Eigen/SparseCore>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

namespace spectralign_fast {

namespace {

using I64 = std::int64_t;
using SpMat = Eigen::SparseMatrix<double, Eigen::ColMajor, I64>;
using Dense = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

I64 find_root(std::vector<I64>& parent, I64 i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

void check_indices(I64 n_tiles, I64 n_matches, const I64* t1, const I64* t2) {
    if (n_tiles < 1) throw std::invalid_argument("there are no tiles");
    if (n_matches < 1) throw std::invalid_argument("there are no matches");
    for (I64 m = 0; m < n_matches; ++m) {
        if (t1[m] < 0 || t1[m] >= n_tiles || t2[m] < 0 || t2[m] >= n_tiles)
            throw std::invalid_argument("match " + std::to_string(m) + " refers to a tile index outside [0, " +
                                        std::to_string(n_tiles) + ")");
    }
}

// Coordinates of a point for the k unknowns of one tile row. Affine
// unknowns are solved in a centred, scaled basis (an exact change of
// variables that keeps the system well conditioned):
//   T(p) = A p + X = A' (p - c0) / L + X',  A' = L A,  X' = X + A c0.
struct Frame {
    double cx = 0, cy = 0, L = 1;
};

inline void qvec(int k, const double* p, double* q, const Frame& f) {
    if (k == 1) {
        q[0] = 1.0;
    } else {
        q[0] = (p[0] - f.cx) / f.L;
        q[1] = (p[1] - f.cy) / f.L;
        q[2] = 1.0;
    }
}

struct Solved {
    Dense x;
    std::string solver;
    int iterations = 0;
    double error = 0;
    double pivot_ratio = 0;
    double analyze_s = 0, factor_s = 0, solve_s = 0;
};

// Indices in range, no self-match, finite points, positive weights, and every
// tile in some match (its placement is undetermined otherwise).
void check_matches(I64 n_tiles, I64 n_matches, const I64* t1, const I64* t2, const double* p1,
                   const double* p2, const double* w) {
    check_indices(n_tiles, n_matches, t1, t2);
    std::vector<I64> degree(static_cast<std::size_t>(n_tiles), 0);
    for (I64 m = 0; m < n_matches; ++m) {
        if (t1[m] == t2[m])
            throw std::invalid_argument("match " + std::to_string(m) + " connects tile " + std::to_string(t1[m]) +
                                        " to itself");
        if (!(std::isfinite(p1[2 * m]) && std::isfinite(p1[2 * m + 1]) && std::isfinite(p2[2 * m]) &&
              std::isfinite(p2[2 * m + 1])))
            throw std::invalid_argument("match " + std::to_string(m) + " has a non-finite point");
        if (!(std::isfinite(w[m]) && w[m] > 0))
            throw std::invalid_argument("match " + std::to_string(m) + " has a weight that is not finite and > 0");
        ++degree[t1[m]];
        ++degree[t2[m]];
    }
    for (I64 t = 0; t < n_tiles; ++t)
        if (degree[t] == 0)
            throw std::invalid_argument("tile " + std::to_string(t) + " has no match to another tile");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class Precond>
Solved solve_cg(const SpMat& A, const Dense& rhs, const PlacementOptions& opt) {
    Eigen::ConjugateGradient<SpMat, Eigen::Lower, Precond> cg;
    cg.setTolerance(opt.cg_tolerance);
    I64 maxit = opt.cg_max_iterations > 0 ? opt.cg_max_iterations
                                          : std::min<I64>(10 * A.rows() + 100, 1000000);
    cg.setMaxIterations(static_cast<Eigen::Index>(maxit));
    auto t0 = std::chrono::steady_clock::now();
    cg.compute(A);
    const double t_fa = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    if (cg.info() != Eigen::Success)
        throw std::invalid_argument("the placement system could not be preconditioned (is it ill-posed?)");
    Solved s;
    s.solver = "cg";
    s.factor_s = t_fa;
    s.x.resize(rhs.rows(), rhs.cols());
    for (Eigen::Index j = 0; j < rhs.cols(); ++j) {
        if (rhs.col(j).squaredNorm() == 0.0) {
            s.x.col(j).setZero();
            continue;
        }
        s.x.col(j) = cg.solve(rhs.col(j));
        s.iterations = std::max(s.iterations, static_cast<int>(cg.iterations()));
        s.error = std::max(s.error, cg.error());
        if (cg.info() != Eigen::Success)
            throw std::runtime_error("conjugate gradient did not converge in " + std::to_string(cg.iterations()) +
                                     " iterations (relative residual " + std::to_string(cg.error()) +
                                     "); use solver='cholesky' or a looser tolerance");
    }
    s.solve_s = seconds_since(t0);
    return s;
}

template <class Index>
Solved solve_cholesky(const Eigen::SparseMatrix<double, Eigen::ColMajor, Index>& A, const Dense& rhs) {
    using Mat = Eigen::SparseMatrix<double, Eigen::ColMajor, Index>;
    Eigen::SimplicialLDLT<Mat, Eigen::Lower, Eigen::AMDOrdering<Index>> ldlt;
    auto t0 = std::chrono::steady_clock::now();
    ldlt.analyzePattern(A);
    const double t_an = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    ldlt.factorize(A);
    const double t_fa = seconds_since(t0);
    if (ldlt.info() != Eigen::Success)
        throw std::invalid_argument("the placement system is singular: the matches do not determine the placement "
                                    "(too few or collinear points between some tiles?)");
    const auto& D = ldlt.vectorD();
    const double dmax = D.size() ? D.maxCoeff() : 0.0;
    const double dmin = D.size() ? D.minCoeff() : 0.0;
    if (D.size() && !(dmin > 1e-15 * dmax))
        throw std::invalid_argument("the placement system is singular or nearly so: the matches do not determine the "
                                    "placement (too few or collinear points between some tiles?)");
    Solved s;
    s.solver = "ldlt";
    s.pivot_ratio = D.size() ? dmin / dmax : 1.0;
    s.analyze_s = t_an;
    s.factor_s = t_fa;
    t0 = std::chrono::steady_clock::now();
    s.x = ldlt.solve(rhs);
    s.solve_s = seconds_since(t0);
    return s;
}

#ifdef SPECTRALIGN_HAVE_CHOLMOD
// Supernodal Cholesky (SuiteSparse CHOLMOD, dense BLAS-3 kernels on
// supernodes, nested-dissection or AMD ordering, whichever fills less):
// much faster than Eigen's scalar simplicial factorisation on large tile
// grids, especially affine with its 3x3 blocks per tile.
class Cholmod {
public:
    Cholmod() {
        cholmod_l_start(&c_);
        c_.print = 0;                  // the solver prints nothing
        c_.error_handler = nullptr;    // errors come back through c_.status
        c_.supernodal = CHOLMOD_SUPERNODAL;
        c_.final_ll = 1;
    }
    ~Cholmod() {
        if (L_ != nullptr) cholmod_l_free_factor(&L_, &c_);
        if (X_ != nullptr) cholmod_l_free_dense(&X_, &c_);
        cholmod_l_finish(&c_);
    }
    Cholmod(const Cholmod&) = delete;
    Cholmod& operator=(const Cholmod&) = delete;

    Solved solve(SpMat& A, const Dense& rhs) {
        A.makeCompressed();
        cholmod_sparse As{};
        As.nrow = static_cast<std::size_t>(A.rows());
        As.ncol = static_cast<std::size_t>(A.cols());
        As.nzmax = static_cast<std::size_t>(A.nonZeros());
        As.p = A.outerIndexPtr();
        As.i = A.innerIndexPtr();
        As.x = A.valuePtr();
        As.stype = -1;  // lower triangle stored
        As.itype = CHOLMOD_LONG;
        As.xtype = CHOLMOD_REAL;
        As.dtype = CHOLMOD_DOUBLE;
        As.sorted = 0;  // CHOLMOD sorts while permuting; no promise needed
        As.packed = 1;
        static_assert(sizeof(SuiteSparse_long) == sizeof(I64), "CHOLMOD's long must be 64-bit");

        auto t0 = std::chrono::steady_clock::now();
        L_ = cholmod_l_analyze(&As, &c_);
        check("analysis");
        Solved s;
        s.solver = "cholmod";
        s.analyze_s = seconds_since(t0);
        t0 = std::chrono::steady_clock::now();
        cholmod_l_factorize(&As, L_, &c_);
        s.factor_s = seconds_since(t0);
        if (c_.status == CHOLMOD_NOT_POSDEF || L_->minor < L_->n)
            throw std::invalid_argument("the placement system is singular: the matches do not determine the placement "
                                        "(too few or collinear points between some tiles?)");
        check("factorisation");
        // For L L^T, rcond is (min L_ii / max L_ii)^2: the same pivot ratio
        // as min D / max D of the LDL^T path, and the same threshold.
        const double rc = cholmod_l_rcond(L_, &c_);
        if (!(rc > 1e-15))
            throw std::invalid_argument("the placement system is singular or nearly so: the matches do not determine the "
                                        "placement (too few or collinear points between some tiles?)");
        s.pivot_ratio = rc;
        t0 = std::chrono::steady_clock::now();
        Dense b = rhs;  // CHOLMOD reads a column-major dense view
        cholmod_dense B{};
        B.nrow = static_cast<std::size_t>(b.rows());
        B.ncol = static_cast<std::size_t>(b.cols());
        B.nzmax = B.nrow * B.ncol;
        B.d = B.nrow;
        B.x = b.data();
        B.xtype = CHOLMOD_REAL;
        B.dtype = CHOLMOD_DOUBLE;
        X_ = cholmod_l_solve(CHOLMOD_A, L_, &B, &c_);
        check("solve");
        s.x = Eigen::Map<const Dense>(static_cast<const double*>(X_->x), b.rows(), b.cols());
        s.solve_s = seconds_since(t0);
        return s;
    }

private:
    void check(const char* stage) {
        if (c_.status == CHOLMOD_OUT_OF_MEMORY)
            throw std::bad_alloc();
        if (c_.status < CHOLMOD_OK)
            throw std::runtime_error(std::string("CHOLMOD failed in the ") + stage + " (status " +
                                     std::to_string(c_.status) + ")");
    }
    cholmod_common c_{};
    cholmod_factor* L_ = nullptr;
    cholmod_dense* X_ = nullptr;
};
#endif

}  // namespace

bool placement_has_cholmod() {
#ifdef SPECTRALIGN_HAVE_CHOLMOD
    return true;
#else
    return false;
#endif
}

std::vector<I64> placement_components(I64 n_tiles, I64 n_matches, const I64* t1, const I64* t2,
                                      I64* n_components) {
    check_indices(n_tiles, n_matches, t1, t2);
    std::vector<I64> parent(static_cast<std::size_t>(n_tiles));
    std::iota(parent.begin(), parent.end(), I64{0});
    for (I64 m = 0; m < n_matches; ++m) {
        I64 a = find_root(parent, t1[m]), b = find_root(parent, t2[m]);
        if (a != b) parent[std::max(a, b)] = std::min(a, b);  // root = lowest index
    }
    std::vector<I64> label(static_cast<std::size_t>(n_tiles), -1);
    I64 n = 0;
    for (I64 t = 0; t < n_tiles; ++t) {
        I64 r = find_root(parent, t);
        if (label[r] < 0) label[r] = n++;
        label[t] = label[r];
    }
    if (n_components) *n_components = n;
    return label;
}

PlacementResult place(I64 n_tiles, I64 n_matches, const I64* t1, const I64* t2, const double* p1,
                      const double* p2, const double* w, const PlacementOptions& opt) {
    check_matches(n_tiles, n_matches, t1, t2, p1, p2, w);
    if (opt.fix >= n_tiles) throw std::invalid_argument("the fixed tile index is out of range");

    const auto t_start = std::chrono::steady_clock::now();
    PlacementResult res;
    res.component = placement_components(n_tiles, n_matches, t1, t2, &res.n_components);
    const I64 nc = res.n_components;
    if (nc > 1 && !opt.separate_components)
        throw std::invalid_argument("the match graph has " + std::to_string(nc) + " disconnected components");
    const int k = opt.affine ? 3 : 1;
    const std::vector<I64>& comp = res.component;

    // Reference tile per component and dense indices of the free tiles.
    std::vector<I64> ref(static_cast<std::size_t>(nc), -1), comp_size(static_cast<std::size_t>(nc), 0);
    for (I64 t = 0; t < n_tiles; ++t) {
        ++comp_size[comp[t]];
        if (ref[comp[t]] < 0) ref[comp[t]] = t;
    }
    const I64 fixed_comp = opt.fix >= 0 ? comp[opt.fix] : -1;
    if (fixed_comp >= 0) ref[fixed_comp] = opt.fix;
    std::vector<I64> freeidx(static_cast<std::size_t>(n_tiles), -1);
    std::vector<I64> refslot(static_cast<std::size_t>(n_tiles), -1);
    for (I64 c = 0; c < nc; ++c) refslot[ref[c]] = c;
    I64 nf = 0;
    for (I64 t = 0; t < n_tiles; ++t)
        if (refslot[t] < 0) freeidx[t] = nf++;
    const I64 nu = nf * k;  // unknowns of the sparse system
    res.unknowns = nu;

    Frame fr;
    if (k == 3) {
        double sx = 0, sy = 0;
        for (I64 m = 0; m < 2 * n_matches; ++m) {
            const double* p = m < n_matches ? p1 + 2 * m : p2 + 2 * (m - n_matches);
            sx += p[0];
            sy += p[1];
        }
        fr.cx = sx / double(2 * n_matches);
        fr.cy = sy / double(2 * n_matches);
        double ss = 0;
        for (I64 m = 0; m < 2 * n_matches; ++m) {
            const double* p = m < n_matches ? p1 + 2 * m : p2 + 2 * (m - n_matches);
            ss += (p[0] - fr.cx) * (p[0] - fr.cx) + (p[1] - fr.cy) * (p[1] - fr.cy);
        }
        fr.L = std::sqrt(ss / double(2 * n_matches));
        if (!(fr.L > 1e-9)) fr.L = 1.0;  // all points equal: the problem is ill-posed anyway
    }

    // Accumulate diagonal blocks, reference couplings and (rigid) b.
    std::vector<double> diag(static_cast<std::size_t>(nf * k * k), 0.0);
    std::vector<double> qrr(static_cast<std::size_t>(nc * k * k), 0.0);
    Dense qor = Dense::Zero(nu, k);  // packed over components
    Dense b = Dense::Zero(nu, 2);    // rigid only
    std::vector<I64> count(static_cast<std::size_t>(nf) + 1, 0);
    double q1[3], q2[3];
    for (I64 m = 0; m < n_matches; ++m) {
        const I64 a = t1[m], bb = t2[m];
        const double wm = w[m];
        qvec(k, p1 + 2 * m, q1, fr);
        qvec(k, p2 + 2 * m, q2, fr);
        const I64 fa = freeidx[a], fb = freeidx[bb];
        double* da = fa >= 0 ? &diag[fa * k * k] : &qrr[refslot[a] * k * k];
        double* db = fb >= 0 ? &diag[fb * k * k] : &qrr[refslot[bb] * k * k];
        for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j) {
                da[i * k + j] += wm * q1[i] * q1[j];
                db[i * k + j] += wm * q2[i] * q2[j];
            }
        if (fa >= 0 && fb < 0) {
            for (int i = 0; i < k; ++i)
                for (int j = 0; j < k; ++j) qor(fa * k + i, j) -= wm * q1[i] * q2[j];
        } else if (fb >= 0 && fa < 0) {
            for (int i = 0; i < k; ++i)
                for (int j = 0; j < k; ++j) qor(fb * k + i, j) -= wm * q2[i] * q1[j];
        } else {
            ++count[std::min(fa, fb)];
        }
        if (k == 1) {
            for (int s = 0; s < 2; ++s) {
                const double c = p1[2 * m + s] - p2[2 * m + s];
                if (fa >= 0) b(fa, s) -= wm * c;
                if (fb >= 0) b(fb, s) += wm * c;
            }
        }
    }

    // Group free-free matches by their lower free tile (counting sort), then
    // by the upper one, to sum each tile pair's block once.
    std::vector<I64> start(static_cast<std::size_t>(nf) + 1, 0);
    for (I64 i = 0; i < nf; ++i) start[i + 1] = start[i] + count[i];
    std::vector<I64> order(static_cast<std::size_t>(start[nf]));
    {
        std::vector<I64> pos(start.begin(), start.end() - 1);
        for (I64 m = 0; m < n_matches; ++m) {
            const I64 fa = freeidx[t1[m]], fb = freeidx[t2[m]];
            if (fa >= 0 && fb >= 0) order[pos[std::min(fa, fb)]++] = m;
        }
    }
    auto upper = [&](I64 m) { return std::max(freeidx[t1[m]], freeidx[t2[m]]); };
    std::vector<I64> nhi(static_cast<std::size_t>(nf), 0);
    for (I64 i = 0; i < nf; ++i) {
        auto first = order.begin() + start[i], last = order.begin() + start[i + 1];
        std::sort(first, last, [&](I64 x, I64 y) { return upper(x) < upper(y) || (upper(x) == upper(y) && x < y); });
        I64 prev = -1;
        for (auto it = first; it != last; ++it) {
            const I64 h = upper(*it);
            if (h != prev) ++nhi[i];
            prev = h;
        }
    }
    SpMat Q(nu, nu);
    {
        auto& outer = Q;  // fill the compressed arrays directly
        std::vector<I64> colnnz(static_cast<std::size_t>(nu));
        for (I64 i = 0; i < nf; ++i)
            for (int a = 0; a < k; ++a) colnnz[i * k + a] = (k - a) + k * nhi[i];
        const I64 total = std::accumulate(colnnz.begin(), colnnz.end(), I64{0});
        outer.resizeNonZeros(static_cast<Eigen::Index>(total));
        I64* op = outer.outerIndexPtr();
        I64* ip = outer.innerIndexPtr();
        double* vp = outer.valuePtr();
        op[0] = 0;
        for (I64 u = 0; u < nu; ++u) op[u + 1] = op[u] + colnnz[u];
        std::vector<double> blk;
        for (I64 i = 0; i < nf; ++i) {
            // diagonal block (lower part)
            for (int a = 0; a < k; ++a) {
                I64 o = op[i * k + a];
                for (int a2 = a; a2 < k; ++a2) {
                    ip[o] = i * k + a2;
                    vp[o] = diag[(i * k + a2) * k + a];  // symmetric block
                    ++o;
                }
            }
            // off-diagonal blocks (h, i), h > i: -sum w q_h q_i'
            I64 slot = 0;
            I64 s0 = start[i], s1 = start[i + 1];
            while (s0 < s1) {
                const I64 h = upper(order[s0]);
                double acc[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
                for (; s0 < s1 && upper(order[s0]) == h; ++s0) {
                    const I64 m = order[s0];
                    const bool first_is_h = freeidx[t1[m]] == h;
                    qvec(k, first_is_h ? p1 + 2 * m : p2 + 2 * m, q1, fr);  // q_h
                    qvec(k, first_is_h ? p2 + 2 * m : p1 + 2 * m, q2, fr);  // q_i
                    for (int r = 0; r < k; ++r)
                        for (int c = 0; c < k; ++c) acc[r * k + c] -= w[m] * q1[r] * q2[c];
                }
                for (int a = 0; a < k; ++a) {
                    I64 o = op[i * k + a] + (k - a) + slot * k;
                    for (int r = 0; r < k; ++r) {
                        ip[o + r] = h * k + r;
                        vp[o + r] = acc[r * k + a];
                    }
                }
                ++slot;
            }
        }
    }
    res.nonzeros = Q.nonZeros();
    res.assemble_s = seconds_since(t_start);
    std::vector<double>().swap(diag);
    std::vector<I64>().swap(order);

    // Right-hand sides.
    Dense rhs;
    if (k == 1) {
        rhs = std::move(b);
    } else {
        rhs.resize(nu, 2 * k);
        rhs.leftCols(k) = qor;
        rhs.rightCols(k).setZero();
        for (I64 i = 0; i < nf; ++i)
            for (int a = 0; a < k; ++a) rhs(i * k + a, k + a) = 1.0;
    }

    PlacementSolver which = opt.solver;
    if (which == PlacementSolver::Auto) {
        // CG was slower than a direct factorisation in every measured case;
        // it only helps where the factor would not fit in memory.
        const I64 builtin = placement_has_cholmod() ? I64{40000000} : I64{4000000};
        const I64 limit = opt.auto_cholesky_limit > 0 ? opt.auto_cholesky_limit : builtin;
        which = nu <= limit ? PlacementSolver::Cholesky : PlacementSolver::CG;
    }
    if (which == PlacementSolver::Cholesky && !placement_has_cholmod()) which = PlacementSolver::SimplicialLDLT;
    Solved sol;
    if (nu == 0) {
        sol.x = Dense::Zero(0, rhs.cols());
        sol.solver = placement_has_cholmod() ? "cholmod" : "ldlt";
#ifdef SPECTRALIGN_HAVE_CHOLMOD
    } else if (which == PlacementSolver::Cholesky) {
        Cholmod cholmod;
        sol = cholmod.solve(Q, rhs);
#endif
    } else if (which == PlacementSolver::SimplicialLDLT) {
        // 32-bit indices halve the index memory of the factor; they are safe
        // while its nonzeros stay below 2^31, which holds by a wide margin
        // for tile graphs of up to 4M unknowns (1000 x 1000 affine: ~0.4e9).
        if (nu <= I64{4000000} && Q.nonZeros() <= I64{100000000}) {
            Eigen::SparseMatrix<double, Eigen::ColMajor, int> Q32 = Q;
            SpMat().swap(Q);
            sol = solve_cholesky(Q32, rhs);
        } else {
            sol = solve_cholesky(Q, rhs);
        }
    } else if (opt.preconditioner == PlacementPreconditioner::Jacobi) {
        sol = solve_cg<Eigen::DiagonalPreconditioner<double>>(Q, rhs, opt);
    } else {
        sol = solve_cg<Eigen::IncompleteCholesky<double, Eigen::Lower, Eigen::AMDOrdering<I64>>>(Q, rhs, opt);
    }
    res.solver = sol.solver;
    res.cg_iterations = sol.iterations;
    res.cg_error = sol.error;
    res.pivot_ratio = sol.pivot_ratio;
    res.analyze_s = sol.analyze_s;
    res.factor_s = sol.factor_s;
    res.solve_s = sol.solve_s;
    SpMat().swap(Q);

    if (k == 1) {
        res.params.assign(static_cast<std::size_t>(n_tiles * 2), 0.0);
        std::vector<double> sum(static_cast<std::size_t>(nc * 2), 0.0);
        for (I64 t = 0; t < n_tiles; ++t) {
            if (freeidx[t] < 0) continue;
            for (int s = 0; s < 2; ++s) {
                res.params[t * 2 + s] = sol.x(freeidx[t], s);
                sum[comp[t] * 2 + s] += sol.x(freeidx[t], s);
            }
        }
        for (I64 t = 0; t < n_tiles; ++t) {
            if (comp[t] == fixed_comp) continue;
            for (int s = 0; s < 2; ++s) res.params[t * 2 + s] -= sum[comp[t] * 2 + s] / double(comp_size[comp[t]]);
        }
        return res;
    }

    // Affine: per component, reduce to the reference tile and the multipliers.
    const auto Y1 = sol.x.leftCols(k);
    const auto Y2 = sol.x.rightCols(k);
    std::vector<Eigen::Matrix3d> QY1(nc, Eigen::Matrix3d::Zero()), QY2(nc, Eigen::Matrix3d::Zero()),
        SY1(nc, Eigen::Matrix3d::Zero()), SY2(nc, Eigen::Matrix3d::Zero());
    for (I64 t = 0; t < n_tiles; ++t) {
        const I64 f = freeidx[t];
        if (f < 0) continue;
        const I64 c = comp[t];
        for (int a = 0; a < k; ++a) {
            const I64 u = f * k + a;
            for (int i = 0; i < k; ++i)
                for (int j = 0; j < k; ++j) {
                    QY1[c](i, j) += qor(u, i) * Y1(u, j);
                    QY2[c](i, j) += qor(u, i) * Y2(u, j);
                }
            for (int j = 0; j < k; ++j) {
                SY1[c](a, j) += Y1(u, j);
                SY2[c](a, j) += Y2(u, j);
            }
        }
    }
    // Reference-tile parameters Tr[c](s, :) and multipliers per component.
    std::vector<Eigen::Matrix<double, 2, 3>> Tr(nc), Lam(nc);
    for (I64 c = 0; c < nc; ++c) {
        Tr[c] << fr.L, 0, fr.cx, 0, fr.L, fr.cy;  // the identity in the centred basis
        Lam[c].setZero();
        if (c == fixed_comp) continue;
        Eigen::Matrix<double, 6, 6> K;
        Eigen::Matrix3d H;
        for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j) H(i, j) = qrr[(c * k + i) * k + j];
        K.block<3, 3>(0, 0) = H - QY1[c];
        K.block<3, 3>(0, 3) = Eigen::Matrix3d::Identity() - QY2[c];
        K.block<3, 3>(3, 0) = Eigen::Matrix3d::Identity() - SY1[c];
        K.block<3, 3>(3, 3) = -SY2[c];
        // Equilibrate rows and columns before the pivoted LU.
        Eigen::Matrix<double, 6, 1> rs, cs;
        for (int i = 0; i < 6; ++i) rs(i) = 1.0 / std::max(K.row(i).cwiseAbs().maxCoeff(), 1e-300);
        Eigen::Matrix<double, 6, 6> Ks = rs.asDiagonal() * K;
        for (int j = 0; j < 6; ++j) cs(j) = 1.0 / std::max(Ks.col(j).cwiseAbs().maxCoeff(), 1e-300);
        Ks = Ks * cs.asDiagonal();
        Eigen::FullPivLU<Eigen::Matrix<double, 6, 6>> lu(Ks);
        lu.setThreshold(1e-13);
        if (!lu.isInvertible())
            throw std::invalid_argument("the affine placement is ill-posed: the matches of component " +
                                        std::to_string(c) + " do not determine its tiles' transforms");
        const double n = double(comp_size[c]);
        for (int s = 0; s < 2; ++s) {
            Eigen::Matrix<double, 6, 1> r = Eigen::Matrix<double, 6, 1>::Zero();
            // sum_t A_t = n I and sum_t X_t = 0  <=>  sum_t A'_t = n L I, sum_t X'_t = n c0
            r(3 + s) = n * fr.L;
            r(5) = n * (s == 0 ? fr.cx : fr.cy);
            Eigen::Matrix<double, 6, 1> z = cs.asDiagonal() * lu.solve(rs.asDiagonal() * r);
            Tr[c].row(s) = z.head<3>().transpose();
            Lam[c].row(s) = z.tail<3>().transpose();
        }
    }
    res.params.assign(static_cast<std::size_t>(n_tiles * 6), 0.0);
    for (I64 t = 0; t < n_tiles; ++t) {
        const I64 c = comp[t];
        double* out = &res.params[t * 6];
        const I64 f = freeidx[t];
        for (int s = 0; s < 2; ++s) {
            double v[3];
            for (int a = 0; a < k; ++a) {
                if (f < 0) {
                    v[a] = Tr[c](s, a);
                } else {
                    const I64 u = f * k + a;
                    v[a] = 0;
                    for (int j = 0; j < k; ++j) v[a] -= Y1(u, j) * Tr[c](s, j) + Y2(u, j) * Lam[c](s, j);
                }
            }
            // back from the centred basis: A = A' / L, X = X' - A c0
            out[s * 3 + 0] = v[0] / fr.L;
            out[s * 3 + 1] = v[1] / fr.L;
            out[s * 3 + 2] = v[2] - out[s * 3 + 0] * fr.cx - out[s * 3 + 1] * fr.cy;
        }
    }
    return res;
}

constexpr const char* kSimilaritySingular =
    "the similarity placement system is singular: the matches do not determine the placement "
    "(too few points between some tiles, or a single point per tile pair?)";

SimilarityResult place_similarity(I64 n_tiles, I64 n_matches, const I64* t1, const I64* t2, const double* p1,
                                  const double* p2, const double* w, I64 fix) {
    check_matches(n_tiles, n_matches, t1, t2, p1, p2, w);
    if (fix < 0 || fix >= n_tiles) throw std::invalid_argument("the fixed tile index is out of range");
    I64 nc = 0;
    placement_components(n_tiles, n_matches, t1, t2, &nc);
    if (nc > 1) throw std::invalid_argument("the match graph has " + std::to_string(nc) + " disconnected components");

    const auto t_start = std::chrono::steady_clock::now();
    SimilarityResult res;
    // Normalised coordinates q = (p - c) / L keep the system well scaled; with
    // them tile t is q -> A'_t q + X'_t, A' = L s R, X' = s R c + X.
    double cx = 0, cy = 0;
    for (I64 m = 0; m < n_matches; ++m) {
        cx += p1[2 * m] + p2[2 * m];
        cy += p1[2 * m + 1] + p2[2 * m + 1];
    }
    cx /= double(2 * n_matches);
    cy /= double(2 * n_matches);
    double ss = 0;
    for (I64 m = 0; m < n_matches; ++m)
        for (const double* p : {p1 + 2 * m, p2 + 2 * m}) ss += (p[0] - cx) * (p[0] - cx) + (p[1] - cy) * (p[1] - cy);
    double L = std::sqrt(ss / double(2 * n_matches));
    if (!(L > 1e-9)) L = 1.0;
    const double fixed_u[4] = {L, 0.0, cx, cy};  // the identity in normalised form

    std::vector<I64> freeidx(static_cast<std::size_t>(n_tiles), -1);
    I64 nf = 0;
    for (I64 t = 0; t < n_tiles; ++t)
        if (t != fix) freeidx[t] = nf++;
    const I64 nu = 4 * nf;
    res.unknowns = nu;
    std::vector<Eigen::Triplet<double, I64>> trip;
    trip.reserve(static_cast<std::size_t>(n_matches) * 64);
    Eigen::VectorXd rhs = Eigen::VectorXd::Zero(nu);
    for (I64 m = 0; m < n_matches; ++m) {
        const double q1x = (p1[2 * m] - cx) / L, q1y = (p1[2 * m + 1] - cy) / L;
        const double q2x = (p2[2 * m] - cx) / L, q2y = (p2[2 * m + 1] - cy) / L;
        // Residual rows (x, then y) over (a, b, tx, ty) of tile 1, then tile 2.
        const double rows[2][8] = {{q1x, -q1y, 1, 0, -q2x, q2y, -1, 0}, {q1y, q1x, 0, 1, -q2y, -q2x, 0, -1}};
        const I64 base[2] = {freeidx[t1[m]], freeidx[t2[m]]};
        for (const auto& r : rows) {
            double fixed_part = 0;  // the fixed tile's share of the residual, a constant
            for (int side = 0; side < 2; ++side)
                if (base[side] < 0)
                    for (int k = 0; k < 4; ++k) fixed_part += r[4 * side + k] * fixed_u[k];
            for (int si = 0; si < 2; ++si) {
                if (base[si] < 0) continue;
                for (int i = 0; i < 4; ++i) {
                    const I64 row = 4 * base[si] + i;
                    rhs[row] -= w[m] * r[4 * si + i] * fixed_part;
                    for (int sj = 0; sj < 2; ++sj) {
                        if (base[sj] < 0) continue;
                        for (int j = 0; j < 4; ++j) {
                            const I64 col = 4 * base[sj] + j;
                            if (col <= row) trip.emplace_back(row, col, w[m] * r[4 * si + i] * r[4 * sj + j]);
                        }
                    }
                }
            }
        }
    }
    SpMat Q(nu, nu);
    Q.setFromTriplets(trip.begin(), trip.end());
    std::vector<Eigen::Triplet<double, I64>>().swap(trip);
    res.nonzeros = Q.nonZeros();
    res.assemble_s = seconds_since(t_start);
    Eigen::VectorXd u;
    if (nu > 0) {
        const auto t_factor = std::chrono::steady_clock::now();
        Eigen::SimplicialLDLT<SpMat, Eigen::Lower, Eigen::AMDOrdering<I64>> ldlt(Q);
        if (ldlt.info() != Eigen::Success)
            throw std::invalid_argument(kSimilaritySingular);
        const Eigen::VectorXd d = ldlt.vectorD();
        const double dmax = d.cwiseAbs().maxCoeff(), dmin = d.minCoeff();
        res.pivot_ratio = dmax > 0 ? dmin / dmax : 0.0;
        if (!(dmin > 1e-12 * dmax)) throw std::invalid_argument(kSimilaritySingular);
        res.factor_s = seconds_since(t_factor);
        const auto t_solve = std::chrono::steady_clock::now();
        u = ldlt.solve(rhs);
        res.solve_s = seconds_since(t_solve);
    }
    res.params.resize(static_cast<std::size_t>(n_tiles) * 6);
    for (I64 t = 0; t < n_tiles; ++t) {
        const double* un = freeidx[t] >= 0 ? u.data() + 4 * freeidx[t] : fixed_u;
        const double a = un[0] / L, b = un[1] / L;
        double* o = res.params.data() + 6 * t;
        o[0] = a;
        o[1] = -b;
        o[2] = un[2] - (a * cx - b * cy);
        o[3] = b;
        o[4] = a;
        o[5] = un[3] - (b * cx + a * cy);
        if (t == fix) {  // exactly the identity, not its round trip
            o[0] = o[4] = 1.0;
            o[1] = o[2] = o[3] = o[5] = 0.0;
        }
    }
    return res;
}

}  // namespace spectralign_fast

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
// (T_r, lambda) per component:
//     (Q_rr - Q_ro Y1) T_r + (I - Q_ro Y2) lambda = b_r - Q_ro y0
//     (I - C_o Y1) T_r - C_o Y2 lambda           = d - C_o y0.
// Q_oo is block diagonal over components, so the reference couplings of all
// components share right-hand-side columns. Rigid placement is translation
// invariant and b sums to zero per component, so there lambda = 0 and T_r
// can be set to 0 and the component mean subtracted afterwards (exactly the
// constrained solution). The refinement solves the same reduced system for
// the correction, with the residuals (b, d) of the current solution.
#include "spectralign_fast/place/placement.hpp"

#include <Eigen/Dense>
#include <Eigen/SparseCore>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <complex>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "place/sparse_solvers.hpp"

namespace spectralign_fast {

namespace {

using namespace placement_detail;

// The scalar type in which residuals are accumulated: double for the rigid and
// affine systems (each match's misfit is formed translation first, so the large
// model coordinates cancel exactly and the rest is O(tile size): about 1e-13 px
// of error, far below what the refinement resolves; long double took twice as
// long), complex long double (x87 extended precision) for the similarity system.
template <class S>
struct Wide {
    using type = double;
};
template <>
struct Wide<cplx> {
    using type = std::complex<long double>;
};

inline double conj_of(double x) { return x; }
inline long double conj_of(long double x) { return x; }
inline cplx conj_of(const cplx& x) { return std::conj(x); }
inline std::complex<long double> conj_of(const std::complex<long double>& x) { return std::conj(x); }
// Products without the library's complex multiplication (which calls __muldc3 /
// __mulxc3 for C99's inf/nan rules: several times slower, and all values here are finite).
inline double mul(double a, double b) { return a * b; }
inline long double mul(long double a, long double b) { return a * b; }
template <class T>
inline std::complex<T> mul(const std::complex<T>& a, const std::complex<T>& b) {
    return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}

constexpr const char* kSingular =
    "the placement system is singular or nearly so: the matches do not determine the placement "
    "(too few or collinear points between some tiles?)";
constexpr const char* kSimilaritySingular =
    "the similarity placement system is singular: the matches do not determine the placement "
    "(too few points between some tiles, or a single point per tile pair?)";

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

// Affine and similarity unknowns are solved in a centred, scaled basis (an
// exact change of variables that keeps the system well conditioned):
//   T(p) = A p + X = A' (p - c0) / L + X',  A' = L A,  X' = X + A c0,
// c0 the mean of all matched points, L their RMS distance from it.
struct Frame {
    double cx = 0, cy = 0, L = 1;
};

Frame point_frame(I64 n_matches, const double* p1, const double* p2) {
    Frame fr;
    double sx = 0, sy = 0;
    for (I64 m = 0; m < n_matches; ++m) {
        sx += p1[2 * m] + p2[2 * m];
        sy += p1[2 * m + 1] + p2[2 * m + 1];
    }
    fr.cx = sx / double(2 * n_matches);
    fr.cy = sy / double(2 * n_matches);
    double ss = 0;
    for (I64 m = 0; m < n_matches; ++m)
        for (const double* p : {p1 + 2 * m, p2 + 2 * m})
            ss += (p[0] - fr.cx) * (p[0] - fr.cx) + (p[1] - fr.cy) * (p[1] - fr.cy);
    fr.L = std::sqrt(ss / double(2 * n_matches));
    if (!(fr.L > 1e-9)) fr.L = 1.0;  // all points equal: the problem is ill-posed anyway
    return fr;
}

// Coefficients g of one point: the model-space coordinate of a row (or, for
// the similarity, x + iy) is g . u for the tile's K unknowns u. T is the
// scalar type (double for the assembly, long double for the residuals).
struct RigidJac {
    static constexpr int K = 1;
    template <class T>
    void operator()(const double*, T* g) const {
        g[0] = T(1);
    }
};
struct AffineJac {
    static constexpr int K = 3;
    Frame f;
    template <class T>
    void operator()(const double* p, T* g) const {
        g[0] = (T(p[0]) - T(f.cx)) / T(f.L);
        g[1] = (T(p[1]) - T(f.cy)) / T(f.L);
        g[2] = T(1);
    }
};
// Similarity in complex form: z = x + iy maps to alpha (z - c0) / L + tau,
// unknowns (alpha, tau) = (L s e^{i theta}, translation of c0).
struct SimilarityJac {
    static constexpr int K = 2;
    Frame f;
    template <class C>
    void operator()(const double* p, C* g) const {
        using R = typename C::value_type;
        g[0] = C((R(p[0]) - R(f.cx)) / R(f.L), (R(p[1]) - R(f.cy)) / R(f.L));
        g[1] = C(1);
    }
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


// Normal equations of E = sum_m w |g1 . u_t1 - g2 . u_t2 + c|^2 over the
// free tiles (K unknowns each; lower triangle, assembled straight into CSC),
// plus `shift` (one per tile unknown, t * K + i, or none) on the diagonal. Also
// returns each reference tile's diagonal block (qrr, K x K per reference
// slot) and the couplings of the free unknowns to their component's
// reference tile (qor, nu x K). Blocks: (a, a) += w conj(g_a) g_a',
// (a, b) -= w conj(g_a) g_b'.
template <class Scalar, class Jac>
SpMatT<Scalar> assemble_normal(I64 n_matches, const I64* t1, const I64* t2, const double* p1, const double* p2,
                               const double* w, const std::vector<I64>& freeidx, const std::vector<I64>& refslot,
                               I64 nf, I64 nref, const Jac& jac, const std::vector<double>& shift,
                               std::vector<Scalar>& qrr, DenseT<Scalar>& qor) {
    constexpr int k = Jac::K;
    const I64 nu = nf * k;
    std::vector<Scalar> diag(static_cast<std::size_t>(nf * k * k), Scalar(0));
    qrr.assign(static_cast<std::size_t>(nref * k * k), Scalar(0));
    qor = DenseT<Scalar>::Zero(nu, k);
    std::vector<I64> count(static_cast<std::size_t>(nf) + 1, 0);
    Scalar q1[k], q2[k];
    for (I64 m = 0; m < n_matches; ++m) {
        const I64 a = t1[m], bb = t2[m];
        const double wm = w[m];
        jac(p1 + 2 * m, q1);
        jac(p2 + 2 * m, q2);
        const I64 fa = freeidx[a], fb = freeidx[bb];
        Scalar* da = fa >= 0 ? &diag[fa * k * k] : &qrr[refslot[a] * k * k];
        Scalar* db = fb >= 0 ? &diag[fb * k * k] : &qrr[refslot[bb] * k * k];
        for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j) {
                da[i * k + j] += wm * mul(conj_of(q1[i]), q1[j]);
                db[i * k + j] += wm * mul(conj_of(q2[i]), q2[j]);
            }
        if (fa >= 0 && fb < 0) {
            for (int i = 0; i < k; ++i)
                for (int j = 0; j < k; ++j) qor(fa * k + i, j) -= wm * mul(conj_of(q1[i]), q2[j]);
        } else if (fb >= 0 && fa < 0) {
            for (int i = 0; i < k; ++i)
                for (int j = 0; j < k; ++j) qor(fb * k + i, j) -= wm * mul(conj_of(q2[i]), q1[j]);
        } else if (fa >= 0 && fb >= 0) {
            ++count[std::min(fa, fb)];
        }
    }
    if (!shift.empty()) {
        for (I64 t = 0; t < static_cast<I64>(freeidx.size()); ++t)
            if (freeidx[t] >= 0)
                for (int i = 0; i < k; ++i) diag[(freeidx[t] * k + i) * k + i] += shift[t * k + i];
    }

    // Group free-free matches by their lower free tile (counting sort), then
    // by the upper one, to sum each tile pair's block once.
    std::vector<I64> start(static_cast<std::size_t>(nf) + 1, 0);
    for (I64 i = 0; i < nf; ++i) start[i + 1] = start[i] + count[i];
    std::vector<I64>().swap(count);
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
    SpMatT<Scalar> Q(nu, nu);
    std::vector<I64> colnnz(static_cast<std::size_t>(nu));
    for (I64 i = 0; i < nf; ++i)
        for (int a = 0; a < k; ++a) colnnz[i * k + a] = (k - a) + k * nhi[i];
    const I64 total = std::accumulate(colnnz.begin(), colnnz.end(), I64{0});
    Q.resizeNonZeros(static_cast<Eigen::Index>(total));  // fill the compressed arrays directly
    I64* op = Q.outerIndexPtr();
    I64* ip = Q.innerIndexPtr();
    Scalar* vp = Q.valuePtr();
    op[0] = 0;
    for (I64 u = 0; u < nu; ++u) op[u + 1] = op[u] + colnnz[u];
    for (I64 i = 0; i < nf; ++i) {
        // diagonal block (lower part): entry (row a2, column a)
        for (int a = 0; a < k; ++a) {
            I64 o = op[i * k + a];
            for (int a2 = a; a2 < k; ++a2) {
                ip[o] = i * k + a2;
                vp[o] = diag[(i * k + a2) * k + a];
                ++o;
            }
        }
        // off-diagonal blocks (h, i), h > i: -sum w conj(g_h) g_i'
        I64 slot = 0;
        I64 s0 = start[i], s1 = start[i + 1];
        while (s0 < s1) {
            const I64 h = upper(order[s0]);
            std::array<Scalar, k * k> acc;
            acc.fill(Scalar(0));
            for (; s0 < s1 && upper(order[s0]) == h; ++s0) {
                const I64 m = order[s0];
                const bool first_is_h = freeidx[t1[m]] == h;
                jac(first_is_h ? p1 + 2 * m : p2 + 2 * m, q1);  // g_h
                jac(first_is_h ? p2 + 2 * m : p1 + 2 * m, q2);  // g_i
                for (int r = 0; r < k; ++r)
                    for (int c = 0; c < k; ++c) acc[r * k + c] -= w[m] * mul(conj_of(q1[r]), q2[c]);
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
    return Q;
}

// Residual of the normal equations, b - Q V, from the matches themselves in
// extended precision: -sum_m w conj(g) e_m per tile unknown, with
// e_m = g1 . V_t1 - g2 . V_t2 (+ p1 - p2 for rigid rows). V holds every
// tile's K unknowns (n_tiles * K rows) for each of its columns (the x and y
// rows, or one complex column). Returns the accumulators, (t * K + a) * ncol + s.
template <class Scalar, class Jac>
std::vector<typename Wide<Scalar>::type> match_residual(I64 n_tiles, I64 n_matches, const I64* t1, const I64* t2,
                                                        const double* p1, const double* p2, const double* w,
                                                        const Jac& jac, const DenseT<Scalar>& V, bool offset) {
    using W = typename Wide<Scalar>::type;
    constexpr int k = Jac::K;
    const int ncol = static_cast<int>(V.cols());
    std::vector<W> R(static_cast<std::size_t>(n_tiles * k * ncol), W(0));
    constexpr bool wide = !std::is_same<W, double>::value;
    W g1[k], g2[k];
    for (I64 m = 0; m < n_matches; ++m) {
        const I64 a = t1[m], b = t2[m];
        jac(p1 + 2 * m, g1);
        jac(p2 + 2 * m, g2);
        const W wm = W(w[m]);
        for (int s = 0; s < ncol; ++s) {
            W e;
            if constexpr (wide) {
                e = offset ? W(static_cast<long double>(p1[2 * m + s]) - static_cast<long double>(p2[2 * m + s]))
                           : W(0);
                for (int i = 0; i < k; ++i) e += mul(g1[i], W(V(a * k + i, s))) - mul(g2[i], W(V(b * k + i, s)));
            } else {
                // The translation (last unknown, Jacobian 1) first: neighbours' positions
                // subtract exactly; then the O(tile size) terms.
                e = V(a * k + k - 1, s) - V(b * k + k - 1, s);
                if (offset) e += p1[2 * m + s] - p2[2 * m + s];
                for (int i = k - 2; i >= 0; --i) e += g1[i] * V(a * k + i, s) - g2[i] * V(b * k + i, s);
            }
            e *= wm;
            for (int i = 0; i < k; ++i) {
                R[(a * k + i) * ncol + s] -= mul(conj_of(g1[i]), e);
                R[(b * k + i) * ncol + s] += mul(conj_of(g2[i]), e);
            }
        }
    }
    return R;
}

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
    const double lam = opt.regularize;
    if (!(std::isfinite(lam) && lam >= 0)) throw std::invalid_argument("regularize must be finite and >= 0");
    const bool reg = lam > 0;
    if (reg && !opt.affine) throw std::invalid_argument("regularize applies to affine placement only");
    if (reg && opt.prior == nullptr) throw std::invalid_argument("regularize > 0 needs the prior transforms");
    if (reg && !(std::isfinite(opt.prior_linear) && opt.prior_linear >= 0 && std::isfinite(opt.prior_centre) &&
                 opt.prior_centre >= 0))
        throw std::invalid_argument("prior_centre and prior_linear must be finite and >= 0");
    if (opt.refine_steps < 0) throw std::invalid_argument("refine_steps must be >= 0");

    const auto t_start = std::chrono::steady_clock::now();
    PlacementResult res;
    res.component = placement_components(n_tiles, n_matches, t1, t2, &res.n_components);
    const I64 nc = res.n_components;
    if (nc > 1 && !opt.separate_components)
        throw std::invalid_argument("the match graph has " + std::to_string(nc) + " disconnected components");
    const int k = opt.affine ? 3 : 1;
    const std::vector<I64>& comp = res.component;

    // Reference tile per component (none when regularised: the regulariser
    // fixes the gauge) and dense indices of the free tiles.
    std::vector<I64> ref(static_cast<std::size_t>(nc), -1), comp_size(static_cast<std::size_t>(nc), 0);
    for (I64 t = 0; t < n_tiles; ++t) {
        ++comp_size[comp[t]];
        if (ref[comp[t]] < 0) ref[comp[t]] = t;
    }
    const I64 fixed_comp = opt.fix >= 0 ? comp[opt.fix] : -1;
    if (fixed_comp >= 0) ref[fixed_comp] = opt.fix;
    if (reg) std::fill(ref.begin(), ref.end(), I64{-1});
    std::vector<I64> freeidx(static_cast<std::size_t>(n_tiles), -1);
    std::vector<I64> refslot(static_cast<std::size_t>(n_tiles), -1);
    for (I64 c = 0; c < nc; ++c)
        if (ref[c] >= 0) refslot[ref[c]] = c;
    I64 nf = 0;
    for (I64 t = 0; t < n_tiles; ++t)
        if (refslot[t] < 0) freeidx[t] = nf++;
    const I64 nu = nf * k;  // unknowns of the sparse system
    res.unknowns = nu;
    const Frame fr = k == 3 ? point_frame(n_matches, p1, p2) : Frame{};
    // A component whose gauge is the mean (affine, Lagrange constraints).
    auto mean_gauge = [&](I64 c) { return k == 3 && !reg && c != fixed_comp; };

    // Regulariser: lam * W_t on the diagonal and the prior in the centred basis.
    std::vector<double> shift;
    Dense prior;
    if (reg) {
        std::vector<double> wsum(static_cast<std::size_t>(n_tiles), 0.0);
        for (I64 m = 0; m < n_matches; ++m) {
            wsum[t1[m]] += w[m];
            wsum[t2[m]] += w[m];
        }
        shift.resize(static_cast<std::size_t>(n_tiles * 3));
        for (I64 t = 0; t < n_tiles; ++t) {
            const double wt = lam * wsum[t];
            shift[3 * t] = shift[3 * t + 1] = opt.prior_linear * wt;
            shift[3 * t + 2] = opt.prior_centre * wt;
        }
        prior.resize(n_tiles * 3, 2);
        for (I64 t = 0; t < n_tiles; ++t)
            for (int s = 0; s < 2; ++s) {
                const double* P = opt.prior + 6 * t + 3 * s;
                if (!(std::isfinite(P[0]) && std::isfinite(P[1]) && std::isfinite(P[2])))
                    throw std::invalid_argument("the prior transform of tile " + std::to_string(t) + " is not finite");
                prior(3 * t, s) = fr.L * P[0];
                prior(3 * t + 1, s) = fr.L * P[1];
                prior(3 * t + 2, s) = P[2] + P[0] * fr.cx + P[1] * fr.cy;
            }
    }

    std::vector<double> qrr;
    Dense qor;
    const I64 nref = reg ? 0 : nc;
    SpMat Q = k == 1 ? assemble_normal<double>(n_matches, t1, t2, p1, p2, w, freeidx, refslot, nf, nref, RigidJac{},
                                               shift, qrr, qor)
                     : assemble_normal<double>(n_matches, t1, t2, p1, p2, w, freeidx, refslot, nf, nref,
                                               AffineJac{fr}, shift, qrr, qor);
    res.nonzeros = Q.nonZeros();

    // Right-hand sides: rigid b; regularised lam W_t S_t; affine [Q_or, C_o'].
    Dense rhs;
    if (k == 1) {
        rhs = Dense::Zero(nu, 2);
        for (I64 m = 0; m < n_matches; ++m) {
            const I64 fa = freeidx[t1[m]], fb = freeidx[t2[m]];
            for (int s = 0; s < 2; ++s) {
                const double c = p1[2 * m + s] - p2[2 * m + s];
                if (fa >= 0) rhs(fa, s) -= w[m] * c;
                if (fb >= 0) rhs(fb, s) += w[m] * c;
            }
        }
    } else if (reg) {
        rhs.resize(nu, 2);
        for (I64 t = 0; t < n_tiles; ++t)
            for (int a = 0; a < 3; ++a)
                for (int s = 0; s < 2; ++s) rhs(freeidx[t] * 3 + a, s) = shift[3 * t + a] * prior(3 * t + a, s);
    } else {
        rhs.resize(nu, 2 * k);
        rhs.leftCols(k) = qor;
        rhs.rightCols(k).setZero();
        for (I64 i = 0; i < nf; ++i)
            for (int a = 0; a < k; ++a) rhs(i * k + a, k + a) = 1.0;
    }
    res.assemble_s = seconds_since(t_start);

    Factor<double> F(Q, resolve_solver(opt.solver, nu, opt.auto_cholesky_limit), opt, 1e-15, kSingular);
    Dense X0 = F.solve(rhs);
    rhs.resize(0, 0);

    // The solution: every tile's unknowns V (n_tiles * k x 2, columns the x
    // and y rows), the multipliers of the mean-gauge components, and what
    // the refinement needs (residuals of free rows, reference rows and
    // constraints).
    using M32 = Eigen::Matrix<double, 3, 2>;
    struct State {
        Dense V;
        std::vector<M32> lam;
        Dense Rf;
        std::vector<M32> Rr, Rc;
    };
    const M32 zero32 = M32::Zero();

    // Affine: the reduced (T_r, lambda) system of each mean-gauge component.
    struct Reduced {
        Eigen::FullPivLU<Eigen::Matrix<double, 6, 6>> lu;
        Eigen::Matrix<double, 6, 1> rs, cs;
    };
    std::vector<Reduced> red(static_cast<std::size_t>(k == 3 && !reg ? nc : 0));
    Dense Y;  // [Y1, Y2] (affine, not regularised)
    if (k == 3 && !reg) {
        Y = std::move(X0);
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
                        QY1[c](i, j) += qor(u, i) * Y(u, j);
                        QY2[c](i, j) += qor(u, i) * Y(u, 3 + j);
                    }
                for (int j = 0; j < k; ++j) {
                    SY1[c](a, j) += Y(u, j);
                    SY2[c](a, j) += Y(u, 3 + j);
                }
            }
        }
        for (I64 c = 0; c < nc; ++c) {
            if (!mean_gauge(c)) continue;
            Eigen::Matrix<double, 6, 6> K;
            Eigen::Matrix3d H;
            for (int i = 0; i < k; ++i)
                for (int j = 0; j < k; ++j) H(i, j) = qrr[(c * k + i) * k + j];
            K.block<3, 3>(0, 0) = H - QY1[c];
            K.block<3, 3>(0, 3) = Eigen::Matrix3d::Identity() - QY2[c];
            K.block<3, 3>(3, 0) = Eigen::Matrix3d::Identity() - SY1[c];
            K.block<3, 3>(3, 3) = -SY2[c];
            // Equilibrate rows and columns before the pivoted LU.
            Reduced& rd = red[c];
            for (int i = 0; i < 6; ++i) rd.rs(i) = 1.0 / std::max(K.row(i).cwiseAbs().maxCoeff(), 1e-300);
            Eigen::Matrix<double, 6, 6> Ks = rd.rs.asDiagonal() * K;
            for (int j = 0; j < 6; ++j) rd.cs(j) = 1.0 / std::max(Ks.col(j).cwiseAbs().maxCoeff(), 1e-300);
            Ks = Ks * rd.cs.asDiagonal();
            rd.lu.compute(Ks);
            rd.lu.setThreshold(1e-13);
            if (!rd.lu.isInvertible())
                throw std::invalid_argument("the affine placement is ill-posed: the matches of component " +
                                            std::to_string(c) + " do not determine its tiles' transforms");
        }
    }
    // Reduced solve: from the free-row solution z0 = Q_oo^-1 r_o and the
    // reference and constraint residuals, the reference tiles' parameters
    // and the multipliers of each mean-gauge component.
    auto reduce = [&](const Dense& z0, const std::vector<M32>& Rr, const std::vector<M32>& Rc,
                      std::vector<M32>& Tr, std::vector<M32>& Lm) {
        std::vector<M32> Qz(nc, zero32), Sz(nc, zero32);
        if (z0.size() > 0)
            for (I64 t = 0; t < n_tiles; ++t) {
                const I64 f = freeidx[t];
                if (f < 0 || !mean_gauge(comp[t])) continue;
                const I64 c = comp[t];
                for (int a = 0; a < 3; ++a) {
                    const I64 u = f * 3 + a;
                    for (int s = 0; s < 2; ++s) {
                        for (int i = 0; i < 3; ++i) Qz[c](i, s) += qor(u, i) * z0(u, s);
                        Sz[c](a, s) += z0(u, s);
                    }
                }
            }
        for (I64 c = 0; c < nc; ++c) {
            if (!mean_gauge(c)) continue;
            const Reduced& rd = red[c];
            for (int s = 0; s < 2; ++s) {
                Eigen::Matrix<double, 6, 1> r;
                r.head<3>() = Rr[c].col(s) - Qz[c].col(s);
                r.tail<3>() = Rc[c].col(s) - Sz[c].col(s);
                const Eigen::Matrix<double, 6, 1> z = rd.cs.asDiagonal() * rd.lu.solve(rd.rs.asDiagonal() * r);
                Tr[c].col(s) = z.head<3>();
                Lm[c].col(s) = z.tail<3>();
            }
        }
    };
    // Every tile's unknowns from z0 (free rows) and the reference tiles'
    // parameters / multipliers: T_o = z0 - Y1 T_r - Y2 lambda.
    auto expand = [&](const Dense* z0, const std::vector<M32>& Tr, const std::vector<M32>& Lm) {
        Dense V = Dense::Zero(n_tiles * k, 2);
        for (I64 t = 0; t < n_tiles; ++t) {
            const I64 f = freeidx[t], c = comp[t];
            for (int a = 0; a < k; ++a)
                for (int s = 0; s < 2; ++s) {
                    if (f < 0) {
                        V(t * k + a, s) = k == 3 ? Tr[c](a, s) : 0.0;
                        continue;
                    }
                    const I64 u = f * k + a;
                    double v = z0 != nullptr ? (*z0)(u, s) : 0.0;
                    if (k == 3 && !reg)
                        for (int j = 0; j < 3; ++j) v -= Y(u, j) * Tr[c](j, s) + Y(u, 3 + j) * Lm[c](j, s);
                    V(t * k + a, s) = v;
                }
        }
        return V;
    };

    State x;
    x.lam.assign(nc, zero32);
    if (k == 3 && !reg) {
        // Initial solve: b = 0, d = (n L I, n c0) per component; the fixed
        // component's reference tile is the identity.
        std::vector<M32> Tr(nc, zero32), Rc(nc, zero32), Rr(nc, zero32);
        for (I64 c = 0; c < nc; ++c) {
            M32 ident;
            ident << fr.L, 0, 0, fr.L, fr.cx, fr.cy;  // (a, s): the identity in the centred basis
            const double n = double(comp_size[c]);
            if (c == fixed_comp) Tr[c] = ident;
            else Rc[c] = n * ident;
        }
        reduce(Dense(), Rr, Rc, Tr, x.lam);
        x.V = expand(nullptr, Tr, x.lam);
    } else {
        x.V = expand(&X0, std::vector<M32>(nc, zero32), x.lam);
    }
    X0.resize(0, 0);
    res.solver = F.name;
    res.cg_iterations = F.iterations;
    res.cg_error = F.error;
    res.pivot_ratio = F.pivot_ratio;

    // Iterative refinement against the residuals of the original problem.
    auto residual = [&](State& st) {
        auto R = k == 1 ? match_residual<double>(n_tiles, n_matches, t1, t2, p1, p2, w, RigidJac{}, st.V, true)
                        : match_residual<double>(n_tiles, n_matches, t1, t2, p1, p2, w, AffineJac{fr}, st.V, false);
        std::vector<long double> sum(static_cast<std::size_t>(nc * 6), 0.0L);
        for (I64 t = 0; t < n_tiles; ++t)
            for (int a = 0; a < k; ++a)
                for (int s = 0; s < 2; ++s) {
                    auto& r = R[(t * k + a) * 2 + s];
                    if (reg)  // the pull in long double, the residual kept in double
                        r = static_cast<double>(
                            r - static_cast<long double>(shift[3 * t + a]) *
                                    (static_cast<long double>(st.V(t * 3 + a, s)) -
                                     static_cast<long double>(prior(t * 3 + a, s))));
                    if (mean_gauge(comp[t])) {
                        r -= st.lam[comp[t]](a, s);
                        sum[comp[t] * 6 + a * 2 + s] += st.V(t * 3 + a, s);
                    }
                }
        st.Rf.resize(nu, 2);
        st.Rr.assign(nc, zero32);
        st.Rc.assign(nc, zero32);
        double norm = 0;
        for (I64 t = 0; t < n_tiles; ++t) {
            const I64 f = freeidx[t], c = comp[t];
            for (int a = 0; a < k; ++a)
                for (int s = 0; s < 2; ++s) {
                    const double v = static_cast<double>(R[(t * k + a) * 2 + s]);
                    if (f >= 0) {
                        st.Rf(f * k + a, s) = v;
                        norm += v * v;
                    } else if (mean_gauge(c)) {
                        st.Rr[c](a, s) = v;
                        norm += v * v;
                    }
                }
        }
        for (I64 c = 0; c < nc; ++c) {
            if (!mean_gauge(c)) continue;
            const long double n = static_cast<long double>(comp_size[c]);
            const long double d[6] = {n * fr.L, 0.0L, 0.0L, n * fr.L, n * fr.cx, n * fr.cy};  // (a, s)
            for (int i = 0; i < 6; ++i) st.Rc[c](i / 2, i % 2) = static_cast<double>(d[i] - sum[c * 6 + i]);
        }
        return norm;
    };
    auto correct = [&](const State& st) {
        const Dense z0 = F.solve(st.Rf);
        std::vector<M32> dTr(nc, zero32), dLam(nc, zero32);
        if (k == 3 && !reg) reduce(z0, st.Rr, st.Rc, dTr, dLam);
        State y;
        y.V = st.V + expand(&z0, dTr, dLam);
        y.lam = st.lam;
        for (I64 c = 0; c < nc; ++c) y.lam[c] += dLam[c];
        return y;
    };
    if (F.direct() && opt.refine_steps > 0)
        refine(x, opt.refine_steps, residual, correct, &res.refine_steps, &res.residual_initial, &res.residual_final,
               &res.refine_s);
    res.analyze_s = F.analyze_s;
    res.factor_s = F.factor_s;
    res.solve_s = F.solve_s;
    const Dense& V = x.V;

    if (k == 1) {
        res.params.assign(static_cast<std::size_t>(n_tiles * 2), 0.0);
        std::vector<double> sum(static_cast<std::size_t>(nc * 2), 0.0);
        for (I64 t = 0; t < n_tiles; ++t) {
            if (freeidx[t] < 0) continue;
            for (int s = 0; s < 2; ++s) {
                res.params[t * 2 + s] = V(t, s);
                sum[comp[t] * 2 + s] += V(t, s);
            }
        }
        for (I64 t = 0; t < n_tiles; ++t) {
            if (comp[t] == fixed_comp) continue;
            for (int s = 0; s < 2; ++s) res.params[t * 2 + s] -= sum[comp[t] * 2 + s] / double(comp_size[comp[t]]);
        }
        return res;
    }

    res.params.assign(static_cast<std::size_t>(n_tiles * 6), 0.0);
    for (I64 t = 0; t < n_tiles; ++t) {
        double* out = &res.params[t * 6];
        for (int s = 0; s < 2; ++s) {
            // back from the centred basis: A = A' / L, X = X' - A c0
            out[s * 3 + 0] = V(t * 3, s) / fr.L;
            out[s * 3 + 1] = V(t * 3 + 1, s) / fr.L;
            out[s * 3 + 2] = V(t * 3 + 2, s) - out[s * 3 + 0] * fr.cx - out[s * 3 + 1] * fr.cy;
        }
        if (t == opt.fix && !reg) {  // exactly the identity, not its round trip
            out[0] = out[4] = 1.0;
            out[1] = out[2] = out[3] = out[5] = 0.0;
        }
    }
    if (reg) {
        // The gauge: one global affine map G per component, so that the mean
        // of A_t is I and of X_t is 0, or tile `fix` is the identity.
        std::vector<Eigen::Matrix<double, 2, 3>> mean(nc, Eigen::Matrix<double, 2, 3>::Zero());
        for (I64 t = 0; t < n_tiles; ++t)
            mean[comp[t]] += Eigen::Map<const Eigen::Matrix<double, 2, 3, Eigen::RowMajor>>(&res.params[t * 6]);
        for (I64 c = 0; c < nc; ++c) mean[c] /= double(comp_size[c]);
        if (fixed_comp >= 0)
            mean[fixed_comp] = Eigen::Map<const Eigen::Matrix<double, 2, 3, Eigen::RowMajor>>(&res.params[opt.fix * 6]);
        std::vector<Eigen::Matrix2d> Ginv(nc);
        for (I64 c = 0; c < nc; ++c) {
            const Eigen::Matrix2d M = mean[c].leftCols<2>();
            if (!(std::abs(M.determinant()) > 1e-12 * M.squaredNorm()))
                throw std::invalid_argument("the regularised affine placement is degenerate (its mean linear part "
                                            "is singular)");
            Ginv[c] = M.inverse();
        }
        for (I64 t = 0; t < n_tiles; ++t) {
            const I64 c = comp[t];
            Eigen::Map<Eigen::Matrix<double, 2, 3, Eigen::RowMajor>> T(&res.params[t * 6]);
            T.col(2) -= mean[c].col(2);
            T = (Ginv[c] * T).eval();
        }
        if (opt.fix >= 0) {
            double* out = &res.params[opt.fix * 6];
            out[0] = out[4] = 1.0;
            out[1] = out[2] = out[3] = out[5] = 0.0;
        }
    }
    return res;
}

SimilarityResult place_similarity(I64 n_tiles, I64 n_matches, const I64* t1, const I64* t2, const double* p1,
                                  const double* p2, const double* w, I64 fix, PlacementSolver solver,
                                  int refine_steps, I64 reference) {
    check_matches(n_tiles, n_matches, t1, t2, p1, p2, w);
    if (fix < 0 || fix >= n_tiles) throw std::invalid_argument("the fixed tile index is out of range");
    if (reference >= n_tiles) throw std::invalid_argument("the reference tile index is out of range");
    const I64 out_fix = fix;
    if (reference >= 0) fix = reference;
    if (refine_steps < 0) throw std::invalid_argument("refine_steps must be >= 0");
    if (solver == PlacementSolver::CG) throw std::invalid_argument("the similarity placement has no 'cg' solver");
    I64 nc = 0;
    placement_components(n_tiles, n_matches, t1, t2, &nc);
    if (nc > 1) throw std::invalid_argument("the match graph has " + std::to_string(nc) + " disconnected components");

    const auto t_start = std::chrono::steady_clock::now();
    SimilarityResult res;
    const Frame fr = point_frame(n_matches, p1, p2);
    const SimilarityJac jac{fr};
    // The identity in the centred basis: alpha = L, tau = c0.
    Eigen::Matrix<cplx, 2, 1> fixed_u(cplx(fr.L, 0.0), cplx(fr.cx, fr.cy));

    std::vector<I64> freeidx(static_cast<std::size_t>(n_tiles), -1), refslot(static_cast<std::size_t>(n_tiles), -1);
    I64 nf = 0;
    for (I64 t = 0; t < n_tiles; ++t)
        if (t != fix) freeidx[t] = nf++;
    refslot[fix] = 0;
    const I64 nu = 2 * nf;
    res.unknowns = nu;
    std::vector<cplx> qrr;
    DenseT<cplx> qor;
    SpMatT<cplx> Q = assemble_normal<cplx>(n_matches, t1, t2, p1, p2, w, freeidx, refslot, nf, 1, jac, {}, qrr, qor);
    res.nonzeros = Q.nonZeros();
    DenseT<cplx> rhs = -(qor * fixed_u);
    qor.resize(0, 0);
    res.assemble_s = seconds_since(t_start);

    PlacementOptions o;
    Factor<cplx> F(Q, solver == PlacementSolver::Auto ? PlacementSolver::Cholesky : solver, o, 1e-12,
                   kSimilaritySingular);
    const DenseT<cplx> u = F.solve(rhs);
    res.solver = F.name;
    res.pivot_ratio = F.pivot_ratio;

    struct State {
        DenseT<cplx> V, Rf;
    };
    State x;
    x.V.resize(n_tiles * 2, 1);
    for (I64 t = 0; t < n_tiles; ++t)
        for (int a = 0; a < 2; ++a) x.V(2 * t + a, 0) = freeidx[t] >= 0 ? u(2 * freeidx[t] + a, 0) : fixed_u(a);
    auto residual = [&](State& st) {
        const auto R = match_residual<cplx>(n_tiles, n_matches, t1, t2, p1, p2, w, jac, st.V, false);
        st.Rf.resize(nu, 1);
        double norm = 0;
        for (I64 t = 0; t < n_tiles; ++t) {
            if (freeidx[t] < 0) continue;
            for (int a = 0; a < 2; ++a) {
                const cplx v(static_cast<double>(R[2 * t + a].real()), static_cast<double>(R[2 * t + a].imag()));
                st.Rf(2 * freeidx[t] + a, 0) = v;
                norm += std::norm(v);
            }
        }
        return norm;
    };
    auto correct = [&](const State& st) {
        const DenseT<cplx> z = F.solve(st.Rf);
        State y;
        y.V = st.V;
        for (I64 t = 0; t < n_tiles; ++t)
            if (freeidx[t] >= 0)
                for (int a = 0; a < 2; ++a) y.V(2 * t + a, 0) += z(2 * freeidx[t] + a, 0);
        return y;
    };
    if (refine_steps > 0)
        refine(x, refine_steps, residual, correct, &res.refine_steps, &res.residual_initial, &res.residual_final,
               &res.refine_s);
    res.analyze_s = F.analyze_s;
    res.factor_s = F.factor_s;
    res.solve_s = F.solve_s;

    if (out_fix != fix) {
        // One global similarity z -> (z - tau_f) / alpha_f * L + c0 makes tile out_fix
        // the identity (in the centred basis: alpha = L, tau = c0).
        const cplx af = x.V(2 * out_fix, 0), tf = x.V(2 * out_fix + 1, 0);
        const cplx c0(fr.cx, fr.cy);
        for (I64 t = 0; t < n_tiles; ++t) {
            x.V(2 * t, 0) = x.V(2 * t, 0) / af * fr.L;
            x.V(2 * t + 1, 0) = (x.V(2 * t + 1, 0) - tf) / af * fr.L + c0;
        }
    }
    fix = out_fix;
    res.params.resize(static_cast<std::size_t>(n_tiles) * 6);
    for (I64 t = 0; t < n_tiles; ++t) {
        const cplx ab = x.V(2 * t, 0) / fr.L, tau = x.V(2 * t + 1, 0);
        const double a = ab.real(), b = ab.imag();
        double* o6 = res.params.data() + 6 * t;
        o6[0] = a;
        o6[1] = -b;
        o6[2] = tau.real() - (a * fr.cx - b * fr.cy);
        o6[3] = b;
        o6[4] = a;
        o6[5] = tau.imag() - (b * fr.cx + a * fr.cy);
        if (t == fix) {  // exactly the identity, not its round trip
            o6[0] = o6[4] = 1.0;
            o6[1] = o6[2] = o6[3] = o6[5] = 0.0;
        }
    }
    return res;
}

}  // namespace spectralign_fast

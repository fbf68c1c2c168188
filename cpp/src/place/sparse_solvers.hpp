// The sparse solvers behind placement.cpp: conjugate gradients, CHOLMOD's
// supernodal Cholesky (real or complex Hermitian), Eigen's simplicial LDLT, the
// choice between them, and iterative refinement with a kept factor. Internal:
// included by placement.cpp only.
#pragma once

#include <Eigen/Dense>
#include <Eigen/IterativeLinearSolvers>
#include <Eigen/OrderingMethods>
#include <Eigen/SparseCholesky>
#include <Eigen/SparseCore>

#ifdef SPECTRALIGN_HAVE_CHOLMOD
#include <cholmod.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "spectralign_fast/place/placement.hpp"

namespace spectralign_fast::placement_detail {

using I64 = std::int64_t;
using cplx = std::complex<double>;
template <class S>
using SpMatT = Eigen::SparseMatrix<S, Eigen::ColMajor, I64>;
using SpMat = SpMatT<double>;
template <class S>
using DenseT = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using Dense = DenseT<double>;

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class Precond>
Dense solve_cg(const SpMat& A, const Dense& rhs, const PlacementOptions& opt, int* iterations, double* error,
               double* precond_s) {
    Eigen::ConjugateGradient<SpMat, Eigen::Lower, Precond> cg;
    cg.setTolerance(opt.cg_tolerance);
    I64 maxit = opt.cg_max_iterations > 0 ? opt.cg_max_iterations
                                          : std::min<I64>(10 * A.rows() + 100, 1000000);
    cg.setMaxIterations(static_cast<Eigen::Index>(maxit));
    auto t0 = std::chrono::steady_clock::now();
    cg.compute(A);
    *precond_s += seconds_since(t0);
    if (cg.info() != Eigen::Success)
        throw std::invalid_argument("the placement system could not be preconditioned (is it ill-posed?)");
    Dense x(rhs.rows(), rhs.cols());
    for (Eigen::Index j = 0; j < rhs.cols(); ++j) {
        if (rhs.col(j).squaredNorm() == 0.0) {
            x.col(j).setZero();
            continue;
        }
        x.col(j) = cg.solve(rhs.col(j));
        *iterations = std::max(*iterations, static_cast<int>(cg.iterations()));
        *error = std::max(*error, cg.error());
        if (cg.info() != Eigen::Success)
            throw std::runtime_error("conjugate gradient did not converge in " + std::to_string(cg.iterations()) +
                                     " iterations (relative residual " + std::to_string(cg.error()) +
                                     "); use solver='cholesky' or a looser tolerance");
    }
    return x;
}

#ifdef SPECTRALIGN_HAVE_CHOLMOD
// Supernodal Cholesky (SuiteSparse CHOLMOD, dense BLAS-3 kernels on
// supernodes, nested-dissection or AMD ordering, whichever fills less):
// much faster than Eigen's scalar simplicial factorisation on large tile
// grids, especially affine with its 3x3 blocks per tile. Real symmetric or
// complex Hermitian (lower triangle stored).
template <class Scalar>
class Cholmod {
public:
    static constexpr int kXtype = std::is_same<Scalar, cplx>::value ? CHOLMOD_COMPLEX : CHOLMOD_REAL;

    Cholmod() {
        cholmod_l_start(&c_);
        c_.print = 0;                  // the solver prints nothing
        c_.error_handler = nullptr;    // errors come back through c_.status
        c_.supernodal = CHOLMOD_SUPERNODAL;
        c_.final_ll = 1;
    }
    ~Cholmod() {
        if (L_ != nullptr) cholmod_l_free_factor(&L_, &c_);
        cholmod_l_finish(&c_);
    }
    Cholmod(const Cholmod&) = delete;
    Cholmod& operator=(const Cholmod&) = delete;

    // Returns the pivot ratio; throws for a singular matrix.
    double factor(SpMatT<Scalar>& A, double min_pivot, const char* singular, double* analyze_s, double* factor_s) {
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
        As.xtype = kXtype;
        As.dtype = CHOLMOD_DOUBLE;
        As.sorted = 0;  // CHOLMOD sorts while permuting; no promise needed
        As.packed = 1;
        static_assert(sizeof(SuiteSparse_long) == sizeof(I64), "CHOLMOD's long must be 64-bit");

        auto t0 = std::chrono::steady_clock::now();
        L_ = cholmod_l_analyze(&As, &c_);
        check("analysis");
        *analyze_s = seconds_since(t0);
        t0 = std::chrono::steady_clock::now();
        cholmod_l_factorize(&As, L_, &c_);
        *factor_s = seconds_since(t0);
        if (c_.status == CHOLMOD_NOT_POSDEF || L_->minor < L_->n) throw std::invalid_argument(singular);
        check("factorisation");
        // For L L^T, rcond is (min L_ii / max L_ii)^2: the same pivot ratio
        // as min D / max D of the LDL^T path, and the same threshold.
        const double rc = cholmod_l_rcond(L_, &c_);
        if (!(rc > min_pivot)) throw std::invalid_argument(singular);
        return rc;
    }

    DenseT<Scalar> solve(const DenseT<Scalar>& rhs) {
        DenseT<Scalar> b = rhs;  // CHOLMOD reads a column-major dense view
        cholmod_dense B{};
        B.nrow = static_cast<std::size_t>(b.rows());
        B.ncol = static_cast<std::size_t>(b.cols());
        B.nzmax = B.nrow * B.ncol;
        B.d = B.nrow;
        B.x = b.data();
        B.xtype = kXtype;
        B.dtype = CHOLMOD_DOUBLE;
        cholmod_dense* X = cholmod_l_solve(CHOLMOD_A, L_, &B, &c_);
        check("solve");
        DenseT<Scalar> x = Eigen::Map<const DenseT<Scalar>>(static_cast<const Scalar*>(X->x), b.rows(), b.cols());
        cholmod_l_free_dense(&X, &c_);
        return x;
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
};
#endif

// A factorised symmetric (Hermitian) positive definite system, solved as
// often as needed (the refinement re-uses the factor). CG (real only) keeps
// the matrix and preconditions it at each solve.
template <class Scalar>
class Factor {
public:
    using Mat = SpMatT<Scalar>;
    using Mat32 = Eigen::SparseMatrix<Scalar, Eigen::ColMajor, int>;

    // A is consumed (emptied) by the direct solvers.
    Factor(Mat& A, PlacementSolver which, const PlacementOptions& opt, double min_pivot, const char* singular)
        : opt_(opt), n_(A.rows()) {
        if (n_ == 0) {
            name = placement_has_cholmod() ? "cholmod" : "ldlt";
            pivot_ratio = 1.0;
            return;
        }
        if (which == PlacementSolver::Cholesky && !placement_has_cholmod()) which = PlacementSolver::SimplicialLDLT;
#ifdef SPECTRALIGN_HAVE_CHOLMOD
        if (which == PlacementSolver::Cholesky) {
            name = "cholmod";
            chol_ = std::make_unique<Cholmod<Scalar>>();
            pivot_ratio = chol_->factor(A, min_pivot, singular, &analyze_s, &factor_s);
            Mat().swap(A);
            return;
        }
#endif
        if (which == PlacementSolver::CG) {
            if constexpr (std::is_same<Scalar, double>::value) {
                name = "cg";
                A_.swap(A);
                return;
            } else {
                throw std::invalid_argument("solver 'cg' is not available for this placement");
            }
        }
        name = "ldlt";
        // 32-bit indices halve the index memory of the factor; they are safe
        // while its nonzeros stay below 2^31, which holds by a wide margin
        // for tile graphs of up to 4M unknowns (1000 x 1000 affine: ~0.4e9).
        if (n_ <= I64{4000000} && A.nonZeros() <= I64{100000000}) {
            Mat32 A32 = A;
            Mat().swap(A);
            ldlt32_ = std::make_unique<LDLT32>();
            pivot_ratio = factor_ldlt(*ldlt32_, A32, min_pivot, singular);
        } else {
            ldlt64_ = std::make_unique<LDLT64>();
            pivot_ratio = factor_ldlt(*ldlt64_, A, min_pivot, singular);
            Mat().swap(A);
        }
    }

    DenseT<Scalar> solve(const DenseT<Scalar>& rhs) {
        const auto t0 = std::chrono::steady_clock::now();
        DenseT<Scalar> x;
        if (n_ == 0) {
            x = DenseT<Scalar>::Zero(0, rhs.cols());
#ifdef SPECTRALIGN_HAVE_CHOLMOD
        } else if (chol_) {
            x = chol_->solve(rhs);
#endif
        } else if (ldlt32_) {
            x = ldlt32_->solve(rhs);
        } else if (ldlt64_) {
            x = ldlt64_->solve(rhs);
        } else {
            if constexpr (std::is_same<Scalar, double>::value) {
                if (opt_.preconditioner == PlacementPreconditioner::Jacobi)
                    x = solve_cg<Eigen::DiagonalPreconditioner<double>>(A_, rhs, opt_, &iterations, &error,
                                                                         &factor_s);
                else
                    x = solve_cg<Eigen::IncompleteCholesky<double, Eigen::Lower, Eigen::AMDOrdering<I64>>>(
                        A_, rhs, opt_, &iterations, &error, &factor_s);
            }
        }
        solve_s += seconds_since(t0);
        return x;
    }

    bool direct() const { return name != "cg"; }

    std::string name;
    double pivot_ratio = 0, analyze_s = 0, factor_s = 0, solve_s = 0;
    int iterations = 0;
    double error = 0;

private:
    using LDLT32 = Eigen::SimplicialLDLT<Mat32, Eigen::Lower, Eigen::AMDOrdering<int>>;
    using LDLT64 = Eigen::SimplicialLDLT<Mat, Eigen::Lower, Eigen::AMDOrdering<I64>>;

    template <class Solver, class M>
    double factor_ldlt(Solver& ldlt, const M& A, double min_pivot, const char* singular) {
        auto t0 = std::chrono::steady_clock::now();
        ldlt.analyzePattern(A);
        analyze_s = seconds_since(t0);
        t0 = std::chrono::steady_clock::now();
        ldlt.factorize(A);
        factor_s = seconds_since(t0);
        if (ldlt.info() != Eigen::Success) throw std::invalid_argument(singular);
        const auto D = ldlt.vectorD().real().eval();
        const double dmax = D.maxCoeff(), dmin = D.minCoeff();
        if (!(dmin > min_pivot * dmax)) throw std::invalid_argument(singular);
        return dmin / dmax;
    }

    PlacementOptions opt_;
    I64 n_ = 0;
    Mat A_;  // cg only
    std::unique_ptr<LDLT32> ldlt32_;
    std::unique_ptr<LDLT64> ldlt64_;
#ifdef SPECTRALIGN_HAVE_CHOLMOD
    std::unique_ptr<Cholmod<Scalar>> chol_;
#endif
};

inline PlacementSolver resolve_solver(PlacementSolver which, I64 nu, I64 limit_opt) {
    if (which != PlacementSolver::Auto) return which;
    // CG was slower than a direct factorisation in every measured case;
    // it only helps where the factor would not fit in memory.
    const I64 builtin = placement_has_cholmod() ? I64{40000000} : I64{4000000};
    const I64 limit = limit_opt > 0 ? limit_opt : builtin;
    return nu <= limit ? PlacementSolver::Cholesky : PlacementSolver::CG;
}

// Iterative refinement: `residual(state)` stores the residual of the state's
// solution in it and returns its squared norm; `correct(state)` returns the
// corrected solution (solving for the correction with the same factor). A step is kept only when it
// lowers the residual; the loop stops at the first step that does not, or
// after one that gains less than a factor of 2 (the rounding floor).
template <class State, class ResidualFn, class CorrectFn>
void refine(State& x, int max_steps, ResidualFn residual, CorrectFn correct, int* steps, double* r_initial,
            double* r_final, double* seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    double r0 = residual(x);
    *r_initial = std::sqrt(r0);
    for (int it = 0; it < max_steps && r0 > 0; ++it) {
        State y = correct(x);
        const double r1 = residual(y);
        if (!(r1 < r0)) break;
        x = std::move(y);
        ++*steps;
        const bool small_gain = r1 > 0.25 * r0;  // |r| fell by less than 2x
        r0 = r1;
        if (small_gain) break;
    }
    *r_final = std::sqrt(r0);
    *seconds = seconds_since(t0);
}

}  // namespace spectralign_fast::placement_detail

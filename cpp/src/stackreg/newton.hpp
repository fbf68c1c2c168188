// Pieces shared by the stack registration (stackreg.cpp), the block
// registration (blocks.cpp) and the intensity refinement (refine.cpp): the
// small Cholesky solve, the search range and signed lags of a cyclic
// correlation, the Newton-sum row kernel and the subpixel peak of a
// correlation from its spectrum. Private to the core.
#pragma once

#include <algorithm>
#include <cmath>
#include <complex>
#include <utility>
#include <vector>

namespace spectralign_fast::stackreg_detail {

// Cholesky solve of A x = b for symmetric positive definite A (the leading
// m x m block, m <= N); false when A is not positive definite.
template <int N>
bool solve_spd(const double (&A)[N][N], const double (&b)[N], int m, double (&x)[N]) {
    double L[N][N] = {};
    for (int i = 0; i < m; ++i) {
        for (int j = 0; j <= i; ++j) {
            double s = A[i][j];
            for (int k = 0; k < j; ++k) s -= L[i][k] * L[j][k];
            if (i == j) {
                if (!(s > 0)) return false;
                L[i][i] = std::sqrt(s);
            } else {
                L[i][j] = s / L[j][j];
            }
        }
    }
    double y[N];
    for (int i = 0; i < m; ++i) {
        double s = b[i];
        for (int k = 0; k < i; ++k) s -= L[i][k] * y[k];
        y[i] = s / L[i][i];
    }
    for (int i = m - 1; i >= 0; --i) {
        double s = y[i];
        for (int k = i + 1; k < m; ++k) s -= L[k][i] * x[k];
        x[i] = s / L[i][i];
    }
    return true;
}

// Signed displacement of index i on a cyclic axis of n, thunder's rule:
// indices above n // 2 wrap to negative.
inline int signed_index(int i, int n) { return i > n / 2 ? i - n : i; }

// Index ranges [lo, hi) of an n-point cyclic axis whose signed displacement
// lies within +-limit, in ascending order (limit < 0: the whole axis).
inline std::vector<std::pair<int, int>> allowed_ranges(int n, int limit) {
    if (limit < 0 || limit >= n) return {{0, n}};
    std::vector<std::pair<int, int>> r;
    r.emplace_back(0, std::min(limit, n / 2) + 1);
    const int lo = std::max(n - limit, n / 2 + 1);
    if (lo < n) r.emplace_back(lo, n);
    return r;
}

// One spectrum row of the Newton sums: with q_k = p_k ex_k (ex carries the
// Hermitian weight and the phase along the last axis), s = (sum q, sum w q,
// sum w^2 q) as (re, im) pairs. p and ex hold n complex values as (re, im).
void newton_row(const float* p, const float* ex, const float* w, const float* w2, int n, float s[6]);

// Subpixel peak of a cyclic correlation of `shape` (rank 2 or 3) from its
// half spectrum: a parabola through each axis' neighbours of the integer
// peak, then up to 3 Newton steps on the trigonometric interpolant
// c(r) = sum_k P_k e^{i w_k r} (what an upsampled DFT samples), from its
// exact gradient and Hessian. Per-thread: it holds the phase buffers.
class PeakRefiner {
public:
    explicit PeakRefiner(const std::vector<int>& shape);

    // corr: the correlation (shape); spec: its spectrum (the last axis
    // halved); peak: the integer peak; r: its signed position, refined in
    // place (at most 1 from where it started on every axis).
    void refine(const float* corr, const std::complex<float>* spec, const int peak[3], double r[3]);

private:
    float corr_at(const float* corr, const int idx[3]) const;

    // g and the lower triangle of H of the interpolant at the phases in ex_
    // and phase_outer_.
    void accumulate(const float* spec, double g[3], double H[3][3]) const;

    std::vector<int> shape_;
    int rank_, half_;
    std::vector<float> ex_, omega_x_, omega_x2_, weight_x_;
    std::vector<std::vector<double>> omega_outer_;  // NaN marks a Nyquist bin
    std::vector<std::vector<std::complex<double>>> phase_outer_;
};

}  // namespace spectralign_fast::stackreg_detail

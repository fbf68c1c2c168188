// Field algebra for SyN: composition, fixed-point inversion, up-sampling,
// point interpolation, step normalisation and the Jacobian determinant
// (DIPY's vector_fields semantics; see fields.hpp). Rows of the grid are the
// unit of work; per-row partial sums are reduced in row order, so results
// do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "core/parallel.hpp"
#include "field_common.hpp"
#include "field_rows.hpp"

namespace spectralign_fast::reg {

using namespace fieldkit;

namespace {

template <int D>
struct RowSums {
    std::vector<double> sum, sum2, max;
    std::vector<std::int64_t> count;
    explicit RowSums(std::int64_t rows)
        : sum(static_cast<std::size_t>(rows), 0.0), sum2(static_cast<std::size_t>(rows), 0.0), max(static_cast<std::size_t>(rows), 0.0),
          count(static_cast<std::size_t>(rows), 0) {}
};

template <int D>
CompositionStats reduce_stats(const RowSums<D>& acc, std::int64_t rows);

// A row's sums and maximum of the row kernels' magnitudes in 8 interleaved
// lanes (voxel j in lane j % 8; chunks are whole multiples of 8), the lanes
// added in a fixed order at the row's end: one running sum was a chain of
// dependent additions that took a tenth of every inversion step. The order
// is fixed per row, so the results are the same for any thread count.
struct LaneSums {
    static_assert(kRowChunk % 8 == 0, "a chunk must not shift the lanes");
    double sum[8] = {}, sum2[8] = {}, max[8] = {};
    std::int64_t count = 0;

    template <bool Squares>
    void add(const double* mag, const int* inside, int n) {
        int j = 0;
        for (; j + 8 <= n; j += 8)
            for (int l = 0; l < 8; ++l) {
                const double m = mag[j + l];
                sum[l] += m;
                if constexpr (Squares) sum2[l] += m * m;
                max[l] = std::max(max[l], m);
            }
        for (; j < n; ++j) {
            const double m = mag[j];
            sum[j & 7] += m;
            if constexpr (Squares) sum2[j & 7] += m * m;
            max[j & 7] = std::max(max[j & 7], m);
        }
        for (int k = 0; k < n; ++k) count += inside[k];
    }
    static double total(const double* a) { return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); }
    double largest() const {
        double m = max[0];
        for (int l = 1; l < 8; ++l) m = std::max(m, max[l]);
        return m;
    }
};

// The row kernels index with 32 bits, and read a 2^D cell at offset 0 for
// points outside, which needs 2 voxels on every axis.
template <int D>
bool fits_row_kernels(const Grid<D>& a, const Grid<D>& b) {
    const std::int64_t lim = std::int64_t(1) << 30;
    bool ok = a.voxels() * D < lim && b.voxels() * D < lim;
    for (int k = 0; k < D; ++k) ok = ok && b.n[k] >= 2;
    return ok;
}

template <int D>
ComposeGrid3 compose_grid(const float* d2, const Grid<D>& g2, const double* B, double t) {
    ComposeGrid3 cg;
    cg.d = d2;
    cg.n0 = int(g2.n[0]);
    cg.n1 = int(g2.n[1]);
    cg.n2 = D == 3 ? int(g2.n[D - 1]) : 1;
    for (int r = 0; r < D; ++r)
        for (int c = 0; c < D; ++c) cg.B[r * D + c] = B[r * (D + 1) + c];
    cg.t = t;
    return cg;
}

// One chunk of a row (first index idx, last-axis start j0) through the D-dimensional kernel;
// with eps > 0, the inversion's damped update of u first.
template <int D>
void compose_chunk(const ComposeGrid3& cg, float* u, int n, const std::int64_t* idx, std::int64_t j0,
                   const double* spacing, float* comp, double* mag, int* inside, double eps, double maxlen) {
    if constexpr (D == 3) {
        if (eps > 0.0)
            update_compose_chunk3(cg, u, n, double(idx[0]), double(idx[1]), int(j0), spacing, comp, mag, inside, eps,
                                  maxlen);
        else
            compose_chunk3(cg, u, n, double(idx[0]), double(idx[1]), int(j0), spacing, comp, mag, inside);
    } else {
        if (eps > 0.0)
            update_compose_chunk2(cg, u, n, double(idx[0]), int(j0), spacing, comp, mag, inside, eps, maxlen);
        else
            compose_chunk2(cg, u, n, double(idx[0]), int(j0), spacing, comp, mag, inside);
    }
}

// compose_impl's pass with A = identity through the row kernels: the same
// values as the scalar loop; the per-row sums in lanes (LaneSums), so their
// last bits may differ from the scalar loop's voxel order.
template <int D>
void compose_rows(const float* d1, const Grid<D>& g1, const float* d2, const Grid<D>& g2, const double* B, double t,
                  float* comp, int threads, RowSums<D>& acc, bool with_stats) {
    const ComposeGrid3 cg = compose_grid<D>(d2, g2, B, t);
    const std::int64_t rows = g1.rows(), nlast = g1.n[D - 1];
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        g1.row_index(std::int64_t(row), idx);
        double mag[kRowChunk];
        int inside[kRowChunk];
        LaneSums lanes;
        for (std::int64_t j0 = 0; j0 < nlast; j0 += kRowChunk) {
            const int n = int(std::min<std::int64_t>(kRowChunk, nlast - j0));
            const std::int64_t v0 = std::int64_t(row) * nlast + j0;
            // Without the update d1 is only read (it may be comp: the kernel copies a chunk in first).
            compose_chunk<D>(cg, const_cast<float*>(d1) + v0 * D, n, idx, j0, nullptr, comp + v0 * D,
                             with_stats ? mag : nullptr, inside, 0.0, 0.0);
            if (with_stats) lanes.add<true>(mag, inside, n);  // 0 where outside adds nothing
        }
        acc.sum[row] = LaneSums::total(lanes.sum);
        acc.sum2[row] = LaneSums::total(lanes.sum2);
        acc.max[row] = lanes.largest();
        acc.count[row] = lanes.count;
    });
}

// DIPY's fixed-point inversion with each iteration's damped update fused
// into the next iteration's composition (one pass over the field per
// iteration): a voxel's composition reads p only at that voxel, so updating
// it just before gives invert_impl's values. q holds the last composition.
template <int D>
int invert_rows(const float* d, const Grid<D>& g, const double* W, const double* spacing, int max_iter, double tol,
                float* p, double* final_error, int threads, float* q, std::vector<double>& row_sum,
                std::vector<double>& row_max) {
    const ComposeGrid3 cg = compose_grid<D>(d, g, W, 1.0);
    const std::int64_t N = g.voxels(), rows = g.rows(), nlast = g.n[D - 1];
    int iter = 0;
    double error = 1.0 + tol, difmag = 1.0, eps_prev = 0.0, maxlen_prev = 0.0;
    // DIPY's 3-D inversion also stops once the largest residual is below 0.1.
    while (iter < max_iter && tol < error && (D == 2 || 0.1 < difmag)) {
        const double eps = iter == 0 ? 0.75 : 0.5;
        parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
            std::int64_t idx[D];
            g.row_index(std::int64_t(row), idx);
            int inside[kRowChunk];
            double mag[kRowChunk];
            LaneSums lanes;
            for (std::int64_t j0 = 0; j0 < nlast; j0 += kRowChunk) {
                const int n = int(std::min<std::int64_t>(kRowChunk, nlast - j0));
                const std::int64_t v0 = std::int64_t(row) * nlast + j0;
                compose_chunk<D>(cg, p + v0 * D, n, idx, j0, spacing, q + v0 * D, mag, inside, eps_prev,
                                 maxlen_prev);
                lanes.add<false>(mag, inside, n);  // 0 where outside adds nothing
            }
            row_sum[row] = LaneSums::total(lanes.sum);
            row_max[row] = lanes.largest();
        });
        difmag = 0.0;
        error = 0.0;
        for (std::int64_t r = 0; r < rows; ++r) {
            error += row_sum[static_cast<std::size_t>(r)];
            difmag = std::max(difmag, row_max[static_cast<std::size_t>(r)]);
        }
        eps_prev = eps;
        maxlen_prev = difmag * eps;
        error /= double(N);
        ++iter;
    }
    if (iter > 0) {  // the last iteration's update
        const std::int64_t block = 16384, blocks = (N + block - 1) / block;
        parallel_for(static_cast<std::size_t>(blocks), threads, [] { return 0; }, [&](int&, std::size_t b) {
            const std::int64_t v0 = std::int64_t(b) * block, n = std::min(N, v0 + block) - v0;
            if constexpr (D == 3)
                damped_update3(p + v0 * 3, q + v0 * 3, spacing, n, eps_prev, maxlen_prev);
            else
                damped_update2(p + v0 * 2, q + v0 * 2, spacing, n, eps_prev, maxlen_prev);
        });
    }
    if (final_error) *final_error = error;
    return iter;
}

// With `norms`, the pass also stores each voxel's |comp / spacing| there and
// the row sums and maxima are of those magnitudes (the inversion's needs).
template <int D>
CompositionStats compose_impl(const float* d1, const FieldShape& s1, const float* d2, const FieldShape& s2,
                              const double* A, const double* B, double t, float* comp, int threads,
                              RowSums<D>* rows_out = nullptr, const double* spacing = nullptr,
                              double* norms = nullptr, bool with_stats = true) {
    const Grid<D> g1(s1), g2(s2);
    const std::int64_t rows = g1.rows(), nlast = g1.n[D - 1];
    RowSums<D> local(rows_out ? 0 : rows);
    RowSums<D>& acc = rows_out ? *rows_out : local;
    const bool index_identity = is_identity(A, D);
    double inv_spacing[D] = {};  // the row kernels' reciprocals (field_rows.cpp)
    if (norms)
        for (int k = 0; k < D; ++k) inv_spacing[k] = 1.0 / spacing[k];
    if (index_identity && !norms && fits_row_kernels(g1, g2)) {
        compose_rows<D>(d1, g1, d2, g2, B, t, comp, threads, acc, with_stats);
        return with_stats ? reduce_stats(acc, rows) : CompositionStats{};
    }
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        g1.row_index(std::int64_t(row), idx);
        double sum = 0.0, sum2 = 0.0, mx = 0.0;
        std::int64_t cnt = 0;
        for (std::int64_t j = 0; j < nlast; ++j) {
            idx[D - 1] = j;
            const std::int64_t v = std::int64_t(row) * nlast + j;
            double u[D], bu[D], x[D], pi[D], val[D];
            for (int k = 0; k < D; ++k) u[k] = d1[v * D + k];
            apply<D>(B, u, 0.0, bu);
            if (index_identity) {
                for (int k = 0; k < D; ++k) pi[k] = double(idx[k]);
            } else {
                double fi[D];
                for (int k = 0; k < D; ++k) fi[k] = double(idx[k]);
                apply<D>(A, fi, 1.0, pi);
            }
            for (int k = 0; k < D; ++k) x[k] = pi[k] + bu[k];
            if (interpolate<D>(d2, g2, D, x, val)) {
                double nn = 0.0, scaled = 0.0;
                for (int k = 0; k < D; ++k) {
                    const float c = static_cast<float>(t * val[k] + u[k]);
                    comp[v * D + k] = c;
                    nn += double(c) * double(c);
                    if (norms) {
                        const double q = double(c) * inv_spacing[k];
                        scaled += q * q;
                    }
                }
                if (norms) {
                    const double m = std::sqrt(scaled);
                    norms[v] = m;
                    sum += m;
                    mx = std::max(mx, m);
                } else {
                    sum += nn;
                    sum2 += nn * nn;
                    mx = std::max(mx, nn);
                }
                ++cnt;
            } else {
                for (int k = 0; k < D; ++k) comp[v * D + k] = 0.0f;
                if (norms) norms[v] = 0.0;
            }
        }
        acc.sum[row] = sum;
        acc.sum2[row] = sum2;
        acc.max[row] = mx;
        acc.count[row] = cnt;
    });
    return with_stats ? reduce_stats(acc, rows) : CompositionStats{};
}

template <int D>
CompositionStats reduce_stats(const RowSums<D>& acc, std::int64_t rows) {
    CompositionStats st;
    double sum = 0.0, sum2 = 0.0, mx = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) {
        sum += acc.sum[std::size_t(r)];
        sum2 += acc.sum2[std::size_t(r)];
        mx = std::max(mx, acc.max[std::size_t(r)]);
        st.inside += acc.count[std::size_t(r)];
    }
    if (st.inside > 0) {
        const double mean = sum / double(st.inside);
        st.max_norm = std::sqrt(mx);
        st.mean_norm = std::sqrt(mean);
        st.std_norm = std::sqrt(std::max(0.0, sum2 / double(st.inside) - mean * mean));
    }
    return st;
}

template <int D>
int invert_impl(const float* d, const FieldShape& s, const double* W, const double* spacing, int max_iter,
                double tol, float* p, double* final_error, int threads, float* work) {
    const Grid<D> g(s);
    const std::int64_t N = g.voxels(), rows = g.rows(), nlast = g.n[D - 1];
    // Every pass writes all of q before it is read: no zero fill (a full pass over memory).
    // The caller's work buffer when given (SyN reuses one across iterations).
    std::unique_ptr<float[]> q_buf;
    if (!work) q_buf.reset(new float[static_cast<std::size_t>(N * D)]);
    float* q = work ? work : q_buf.get();
    RowSums<D> acc(rows);
    if (fits_row_kernels(g, g))
        return invert_rows<D>(d, g, W, spacing, max_iter, tol, p, final_error, threads, q, acc.sum, acc.max);
    std::vector<double> norms(static_cast<std::size_t>(N));
    double identity[(D + 1) * (D + 1)] = {};
    for (int k = 0; k <= D; ++k) identity[k * (D + 1) + k] = 1.0;
    int iter = 0;
    double error = 1.0 + tol, difmag = 1.0;
    // DIPY's 3-D inversion also stops once the largest residual is below 0.1.
    while (iter < max_iter && tol < error && (D == 2 || 0.1 < difmag)) {
        const double eps = iter == 0 ? 0.75 : 0.5;
        compose_impl<D>(p, s, d, s, identity, W, 1.0, q, threads, &acc, spacing, norms.data());
        difmag = 0.0;
        error = 0.0;
        for (std::int64_t r = 0; r < rows; ++r) {
            error += acc.sum[static_cast<std::size_t>(r)];
            difmag = std::max(difmag, acc.max[static_cast<std::size_t>(r)]);
        }
        const double maxlen = difmag * eps;
        parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
            for (std::int64_t j = 0; j < nlast; ++j) {
                const std::int64_t v = std::int64_t(row) * nlast + j;
                const double m = norms[static_cast<std::size_t>(v)];
                const double factor = m > maxlen ? eps * maxlen / m : eps;
                for (int k = 0; k < D; ++k)
                    p[v * D + k] = static_cast<float>(double(p[v * D + k]) - factor * double(q[std::size_t(v * D + k)]));
            }
        });
        error /= double(N);
        ++iter;
    }
    if (final_error) *final_error = error;
    return iter;
}

template <int D>
void resample_impl(const float* field, const FieldShape& s, const double* factors, const FieldShape& os,
                   float* out, int threads) {
    const Grid<D> g(s), go(os);
    const std::int64_t rows = go.rows(), nlast = go.n[D - 1];
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        go.row_index(std::int64_t(row), idx);
        for (std::int64_t j = 0; j < nlast; ++j) {
            idx[D - 1] = j;
            double x[D], val[D];
            for (int a = 0; a < D; ++a) x[a] = double(idx[a]) * factors[a];
            interpolate<D>(field, g, D, x, val);
            float* o = out + (std::int64_t(row) * nlast + j) * D;
            for (int k = 0; k < D; ++k) o[k] = static_cast<float>(val[k]);
        }
    });
}

template <int D>
void points_impl(const float* field, const FieldShape& s, const double* pts, std::int64_t n, double* out,
                 int threads) {
    const Grid<D> g(s);
    const std::int64_t block = 4096;
    const std::int64_t blocks = (n + block - 1) / block;
    parallel_for(static_cast<std::size_t>(blocks), threads, [] { return 0; }, [&](int&, std::size_t b) {
        const std::int64_t end = std::min(n, std::int64_t(b + 1) * block);
        for (std::int64_t i = std::int64_t(b) * block; i < end; ++i) {
            double val[D];
            interpolate<D>(field, g, D, pts + i * D, val);
            for (int k = 0; k < D; ++k) out[i * D + k] = val[k];
        }
    });
}

template <int D>
double normalize_impl(float* step, const FieldShape& s, const double* spacing, int threads) {
    const Grid<D> g(s);
    const std::int64_t rows = g.rows(), nlast = g.n[D - 1];
    std::vector<double> row_max(static_cast<std::size_t>(rows));
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        g.row_index(std::int64_t(row), idx);
        bool face = false;
        for (int a = 0; a < D - 1; ++a) face = face || idx[a] == 0 || idx[a] == g.n[a] - 1;
        double mx = 0.0;
        float* r = step + std::int64_t(row) * nlast * D;
        if (face || nlast < 3) {
            std::fill(r, r + nlast * D, 0.0f);
        } else {
            // The boundary voxels are zeroed; the others' squared norms in chunks.
            std::fill(r, r + D, 0.0f);
            std::fill(r + (nlast - 1) * D, r + nlast * D, 0.0f);
            double sq[kRowChunk];
            double lane_max[8] = {};  // max is exact in any order: 8 lanes, no chain of dependent steps
            for (std::int64_t j0 = 1; j0 < nlast - 1; j0 += kRowChunk) {
                const std::int64_t n = std::min<std::int64_t>(kRowChunk, nlast - 1 - j0);
                squared_norms(r + j0 * D, n, D, spacing, sq);
                std::int64_t j = 0;
                for (; j + 8 <= n; j += 8)
                    for (int l = 0; l < 8; ++l) lane_max[l] = std::max(lane_max[l], sq[j + l]);
                for (; j < n; ++j) mx = std::max(mx, sq[j]);
            }
            for (double m : lane_max) mx = std::max(mx, m);
        }
        row_max[row] = mx;
    });
    double nrm = 0.0;
    for (double m : row_max) nrm = std::max(nrm, m);
    nrm = std::sqrt(nrm);
    if (nrm > 0.0) {
        parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
            divide_all(step + std::int64_t(row) * nlast * D, nlast * D, nrm);
        });
    }
    return nrm;
}

template <int D>
double det_of(const double (&m)[D][D]) {
    if constexpr (D == 2) {
        return m[0][0] * m[1][1] - m[0][1] * m[1][0];
    } else {
        return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
               m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    }
}

template <int D>
void jacobian_impl(const float* field, const FieldShape& s, const double* grid2world, float* out, int threads) {
    const Grid<D> g(s);
    // d(index)/d(world): the inverse of grid2world's linear part.
    double lin[D][D], inv[D][D];
    for (int r = 0; r < D; ++r)
        for (int c = 0; c < D; ++c) lin[r][c] = grid2world[r * (D + 1) + c];
    const double det = det_of<D>(lin);
    if (!(std::abs(det) > 0.0) || !std::isfinite(det))
        throw std::invalid_argument("grid2world's linear part must be invertible");
    if constexpr (D == 2) {
        inv[0][0] = lin[1][1] / det;
        inv[0][1] = -lin[0][1] / det;
        inv[1][0] = -lin[1][0] / det;
        inv[1][1] = lin[0][0] / det;
    } else {
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 3; ++c) {
                const int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
                inv[r][c] = (lin[r1][c1] * lin[r2][c2] - lin[r1][c2] * lin[r2][c1]) / det;
            }
    }
    const std::int64_t rows = g.rows(), nlast = g.n[D - 1];
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        g.row_index(std::int64_t(row), idx);
        for (std::int64_t j = 0; j < nlast; ++j) {
            idx[D - 1] = j;
            const std::int64_t v = std::int64_t(row) * nlast + j;
            double G[D][D];  // du_k / d index_a
            for (int a = 0; a < D; ++a) {
                const std::int64_t n = g.n[a], ia = idx[a], st = g.stride[a];
                for (int k = 0; k < D; ++k) {
                    double dv = 0.0;
                    if (n >= 2) {
                        if (ia == 0)
                            dv = double(field[(v + st) * D + k]) - double(field[v * D + k]);
                        else if (ia == n - 1)
                            dv = double(field[v * D + k]) - double(field[(v - st) * D + k]);
                        else
                            dv = 0.5 * (double(field[(v + st) * D + k]) - double(field[(v - st) * D + k]));
                    }
                    G[k][a] = dv;
                }
            }
            double J[D][D];
            for (int k = 0; k < D; ++k)
                for (int b = 0; b < D; ++b) {
                    double acc = k == b ? 1.0 : 0.0;
                    for (int a = 0; a < D; ++a) acc += G[k][a] * inv[a][b];
                    J[k][b] = acc;
                }
            out[v] = static_cast<float>(det_of<D>(J));
        }
    });
}

}  // namespace

CompositionStats compose_fields(const float* d1, const FieldShape& s1, const float* d2, const FieldShape& s2,
                                const double* premult_index, const double* premult_disp, double t, float* comp,
                                int threads, bool with_stats) {
    check_shape(s1, "d1");
    check_shape(s2, "d2");
    if (s1.ndim != s2.ndim) throw std::invalid_argument("d1 and d2 must have the same dimension");
    if (comp == d2 && d1 != d2) throw std::invalid_argument("the output cannot be d2 (it is read while written)");
    check_matrix(premult_index, s1.ndim, "premult_index");
    check_matrix(premult_disp, s1.ndim, "premult_disp");
    if (!std::isfinite(t)) throw std::invalid_argument("time_scaling must be finite");
    return with_dim(s1.ndim, [&](auto dim) {
        return compose_impl<decltype(dim)::value>(d1, s1, d2, s2, premult_index, premult_disp, t, comp, threads,
                                                  nullptr, nullptr, nullptr, with_stats);
    });
}

int invert_field(const float* d, const FieldShape& s, const double* world2grid, const double* spacing, int max_iter,
                 double tolerance, float* p, double* final_error, int threads, float* work) {
    check_shape(s, "field");
    check_matrix(world2grid, s.ndim, "world2grid");
    check_spacing(spacing, s.ndim);
    if (max_iter < 0) throw std::invalid_argument("max_iter must be >= 0");
    if (!(tolerance >= 0.0)) throw std::invalid_argument("tolerance must be >= 0");
    if (p == d) throw std::invalid_argument("the inverse cannot be written over the field being inverted");
    if (work && (work == d || work == p)) throw std::invalid_argument("work must be a buffer of its own");
    return with_dim(s.ndim, [&](auto dim) {
        return invert_impl<decltype(dim)::value>(d, s, world2grid, spacing, max_iter, tolerance, p, final_error,
                                                 threads, work);
    });
}

void resample_field(const float* field, const FieldShape& s, const double* factors, const FieldShape& out_shape,
                    float* out, int threads) {
    check_shape(s, "field");
    check_shape(out_shape, "out_shape");
    if (s.ndim != out_shape.ndim) throw std::invalid_argument("out_shape must have the field's dimension");
    for (int a = 0; a < s.ndim; ++a)
        if (!std::isfinite(factors[a]) || !(factors[a] > 0.0))
            throw std::invalid_argument("factors must be finite and positive");
    with_dim(s.ndim, [&](auto dim) {
        resample_impl<decltype(dim)::value>(field, s, factors, out_shape, out, threads);
    });
}

void interpolate_field(const float* field, const FieldShape& s, const double* points, std::int64_t n, double* out,
                       int threads) {
    check_shape(s, "field");
    for (std::int64_t i = 0; i < n * s.ndim; ++i)
        if (!std::isfinite(points[i])) throw std::invalid_argument("points must be finite");
    with_dim(s.ndim, [&](auto dim) { points_impl<decltype(dim)::value>(field, s, points, n, out, threads); });
}

double normalize_step(float* step, const FieldShape& s, const double* spacing, int threads) {
    check_shape(s, "step");
    check_spacing(spacing, s.ndim);
    return with_dim(s.ndim, [&](auto dim) { return normalize_impl<decltype(dim)::value>(step, s, spacing, threads); });
}

void jacobian_determinant(const float* field, const FieldShape& s, const double* grid2world, float* out,
                          int threads) {
    check_shape(s, "field");
    check_matrix(grid2world, s.ndim, "grid2world");
    with_dim(s.ndim, [&](auto dim) { jacobian_impl<decltype(dim)::value>(field, s, grid2world, out, threads); });
}

}  // namespace spectralign_fast::reg

// DIPY's SSDMetric and EMMetric demons steps, and a Parzen-window mutual-
// information step (not in DIPY). Per-voxel work runs over rows in
// parallel; sums are taken per row (energies) or per fixed chunk of rows
// (histograms, class statistics) and reduced in order, so every result is
// bit-identical for any thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "core/parallel.hpp"
#include "gauss_newton.hpp"
#include "step_common.hpp"

namespace spectralign_fast::reg {

using namespace fieldkit;

namespace {

void check_geometry(const FieldShape& s, const double* spacing) {
    check_shape(s, "image");
    check_spacing(spacing, s.ndim);
}

double mean_square_spacing(const double* spacing, int d) {
    double s = 0.0;
    for (int a = 0; a < d; ++a) s += spacing[a] * spacing[a];
    return s / d;
}

// Rows of a grid split into a fixed number of chunks.
struct Chunks {
    std::int64_t rows, count;
    explicit Chunks(std::int64_t r) : rows(r), count(std::min<std::int64_t>(kReductionChunks, r)) {}
    std::int64_t begin(std::int64_t c) const { return rows * c / count; }
    std::int64_t end(std::int64_t c) const { return rows * (c + 1) / count; }
};

template <int D>
StepResult ssd_impl(const float* I, const float* J, const FieldShape& shape, const double* spacing,
                    const double* direction, double smooth, float* fwd, float* bwd, int threads) {
    const Grid<D> g(shape);
    const std::int64_t rows = g.rows(), nlast = g.n[D - 1];
    const bool turn = !direction_is_identity(direction, D);
    const double sx2 = mean_square_spacing(spacing, D);
    std::vector<double> row_energy(static_cast<std::size_t>(rows));
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        g.row_index(std::int64_t(row), idx);
        double energy = 0.0;
        for (std::int64_t j = 0; j < nlast; ++j) {
            idx[D - 1] = j;
            const std::int64_t v = std::int64_t(row) * nlast + j;
            double gs[D], gm[D];
            image_gradient<D>(I, g, idx, v, spacing, direction, turn, gs);
            image_gradient<D>(J, g, idx, v, spacing, direction, turn, gm);
            const double delta = double(I[v] - J[v]);  // float32 difference, as numpy
            const double d2 = delta * delta;
            energy += d2;
            auto step = [&](const double* grad, double dl, float* out) {
                double nrm2 = 0.0;
                for (int k = 0; k < D; ++k) nrm2 += grad[k] * grad[k];
                const double den = dl * dl / sx2 + nrm2;
                for (int k = 0; k < D; ++k) out[k] = den < 1e-9 ? 0.0f : static_cast<float>(dl * grad[k] / den);
            };
            step(gs, delta, fwd + v * D);
            step(gm, -delta, bwd + v * D);
        }
        row_energy[row] = energy;
    });
    StepResult res;
    for (double e : row_energy) res.forward_energy += e;
    res.backward_energy = res.forward_energy;
    smooth_field_components(fwd, shape, smooth, threads);
    smooth_field_components(bwd, shape, smooth, threads);
    return res;
}

template <int D>
std::vector<float> gradient_field(const float* img, const Grid<D>& g, const double* spacing, const double* direction,
                                  bool turn, int threads) {
    std::vector<float> out(static_cast<std::size_t>(g.voxels() * D));
    const std::int64_t rows = g.rows(), nlast = g.n[D - 1];
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        g.row_index(std::int64_t(row), idx);
        for (std::int64_t j = 0; j < nlast; ++j) {
            idx[D - 1] = j;
            const std::int64_t v = std::int64_t(row) * nlast + j;
            double gv[D];
            image_gradient<D>(img, g, idx, v, spacing, direction, turn, gv);
            for (int k = 0; k < D; ++k) out[std::size_t(v * D + k)] = static_cast<float>(gv[k]);
        }
    });
    return out;
}

template <int D>
StepResult ssd_gn_impl(const float* I, const float* J, const FieldShape& shape, const double* spacing,
                       const double* direction, double lambda, int inner_iter, int levels_below, float* fwd,
                       float* bwd, int threads) {
    const Grid<D> g(shape);
    const std::int64_t n = g.voxels();
    const bool turn = !direction_is_identity(direction, D);
    std::vector<float> delta(static_cast<std::size_t>(n));
    StepResult res;
    {
        std::vector<float> grad = gradient_field<D>(I, g, spacing, direction, turn, threads);
        for (std::int64_t v = 0; v < n; ++v) delta[std::size_t(v)] = I[v] - J[v];
        std::fill(fwd, fwd + n * D, 0.0f);
        res.forward_energy = v_cycle(levels_below, inner_iter, delta.data(), nullptr, grad.data(), nullptr, lambda,
                                     fwd, shape, threads);
    }
    std::vector<float> grad = gradient_field<D>(J, g, spacing, direction, turn, threads);
    for (std::int64_t v = 0; v < n; ++v) delta[std::size_t(v)] = J[v] - I[v];
    std::fill(bwd, bwd + n * D, 0.0f);
    res.backward_energy = v_cycle(levels_below, inner_iter, delta.data(), nullptr, grad.data(), nullptr, lambda, bwd,
                                  shape, threads);
    return res;
}

// DIPY's quantize_positive: 0 for values <= 0, else 1 + floor((v - min) /
// delta) over q_levels - 1 classes spanning the positive values.
void quantize_positive(const float* v, std::int64_t n, int q_levels, std::int32_t* out) {
    double mn = -1.0, mx = -1.0;
    for (std::int64_t i = 0; i < n; ++i)
        if (v[i] > 0) {
            if (mn < 0 || v[i] < mn) mn = v[i];
            if (v[i] > mx) mx = v[i];
        }
    const int levels = q_levels - 1;
    const double eps = 1e-8;
    const double delta = (mx - mn + eps) / levels;
    const bool binary = levels < 2 || delta < eps;
    for (std::int64_t i = 0; i < n; ++i) {
        if (!(v[i] > 0)) {
            out[i] = 0;
        } else if (binary) {
            out[i] = 1;
        } else {
            const auto l = static_cast<std::int32_t>(std::floor((double(v[i]) - mn) / delta));
            out[i] = std::min(l, levels - 1) + 1;
        }
    }
}

// Means and variances of `v` per class of `labels` inside the mask (DIPY's
// compute_masked_class_stats); variance = inf for classes of < 2 voxels.
void class_stats(const std::int32_t* mask, const float* v, const std::int32_t* labels, std::int64_t rows,
                 std::int64_t nlast, int q, std::vector<double>& means, std::vector<double>& vars, int threads) {
    const Chunks ch(rows);
    std::vector<double> psum(static_cast<std::size_t>(ch.count * q), 0.0), pvar(static_cast<std::size_t>(ch.count * q), 0.0);
    std::vector<std::int64_t> pcnt(static_cast<std::size_t>(ch.count * q), 0);
    parallel_for(static_cast<std::size_t>(ch.count), threads, [] { return 0; }, [&](int&, std::size_t c) {
        double* s = psum.data() + c * std::size_t(q);
        std::int64_t* k = pcnt.data() + c * std::size_t(q);
        for (std::int64_t i = ch.begin(std::int64_t(c)) * nlast; i < ch.end(std::int64_t(c)) * nlast; ++i)
            if (!mask || mask[i] != 0) {
                s[labels[i]] += v[i];
                ++k[labels[i]];
            }
    });
    std::vector<std::int64_t> counts(static_cast<std::size_t>(q), 0);
    means.assign(static_cast<std::size_t>(q), 0.0);
    for (std::int64_t c = 0; c < ch.count; ++c)
        for (int l = 0; l < q; ++l) {
            means[std::size_t(l)] += psum[std::size_t(c * q + l)];
            counts[std::size_t(l)] += pcnt[std::size_t(c * q + l)];
        }
    for (int l = 0; l < q; ++l)
        if (counts[std::size_t(l)] > 0) means[std::size_t(l)] /= double(counts[std::size_t(l)]);
    parallel_for(static_cast<std::size_t>(ch.count), threads, [] { return 0; }, [&](int&, std::size_t c) {
        double* s = pvar.data() + c * std::size_t(q);
        for (std::int64_t i = ch.begin(std::int64_t(c)) * nlast; i < ch.end(std::int64_t(c)) * nlast; ++i)
            if (!mask || mask[i] != 0) {
                const double d = double(v[i]) - means[std::size_t(labels[i])];
                s[labels[i]] += d * d;
            }
    });
    vars.assign(static_cast<std::size_t>(q), 0.0);
    for (std::int64_t c = 0; c < ch.count; ++c)
        for (int l = 0; l < q; ++l) vars[std::size_t(l)] += pvar[std::size_t(c * q + l)];
    for (int l = 0; l < q; ++l)
        vars[std::size_t(l)] = counts[std::size_t(l)] > 1 ? vars[std::size_t(l)] / double(counts[std::size_t(l)])
                                                          : std::numeric_limits<double>::infinity();
}

template <int D>
StepResult em_impl(const float* I, const float* J, const std::int32_t* smask, const std::int32_t* mmask,
                   const FieldShape& shape, const double* spacing, const double* direction, int q, double smooth,
                   bool double_gradient, bool gauss_newton, int inner_iter, int levels_below, float* fwd, float* bwd,
                   int threads) {
    const Grid<D> g(shape);
    const std::int64_t n = g.voxels(), rows = g.rows(), nlast = g.n[D - 1];
    const bool turn = !direction_is_identity(direction, D);
    const double sx2 = mean_square_spacing(spacing, D);
    std::vector<std::int32_t> sampling;
    const std::int32_t* mask = nullptr;
    if (smask || mmask) {
        sampling.resize(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i)
            sampling[std::size_t(i)] = (smask ? smask[i] : 1) * (mmask ? mmask[i] : 1);
        mask = sampling.data();
    }
    std::vector<std::int32_t> sq(static_cast<std::size_t>(n)), mq(static_cast<std::size_t>(n));
    quantize_positive(I, n, q, sq.data());
    quantize_positive(J, n, q, mq.data());
    // Static classes predict the moving image and moving classes the static one.
    std::vector<double> sq_means, sq_vars, mq_means, mq_vars;
    class_stats(mask, J, sq.data(), rows, nlast, q, sq_means, sq_vars, threads);
    class_stats(mask, I, mq.data(), rows, nlast, q, mq_means, mq_vars, threads);
    sq_means[0] = 0.0;
    mq_means[0] = 0.0;
    // The class means are float32 arrays in DIPY.
    std::vector<float> sq_mean_f(sq_means.begin(), sq_means.end()), mq_mean_f(mq_means.begin(), mq_means.end());
    auto means_gradient = [&](const std::vector<std::int32_t>& labels, const std::vector<float>& means,
                              const std::int64_t* idx, std::int64_t v, double* out) {
        for (int a = 0; a < D; ++a) {
            const std::int64_t nn = g.n[a], ia = idx[a], st = g.stride[a];
            auto at = [&](std::int64_t u) { return means[std::size_t(labels[std::size_t(u)])]; };
            float gv = 0.0f;
            if (nn >= 2) {
                if (ia == 0) gv = at(v + st) - at(v);
                else if (ia == nn - 1) gv = at(v) - at(v - st);
                else gv = (at(v + st) - at(v - st)) / 2.0f;
            }
            out[a] = gv;
        }
    };
    if (gauss_newton) {
        // DIPY's EM Gauss-Newton step: forward predicts the moving image from the static classes.
        std::vector<float> gs = gradient_field<D>(I, g, spacing, direction, turn, threads);
        std::vector<float> gm = gradient_field<D>(J, g, spacing, direction, turn, threads);
        if (double_gradient) {
            const std::int64_t rows_ = g.rows(), nl = g.n[D - 1];
            parallel_for_runs(static_cast<std::size_t>(rows_), threads, [] { return 0; }, [&](int&, std::size_t row) {
                std::int64_t idx[D];
                g.row_index(std::int64_t(row), idx);
                for (std::int64_t j = 0; j < nl; ++j) {
                    idx[D - 1] = j;
                    const std::int64_t v = std::int64_t(row) * nl + j;
                    double extra[D];
                    means_gradient(sq, sq_mean_f, idx, v, extra);
                    for (int k = 0; k < D; ++k) gm[std::size_t(v * D + k)] += float(extra[k]);
                    means_gradient(mq, mq_mean_f, idx, v, extra);
                    for (int k = 0; k < D; ++k) gs[std::size_t(v * D + k)] += float(extra[k]);
                }
            });
        }
        std::vector<float> delta(static_cast<std::size_t>(n)), sigma(static_cast<std::size_t>(n));
        StepResult res;
        for (std::int64_t v = 0; v < n; ++v) {
            delta[std::size_t(v)] = sq_mean_f[std::size_t(sq[std::size_t(v)])] - J[v];
            sigma[std::size_t(v)] = float(sq_vars[std::size_t(sq[std::size_t(v)])]);
        }
        std::fill(fwd, fwd + n * D, 0.0f);
        res.forward_energy = v_cycle(levels_below, inner_iter, delta.data(), sigma.data(), gs.data(), nullptr, smooth,
                                     fwd, shape, threads);
        for (std::int64_t v = 0; v < n; ++v) {
            delta[std::size_t(v)] = mq_mean_f[std::size_t(mq[std::size_t(v)])] - I[v];
            sigma[std::size_t(v)] = float(mq_vars[std::size_t(mq[std::size_t(v)])]);
        }
        std::fill(bwd, bwd + n * D, 0.0f);
        res.backward_energy = v_cycle(levels_below, inner_iter, delta.data(), sigma.data(), gm.data(), nullptr, smooth,
                                      bwd, shape, threads);
        return res;
    }
    std::vector<double> row_fe(static_cast<std::size_t>(rows)), row_be(static_cast<std::size_t>(rows));
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        g.row_index(std::int64_t(row), idx);
        double fe = 0.0, be = 0.0;
        for (std::int64_t j = 0; j < nlast; ++j) {
            idx[D - 1] = j;
            const std::int64_t v = std::int64_t(row) * nlast + j;
            double gs[D], gm[D];
            image_gradient<D>(I, g, idx, v, spacing, direction, turn, gs);
            image_gradient<D>(J, g, idx, v, spacing, direction, turn, gm);
            if (double_gradient) {
                double extra[D];
                means_gradient(sq, sq_mean_f, idx, v, extra);  // d(E[J | static class]) for the backward step
                for (int k = 0; k < D; ++k) gm[k] = float(float(gm[k]) + float(extra[k]));
                means_gradient(mq, mq_mean_f, idx, v, extra);
                for (int k = 0; k < D; ++k) gs[k] = float(float(gs[k]) + float(extra[k]));
            }
            auto step = [&](const double* grad, double delta, double sigma_sq, float* out) {
                if (std::isinf(sigma_sq)) {
                    for (int k = 0; k < D; ++k) out[k] = 0.0f;
                    return;
                }
                double nrm2 = 0.0;
                for (int k = 0; k < D; ++k) nrm2 += grad[k] * grad[k];
                if (sigma_sq == 0.0) {
                    for (int k = 0; k < D; ++k) out[k] = nrm2 == 0.0 ? 0.0f : static_cast<float>(delta * grad[k] / nrm2);
                    return;
                }
                const double den = sx2 * nrm2 + sigma_sq;
                for (int k = 0; k < D; ++k) out[k] = static_cast<float>(sx2 * delta * grad[k] / den);
            };
            const std::size_t uv = std::size_t(v);
            const double df = double(I[v] - mq_mean_f[std::size_t(mq[uv])]);
            const double db = double(J[v] - sq_mean_f[std::size_t(sq[uv])]);
            fe += df * df;
            be += db * db;
            step(gs, df, double(float(mq_vars[std::size_t(mq[uv])])), fwd + v * D);
            step(gm, db, double(float(sq_vars[std::size_t(sq[uv])])), bwd + v * D);
        }
        row_fe[row] = fe;
        row_be[row] = be;
    });
    StepResult res;
    for (std::int64_t r = 0; r < rows; ++r) {
        res.forward_energy += row_fe[std::size_t(r)];
        res.backward_energy += row_be[std::size_t(r)];
    }
    smooth_field_components(fwd, shape, smooth, threads);
    smooth_field_components(bwd, shape, smooth, threads);
    return res;
}

// Cubic B-spline and its derivative.
inline double bspline3(double x) {
    x = std::abs(x);
    if (x < 1.0) return (4.0 - 6.0 * x * x + 3.0 * x * x * x) / 6.0;
    if (x < 2.0) {
        const double t = 2.0 - x;
        return t * t * t / 6.0;
    }
    return 0.0;
}
inline double bspline3_derivative(double x) {
    const double sgn = x < 0 ? -1.0 : 1.0;
    x = std::abs(x);
    if (x < 1.0) return sgn * (-2.0 * x + 1.5 * x * x);
    if (x < 2.0) {
        const double t = 2.0 - x;
        return sgn * (-0.5 * t * t);
    }
    return 0.0;
}

// Bin coordinates: [min, max] onto [2, nbins - 2] (two bins of padding so the
// cubic windows of the extreme values stay inside the histogram).
struct Binning {
    double lo = 0.0, scale = 0.0;
    int nbins = 32;
    Binning(const float* v, std::int64_t n, int bins) : nbins(bins) {
        double mn = std::numeric_limits<double>::infinity(), mx = -mn;
        for (std::int64_t i = 0; i < n; ++i) {
            mn = std::min(mn, double(v[i]));
            mx = std::max(mx, double(v[i]));
        }
        lo = mn;
        scale = mx > mn ? double(bins - 4) / (mx - mn) : 0.0;
    }
    double position(float v) const { return 2.0 + (double(v) - lo) * scale; }
};

template <int D>
StepResult mi_impl(const float* I, const float* J, const FieldShape& shape, int nbins, const double* spacing,
                   const double* direction, double sigma, float* fwd, float* bwd, int threads) {
    const Grid<D> g(shape);
    const std::int64_t n = g.voxels(), rows = g.rows(), nlast = g.n[D - 1];
    const bool turn = !direction_is_identity(direction, D);
    const Binning bs(I, n, nbins), bm(J, n, nbins);
    const std::size_t nb2 = std::size_t(nbins) * std::size_t(nbins);
    const Chunks ch(rows);
    std::vector<double> partial(static_cast<std::size_t>(ch.count) * nb2, 0.0);
    parallel_for(static_cast<std::size_t>(ch.count), threads, [] { return 0; }, [&](int&, std::size_t c) {
        double* h = partial.data() + c * nb2;
        for (std::int64_t v = ch.begin(std::int64_t(c)) * nlast; v < ch.end(std::int64_t(c)) * nlast; ++v) {
            const double ps = bs.position(I[v]), pm = bm.position(J[v]);
            const int a0 = int(std::floor(ps)) - 1, b0 = int(std::floor(pm)) - 1;
            const int b_lo = std::max(0, b0), b_hi = std::min(nbins, b0 + 4);
            double wb[4];  // the moving value's window, made once (not once per a)
            for (int b = b_lo; b < b_hi; ++b) wb[b - b0] = bspline3(double(b) - pm);
            for (int a = std::max(0, a0); a < std::min(nbins, a0 + 4); ++a) {
                const double wa = bspline3(double(a) - ps);
                double* hrow = h + std::size_t(a) * std::size_t(nbins);
                for (int b = b_lo; b < b_hi; ++b) hrow[b] += wa * wb[b - b0];
            }
        }
    });
    std::vector<double> P(nb2, 0.0), Ps(static_cast<std::size_t>(nbins), 0.0), Pm(static_cast<std::size_t>(nbins), 0.0);
    for (std::int64_t c = 0; c < ch.count; ++c)
        for (std::size_t e = 0; e < nb2; ++e) P[e] += partial[std::size_t(c) * nb2 + e];
    double total = 0.0;
    for (double p : P) total += p;
    for (double& p : P) p /= total;
    for (int a = 0; a < nbins; ++a)
        for (int b = 0; b < nbins; ++b) {
            Ps[std::size_t(a)] += P[std::size_t(a * nbins + b)];
            Pm[std::size_t(b)] += P[std::size_t(a * nbins + b)];
        }
    // dMI/dP(a, b) up to a constant that cancels (the histogram's mass is fixed).
    std::vector<double> L(nb2, 0.0);
    double mi = 0.0;
    for (int a = 0; a < nbins; ++a)
        for (int b = 0; b < nbins; ++b) {
            const double p = P[std::size_t(a * nbins + b)];
            if (p > 0.0) {
                const double l = std::log(p / (Ps[std::size_t(a)] * Pm[std::size_t(b)]));
                L[std::size_t(a * nbins + b)] = l;
                mi += p * l;
            }
        }
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        g.row_index(std::int64_t(row), idx);
        for (std::int64_t j = 0; j < nlast; ++j) {
            idx[D - 1] = j;
            const std::int64_t v = std::int64_t(row) * nlast + j;
            const double ps = bs.position(I[v]), pm = bm.position(J[v]);
            const int a0 = int(std::floor(ps)) - 1, b0 = int(std::floor(pm)) - 1;
            double ds = 0.0, dm = 0.0;  // dMI / d(value) (times the voxel count)
            const int b_lo = std::max(0, b0), b_hi = std::min(nbins, b0 + 4);
            double wb[4], db[4];  // the moving value's window and its derivative, made once
            for (int b = b_lo; b < b_hi; ++b) {
                wb[b - b0] = bspline3(double(b) - pm);
                db[b - b0] = -bspline3_derivative(double(b) - pm) * bm.scale;
            }
            for (int a = std::max(0, a0); a < std::min(nbins, a0 + 4); ++a) {
                const double wa = bspline3(double(a) - ps), da = -bspline3_derivative(double(a) - ps) * bs.scale;
                const double* lrow = L.data() + std::size_t(a * nbins);
                for (int b = b_lo; b < b_hi; ++b) {
                    const double l = lrow[b];
                    ds += da * wb[b - b0] * l;
                    dm += wa * db[b - b0] * l;
                }
            }
            double gs[D], gm[D];
            image_gradient<D>(I, g, idx, v, spacing, direction, turn, gs);
            image_gradient<D>(J, g, idx, v, spacing, direction, turn, gm);
            for (int k = 0; k < D; ++k) {
                fwd[v * D + k] = static_cast<float>(-ds * gs[k]);
                bwd[v * D + k] = static_cast<float>(-dm * gm[k]);
            }
        }
    });
    StepResult res;
    res.forward_energy = res.backward_energy = -mi;
    smooth_field_components(fwd, shape, sigma, threads);
    smooth_field_components(bwd, shape, sigma, threads);
    return res;
}

}  // namespace

StepResult ssd_demons_steps(const float* static_img, const float* moving_img, const FieldShape& s,
                            const double* spacing, const double* direction, double smooth, float* forward,
                            float* backward, int threads) {
    check_geometry(s, spacing);
    return with_dim(s.ndim, [&](auto dim) {
        return ssd_impl<decltype(dim)::value>(static_img, moving_img, s, spacing, direction, smooth, forward,
                                              backward, threads);
    });
}

StepResult ssd_gauss_newton_steps(const float* static_img, const float* moving_img, const FieldShape& s,
                                  const double* spacing, const double* direction, double smooth, int inner_iter,
                                  int levels_below, float* forward, float* backward, int threads) {
    check_geometry(s, spacing);
    if (!std::isfinite(smooth) || !(smooth > 0.0)) throw std::invalid_argument("smooth must be finite and > 0");
    if (inner_iter < 1) throw std::invalid_argument("inner_iter must be >= 1");
    if (levels_below < 0 || levels_below > 30) throw std::invalid_argument("levels_below must be in [0, 30]");
    return with_dim(s.ndim, [&](auto dim) {
        return ssd_gn_impl<decltype(dim)::value>(static_img, moving_img, s, spacing, direction, smooth, inner_iter,
                                                 levels_below, forward, backward, threads);
    });
}

StepResult em_steps(const float* static_img, const float* moving_img, const std::int32_t* static_mask,
                    const std::int32_t* moving_mask, const FieldShape& s, const double* spacing,
                    const double* direction, int q_levels, double smooth, bool double_gradient, bool gauss_newton,
                    int inner_iter, int levels_below, float* forward, float* backward, int threads) {
    check_geometry(s, spacing);
    if (q_levels < 2) throw std::invalid_argument("q_levels must be at least 2");
    if (!std::isfinite(smooth) || !(smooth > 0.0)) throw std::invalid_argument("smooth must be finite and > 0");
    if (inner_iter < 1) throw std::invalid_argument("inner_iter must be >= 1");
    if (levels_below < 0 || levels_below > 30) throw std::invalid_argument("levels_below must be in [0, 30]");
    return with_dim(s.ndim, [&](auto dim) {
        return em_impl<decltype(dim)::value>(static_img, moving_img, static_mask, moving_mask, s, spacing,
                                             direction, q_levels, smooth, double_gradient, gauss_newton, inner_iter,
                                             levels_below, forward, backward, threads);
    });
}

StepResult mi_steps(const float* static_img, const float* moving_img, const FieldShape& s, int nbins,
                    const double* spacing, const double* direction, double sigma_diff, float* forward,
                    float* backward, int threads) {
    check_geometry(s, spacing);
    if (nbins < 8 || nbins > 1024) throw std::invalid_argument("nbins must be in [8, 1024]");
    return with_dim(s.ndim, [&](auto dim) {
        return mi_impl<decltype(dim)::value>(static_img, moving_img, s, nbins, spacing, direction, sigma_diff,
                                             forward, backward, threads);
    });
}

}  // namespace spectralign_fast::reg

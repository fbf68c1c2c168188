// The Gauss-Newton step of DIPY's SSD and EM metrics: a V-cycle of
// Gauss-Seidel sweeps on the linearised energy with a membrane regulariser.
// Sweeps run in red-black order (voxels of one parity of the index sum
// first, then the other), so every update of one colour reads only the
// other colour: rows run in parallel and the result does not depend on the
// thread count. Coarse grids average 2^d blocks; the coarse correction is
// brought back by zero-padded d-linear up-sampling (DIPY's resample).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.hpp"
#include "field_common.hpp"
#include "gauss_newton.hpp"

namespace spectralign_fast::reg::fieldkit {

namespace {

template <int D>
struct Level {
    const Grid<D>& g;
    const float* delta;
    const float* sigma;  // nullable: 1
    const float* grad;
    const float* target;  // nullable: delta * grad
    double lambda;
};

template <int D>
inline void neighbour_sum(const Grid<D>& g, const float* disp, const std::int64_t* idx, std::int64_t v, double* y,
                          int& nn, const float* centre = nullptr) {
    for (int k = 0; k < D; ++k) y[k] = 0.0;
    nn = 0;
    for (int a = 0; a < D; ++a)
        for (int side = -1; side <= 1; side += 2) {
            const std::int64_t i = idx[a] + side;
            if (i < 0 || i >= g.n[a]) continue;
            const float* o = disp + (v + side * g.stride[a]) * D;
            ++nn;
            for (int k = 0; k < D; ++k) y[k] += centre ? double(centre[k]) - double(o[k]) : double(o[k]);
        }
}

template <int D>
inline void rhs(const Level<D>& L, std::int64_t v, double* b) {
    for (int k = 0; k < D; ++k)
        b[k] = L.target ? double(L.target[v * D + k]) : double(L.delta[v]) * double(L.grad[v * D + k]);
}

template <int D>
void sweep(const Level<D>& L, float* disp, int threads) {
    const Grid<D>& g = L.g;
    const std::int64_t rows = g.rows(), nlast = g.n[D - 1];
    for (int colour = 0; colour < 2; ++colour) {
        parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
            std::int64_t idx[D];
            g.row_index(std::int64_t(row), idx);
            std::int64_t parity = 0;
            for (int a = 0; a < D - 1; ++a) parity += idx[a];
            for (std::int64_t j = (colour + parity) & 1; j < nlast; j += 2) {
                idx[D - 1] = j;
                const std::int64_t v = std::int64_t(row) * nlast + j;
                double y[D], b[D], gv[D];
                int nn = 0;
                neighbour_sum<D>(g, disp, idx, v, y, nn);
                float* d = disp + v * D;
                const double sigma = L.sigma ? double(L.sigma[v]) : 1.0;
                if (std::isinf(sigma)) {
                    for (int k = 0; k < D; ++k) d[k] = nn ? static_cast<float>(y[k] / nn) : 0.0f;
                    continue;
                }
                rhs<D>(L, v, b);
                double nrm2 = 0.0;
                for (int k = 0; k < D; ++k) {
                    gv[k] = L.grad[v * D + k];
                    nrm2 += gv[k] * gv[k];
                }
                const double tau = sigma * L.lambda * nn;
                if (sigma < 1e-9 || tau < 1e-9) {
                    for (int k = 0; k < D; ++k) d[k] = nrm2 < 1e-9 ? 0.0f : static_cast<float>(b[k] / nrm2);
                    continue;
                }
                // (g g^T + tau I)^-1 y by Sherman-Morrison.
                double gy = 0.0;
                for (int k = 0; k < D; ++k) {
                    y[k] = b[k] + sigma * L.lambda * y[k];
                    gy += gv[k] * y[k];
                }
                const double c = gy / (tau + nrm2);
                for (int k = 0; k < D; ++k) d[k] = static_cast<float>((y[k] - gv[k] * c) / tau);
            }
        });
    }
}

template <int D>
void residual(const Level<D>& L, const float* disp, float* out, int threads) {
    const Grid<D>& g = L.g;
    const std::int64_t rows = g.rows(), nlast = g.n[D - 1];
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        g.row_index(std::int64_t(row), idx);
        for (std::int64_t j = 0; j < nlast; ++j) {
            idx[D - 1] = j;
            const std::int64_t v = std::int64_t(row) * nlast + j;
            double y[D], b[D];
            int nn = 0;
            const float* d = disp + v * D;
            neighbour_sum<D>(g, disp, idx, v, y, nn, d);
            const double sigma = L.sigma ? double(L.sigma[v]) : 1.0;
            float* o = out + v * D;
            if (std::isinf(sigma)) {
                for (int k = 0; k < D; ++k) o[k] = static_cast<float>(-L.lambda * y[k]);
                continue;
            }
            rhs<D>(L, v, b);
            double dot = 0.0;
            for (int k = 0; k < D; ++k) dot += double(L.grad[v * D + k]) * double(d[k]);
            for (int k = 0; k < D; ++k)
                o[k] = static_cast<float>(b[k] - (double(L.grad[v * D + k]) * dot + sigma * L.lambda * y[k]));
        }
    });
}

// Averages of 2^D blocks (the last block of an odd axis is smaller).
template <int D>
void downsample(const float* in, const Grid<D>& g, int comps, float* out, const Grid<D>& h, int threads) {
    const std::int64_t rows = h.rows(), nlast = h.n[D - 1];
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        h.row_index(std::int64_t(row), idx);
        for (std::int64_t j = 0; j < nlast; ++j) {
            idx[D - 1] = j;
            double acc[D] = {};
            int cnt = 0;
            for (int corner = 0; corner < (1 << D); ++corner) {
                std::int64_t off = 0;
                bool ok = true;
                for (int a = 0; a < D; ++a) {
                    const std::int64_t i = 2 * idx[a] + ((corner >> a) & 1);
                    if (i >= g.n[a]) {
                        ok = false;
                        break;
                    }
                    off += i * g.stride[a];
                }
                if (!ok) continue;
                ++cnt;
                for (int k = 0; k < comps; ++k) acc[k] += in[off * comps + k];
            }
            const std::int64_t v = std::int64_t(row) * nlast + j;
            for (int k = 0; k < comps; ++k) out[v * comps + k] = static_cast<float>(acc[k] / cnt);
        }
    });
}

template <int D>
double v_cycle_impl(int n, int k, const float* delta, const float* sigma, const float* grad, const float* target,
                    double lambda, float* disp, const FieldShape& s, int threads) {
    const Grid<D> g(s);
    const Level<D> L{g, delta, sigma, grad, target, lambda};
    for (int it = 0; it < k; ++it) sweep<D>(L, disp, threads);
    double energy = 0.0;
    auto total_energy = [&] {
        double e = 0.0;
        for (std::int64_t v = 0; v < g.voxels(); ++v) e += double(delta[v]) * double(delta[v]);
        return e;
    };
    if (n <= 0) return total_energy();
    FieldShape hs = s;
    for (int a = 0; a < D; ++a) hs.shape[a] = (s.shape[a] + 1) / 2;
    const Grid<D> h(hs);
    const std::int64_t N = g.voxels(), M = h.voxels();
    std::vector<float> res(static_cast<std::size_t>(N * D));
    residual<D>(L, disp, res.data(), threads);
    std::vector<float> sub_res(static_cast<std::size_t>(M * D)), sub_delta(static_cast<std::size_t>(M)), sub_grad(static_cast<std::size_t>(M * D)),
        sub_disp(static_cast<std::size_t>(M * D), 0.0f), sub_sigma;
    downsample<D>(res.data(), g, D, sub_res.data(), h, threads);
    res.clear();
    res.shrink_to_fit();
    downsample<D>(delta, g, 1, sub_delta.data(), h, threads);
    downsample<D>(grad, g, D, sub_grad.data(), h, threads);
    if (sigma) {
        sub_sigma.resize(static_cast<std::size_t>(M));
        downsample<D>(sigma, g, 1, sub_sigma.data(), h, threads);
    }
    v_cycle_impl<D>(n - 1, k, sub_delta.data(), sigma ? sub_sigma.data() : nullptr, sub_grad.data(), sub_res.data(),
                    lambda * 0.25, sub_disp.data(), hs, threads);
    std::vector<float> up(static_cast<std::size_t>(N * D));
    const double half[3] = {0.5, 0.5, 0.5};
    resample_field(sub_disp.data(), hs, half, s, up.data(), threads);
    for (std::int64_t e = 0; e < N * D; ++e) disp[e] += up[std::size_t(e)];
    for (int it = 0; it < k; ++it) sweep<D>(L, disp, threads);
    energy = total_energy();
    return energy;
}

}  // namespace

double v_cycle(int n, int k, const float* delta, const float* sigma_sq, const float* grad, const float* target,
               double lambda, float* disp, const FieldShape& s, int threads) {
    return with_dim(s.ndim, [&](auto dim) {
        return v_cycle_impl<decltype(dim)::value>(n, k, delta, sigma_sq, grad, target, lambda, disp, s, threads);
    });
}

}  // namespace spectralign_fast::reg::fieldkit

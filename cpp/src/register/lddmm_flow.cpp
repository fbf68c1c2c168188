// STalign's point flows, image sampling and rasterizer. Every output point
// depends only on its own input, so blocks of points run in parallel with
// identical bits for any thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "core/parallel.hpp"
#include "lddmm_common.hpp"

namespace spectralign_fast::reg {

using namespace lddmmkit;

namespace {

constexpr std::int64_t block = 4096;

std::size_t blocks_of(std::int64_t n) { return static_cast<std::size_t>((n + block - 1) / block); }

template <int D>
void sample_impl(const double* image, int channels, const PhysGrid& pg, const double* points, std::int64_t n,
                 Padding padding, double* out, int threads) {
    const Grid<D> g(pg);
    const std::int64_t np = g.points();
    parallel_for(blocks_of(n), threads, [] { return 0; }, [&](int&, std::size_t b) {
        const std::int64_t lo = std::int64_t(b) * block, hi = std::min(n, lo + block);
        Stencil<D> s;
        for (std::int64_t i = lo; i < hi; ++i) {
            if (padding == Padding::border)
                stencil_border<D, false>(g, points + i * D, s);
            else
                stencil_zeros<D, false>(g, points + i * D, s);
            for (int c = 0; c < channels; ++c) {
                double acc = 0.0;
                if (s.any) {
                    const double* img = image + c * np;
                    for (int k = 0; k < Stencil<D>::K; ++k) acc += s.w[k] * img[s.off[k]];
                }
                out[c * n + i] = acc;
            }
        }
    });
}

template <int D>
void flow_impl(const double* v, int nt, const PhysGrid& pg, const double* M, double* points, std::int64_t n,
               bool forward, int threads) {
    const Grid<D> g(pg);
    const std::int64_t vstep = g.points() * D;
    const double dt = nt > 0 ? 1.0 / nt : 0.0;
    auto apply_matrix = [&](double* p) {
        if (!M) return;
        double q[D];
        fieldkit::apply<D>(M, p, 1.0, q);
        std::copy(q, q + D, p);
    };
    parallel_for(blocks_of(n), threads, [] { return 0; }, [&](int&, std::size_t b) {
        const std::int64_t lo = std::int64_t(b) * block, hi = std::min(n, lo + block);
        Stencil<D> s;
        double u[D];
        for (std::int64_t i = lo; i < hi; ++i) {
            double* p = points + i * D;
            if (!forward) apply_matrix(p);
            for (int step = 0; step < nt; ++step) {
                const int t = forward ? step : nt - 1 - step;
                stencil_zeros<D, false>(g, p, s);
                gather<D>(s, v + t * vstep, D, u);
                for (int a = 0; a < D; ++a) p[a] += (forward ? dt : -dt) * u[a];
            }
            if (forward) apply_matrix(p);
        }
    });
}

}  // namespace

void lddmm_sample(const double* image, int channels, const PhysGrid& grid, const double* points, std::int64_t n,
                  Padding padding, double* out, int threads) {
    check_grid(grid, "the image grid", padding == Padding::border ? 2 : 1);
    if (channels < 1) throw std::invalid_argument("the image needs at least one channel");
    dispatch_dim(grid.ndim, [&](auto dim) {
        sample_impl<decltype(dim)::value>(image, channels, grid, points, n, padding, out, threads);
    });
}

void lddmm_flow_points(const double* v, int nt, const PhysGrid& vgrid, const double* M, double* points,
                       std::int64_t n, bool forward, int threads) {
    check_grid(vgrid, "the velocity grid", 1);
    if (nt < 0) throw std::invalid_argument("nt must be >= 0");
    dispatch_dim(vgrid.ndim, [&](auto dim) {
        flow_impl<decltype(dim)::value>(v, nt, vgrid, M, points, n, forward, threads);
    });
}

void rasterize_points(const double* x, const double* y, const double* g, std::int64_t n, const double* X,
                      std::int64_t nx, const double* Y, std::int64_t ny, double dx, const double* blur, int nb,
                      bool wavelet_magnitude, double* out, int threads) {
    if (nx < 1 || ny < 1 || nb < 1) throw std::invalid_argument("rasterize needs a non-empty grid and blur");
    if (!(dx > 0.0)) throw std::invalid_argument("dx must be positive");
    double maxblur = blur[0];
    for (int b = 1; b < nb; ++b) maxblur = std::max(maxblur, blur[b]);
    const std::int64_t r = static_cast<std::int64_t>(std::ceil(maxblur * 4.0));
    // Each point's window (clamped) and, per blur, its kernel's sum over it.
    std::vector<std::int64_t> win(static_cast<std::size_t>(n) * 4);
    std::vector<double> norm(static_cast<std::size_t>(n) * nb);
    auto clampi = [](std::int64_t v, std::int64_t hi) { return std::min(std::max(v, std::int64_t(0)), hi - 1); };
    parallel_for(blocks_of(n), threads, [] { return 0; }, [&](int&, std::size_t bk) {
        const std::int64_t lo = std::int64_t(bk) * block, hi = std::min(n, lo + block);
        for (std::int64_t i = lo; i < hi; ++i) {
            // np.round: halves to even (the default rounding mode).
            const auto col = static_cast<std::int64_t>(std::nearbyint((x[i] - X[0]) / dx));
            const auto row = static_cast<std::int64_t>(std::nearbyint((y[i] - Y[0]) / dx));
            std::int64_t* w = &win[std::size_t(i) * 4];
            w[0] = clampi(row - r, ny);
            w[1] = clampi(row + r, ny);
            w[2] = clampi(col - r, nx);
            w[3] = clampi(col + r, nx);
            for (int b = 0; b < nb; ++b) {
                const double s = dx * blur[b] * 2.0, den = 2.0 * s * s;
                double sum = 0.0;
                for (std::int64_t rr = w[0]; rr <= w[1]; ++rr)
                    for (std::int64_t cc = w[2]; cc <= w[3]; ++cc) {
                        const double ddx = X[cc] - x[i], ddy = Y[rr] - y[i];
                        sum += std::exp(-(ddx * ddx + ddy * ddy) / den);
                    }
                norm[std::size_t(i) * nb + b] = g[i] / sum;
            }
        }
    });
    // Bands of rows in parallel; within a band the points add in input order.
    constexpr std::int64_t band = 16;
    const std::int64_t nbands = (ny + band - 1) / band;
    std::vector<std::vector<std::int64_t>> members(static_cast<std::size_t>(nbands));
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t* w = &win[std::size_t(i) * 4];
        for (std::int64_t bb = w[0] / band; bb <= w[1] / band; ++bb) members[std::size_t(bb)].push_back(i);
    }
    std::fill(out, out + nb * nx * ny, 0.0);
    parallel_for(static_cast<std::size_t>(nbands), threads, [&] { return std::vector<double>(std::size_t(nb)); },
                 [&](std::vector<double>& k, std::size_t bb) {
        const std::int64_t r0 = std::int64_t(bb) * band, r1 = std::min(ny, r0 + band) - 1;
        for (const std::int64_t i : members[bb]) {
            const std::int64_t* w = &win[std::size_t(i) * 4];
            for (std::int64_t rr = std::max(w[0], r0); rr <= std::min(w[1], r1); ++rr)
                for (std::int64_t cc = w[2]; cc <= w[3]; ++cc) {
                    const double ddx = X[cc] - x[i], ddy = Y[rr] - y[i];
                    for (int b = 0; b < nb; ++b) {
                        const double s = dx * blur[b] * 2.0;
                        k[std::size_t(b)] = std::exp(-(ddx * ddx + ddy * ddy) / (2.0 * s * s)) *
                                            norm[std::size_t(i) * nb + b];
                    }
                    if (wavelet_magnitude)
                        for (int b = nb - 1; b >= 1; --b) k[std::size_t(b)] -= k[std::size_t(b - 1)];
                    for (int b = 0; b < nb; ++b) out[(b * ny + rr) * nx + cc] += k[std::size_t(b)];
                }
        }
    });
    for (std::int64_t i = 0; i < nb * nx * ny; ++i) out[i] = std::fabs(out[i]);
}

}  // namespace spectralign_fast::reg

// Shared pieces of the LDDMM kernels: a grid in physical coordinates and the
// d-linear stencil (corner offsets, weights and their derivatives) with
// torch grid_sample's two padding rules, used for values, Jacobians and the
// adjoint splats alike.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "spectralign_fast/register/lddmm.hpp"

namespace spectralign_fast::reg::lddmmkit {

// floor() for |x| < 2^62 without a libm call; callers range-check x first.
inline double floor_small(double x) {
    const double t = static_cast<double>(static_cast<std::int64_t>(x));
    return t > x ? t - 1.0 : t;
}

template <int D>
struct Grid {
    std::int64_t n[D];
    std::int64_t stride[D];  // in points
    double origin[D];
    double inv[D];  // 1 / spacing
    explicit Grid(const PhysGrid& g) {
        std::int64_t st = 1;
        for (int a = D - 1; a >= 0; --a) {
            n[a] = g.shape[a];
            stride[a] = st;
            st *= n[a];
            origin[a] = g.origin[a];
            inv[a] = 1.0 / g.spacing[a];
        }
    }
    std::int64_t points() const { return n[0] * stride[0]; }
    // The array index of the point with linear index `idx`.
    void index_of(std::int64_t idx, std::int64_t* i) const {
        for (int a = D - 1; a >= 0; --a) {
            i[a] = idx % n[a];
            idx /= n[a];
        }
    }
    // Steps an array index to the next point (C order).
    void next(std::int64_t* i) const {
        for (int a = D - 1; a >= 0; --a) {
            if (++i[a] < n[a]) return;
            i[a] = 0;
        }
    }
};

// The 2^D corners around a point: linear offsets (in grid points), weights,
// and the weights' derivatives along each axis in physical units. A corner
// outside the grid has weight 0 and offset 0 (it reads a valid address).
template <int D>
struct Stencil {
    static constexpr int K = 1 << D;
    std::int64_t off[K];
    double w[K];
    double dw[D][K];
    std::int64_t base[D];  // index of corner 0 on each axis (may lie outside)
    bool any = false;      // false: every weight is 0
};

// Deriv = false skips the derivative weights (value-only uses).
template <int D, bool Deriv = true>
inline void fill_corners(const Grid<D>& g, const double* frac, const double* dscale, Stencil<D>& s) {
    for (int k = 0; k < Stencil<D>::K; ++k) {
        double wa[D];
        std::int64_t off = 0;
        bool valid = true;
        for (int a = 0; a < D; ++a) {
            const int bit = (k >> (D - 1 - a)) & 1;
            const std::int64_t i = s.base[a] + bit;
            valid = valid && i >= 0 && i < g.n[a];
            off += i * g.stride[a];
            wa[a] = bit ? frac[a] : 1.0 - frac[a];
        }
        if (!valid) {
            s.off[k] = 0;
            s.w[k] = 0.0;
            if constexpr (Deriv)
                for (int a = 0; a < D; ++a) s.dw[a][k] = 0.0;
            continue;
        }
        s.off[k] = off;
        double w = 1.0;
        for (int a = 0; a < D; ++a) w *= wa[a];
        s.w[k] = w;
        if constexpr (Deriv)
            for (int a = 0; a < D; ++a) {
            const int bit = (k >> (D - 1 - a)) & 1;
            double p = bit ? dscale[a] : -dscale[a];
            for (int b = 0; b < D; ++b)
                if (b != a) p *= wa[b];
            s.dw[a][k] = p;
        }
    }
}

// grid_sample(padding_mode="zeros"): corners outside count as 0; a point
// with no corner inside (index outside (-1, n) on some axis) is all zero.
template <int D, bool Deriv = true>
inline void stencil_zeros(const Grid<D>& g, const double* x, Stencil<D>& s) {
    double frac[D], dscale[D];
    for (int a = 0; a < D; ++a) {
        const double u = (x[a] - g.origin[a]) * g.inv[a];
        if (!(u > -1.0 && u < double(g.n[a]))) {
            s.any = false;
            return;
        }
        const double f = floor_small(u);
        s.base[a] = static_cast<std::int64_t>(f);
        frac[a] = u - f;
        dscale[a] = g.inv[a];
    }
    s.any = true;
    fill_corners<D, Deriv>(g, frac, dscale, s);
}

// grid_sample(padding_mode="border"): the index is clamped into [0, n - 1]
// (derivative 0 along a clamped axis); the grid needs n >= 2 on every axis.
// NaN coordinates clamp to 0.
template <int D, bool Deriv = true>
inline void stencil_border(const Grid<D>& g, const double* x, Stencil<D>& s) {
    double frac[D], dscale[D];
    for (int a = 0; a < D; ++a) {
        double u = (x[a] - g.origin[a]) * g.inv[a];
        const double hi = double(g.n[a] - 1);
        dscale[a] = g.inv[a];
        if (!(u > 0.0)) {
            if (!(u == 0.0)) dscale[a] = 0.0;
            u = 0.0;
        } else if (u > hi) {
            u = hi;
            dscale[a] = 0.0;
        }
        const double f = std::min(floor_small(u), hi - 1.0);
        s.base[a] = static_cast<std::int64_t>(f);
        frac[a] = u - f;
    }
    s.any = true;
    fill_corners<D, Deriv>(g, frac, dscale, s);
}

// Interleaved values (comps per grid point): out[k] = sum_c w_c data[off_c * comps + k].
template <int D>
inline void gather(const Stencil<D>& s, const double* data, int comps, double* out) {
    for (int k = 0; k < comps; ++k) out[k] = 0.0;
    if (!s.any) return;
    for (int c = 0; c < Stencil<D>::K; ++c) {
        const double* p = data + s.off[c] * comps;
        for (int k = 0; k < comps; ++k) out[k] += s.w[c] * p[k];
    }
}

// Jacobian of an interleaved D-component field: jac[k * D + a] = d field_k / d x_a.
template <int D>
inline void jacobian(const Stencil<D>& s, const double* data, double* jac) {
    for (int k = 0; k < D * D; ++k) jac[k] = 0.0;
    if (!s.any) return;
    for (int c = 0; c < Stencil<D>::K; ++c) {
        const double* p = data + s.off[c] * D;
        for (int k = 0; k < D; ++k)
            for (int a = 0; a < D; ++a) jac[k * D + a] += s.dw[a][c] * p[k];
    }
}

inline void check_grid(const PhysGrid& g, const char* what, std::int64_t min_points) {
    if (g.ndim != 2 && g.ndim != 3) throw std::invalid_argument(std::string(what) + " must be 2-D or 3-D");
    for (int a = 0; a < g.ndim; ++a) {
        if (g.shape[a] < min_points)
            throw std::invalid_argument(std::string(what) + " needs at least " + std::to_string(min_points) +
                                        " points along every axis");
        if (!(g.spacing[a] > 0.0) || !(g.spacing[a] < 1e300) || !(g.origin[a] > -1e300 && g.origin[a] < 1e300))
            throw std::invalid_argument(std::string(what) + " needs finite origin and positive finite spacing");
    }
}

template <class F>
inline void dispatch_dim(int d, F&& f) {
    if (d == 2)
        f(std::integral_constant<int, 2>{});
    else if (d == 3)
        f(std::integral_constant<int, 3>{});
    else
        throw std::invalid_argument("only 2-D and 3-D grids are supported");
}

}  // namespace spectralign_fast::reg::lddmmkit

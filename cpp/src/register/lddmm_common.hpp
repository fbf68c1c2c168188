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

#include "field_common.hpp"
#include "spectralign_fast/register/lddmm.hpp"

namespace spectralign_fast::reg::lddmmkit {

// The stencil helpers sit in the innermost loops: inlined, their results stay in registers.
#if defined(__GNUC__)
#define LDDMM_INLINE inline __attribute__((always_inline))
#else
#define LDDMM_INLINE inline
#endif

using fieldkit::floor_small;

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

// Every corner inside (the common case): the weights written out, no checks.
template <int D, bool Deriv>
LDDMM_INLINE void fill_interior(const Grid<D>& g, const double* frac, const double* dscale, Stencil<D>& s) {
    std::int64_t off = 0;
    for (int a = 0; a < D; ++a) off += s.base[a] * g.stride[a];
    if constexpr (D == 2) {
        const std::int64_t s0 = g.stride[0], s1 = g.stride[1];
        const double f0 = frac[0], f1 = frac[1], g0 = 1.0 - f0, g1 = 1.0 - f1;
        s.off[0] = off;
        s.off[1] = off + s1;
        s.off[2] = off + s0;
        s.off[3] = off + s0 + s1;
        s.w[0] = g0 * g1;
        s.w[1] = g0 * f1;
        s.w[2] = f0 * g1;
        s.w[3] = f0 * f1;
        if constexpr (Deriv) {
            const double d0 = dscale[0], d1 = dscale[1];
            s.dw[0][0] = -g1 * d0;
            s.dw[0][1] = -f1 * d0;
            s.dw[0][2] = g1 * d0;
            s.dw[0][3] = f1 * d0;
            s.dw[1][0] = -g0 * d1;
            s.dw[1][1] = g0 * d1;
            s.dw[1][2] = -f0 * d1;
            s.dw[1][3] = f0 * d1;
        }
    } else {
        const std::int64_t s0 = g.stride[0], s1 = g.stride[1], s2 = g.stride[2];
        const double f[3] = {frac[0], frac[1], frac[2]};
        const double h[3] = {1.0 - frac[0], 1.0 - frac[1], 1.0 - frac[2]};
        for (int k = 0; k < 8; ++k) {
            const int b0 = (k >> 2) & 1, b1 = (k >> 1) & 1, b2 = k & 1;
            s.off[k] = off + b0 * s0 + b1 * s1 + b2 * s2;
            const double w0 = b0 ? f[0] : h[0], w1 = b1 ? f[1] : h[1], w2 = b2 ? f[2] : h[2];
            s.w[k] = w0 * w1 * w2;
            if constexpr (Deriv) {
                s.dw[0][k] = (b0 ? dscale[0] : -dscale[0]) * w1 * w2;
                s.dw[1][k] = (b1 ? dscale[1] : -dscale[1]) * w0 * w2;
                s.dw[2][k] = (b2 ? dscale[2] : -dscale[2]) * w0 * w1;
            }
        }
    }
}

// grid_sample(padding_mode="zeros"): corners outside count as 0; a point
// with no corner inside (index outside (-1, n) on some axis) is all zero.
template <int D, bool Deriv = true>
LDDMM_INLINE void stencil_zeros(const Grid<D>& g, const double* x, Stencil<D>& s) {
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
    bool interior = true;
    for (int a = 0; a < D; ++a) interior = interior && s.base[a] >= 0 && s.base[a] + 1 < g.n[a];
    if (interior)
        fill_interior<D, Deriv>(g, frac, dscale, s);
    else
        fill_corners<D, Deriv>(g, frac, dscale, s);
}

// grid_sample(padding_mode="border"): the index is clamped into [0, n - 1]
// (derivative 0 along a clamped axis); the grid needs n >= 2 on every axis.
// NaN coordinates clamp to 0.
template <int D, bool Deriv = true>
LDDMM_INLINE void stencil_border(const Grid<D>& g, const double* x, Stencil<D>& s) {
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
    fill_interior<D, Deriv>(g, frac, dscale, s);  // clamped: every corner is inside
}

// Interleaved values (comps per grid point): out[k] = sum_c w_c data[off_c * comps + k].
// Sums in locals: `out` might alias `data` for all the compiler knows.
template <int D>
LDDMM_INLINE void gather(const Stencil<D>& s, const double* data, int comps, double* out) {
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    if (s.any && comps == D) {
#pragma GCC unroll 8
        for (int c = 0; c < Stencil<D>::K; ++c) {
            const double* p = data + s.off[c] * D;
            for (int k = 0; k < D; ++k) acc[k] += s.w[c] * p[k];
        }
        for (int k = 0; k < D; ++k) out[k] = acc[k];
        return;
    }
    for (int k = 0; k < comps; ++k) out[k] = 0.0;
    if (!s.any) return;
    for (int c = 0; c < Stencil<D>::K; ++c) {
        const double* p = data + s.off[c] * comps;
        for (int k = 0; k < comps; ++k) out[k] += s.w[c] * p[k];
    }
}

// Jacobian of an interleaved D-component field: jac[k * D + a] = d field_k / d x_a.
template <int D>
LDDMM_INLINE void jacobian(const Stencil<D>& s, const double* data, double* jac) {
    double acc[D * D] = {};
    if (s.any)
#pragma GCC unroll 8
        for (int c = 0; c < Stencil<D>::K; ++c) {
            const double* p = data + s.off[c] * D;
            for (int k = 0; k < D; ++k)
                for (int a = 0; a < D; ++a) acc[k * D + a] += s.dw[a][c] * p[k];
        }
    for (int k = 0; k < D * D; ++k) jac[k] = acc[k];
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

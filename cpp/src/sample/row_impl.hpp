// The row template behind every row function (included by rows_*.cpp,
// which instantiate it inside SIMD-cloned wrappers; everything here is
// force-inlined so each clone gets its own vector code).
//
// A row is processed in blocks of kLanes output pixels. Each block either
//  * goes through the "span" path (linear kernel, near-identity maps, all
//    taps inside the array): along the block the source cell advances by
//    exactly one column per pixel and changes rows (and planes) at most
//    once, so the reads are contiguous vector loads from at most 3 (3 x 3
//    in 3-D) source rows and a per-lane select, like a translation; or
//  * the general path: coordinates in double (index + fraction per axis),
//    then gathers with the edge rules, then the constant-mode mask.
// A block's path and arithmetic depend only on its position in the row,
// never on how rows are shared between threads.
#pragma once

#include <algorithm>
#include <cmath>

#include "kernels.hpp"
#include "rows.hpp"

namespace spectralign_fast::sample::detail {

using namespace kern;

template <int D>
struct Block {
    alignas(64) int i[D][kLanes];    // index of the tap at or below the coordinate
    alignas(64) float f[D][kLanes];  // fraction in [0, 1)
    alignas(64) int outside[kLanes];
    alignas(64) float v[kLanes];
};

// Coordinates of the block's pixels, split per axis into index and
// fraction (Nearest: the index rounded half up). A coordinate outside
// [0, n - 1] flags the lane (mode "constant"); then it is clamped (NaN
// included) to [-4, n + 3], which keeps every read bounded.
template <int D, Kernel K>
SF_INLINE void split_coords(const Source& s, const Row& r, int k0, int m, Block<D>& b) {
    for (int j = 0; j < m; ++j) b.outside[j] = 0;
    for (int a = 0; a < D; ++a) {
        const double p = r.p[a] + s.offset, d = r.d[a];
        const double last = s.n[a] - 1.0, lo = -4.0, hi = s.n[a] + 3.0;
        const float* fld = r.field ? r.field + static_cast<std::ptrdiff_t>(k0) * D + a : nullptr;
        int* ia = b.i[a];
        float* fa = b.f[a];
        int* out = b.outside;
        auto split = [&](int j, double c) SF_INLINE_LAMBDA {
            out[j] |= !(c >= 0.0 && c <= last);
            if constexpr (K == Kernel::Nearest) c += 0.5;
            c = c >= lo ? (c <= hi ? c : hi) : lo;
            const double fl = std::floor(c);
            ia[j] = static_cast<int>(fl);
            fa[j] = static_cast<float>(c - fl);
        };
        if (fld) {
#pragma omp simd
            for (int j = 0; j < m; ++j)
                split(j, p + static_cast<double>(k0 + j) * d + static_cast<double>(fld[j * D]));
        } else {
#pragma omp simd
            for (int j = 0; j < m; ++j) split(j, p + static_cast<double>(k0 + j) * d);
        }
    }
}

template <class T, int D, Kernel K, class Idx>
SF_INLINE void sample_block(const Source& s, Block<D>& b, int m) {
    const T* base = static_cast<const T*>(s.data);
    float* v = b.v;
    if constexpr (K == Kernel::Nearest) {
#pragma omp simd
        for (int j = 0; j < m; ++j) {
            Idx off = 0;
            for (int a = 0; a < D; ++a)
                off += static_cast<Idx>(clampi(b.i[a][j], 0, s.n[a] - 1)) *
                       static_cast<Idx>(s.stride[a]);
            v[j] = static_cast<float>(base[off]);
        }
    } else if constexpr (K == Kernel::Linear && D == 2) {
        const Idx sy = static_cast<Idx>(s.stride[0]);
        const int ym = s.n[0] - 1, xm = s.n[1] - 1;
#pragma omp simd
        for (int j = 0; j < m; ++j) {
            const Idx y0 = static_cast<Idx>(clampi(b.i[0][j], 0, ym)) * sy;
            const Idx y1 = static_cast<Idx>(clampi(b.i[0][j] + 1, 0, ym)) * sy;
            const Idx x0 = clampi(b.i[1][j], 0, xm), x1 = clampi(b.i[1][j] + 1, 0, xm);
            const float fx = b.f[1][j];
            const float top = lerp(static_cast<float>(base[y0 + x0]),
                                   static_cast<float>(base[y0 + x1]), fx);
            const float bot = lerp(static_cast<float>(base[y1 + x0]),
                                   static_cast<float>(base[y1 + x1]), fx);
            v[j] = lerp(top, bot, b.f[0][j]);
        }
    } else if constexpr (K == Kernel::Linear) {
        const Idx sz = static_cast<Idx>(s.stride[0]), sy = static_cast<Idx>(s.stride[1]);
        const int zm = s.n[0] - 1, ym = s.n[1] - 1, xm = s.n[2] - 1;
#pragma omp simd
        for (int j = 0; j < m; ++j) {
            const Idx z0 = static_cast<Idx>(clampi(b.i[0][j], 0, zm)) * sz;
            const Idx z1 = static_cast<Idx>(clampi(b.i[0][j] + 1, 0, zm)) * sz;
            const Idx y0 = static_cast<Idx>(clampi(b.i[1][j], 0, ym)) * sy;
            const Idx y1 = static_cast<Idx>(clampi(b.i[1][j] + 1, 0, ym)) * sy;
            const Idx x0 = clampi(b.i[2][j], 0, xm), x1 = clampi(b.i[2][j] + 1, 0, xm);
            const float fx = b.f[2][j], fy = b.f[1][j];
            auto px = [&](Idx o) SF_INLINE_LAMBDA { return static_cast<float>(base[o]); };
            const float a = lerp(lerp(px(z0 + y0 + x0), px(z0 + y0 + x1), fx),
                                 lerp(px(z0 + y1 + x0), px(z0 + y1 + x1), fx), fy);
            const float c = lerp(lerp(px(z1 + y0 + x0), px(z1 + y0 + x1), fx),
                                 lerp(px(z1 + y1 + x0), px(z1 + y1 + x1), fx), fy);
            v[j] = lerp(a, c, b.f[0][j]);
        }
    } else {
        // Cubic (B-spline on coefficients, or Catmull-Rom on pixels): 4 taps
        // per axis through the tap tables (mirror or clamp).
        const int* tp[D];
        for (int a = 0; a < D; ++a) tp[a] = s.taps[a] + kTapPad;
#pragma omp simd
        for (int j = 0; j < m; ++j) {
            float w[D][4];
            Idx o[D][4];
            for (int a = 0; a < D; ++a) {
                if constexpr (K == Kernel::BSpline3)
                    bspline3_weights(b.f[a][j], w[a]);
                else
                    catmull_rom_weights(b.f[a][j], w[a]);
                for (int q = 0; q < 4; ++q)
                    o[a][q] = static_cast<Idx>(tp[a][b.i[a][j] - 1 + q]) *
                              static_cast<Idx>(s.stride[a]);
            }
            float acc = 0.0f;
            if constexpr (D == 2) {
                for (int qy = 0; qy < 4; ++qy) {
                    const T* row = base + o[0][qy];
                    const float rv = w[1][0] * static_cast<float>(row[o[1][0]]) +
                                     w[1][1] * static_cast<float>(row[o[1][1]]) +
                                     w[1][2] * static_cast<float>(row[o[1][2]]) +
                                     w[1][3] * static_cast<float>(row[o[1][3]]);
                    acc += w[0][qy] * rv;
                }
            } else {
                for (int qz = 0; qz < 4; ++qz) {
                    float plane = 0.0f;
                    for (int qy = 0; qy < 4; ++qy) {
                        const T* row = base + (o[0][qz] + o[1][qy]);
                        const float rv = w[2][0] * static_cast<float>(row[o[2][0]]) +
                                         w[2][1] * static_cast<float>(row[o[2][1]]) +
                                         w[2][2] * static_cast<float>(row[o[2][2]]) +
                                         w[2][3] * static_cast<float>(row[o[2][3]]);
                        plane += w[1][qy] * rv;
                    }
                    acc += w[0][qz] * plane;
                }
            }
            v[j] = acc;
        }
    }
}

template <class Tout>
SF_INLINE void store_block(const Source& s, const int* outside, const float* v, int m,
                           Tout* out) {
    if (s.constant) {
        const float cval = s.cval;
#pragma omp simd
        for (int j = 0; j < m; ++j) out[j] = to_pixel<Tout>(outside[j] ? cval : v[j]);
    } else {
#pragma omp simd
        for (int j = 0; j < m; ++j) out[j] = to_pixel<Tout>(v[j]);
    }
}

template <class Tout>
SF_INLINE void store_plain(const float* v, int m, Tout* out) {
#pragma omp simd
    for (int j = 0; j < m; ++j) out[j] = to_pixel<Tout>(v[j]);
}

// The span path's inner loop. R: pointers to the source rows (plane-major,
// NY rows per plane), each at the block's first column. (fz, fy, fx):
// coordinates of pixel 0 relative to (plane 0, row 0, column 0); steps
// (dz, dy, dx). A lane whose cell is not (row 0 or 1, column j) -- float
// rounding near a cell edge, or a column drift -- sets `bad`, and the
// caller redoes the block through the general path.
template <class T, int D, bool CZ, bool CY>
SF_INLINE bool span_block(const T* const* R, float fz, float fy, float fx, float dz, float dy,
                          float dx, int m, float* v) {
    constexpr int NY = CY ? 3 : 2;
    constexpr int NZ = D == 3 ? (CZ ? 3 : 2) : 1;
    const T* rows[NZ * NY];
    for (int q = 0; q < NZ * NY; ++q) rows[q] = R[q];
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (int j = 0; j < m; ++j) {
        const float jf = static_cast<float>(j);
        const float tx = fx + jf * dx;
        const int ix = floor_int(tx);
        const float wx = tx - static_cast<float>(ix);
        bad |= ix != j;
        const float ty = fy + jf * dy;
        const int iy = floor_int(ty);
        const float wy = ty - static_cast<float>(iy);
        bad |= static_cast<unsigned>(iy) > (CY ? 1u : 0u);
        float X[NZ][NY];
        for (int zz = 0; zz < NZ; ++zz)
            for (int yy = 0; yy < NY; ++yy) {
                const T* rp = rows[zz * NY + yy];
                X[zz][yy] = lerp(static_cast<float>(rp[j]), static_cast<float>(rp[j + 1]), wx);
            }
        float Y[NZ];
        for (int zz = 0; zz < NZ; ++zz) {
            if constexpr (CY)
                Y[zz] = lerp(iy ? X[zz][1] : X[zz][0], iy ? X[zz][2] : X[zz][1], wy);
            else
                Y[zz] = lerp(X[zz][0], X[zz][1], wy);
        }
        if constexpr (D == 2) {
            v[j] = Y[0];
        } else {
            const float tz = fz + jf * dz;
            const int iz = floor_int(tz);
            const float wz = tz - static_cast<float>(iz);
            bad |= static_cast<unsigned>(iz) > (CZ ? 1u : 0u);
            if constexpr (CZ)
                v[j] = lerp(iz ? Y[1] : Y[0], iz ? Y[2] : Y[1], wz);
            else
                v[j] = lerp(Y[0], Y[1], wz);
        }
    }
    return bad == 0;
}

// The block's source rows for the span path along one non-last axis:
// the lower cell index over the block and whether it changes once.
struct SpanAxis {
    int lo;
    bool cross;
    float f;  // coordinate of pixel 0 relative to lo
};

SF_INLINE bool span_axis(double c0, double c1, int n, SpanAxis& ax) {
    const double mn = std::min(c0, c1), mx = std::max(c0, c1);
    if (!(mn >= 0.0 && mx < n - 1.0)) return false;
    const int lo = static_cast<int>(mn), hi = static_cast<int>(mx);
    if (hi - lo > 1 || lo + 1 + (hi - lo) > n - 1) return false;
    ax.lo = lo;
    ax.cross = hi > lo;
    ax.f = static_cast<float>(c0 - lo);
    return true;
}

// Linear, affine: the block as a span, if it qualifies (see above).
template <class T, int D>
SF_INLINE bool try_span(const Source& s, const Row& r, int k0, int m, float* v) {
    constexpr int X = D - 1;
    const double cx0 = r.p[X] + k0 * r.d[X], cx1 = cx0 + (m - 1) * r.d[X];
    if (!(cx0 >= 0.0 && cx0 < s.n[X] - 1.0 && cx1 >= 0.0 && cx1 < s.n[X] - 1.0)) return false;
    const int xa = static_cast<int>(cx0);
    if (static_cast<int>(cx1) - (m - 1) != xa || xa + m > s.n[X] - 1) return false;
    SpanAxis ay, az{0, false, 0.0f};
    const double cy0 = r.p[X - 1] + k0 * r.d[X - 1];
    if (!span_axis(cy0, cy0 + (m - 1) * r.d[X - 1], s.n[X - 1], ay)) return false;
    if constexpr (D == 3) {
        const double cz0 = r.p[0] + k0 * r.d[0];
        if (!span_axis(cz0, cz0 + (m - 1) * r.d[0], s.n[0], az)) return false;
    }
    const T* base = static_cast<const T*>(s.data) + xa;
    const T* R[9];
    const int ny = 2 + ay.cross, nz = D == 3 ? 2 + az.cross : 1;
    for (int zz = 0; zz < nz; ++zz)
        for (int yy = 0; yy < ny; ++yy) {
            std::ptrdiff_t off = static_cast<std::ptrdiff_t>(ay.lo + yy) * s.stride[X - 1];
            if constexpr (D == 3) off += static_cast<std::ptrdiff_t>(az.lo + zz) * s.stride[0];
            R[zz * ny + yy] = base + off;
        }
    const float fx = static_cast<float>(cx0 - xa);
    const float dx = static_cast<float>(r.d[X]), dy = static_cast<float>(r.d[X - 1]);
    if constexpr (D == 2) {
        return ay.cross ? span_block<T, 2, false, true>(R, 0, ay.f, fx, 0, dy, dx, m, v)
                        : span_block<T, 2, false, false>(R, 0, ay.f, fx, 0, dy, dx, m, v);
    } else {
        const float dz = static_cast<float>(r.d[0]);
        if (az.cross)
            return ay.cross ? span_block<T, 3, true, true>(R, az.f, ay.f, fx, dz, dy, dx, m, v)
                            : span_block<T, 3, true, false>(R, az.f, ay.f, fx, dz, dy, dx, m, v);
        return ay.cross ? span_block<T, 3, false, true>(R, az.f, ay.f, fx, dz, dy, dx, m, v)
                        : span_block<T, 3, false, false>(R, az.f, ay.f, fx, dz, dy, dx, m, v);
    }
}

template <class Tin, class Tout, int D, Kernel K, class Idx>
SF_INLINE void row_impl(const Source& s, const Row& r) {
    Tout* out = static_cast<Tout*>(r.out);
    Block<D> b;
    for (int k0 = 0; k0 < r.n; k0 += kLanes) {
        const int m = std::min(kLanes, r.n - k0);
        if constexpr (K == Kernel::Linear) {
            if (!r.field && try_span<Tin, D>(s, r, k0, m, b.v)) {
                store_plain<Tout>(b.v, m, out + k0);
                continue;
            }
        }
        split_coords<D, K>(s, r, k0, m, b);
        sample_block<Tin, D, K, Idx>(s, b, m);
        store_block<Tout>(s, b.outside, b.v, m, out + k0);
    }
}

}  // namespace spectralign_fast::sample::detail

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
#include <cstdint>

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


// The span path's inner loop over one block of L pixels. p0: the source
// element at (plane zlo, row ylo, column xa) of the block; (fz, fy, fx):
// coordinates of pixel 0 relative to it; steps (dz, dy, dx). With CY (CZ)
// the cell row (plane) may step once along the block, so three rows
// (planes) are read and each lane selects its pair. A lane whose cell is
// not (row 0 or 1, column j) -- float rounding at a cell edge, or a column
// drift -- makes the block fail, and the caller redoes it through the
// general path.
template <class T, class Tout, int D, bool CZ, bool CY, bool CX>
SF_INLINE bool span_block(const T* p0, std::ptrdiff_t sz, std::ptrdiff_t sy, float fz, float fy,
                          float fx, float dz, float dy, float dx, int L, Tout* out) {
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (int j = 0; j < L; ++j) {
        const float jf = static_cast<float>(j);
        const float tx = fx + jf * dx;
        const int ix = floor_int(tx);
        const float wx = tx - static_cast<float>(ix);
        const int ox = ix - j;  // column offset: 0, or (CX: columns may drift once) 1
        bad |= static_cast<unsigned>(ox) > (CX ? 1u : 0u);
        const float ty = fy + jf * dy;
        const int iy = floor_int(ty);
        const float wy = ty - static_cast<float>(iy);
        bad |= static_cast<unsigned>(iy) > (CY ? 1u : 0u);
        // No arrays in this loop: GCC would keep per-lane copies of them in
        // memory ("omp simd arrays").
        auto xl = [&](int zz, int yy) SF_INLINE_LAMBDA {
            const T* rp = p0 + zz * sz + yy * sy;
            if constexpr (CX) {
                const float a = static_cast<float>(rp[j]), b = static_cast<float>(rp[j + 1]);
                const float c = static_cast<float>(rp[j + 2]);
                return lerp(ox ? b : a, ox ? c : b, wx);
            } else {
                return lerp(static_cast<float>(rp[j]), static_cast<float>(rp[j + 1]), wx);
            }
        };
        auto yl = [&](int zz) SF_INLINE_LAMBDA {
            if constexpr (CY) {
                const float x0 = xl(zz, 0), x1 = xl(zz, 1), x2 = xl(zz, 2);
                return lerp(iy ? x1 : x0, iy ? x2 : x1, wy);
            } else {
                return lerp(xl(zz, 0), xl(zz, 1), wy);
            }
        };
        float val;
        if constexpr (D == 2) {
            val = yl(0);
        } else {
            const float tz = fz + jf * dz;
            const int iz = floor_int(tz);
            const float wz = tz - static_cast<float>(iz);
            bad |= static_cast<unsigned>(iz) > (CZ ? 1u : 0u);
            if constexpr (CZ) {
                const float y0 = yl(0), y1 = yl(1), y2 = yl(2);
                val = lerp(iz ? y1 : y0, iz ? y2 : y1, wz);
            } else {
                val = lerp(yl(0), yl(1), wz);
            }
        }
        out[j] = to_pixel<Tout>(val);  // overwritten by the general path if the block fails
    }
    return bad == 0;
}

// Range [k0, k1) of k in [0, n) with lo <= p + k d <= hi. inv_d: 1 / d if
// the caller knows it (0: not). Multiplying by it replaces the two divisions
// when both quotients lie clearly away from whole numbers and from each
// other (their error is a few ulps, far below the tolerance), so the range
// is always the one the divisions give, bit for bit.
SF_INLINE void k_range(double p, double d, double inv_d, double lo, double hi, int n, int& k0,
                       int& k1) {
    if (d == 0.0) {
        k0 = 0;
        k1 = p >= lo && p <= hi ? n : 0;
        return;
    }
    double a = (lo - p) * inv_d, b = (hi - p) * inv_d;
    const double tol = 1e-9 * (std::fabs(a) + std::fabs(b) + 1.0);
    const bool clear = inv_d != 0.0 && std::fabs(a - b) > tol && a - std::floor(a) > tol &&
                       std::ceil(a) - a > tol && b - std::floor(b) > tol && std::ceil(b) - b > tol;
    if (!clear) {  // also catches NaN and inf
        a = (lo - p) / d;
        b = (hi - p) / d;
    }
    if (a > b) std::swap(a, b);
    a = std::clamp(std::ceil(a), 0.0, static_cast<double>(n));
    b = std::clamp(std::floor(b) + 1.0, 0.0, static_cast<double>(n));
    k0 = static_cast<int>(a);
    k1 = std::max(k0, static_cast<int>(b));
}

// Per row: whether the span path applies, its block length L, whether rows
// (planes) can step inside a block, and the columns [ka, kb) whose blocks
// read inside the array (bounds shrunk by a margin, so that rounding can
// never move a read outside).
struct SpanPlan {
    bool ok = false, cz = false, cy = false, cx = false;
    int L = kLanes, ka = 0, kb = 0;
};

template <int D>
SF_INLINE SpanPlan plan_span(const Source& s, const Row& r) {
    SpanPlan sp;
    constexpr int X = D - 1;
    const double drift = std::fabs(r.d[X] - 1.0);
    double slope = 0.0;
    for (int a = 0; a < X; ++a) slope = std::max(slope, std::fabs(r.d[a]));
    // Longest block with at most one row (plane) step and rarely a column drift.
    sp.L = slope * kMaxSpan <= 0.999 && drift * kMaxSpan <= 0.25 ? kMaxSpan : kLanes;
    if (!(slope * sp.L <= 0.999 && drift * sp.L <= 0.999)) return sp;
    // Scales away from 1 drift a column every 1 / drift pixels: read three
    // columns per row rather than send those blocks down the general path.
    sp.cx = drift * sp.L > 0.05;
    const double eps = 1e-6;
    int ka = 0, kb = r.n;
    for (int a = 0; a < D; ++a) {
        int k0, k1;
        double hi;
        if (a == X) {
            hi = s.n[a] - 4.0;  // a lane reads up to floor(c) + 3 (with a rounding flicker)
        } else {
            const bool cross = std::fabs(r.d[a]) * sp.L > 0.0;
            if (a == X - 1) sp.cy = cross;
            else sp.cz = cross;
            hi = s.n[a] - 2.0 - (cross ? 1.0 : 0.0);
        }
        // Columns: from 1, as a block's lowest column offset can lie one
        // below its first pixel's when the scale is below 1.
        k_range(r.p[a], r.d[a], r.inv_d[a], (a == X ? 1.0 : 0.0) + eps, hi - eps, r.n, k0, k1);
        ka = std::max(ka, k0);
        kb = std::min(kb, k1);
    }
    sp.ka = ka;
    sp.kb = kb;
    sp.ok = kb - ka >= kLanes;
    return sp;
}

template <class Tin, class Tout, int D, Kernel K, class Idx>
SF_INLINE void general_range(const Source& s, const Row& r, int k0, int k1, Block<D>& b,
                             Tout* out) {
    for (int k = k0; k < k1; k += kLanes) {
        const int m = std::min(kLanes, k1 - k);
        split_coords<D, K>(s, r, k, m, b);
        sample_block<Tin, D, K, Idx>(s, b, m);
        store_block<Tout>(s, b.outside, b.v, m, out + k);
    }
}

// Span blocks of L pixels (the last one shorter) over [ka, kb); returns kb.
template <class Tin, class Tout, int D, bool CZ, bool CY, bool CX, class Idx>
SF_INLINE int span_range(const Source& s, const Row& r, const SpanPlan& sp, Block<D>& b,
                         Tout* out) {
    constexpr int X = D - 1;
    const Tin* base = static_cast<const Tin*>(s.data);
    const std::ptrdiff_t sy = s.stride[X - 1], sz = D == 3 ? s.stride[0] : 0;
    const float dx = static_cast<float>(r.d[X]), dy = static_cast<float>(r.d[X - 1]);
    const float dz = D == 3 ? static_cast<float>(r.d[0]) : 0.0f;
    int k = sp.ka;
    for (int L = sp.L; k < sp.kb; k += L) {
        L = std::min(L, sp.kb - k);  // the last block ends at kb
        const double span = L - 1;
        // Block origin from the pixel's own index, in double; the lower cell
        // row (plane) over the block is at its start or end.
        const double cx = r.p[X] + k * r.d[X];
        const double cy = r.p[X - 1] + k * r.d[X - 1];
        // Lowest column offset floor(c) - j over the block: at its start,
        // or (scale below 1) at its end.
        const int xa = r.d[X] >= 1.0 ? static_cast<int>(cx)
                                     : static_cast<int>(cx + span * r.d[X]) - (L - 1);
        const int ylo = static_cast<int>(r.d[X - 1] >= 0 ? cy : cy + span * r.d[X - 1]);
        std::ptrdiff_t off = static_cast<std::ptrdiff_t>(ylo) * sy + xa;
        float fz = 0.0f;
        if constexpr (D == 3) {
            const double cz = r.p[0] + k * r.d[0];
            const int zlo = static_cast<int>(r.d[0] >= 0 ? cz : cz + span * r.d[0]);
            off += static_cast<std::ptrdiff_t>(zlo) * sz;
            fz = static_cast<float>(cz - zlo);
        }
        const float fy = static_cast<float>(cy - ylo), fx = static_cast<float>(cx - xa);
        if constexpr (D == 3) {
            // The next output plane reads this block's planes shifted by about
            // one: fetch its new plane (rows ylo .. ylo + 2, L + 2 columns) into
            // L2 now, as a strided walk through planes defeats the hardware
            // prefetcher (the loads stalled on it most of the time).
            if (r.next_plane != 0) {
                // Integer address arithmetic: the lines may lie past the
                // array's ends (a prefetch never faults).
                const std::uintptr_t q =
                    reinterpret_cast<std::uintptr_t>(base) +
                    static_cast<std::uintptr_t>(off + r.next_plane + (CZ ? 2 : 1) * sz) * sizeof(Tin);
                for (int yy = 0; yy < (CY ? 3 : 2); ++yy) {
                    const std::uintptr_t c = q + static_cast<std::uintptr_t>(yy * sy) * sizeof(Tin);
                    for (std::size_t b = 0; b < (L + 2) * sizeof(Tin) + 63; b += 64)
                        __builtin_prefetch(reinterpret_cast<const void*>(c + b), 0, 2);
                }
            }
        }
        if (!span_block<Tin, Tout, D, CZ, CY, CX>(base + off, sz, sy, fz, fy, fx, dz, dy, dx, L, out + k))
            general_range<Tin, Tout, D, Kernel::Linear, Idx>(s, r, k, k + L, b, out);
    }
    return k;
}

template <class Tin, class Tout, int D, bool CZ, bool CX, class Idx>
SF_INLINE int span_dispatch(const Source& s, const Row& r, const SpanPlan& sp, Block<D>& b,
                            Tout* out) {
    return sp.cy ? span_range<Tin, Tout, D, CZ, true, CX, Idx>(s, r, sp, b, out)
                 : span_range<Tin, Tout, D, CZ, false, CX, Idx>(s, r, sp, b, out);
}

template <class Tin, class Tout, int D, Kernel K, class Idx>
SF_INLINE void row_impl(const Source& s, const Row& r) {
    Tout* out = static_cast<Tout*>(r.out);
    Block<D> b;
    if constexpr (K == Kernel::Linear) {
        if (!r.field) {
            const SpanPlan sp = plan_span<D>(s, r);
            if (sp.ok) {
                general_range<Tin, Tout, D, K, Idx>(s, r, 0, sp.ka, b, out);
                int k;
                if constexpr (D == 2) {
                    k = sp.cx ? span_dispatch<Tin, Tout, 2, false, true, Idx>(s, r, sp, b, out)
                              : span_dispatch<Tin, Tout, 2, false, false, Idx>(s, r, sp, b, out);
                } else if (sp.cz) {
                    k = sp.cx ? span_dispatch<Tin, Tout, 3, true, true, Idx>(s, r, sp, b, out)
                              : span_dispatch<Tin, Tout, 3, true, false, Idx>(s, r, sp, b, out);
                } else {
                    k = sp.cx ? span_dispatch<Tin, Tout, 3, false, true, Idx>(s, r, sp, b, out)
                              : span_dispatch<Tin, Tout, 3, false, false, Idx>(s, r, sp, b, out);
                }
                general_range<Tin, Tout, D, K, Idx>(s, r, k, r.n, b, out);
                return;
            }
        }
    }
    general_range<Tin, Tout, D, K, Idx>(s, r, 0, r.n, b, out);
}

}  // namespace spectralign_fast::sample::detail

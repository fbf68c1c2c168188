#include "spectralign_fast/render/render.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/parallel.hpp"

#include "core/simd_clones.hpp"  // AVX-512 / AVX2 / baseline clones of the row kernels

#if defined(__GNUC__)
#define SA_INLINE __attribute__((always_inline)) inline
#else
#define SA_INLINE inline
#endif

namespace spectralign_fast {

std::size_t pixel_size(PixelType t) {
    switch (t) {
        case PixelType::U8: return 1;
        case PixelType::U16: return 2;
        case PixelType::F32: return 4;
    }
    return 4;
}

namespace render_kernels {

// What a row kernel needs to know about one tile.
struct TileCtx {
    const void* data;
    std::ptrdiff_t stride;
    int w, h;
    float inv_r;  // 1 / blend (feathering)
};

// Tile coordinates of the first pixel of the row and their step per output
// pixel; model offset of the first pixel from the tile centre (hard seams).
struct RowGeom {
    float u0, v0, du, dv;
    float dx0, dy;
};

using RowFn = void (*)(const TileCtx&, const RowGeom&, int, float*, float*);

SA_INLINE int floor_int(float x) {
    const int i = static_cast<int>(x);
    return i - (x < static_cast<float>(i) ? 1 : 0);
}

SA_INLINE int clampi(int x, int lo, int hi) { return x < lo ? lo : (x > hi ? hi : x); }

template <class T, Interp I, class Idx = std::ptrdiff_t>
SA_INLINE float sample(const T* base, Idx s, int wmax, int hmax, float u, float v) {
    if constexpr (I == Interp::Nearest) {
        const int x = clampi(floor_int(u + 0.5f), 0, wmax);
        const int y = clampi(floor_int(v + 0.5f), 0, hmax);
        return static_cast<float>(base[y * s + x]);
    } else if constexpr (I == Interp::Linear) {
        const int x = floor_int(u), y = floor_int(v);
        const float fx = u - static_cast<float>(x), fy = v - static_cast<float>(y);
        const int xa = clampi(x, 0, wmax), xb = clampi(x + 1, 0, wmax);
        const T* ra = base + clampi(y, 0, hmax) * s;
        const T* rb = base + clampi(y + 1, 0, hmax) * s;
        const float a0 = static_cast<float>(ra[xa]), a1 = static_cast<float>(ra[xb]);
        const float b0 = static_cast<float>(rb[xa]), b1 = static_cast<float>(rb[xb]);
        const float a = a0 + fx * (a1 - a0);
        const float b = b0 + fx * (b1 - b0);
        return a + fy * (b - a);
    } else {
        // Catmull-Rom (Keys, a = -0.5); indices clamped (edge replicated).
        const int x = floor_int(u), y = floor_int(v);
        const float tx = u - static_cast<float>(x), ty = v - static_cast<float>(y);
        const float wx[4] = {((-0.5f * tx + 1.0f) * tx - 0.5f) * tx,
                             (1.5f * tx - 2.5f) * tx * tx + 1.0f,
                             ((-1.5f * tx + 2.0f) * tx + 0.5f) * tx, (0.5f * tx - 0.5f) * tx * tx};
        const float wy[4] = {((-0.5f * ty + 1.0f) * ty - 0.5f) * ty,
                             (1.5f * ty - 2.5f) * ty * ty + 1.0f,
                             ((-1.5f * ty + 2.0f) * ty + 0.5f) * ty, (0.5f * ty - 0.5f) * ty * ty};
        const int xs[4] = {clampi(x - 1, 0, wmax), clampi(x, 0, wmax), clampi(x + 1, 0, wmax),
                           clampi(x + 2, 0, wmax)};
        float acc = 0.0f;
        for (int m = 0; m < 4; ++m) {
            const T* r = base + clampi(y - 1 + m, 0, hmax) * s;
            const float row = wx[0] * static_cast<float>(r[xs[0]]) +
                              wx[1] * static_cast<float>(r[xs[1]]) +
                              wx[2] * static_cast<float>(r[xs[2]]) +
                              wx[3] * static_cast<float>(r[xs[3]]);
            acc += wy[m] * row;
        }
        return acc;
    }
}

// Combines one sample into the accumulators. Feathering: weighted sums.
// Hard seams: num holds the value and den the squared distance to the
// centre of the tile that currently wins.
template <bool Hard>
SA_INLINE void combine(float e, float inv_r, float val, float d2, float& num, float& den) {
    if constexpr (Hard) {
        const bool take = e > 0.0f && (d2 < den || (d2 == den && val > num));
        num = take ? val : num;
        den = take ? d2 : den;
    } else {
        const float wgt = std::min(std::max(e * inv_r, 0.0f), 1.0f);
        num += wgt * val;
        den += wgt;
    }
}

// Any transform: every pixel computes its own tile coordinates.
template <class T, Interp I, bool Hard, class Idx = std::ptrdiff_t>
SA_INLINE void row_general(const TileCtx& t, const RowGeom& g, int n, float* num, float* den) {
    const T* base = static_cast<const T*>(t.data);
    const Idx s = static_cast<Idx>(t.stride);
    const int wmax = t.w - 1, hmax = t.h - 1;
    const float wm = static_cast<float>(t.w) - 0.5f, hm = static_cast<float>(t.h) - 0.5f;
    const float inv_r = t.inv_r, dy2 = g.dy * g.dy;
#pragma omp simd
    for (int k = 0; k < n; ++k) {
        const float kf = static_cast<float>(k);
        const float u = g.u0 + kf * g.du, v = g.v0 + kf * g.dv;
        const float e = std::min(std::min(u + 0.5f, wm - u), std::min(v + 0.5f, hm - v));
        const float val = sample<T, I, Idx>(base, s, wmax, hmax, u, v);
        const float dx = g.dx0 + kf;
        combine<Hard>(e, inv_r, val, dx * dx + dy2, num[k], den[k]);
    }
}

// Pure translation (du = 1, dv = 0), every index inside the tile: the
// interpolation weights are the same for the whole row and the reads are
// contiguous. `xa` is the column of the sample left of pixel 0; rows ra, rb.
template <class T, Interp I, bool Hard>
SA_INLINE void row_translate(const TileCtx& t, const RowGeom& g, int n, float* num, float* den) {
    const T* base = static_cast<const T*>(t.data);
    const std::ptrdiff_t s = t.stride;
    const int hmax = t.h - 1;
    const float wm = static_cast<float>(t.w) - 0.5f, hm = static_cast<float>(t.h) - 0.5f;
    const float ev = std::min(g.v0 + 0.5f, hm - g.v0);
    const float inv_r = t.inv_r, dy2 = g.dy * g.dy;
    if constexpr (I == Interp::Nearest) {
        const int x = floor_int(g.u0 + 0.5f);
        const T* r = base + clampi(floor_int(g.v0 + 0.5f), 0, hmax) * s + x;
#pragma omp simd
        for (int k = 0; k < n; ++k) {
            const float kf = static_cast<float>(k);
            const float u = g.u0 + kf;
            const float e = std::min(std::min(u + 0.5f, wm - u), ev);
            const float dx = g.dx0 + kf;
            combine<Hard>(e, inv_r, static_cast<float>(r[k]), dx * dx + dy2, num[k], den[k]);
        }
    } else {
        const int x = floor_int(g.u0), y = floor_int(g.v0);
        const float fx = g.u0 - static_cast<float>(x), fy = g.v0 - static_cast<float>(y);
        const T* ra = base + clampi(y, 0, hmax) * s + x;
        const T* rb = base + clampi(y + 1, 0, hmax) * s + x;
#pragma omp simd
        for (int k = 0; k < n; ++k) {
            const float kf = static_cast<float>(k);
            const float a0 = static_cast<float>(ra[k]), a1 = static_cast<float>(ra[k + 1]);
            const float b0 = static_cast<float>(rb[k]), b1 = static_cast<float>(rb[k + 1]);
            const float a = a0 + fx * (a1 - a0);
            const float b = b0 + fx * (b1 - b0);
            const float val = a + fy * (b - a);
            const float u = g.u0 + kf;
            const float e = std::min(std::min(u + 0.5f, wm - u), ev);
            const float dx = g.dx0 + kf;
            combine<Hard>(e, inv_r, val, dx * dx + dy2, num[k], den[k]);
        }
    }
}

// Any linear transform, bilinear: an output row is cut into spans along
// which the source cell row floor(v) stays the same and the source column
// floor(u) advances by exactly one per pixel. Near-identity transforms (the
// usual case: small rotations, scales near 1) give spans of tens of pixels
// whose reads are contiguous, so they vectorise like the translation path
// instead of costing four gathers per sample. Pixels whose 2x2 footprint
// leaves the tile go through the clamped per-pixel sampler, as the general
// kernel does.
template <class T, bool Hard>
SA_INLINE void row_spans(const TileCtx& t, const RowGeom& g, int n, float* num, float* den) {
    const T* base = static_cast<const T*>(t.data);
    const std::ptrdiff_t s = t.stride;
    const int wmax = t.w - 1, hmax = t.h - 1;
    const float wm = static_cast<float>(t.w) - 0.5f, hm = static_cast<float>(t.h) - 0.5f;
    const float inv_r = t.inv_r, dy2 = g.dy * g.dy;
    const float du1 = g.du - 1.0f, dv = g.dv;
    int k = 0;
    while (k < n) {
        const float kf0 = static_cast<float>(k);
        const float u = g.u0 + kf0 * g.du, v = g.v0 + kf0 * g.dv;
        const int x = floor_int(u), y = floor_int(v);
        if (x < 0 || y < 0 || x + 1 > wmax || y + 1 > hmax) {
            // Edge pixel: the clamped sampler, one pixel at a time.
            const float e = std::min(std::min(u + 0.5f, wm - u), std::min(v + 0.5f, hm - v));
            const float val = sample<T, Interp::Linear>(base, s, wmax, hmax, u, v);
            const float dx = g.dx0 + kf0;
            combine<Hard>(e, inv_r, val, dx * dx + dy2, num[k], den[k]);
            ++k;
            continue;
        }
        // How many pixels keep the fractions u - (x + j) and v - y in [0, 1)
        // (rounded down: the weights are clamped below, so an overrun by
        // float rounding cannot extrapolate).
        const float fu = u - static_cast<float>(x), fv = v - static_cast<float>(y);
        float limit = static_cast<float>(std::min(n - k, wmax - x));  // reads x + j + 1 <= wmax
        if (du1 > 0.0f) limit = std::min(limit, (1.0f - fu) / du1);
        if (du1 < 0.0f) limit = std::min(limit, fu / -du1 + 1.0f);
        if (dv > 0.0f) limit = std::min(limit, (1.0f - fv) / dv);
        if (dv < 0.0f) limit = std::min(limit, fv / -dv + 1.0f);
        const int len = std::max(1, static_cast<int>(limit));
        const T* ra = base + static_cast<std::ptrdiff_t>(y) * s + x;
        const T* rb = ra + s;
        float* nm = num + k;
        float* dn = den + k;
#pragma omp simd
        for (int j = 0; j < len; ++j) {
            const float kf = static_cast<float>(k + j);
            const float uj = g.u0 + kf * g.du, vj = g.v0 + kf * g.dv;
            const float fx = std::min(std::max(uj - static_cast<float>(x + j), 0.0f), 1.0f);
            const float fy = std::min(std::max(vj - static_cast<float>(y), 0.0f), 1.0f);
            const float a0 = static_cast<float>(ra[j]), a1 = static_cast<float>(ra[j + 1]);
            const float b0 = static_cast<float>(rb[j]), b1 = static_cast<float>(rb[j + 1]);
            const float a = a0 + fx * (a1 - a0);
            const float b = b0 + fx * (b1 - b0);
            const float val = a + fy * (b - a);
            const float e = std::min(std::min(uj + 0.5f, wm - uj), std::min(vj + 0.5f, hm - vj));
            const float dx = g.dx0 + kf;
            combine<Hard>(e, inv_r, val, dx * dx + dy2, nm[j], dn[j]);
        }
        k += len;
    }
}

#define SA_ROW_KERNELS(T, TN, I, IN, H, HN)                                                       \
    SPECTRALIGN_CLONES void general_##TN##_##IN##_##HN(const TileCtx& t, const RowGeom& g, int n, \
                                                       float* num, float* den) {                 \
        row_general<T, Interp::I, H>(t, g, n, num, den);                                          \
    }                                                                                             \
    SPECTRALIGN_CLONES void general32_##TN##_##IN##_##HN(const TileCtx& t, const RowGeom& g,      \
                                                         int n, float* num, float* den) {         \
        row_general<T, Interp::I, H, int>(t, g, n, num, den);                                     \
    }                                                                                             \
    SPECTRALIGN_CLONES void translate_##TN##_##IN##_##HN(const TileCtx& t, const RowGeom& g,      \
                                                         int n, float* num, float* den) {         \
        row_translate<T, Interp::I, H>(t, g, n, num, den);                                        \
    }
#define SA_ROW_KERNELS_T(T, TN)                      \
    SA_ROW_KERNELS(T, TN, Nearest, n, false, f)      \
    SA_ROW_KERNELS(T, TN, Nearest, n, true, h)       \
    SA_ROW_KERNELS(T, TN, Linear, l, false, f)       \
    SA_ROW_KERNELS(T, TN, Linear, l, true, h)        \
    SA_ROW_KERNELS(T, TN, Cubic, c, false, f)        \
    SA_ROW_KERNELS(T, TN, Cubic, c, true, h)

SA_ROW_KERNELS_T(std::uint8_t, u8)
SA_ROW_KERNELS_T(std::uint16_t, u16)
SA_ROW_KERNELS_T(float, f32)

#define SA_SPAN_KERNELS(T, TN)                                                                    \
    SPECTRALIGN_CLONES void spans_##TN##_f(const TileCtx& t, const RowGeom& g, int n, float* num, \
                                           float* den) {                                          \
        row_spans<T, false>(t, g, n, num, den);                                                   \
    }                                                                                             \
    SPECTRALIGN_CLONES void spans_##TN##_h(const TileCtx& t, const RowGeom& g, int n, float* num, \
                                           float* den) {                                          \
        row_spans<T, true>(t, g, n, num, den);                                                    \
    }
SA_SPAN_KERNELS(std::uint8_t, u8)
SA_SPAN_KERNELS(std::uint16_t, u16)
SA_SPAN_KERNELS(float, f32)

template <class T>
SA_INLINE T to_pixel(float v) {
    if constexpr (std::is_same_v<T, float>) {
        return v;
    } else {
        const float hi = static_cast<float>(std::numeric_limits<T>::max());
        return static_cast<T>(static_cast<int>(std::min(std::max(v, 0.0f), hi) + 0.5f));
    }
}

template <class T, bool Hard>
SA_INLINE void finalize_row_t(const float* num, const float* den, int n, float fill, T* out,
                              std::uint8_t* cov) {
    const float inf = std::numeric_limits<float>::infinity();
#pragma omp simd
    for (int k = 0; k < n; ++k) {
        const bool covered = Hard ? den[k] < inf : den[k] > 0.0f;
        const float v = covered ? (Hard ? num[k] : num[k] / (covered ? den[k] : 1.0f)) : fill;
        out[k] = to_pixel<T>(v);
    }
    if (cov) {
#pragma omp simd
        for (int k = 0; k < n; ++k)
            cov[k] = static_cast<std::uint8_t>(Hard ? den[k] < inf : den[k] > 0.0f);
    }
}

#define SA_FINALIZE(T, TN)                                                                        \
    SPECTRALIGN_CLONES void finalize_##TN(const float* num, const float* den, int n, bool hard,   \
                                          float fill, void* out, std::uint8_t* cov) {             \
        if (hard)                                                                                 \
            finalize_row_t<T, true>(num, den, n, fill, static_cast<T*>(out), cov);                \
        else                                                                                      \
            finalize_row_t<T, false>(num, den, n, fill, static_cast<T*>(out), cov);               \
    }
SA_FINALIZE(std::uint8_t, u8)
SA_FINALIZE(std::uint16_t, u16)
SA_FINALIZE(float, f32)

}  // namespace render_kernels

namespace {

using namespace render_kernels;

using FinalizeFn = void (*)(const float*, const float*, int, bool, float, void*, std::uint8_t*);

struct Kernels {
    RowFn general;
    RowFn general32;  // 32-bit pixel indices (faster gathers); tiles under 2^31 elements
    RowFn translate;  // null when there is no translation fast path
    FinalizeFn finalize;
    RowFn spans = nullptr;  // bilinear span kernel for other transforms (linear only)
};

Kernels pick_kernels(PixelType type, Interp interp, bool hard) {
#define SA_PICK(TN)                                                                               \
    switch (interp) {                                                                             \
        case Interp::Nearest:                                                                     \
            return hard ? Kernels{general_##TN##_n_h, general32_##TN##_n_h, translate_##TN##_n_h, finalize_##TN}        \
                        : Kernels{general_##TN##_n_f, general32_##TN##_n_f, translate_##TN##_n_f, finalize_##TN};       \
        case Interp::Linear:                                                                      \
            return hard ? Kernels{general_##TN##_l_h, general32_##TN##_l_h, translate_##TN##_l_h, finalize_##TN, spans_##TN##_h} \
                        : Kernels{general_##TN##_l_f, general32_##TN##_l_f, translate_##TN##_l_f, finalize_##TN, spans_##TN##_f}; \
        case Interp::Cubic:                                                                       \
            return hard ? Kernels{general_##TN##_c_h, general32_##TN##_c_h, nullptr, finalize_##TN}                     \
                        : Kernels{general_##TN##_c_f, general32_##TN##_c_f, nullptr, finalize_##TN};                    \
    }                                                                                             \
    break;
    switch (type) {
        case PixelType::U8: SA_PICK(u8)
        case PixelType::U16: SA_PICK(u16)
        case PixelType::F32: SA_PICK(f32)
    }
#undef SA_PICK
    throw std::invalid_argument("unsupported pixel type or interpolation");
}

// Everything the engine precomputes about one tile.
struct Prepared {
    TileCtx ctx;
    double inv[6];
    double cx, cy;  // centre in model space
    bool translate;  // inverse linear part is exactly the identity
    bool small_index;  // every pixel index fits in an int
    double bx0, by0, bx1, by1;  // model bounding box of the tile area, 2 px margin
};

Prepared prepare(const RenderTile& t, std::size_t index, double blend) {
    Prepared p{};
    tile_inverse(t, p.inv, index);
    p.ctx = TileCtx{t.data, t.row_stride, t.width, t.height,
                    blend > 0 ? static_cast<float>(1.0 / blend) : 0.0f};
    const double* f = t.fwd;
    const double hx = (t.width - 1) / 2.0, hy = (t.height - 1) / 2.0;
    p.cx = f[0] * hx + f[1] * hy + f[2];
    p.cy = f[3] * hx + f[4] * hy + f[5];
    p.small_index = static_cast<double>(t.row_stride) * t.height < 2147483647.0;
    p.translate = p.inv[0] == 1.0 && p.inv[1] == 0.0 && p.inv[3] == 0.0 && p.inv[4] == 1.0;
    const double cu[4] = {-0.5, t.width - 0.5, -0.5, t.width - 0.5};
    const double cv[4] = {-0.5, -0.5, t.height - 0.5, t.height - 0.5};
    p.bx0 = p.by0 = std::numeric_limits<double>::infinity();
    p.bx1 = p.by1 = -std::numeric_limits<double>::infinity();
    for (int k = 0; k < 4; ++k) {
        const double x = f[0] * cu[k] + f[1] * cv[k] + f[2];
        const double y = f[3] * cu[k] + f[4] * cv[k] + f[5];
        p.bx0 = std::min(p.bx0, x);
        p.bx1 = std::max(p.bx1, x);
        p.by0 = std::min(p.by0, y);
        p.by1 = std::max(p.by1, y);
    }
    p.bx0 -= 2;
    p.by0 -= 2;
    p.bx1 += 2;
    p.by1 += 2;
    return p;
}

// Range [k0, k1) of k in [0, n) with lo <= p0 + k dp <= hi.
void span_1d(double p0, double dp, double lo, double hi, int n, int& k0, int& k1) {
    if (std::fabs(dp) < 1e-12) {
        if (p0 >= lo && p0 <= hi) {
            k0 = 0;
            k1 = n;
        } else {
            k0 = k1 = 0;
        }
        return;
    }
    double a = (lo - p0) / dp, b = (hi - p0) / dp;
    if (a > b) std::swap(a, b);
    a = std::clamp(std::ceil(a), 0.0, static_cast<double>(n));
    b = std::clamp(std::floor(b) + 1.0, 0.0, static_cast<double>(n));
    k0 = static_cast<int>(a);
    k1 = std::max(k0, static_cast<int>(b));
}

constexpr int kChunk = 256;  // columns per kernel call (keeps float steps accurate)

// Tile coordinates (u0, v0) of output pixel (X0, Y), and the columns
// [k0, k1) of the n pixels (X0 + k, Y) that may fall on tile p: a margin of
// half a pixel beyond the tile area; the kernels decide coverage exactly
// (e > 0) and clamp their reads.
struct RowCover {
    double u0, v0;
    int k0, k1;
};

RowCover row_cover(const Prepared& p, double X0, double Y, int n) {
    const double* inv = p.inv;
    RowCover c;
    c.u0 = inv[0] * X0 + inv[1] * Y + inv[2];
    c.v0 = inv[3] * X0 + inv[4] * Y + inv[5];
    int a0, a1, b0, b1;
    span_1d(c.u0, inv[0], -1.0, p.ctx.w, n, a0, a1);
    span_1d(c.v0, inv[3], -1.0, p.ctx.h, n, b0, b1);
    c.k0 = std::max(a0, b0);
    c.k1 = std::min(a1, b1);
    return c;
}

// Adds tile p's samples for the output pixels (X0 + k, Y), k in [0, n).
void process_row(const Prepared& p, const Kernels& kern, double X0, double Y, int n, float* num,
                 float* den) {
    const double* inv = p.inv;
    const RowCover cover = row_cover(p, X0, Y, n);
    const double u0 = cover.u0, v0 = cover.v0;
    const int k0 = cover.k0, k1 = cover.k1;
    for (int c0 = k0; c0 < k1; c0 += kChunk) {
        const int m = std::min(kChunk, k1 - c0);
        const double u = u0 + inv[0] * c0, v = v0 + inv[3] * c0;
        RowGeom g{static_cast<float>(u), static_cast<float>(v), static_cast<float>(inv[0]),
                  static_cast<float>(inv[3]), static_cast<float>(X0 + c0 - p.cx),
                  static_cast<float>(Y - p.cy)};
        float* nm = num + c0;
        float* dn = den + c0;
        if (p.translate && kern.translate && p.ctx.w >= 2) {
            // Columns whose reads stay inside the tile: x + k >= 0 and
            // x + k + 1 <= w - 1, with x the floor of u (of u + 0.5 for
            // nearest, which reads one column only: the bound is looser).
            const int x = floor_int(g.u0);
            const int lo = std::clamp(-x, 0, m);
            RowGeom gi = g;
            gi.u0 = static_cast<float>(u + lo);
            gi.dx0 = static_cast<float>(X0 + c0 + lo - p.cx);
            // Recomputed from the float the kernel will see, so rounding can
            // never move a read outside the tile.
            const int xn = floor_int(gi.u0);
            const int cnt = xn >= 0 ? std::clamp(p.ctx.w - 1 - xn, 0, m - lo) : 0;
            if (lo > 0) kern.general(p.ctx, g, lo, nm, dn);
            if (cnt > 0) kern.translate(p.ctx, gi, cnt, nm + lo, dn + lo);
            const int hi = lo + cnt;
            if (m > hi) {
                RowGeom ge = g;
                ge.u0 = static_cast<float>(u + hi);
                ge.dx0 = static_cast<float>(X0 + c0 + hi - p.cx);
                kern.general(p.ctx, ge, m - hi, nm + hi, dn + hi);
            }
        } else if (kern.spans && p.ctx.w >= 2 && p.ctx.h >= 2) {
            kern.spans(p.ctx, g, m, nm, dn);
        } else if (p.small_index) {
            kern.general32(p.ctx, g, m, nm, dn);
        } else {
            kern.general(p.ctx, g, m, nm, dn);
        }
    }
}

void check_canvas(const Canvas& c) {
    if (!std::isfinite(c.x0) || !std::isfinite(c.y0))
        throw std::invalid_argument("canvas origin must be finite");
    if (c.width < 1 || c.height < 1)
        throw std::invalid_argument("canvas is empty (" + std::to_string(c.width) + " x " +
                                    std::to_string(c.height) + " pixels)");
    if (c.width > (1LL << 31) - 1 || c.height > (1LL << 31) - 1)
        throw std::invalid_argument("canvas is absurdly large");
}

void check_options(const RenderOptions& opt) {
    if (!std::isfinite(opt.blend) || opt.blend < 0)
        throw std::invalid_argument("blend must be a finite number >= 0");
    if (!std::isfinite(opt.fill)) throw std::invalid_argument("fill value must be finite");
}

constexpr int kBlockRows = 64;
constexpr int kBlockCols = 256;

struct BlockGrid {
    long long nbx, nby;
    std::vector<std::vector<int>> bins;  // tiles overlapping each block
};

// Output rows [i0, i0 + rows) and columns [j0, j0 + cols) of block b.
struct Block {
    long long i0, j0;
    int rows, cols;
};

Block block_at(const BlockGrid& grid, const Canvas& canvas, std::size_t b) {
    Block blk;
    blk.i0 = static_cast<long long>(b) / grid.nbx * kBlockRows;
    blk.j0 = static_cast<long long>(b) % grid.nbx * kBlockCols;
    blk.rows = static_cast<int>(std::min<long long>(kBlockRows, canvas.height - blk.i0));
    blk.cols = static_cast<int>(std::min<long long>(kBlockCols, canvas.width - blk.j0));
    return blk;
}

BlockGrid bin_tiles(const std::vector<Prepared>& tiles, const Canvas& c) {
    BlockGrid g;
    g.nbx = (c.width + kBlockCols - 1) / kBlockCols;
    g.nby = (c.height + kBlockRows - 1) / kBlockRows;
    g.bins.resize(static_cast<std::size_t>(g.nbx * g.nby));
    for (std::size_t t = 0; t < tiles.size(); ++t) {
        const Prepared& p = tiles[t];
        // Output columns j with x0 + j in [bx0, bx1].
        const double j0 = std::max(0.0, std::floor(p.bx0 - c.x0));
        const double j1 = std::min(static_cast<double>(c.width - 1), std::ceil(p.bx1 - c.x0));
        const double i0 = std::max(0.0, std::floor(p.by0 - c.y0));
        const double i1 = std::min(static_cast<double>(c.height - 1), std::ceil(p.by1 - c.y0));
        if (!(j1 >= j0 && i1 >= i0)) continue;
        const long long bx0 = static_cast<long long>(j0) / kBlockCols;
        const long long bx1 = static_cast<long long>(j1) / kBlockCols;
        const long long by0 = static_cast<long long>(i0) / kBlockRows;
        const long long by1 = static_cast<long long>(i1) / kBlockRows;
        for (long long by = by0; by <= by1; ++by)
            for (long long bx = bx0; bx <= bx1; ++bx)
                g.bins[static_cast<std::size_t>(by * g.nbx + bx)].push_back(static_cast<int>(t));
    }
    return g;
}

std::vector<Prepared> prepare_all(const std::vector<RenderTile>& tiles, double blend) {
    std::vector<Prepared> out;
    out.reserve(tiles.size());
    for (std::size_t k = 0; k < tiles.size(); ++k) out.push_back(prepare(tiles[k], k, blend));
    return out;
}

}  // namespace

void tile_inverse(const RenderTile& t, double inv[6], std::size_t index) {
    const std::string which = "tile " + std::to_string(index);
    if (t.width < 1 || t.height < 1)
        throw std::invalid_argument(which + " has an empty size");
    const double* f = t.fwd;
    for (int k = 0; k < 6; ++k)
        if (!std::isfinite(f[k]))
            throw std::invalid_argument(which + " has a non-finite transform (NaN or inf)");
    const double det = f[0] * f[4] - f[1] * f[3];
    double scale = 1.0;
    for (int k : {0, 1, 3, 4}) scale = std::max(scale, std::fabs(f[k]));
    if (!(std::fabs(det) > 1e-12 * scale * scale))
        throw std::invalid_argument(which + " has a singular affine transform (determinant " +
                                    std::to_string(det) + ")");
    const double a = f[4] / det, b = -f[1] / det, c = -f[3] / det, d = f[0] / det;
    inv[0] = a;
    inv[1] = b;
    inv[2] = -(a * f[2] + b * f[5]);
    inv[3] = c;
    inv[4] = d;
    inv[5] = -(c * f[2] + d * f[5]);
    // Exact identity for pure translations (the fast path checks for it).
    if (f[0] == 1.0 && f[1] == 0.0 && f[3] == 0.0 && f[4] == 1.0) {
        inv[0] = inv[4] = 1.0;
        inv[1] = inv[3] = 0.0;
        inv[2] = -f[2];
        inv[5] = -f[5];
    }
}

void render_canvas(const std::vector<RenderTile>& tiles, PixelType type, const Canvas& canvas,
                   const RenderOptions& opt, void* out, std::ptrdiff_t out_stride,
                   std::uint8_t* coverage) {
    check_canvas(canvas);
    check_options(opt);
    for (std::size_t k = 0; k < tiles.size(); ++k)
        if (tiles[k].data == nullptr || tiles[k].row_stride < tiles[k].width)
            throw std::invalid_argument("tile " + std::to_string(k) + " has no valid pixel data");
    const std::vector<Prepared> prep = prepare_all(tiles, opt.blend);
    const bool hard = opt.blend == 0;
    const Kernels kern = pick_kernels(type, opt.interp, hard);
    const BlockGrid grid = bin_tiles(prep, canvas);
    const std::size_t psize = pixel_size(type);
    const float den0 = hard ? std::numeric_limits<float>::infinity() : 0.0f;

    struct BlockSums {
        std::vector<float> num, den;
    };
    const std::size_t block_pixels = static_cast<std::size_t>(kBlockRows) * kBlockCols;
    parallel_for(
        grid.bins.size(), opt.threads, [&]() { return BlockSums{std::vector<float>(block_pixels),
                                                                std::vector<float>(block_pixels)}; },
        [&](BlockSums& sums, std::size_t b) {
            std::vector<float>& num = sums.num;
            std::vector<float>& den = sums.den;
            const Block blk = block_at(grid, canvas, b);
            const long long i0 = blk.i0, j0 = blk.j0;
            const int rows = blk.rows, cols = blk.cols;
            for (int i = 0; i < rows; ++i) {
                std::fill_n(num.data() + i * kBlockCols, cols, 0.0f);
                std::fill_n(den.data() + i * kBlockCols, cols, den0);
            }
            const double X0 = canvas.x0 + static_cast<double>(j0);
            for (int t : grid.bins[b]) {
                const Prepared& p = prep[static_cast<std::size_t>(t)];
                for (int i = 0; i < rows; ++i) {
                    const double Y = canvas.y0 + static_cast<double>(i0 + i);
                    if (Y < p.by0 || Y > p.by1) continue;
                    process_row(p, kern, X0, Y, cols, num.data() + i * kBlockCols,
                                den.data() + i * kBlockCols);
                }
            }
            for (int i = 0; i < rows; ++i) {
                char* o = static_cast<char*>(out) +
                          ((i0 + i) * out_stride + j0) * static_cast<std::ptrdiff_t>(psize);
                std::uint8_t* cv =
                    coverage ? coverage + (i0 + i) * canvas.width + j0 : nullptr;
                kern.finalize(num.data() + i * kBlockCols, den.data() + i * kBlockCols, cols, hard,
                              opt.fill, o, cv);
            }
        });
}

void accumulate_tile(const RenderTile& tile, PixelType type, const Canvas& canvas,
                     const RenderOptions& opt, float* num, float* den) {
    check_canvas(canvas);
    check_options(opt);
    if (tile.data == nullptr || tile.row_stride < tile.width)
        throw std::invalid_argument("tile has no valid pixel data");
    const Prepared p = prepare(tile, 0, opt.blend);
    const Kernels kern = pick_kernels(type, opt.interp, opt.blend == 0);
    const double j0 = std::max(0.0, std::floor(p.bx0 - canvas.x0));
    const double j1 = std::min(static_cast<double>(canvas.width), std::ceil(p.bx1 - canvas.x0) + 1);
    const double i0 = std::max(0.0, std::floor(p.by0 - canvas.y0));
    const double i1 = std::min(static_cast<double>(canvas.height), std::ceil(p.by1 - canvas.y0) + 1);
    if (!(j1 > j0 && i1 > i0)) return;
    const long long c0 = static_cast<long long>(j0);
    const long long r0 = static_cast<long long>(i0);
    const long long nrows = static_cast<long long>(i1) - r0;
    const long long ncols = static_cast<long long>(j1) - c0;
    constexpr long long band = 16;
    const std::size_t nbands = static_cast<std::size_t>((nrows + band - 1) / band);
    parallel_for(nbands, opt.threads, [] { return 0; }, [&](int&, std::size_t b) {
        const long long ra = r0 + static_cast<long long>(b) * band;
        const long long rb = std::min(ra + band, r0 + nrows);
        for (long long r = ra; r < rb; ++r) {
            const std::ptrdiff_t off = r * canvas.width + c0;
            // process_row takes an int count: go in pieces.
            for (long long c = 0; c < ncols; c += (1 << 20)) {
                const int n = static_cast<int>(std::min<long long>(1 << 20, ncols - c));
                process_row(p, kern, canvas.x0 + static_cast<double>(c0 + c),
                            canvas.y0 + static_cast<double>(r), n, num + off + c,
                            den + off + c);
            }
        }
    });
}

void finalize_canvas(const float* num, const float* den, const Canvas& canvas, PixelType type,
                     bool hard, float fill, int threads, void* out, std::uint8_t* coverage) {
    check_canvas(canvas);
    if (!std::isfinite(fill)) throw std::invalid_argument("fill value must be finite");
    const Kernels kern = pick_kernels(type, Interp::Linear, hard);
    const std::size_t psize = pixel_size(type);
    const std::size_t nrows = static_cast<std::size_t>(canvas.height);
    parallel_for((nrows + 15) / 16, threads, [] { return 0; }, [&](int&, std::size_t b) {
        for (std::size_t r = b * 16; r < std::min(nrows, b * 16 + 16); ++r) {
            const std::ptrdiff_t off = static_cast<std::ptrdiff_t>(r) * canvas.width;
            for (long long c = 0; c < canvas.width; c += (1 << 20)) {
                const int n = static_cast<int>(std::min<long long>(1 << 20, canvas.width - c));
                kern.finalize(num + off + c, den + off + c, n, hard, fill,
                              static_cast<char*>(out) +
                                  (off + c) * static_cast<std::ptrdiff_t>(psize),
                              coverage ? coverage + off + c : nullptr);
            }
        }
    });
}

void tile_coverage(const std::vector<RenderTile>& tiles, const Canvas& canvas, bool all_tiles,
                   int threads, std::uint8_t* mask) {
    check_canvas(canvas);
    const std::vector<Prepared> prep = prepare_all(tiles, 1.0);
    const BlockGrid grid = bin_tiles(prep, canvas);
    const int ntiles = static_cast<int>(tiles.size());
    parallel_for(
        grid.bins.size(), threads, [] { return std::vector<int>(static_cast<std::size_t>(kBlockCols)); },
        [&](std::vector<int>& count, std::size_t b) {
            const Block blk = block_at(grid, canvas, b);
            const long long i0 = blk.i0, j0 = blk.j0;
            const int rows = blk.rows, cols = blk.cols;
            const double X0 = canvas.x0 + static_cast<double>(j0);
            for (int i = 0; i < rows; ++i) {
                std::fill(count.begin(), count.end(), 0);
                const double Y = canvas.y0 + static_cast<double>(i0 + i);
                for (int t : grid.bins[b]) {
                    const Prepared& p = prep[static_cast<std::size_t>(t)];
                    const double* inv = p.inv;
                    const RowCover cover = row_cover(p, X0, Y, cols);
                    const double u0 = cover.u0, v0 = cover.v0;
                    const float wm = static_cast<float>(p.ctx.w) - 0.5f;
                    const float hm = static_cast<float>(p.ctx.h) - 0.5f;
                    for (int k = cover.k0; k < cover.k1; ++k) {
                        // Same float arithmetic as the kernels (chunks of kChunk).
                        const int c0 = k - k % kChunk;
                        const float uc = static_cast<float>(u0 + inv[0] * c0);
                        const float vc = static_cast<float>(v0 + inv[3] * c0);
                        const float kf = static_cast<float>(k - c0);
                        const float u = uc + kf * static_cast<float>(inv[0]);
                        const float v = vc + kf * static_cast<float>(inv[3]);
                        const float e = std::min(std::min(u + 0.5f, wm - u), std::min(v + 0.5f, hm - v));
                        count[static_cast<std::size_t>(k)] += e > 0.0f ? 1 : 0;
                    }
                }
                std::uint8_t* m = mask + (i0 + i) * canvas.width + j0;
                for (int k = 0; k < cols; ++k)
                    m[k] = static_cast<std::uint8_t>(all_tiles ? count[static_cast<std::size_t>(k)] == ntiles
                                                               : count[static_cast<std::size_t>(k)] > 0);
            }
        });
}

}  // namespace spectralign_fast

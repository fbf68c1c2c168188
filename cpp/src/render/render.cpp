#include "spectralign_fast/render/render.hpp"
#include "render/engine.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/parallel.hpp"
#include "spectralign_fast/core/interrupt.hpp"
#include "sample/kernels.hpp"

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

using namespace render_detail;

// Blends a chunk of samples (interpolated by the sample core) into the
// accumulators. Feathering: weighted sums, weight clamp(e / blend, 0, 1); each
// product weight * value is a float (no larger than the value), the sum of
// products a double, which cannot overflow where float32 would (two tiles of
// 2e38); the weights (each <= 1) sum in float.
// Hard seams: num holds the value and den the squared distance to the
// centre of the tile that currently wins (ties: the larger value). The edge distance e decides coverage and the feathering
// weight; it is computed in float from the chunk's start exactly as
// tile_coverage() does, so coverage masks and renders agree.
// Columns [kb, ke) of a chunk; k counts from the chunk's start, where g is.
template <bool Hard>
SA_INLINE void combine_row(const TileCtx& t, const RowGeom& g, int kb, int ke, const float* val,
                           double* num, float* den) {
    const float wm = static_cast<float>(t.w) - 0.5f, hm = static_cast<float>(t.h) - 0.5f;
    const float inv_r = t.inv_r, dy2 = g.dy * g.dy;
    // Plain ternaries, not std::min on references: GCC does not vectorise
    // selects between addresses.
    auto mn = [](float a, float b) SF_INLINE_LAMBDA { return a < b ? a : b; };
#pragma omp simd
    for (int k = kb; k < ke; ++k) {
        const float kf = static_cast<float>(k);
        const float u = g.u0 + kf * g.du, v = g.v0 + kf * g.dv;
        const float e = mn(mn(u + 0.5f, wm - u), mn(v + 0.5f, hm - v));
        const float dx = g.dx0 + kf;
        const float d2 = dx * dx + dy2, x = val[k];
        if constexpr (Hard) {
            const double nk = num[k];
            const float dk = den[k];
            const bool take = e > 0.0f && (d2 < dk || (d2 == dk && static_cast<double>(x) > nk));
            num[k] = take ? static_cast<double>(x) : nk;
            den[k] = take ? d2 : dk;
        } else {
            const float w0 = e * inv_r;
            const float wgt = w0 > 0.0f ? (w0 < 1.0f ? w0 : 1.0f) : 0.0f;
            num[k] += static_cast<double>(wgt * x);
            den[k] += wgt;
        }
    }
}

SPECTRALIGN_CLONES void combine_f(const TileCtx& t, const RowGeom& g, int kb, int ke,
                                  const float* val, double* num, float* den) {
    combine_row<false>(t, g, kb, ke, val, num, den);
}
SPECTRALIGN_CLONES void combine_h(const TileCtx& t, const RowGeom& g, int kb, int ke,
                                  const float* val, double* num, float* den) {
    combine_row<true>(t, g, kb, ke, val, num, den);
}

using sample::kern::to_pixel;  // rounded half up and clamped (NaN -> 0)

template <class T, bool Hard>
SA_INLINE void finalize_row_t(const double* num, const float* den, int n, float fill, T* out,
                              std::uint8_t* cov) {
    const float inf = std::numeric_limits<float>::infinity();
#pragma omp simd
    for (int k = 0; k < n; ++k) {
        const bool covered = Hard ? den[k] < inf : den[k] > 0.0f;
        // A weighted mean lies within the values' range, so it fits a float again
        // once rounding (weights summed in float) is clamped away.
        const double big = std::numeric_limits<float>::max();
        const double m = Hard ? num[k] : num[k] / static_cast<double>(covered ? den[k] : 1.0f);
        const double mean = m > big ? big : (m < -big ? -big : m);
        const float v = covered ? static_cast<float>(mean) : fill;
        out[k] = to_pixel<T>(v);
    }
    if (cov) {
#pragma omp simd
        for (int k = 0; k < n; ++k)
            cov[k] = static_cast<std::uint8_t>(Hard ? den[k] < inf : den[k] > 0.0f);
    }
}

#define SA_FINALIZE(T, TN)                                                                        \
    SPECTRALIGN_CLONES void finalize_##TN(const double* num, const float* den, int n, bool hard,  \
                                          float fill, void* out, std::uint8_t* cov) {             \
        if (hard)                                                                                 \
            finalize_row_t<T, true>(num, den, n, fill, static_cast<T*>(out), cov);                \
        else                                                                                      \
            finalize_row_t<T, false>(num, den, n, fill, static_cast<T*>(out), cov);               \
    }
SA_FINALIZE(std::uint8_t, u8)
SA_FINALIZE(std::uint16_t, u16)
SA_FINALIZE(float, f32)

// finalize_row_t for pixels that one tile alone covers, at weight exactly 1:
// there num = 0.0 + x and den = 1.0f, so the mean is x + 0.0f (-0 becomes
// +0), clamped to the float range (only inf moves), bit for bit.
template <class T>
SA_INLINE void direct_row_t(const float* val, int n, T* out) {
    const float big = std::numeric_limits<float>::max();
#pragma omp simd
    for (int k = 0; k < n; ++k) {
        const float x = val[k] + 0.0f;
        out[k] = to_pixel<T>(x > big ? big : (x < -big ? -big : x));
    }
}

#define SA_DIRECT(T, TN)                                                           \
    SPECTRALIGN_CLONES void direct_##TN(const float* val, int n, void* out) {      \
        direct_row_t<T>(val, n, static_cast<T*>(out));                             \
    }
SA_DIRECT(std::uint8_t, u8)
SA_DIRECT(std::uint16_t, u16)
SA_DIRECT(float, f32)

}  // namespace render_kernels

namespace render_detail {

using namespace render_kernels;

namespace {

sample::Kernel sample_kernel(Interp interp) {
    switch (interp) {
        case Interp::Nearest: return sample::Kernel::Nearest;
        case Interp::Linear: return sample::Kernel::Linear;
        case Interp::Cubic: return sample::Kernel::CatmullRom;  // Keys a = -0.5, edge replicated
    }
    throw std::invalid_argument("unsupported interpolation");
}

}  // namespace

Kernels pick_kernels(PixelType type, Interp interp, bool hard) {
    Kernels k{};
    sample::Dtype dt = sample::Dtype::F32;
    switch (type) {
        case PixelType::U8: dt = sample::Dtype::U8; k.finalize = finalize_u8; k.direct = direct_u8; break;
        case PixelType::U16: dt = sample::Dtype::U16; k.finalize = finalize_u16; k.direct = direct_u16; break;
        case PixelType::F32: dt = sample::Dtype::F32; k.finalize = finalize_f32; k.direct = direct_f32; break;
    }
    const sample::Kernel sk = sample_kernel(interp);
    k.sample32 = sample::detail::pick_row_to_float(dt, sk, true);
    k.sample64 = sample::detail::pick_row_to_float(dt, sk, false);
    k.combine = hard ? combine_h : combine_f;
    if (!k.sample32 || !k.sample64 || !k.finalize)
        throw std::invalid_argument("unsupported pixel type or interpolation");
    return k;
}

Prepared prepare(const RenderTile& t, std::size_t index, double blend, bool cubic) {
    Prepared p{};
    tile_inverse(t, p.inv, index);
    for (int a = 0; a < 2; ++a) {
        const double d = p.inv[a == 0 ? 3 : 0];
        p.inv_d[a] = d != 0.0 && std::isfinite(1.0 / d) ? 1.0 / d : 0.0;
    }
    p.ctx = TileCtx{t.data, t.row_stride, t.width, t.height,
                    blend > 0 ? static_cast<float>(1.0 / blend) : 0.0f};
    p.src.data = t.data;
    p.src.ndim = 2;
    p.src.n[0] = t.height;
    p.src.n[1] = t.width;
    p.src.stride[0] = t.row_stride;
    p.src.stride[1] = 1;
    p.src.constant = false;  // coverage comes from the edge distance, not the sampler
    if (cubic) {
        p.taps[0] = sample::detail::tap_table(t.height, false);
        p.taps[1] = sample::detail::tap_table(t.width, false);
        p.src.taps[0] = p.taps[0].data();
        p.src.taps[1] = p.taps[1].data();
    }
    const double* f = t.fwd;
    const double hx = (t.width - 1) / 2.0, hy = (t.height - 1) / 2.0;
    p.cx = f[0] * hx + f[1] * hy + f[2];
    p.cy = f[3] * hx + f[4] * hy + f[5];
    p.small_index = static_cast<double>(t.row_stride) * t.height < 2147483647.0;
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

RowCover row_cover(const Prepared& p, double X0, double Y, int n) {
    const double* inv = p.inv;
    RowCover c = row_origin(p, X0, Y);
    int a0, a1, b0, b1;
    span_1d(c.u0, inv[0], -1.0, p.ctx.w, n, a0, a1);
    span_1d(c.v0, inv[3], -1.0, p.ctx.h, n, b0, b1);
    c.k0 = std::max(a0, b0);
    c.k1 = std::min(a1, b1);
    return c;
}

// Adds tile p's samples for the output pixels (X0 + k, Y), k in
// [cover.k0, cover.k1): the sample core interpolates a chunk (coordinates in
// double from the chunk's own start), then the chunk is blended in, except
// for direct's columns, which are written out.
void process_cover(const Prepared& p, const Kernels& kern, const RowCover& cover, double X0, double Y,
                   double* num, float* den, const Direct* direct) {
    const double* inv = p.inv;
    const double u0 = cover.u0, v0 = cover.v0;
    const int k0 = cover.k0, k1 = cover.k1;
    const sample::detail::RowFn fn = p.small_index ? kern.sample32 : kern.sample64;
    alignas(64) float val[kChunk];
    for (int c0 = k0; c0 < k1; c0 += kChunk) {
        const int m = std::min(kChunk, k1 - c0);
        const double u = u0 + inv[0] * c0, v = v0 + inv[3] * c0;
        RowGeom g{static_cast<float>(u), static_cast<float>(v), static_cast<float>(inv[0]),
                  static_cast<float>(inv[3]), static_cast<float>(X0 + c0 - p.cx),
                  static_cast<float>(Y - p.cy)};
        sample::detail::Row row;  // array axis order: (tile row v, tile column u)
        row.p[0] = v;
        row.p[1] = u;
        row.d[0] = inv[3];
        row.d[1] = inv[0];
        row.inv_d[0] = p.inv_d[0];
        row.inv_d[1] = p.inv_d[1];
        row.n = m;
        row.out = val;
        fn(p.src, row);
        if (!direct) {
            kern.combine(p.ctx, g, 0, m, val, num + c0, den + c0);
            continue;
        }
        const int da = std::clamp(direct->a - c0, 0, m), db = std::clamp(direct->b - c0, da, m);
        if (da > 0) kern.combine(p.ctx, g, 0, da, val, num + c0, den + c0);
        if (db < m) kern.combine(p.ctx, g, db, m, val, num + c0, den + c0);
        const int sa = std::max(direct->s0, c0 + da), sb = std::min(direct->s1, c0 + db);
        if (sb > sa)
            kern.direct(val + (sa - c0), sb - sa,
                        direct->out + static_cast<std::size_t>(sa - direct->s0) * direct->psize);
    }
}

void prefetch_next_row(const Prepared& p, const RowCover& c, std::size_t elem) {
    const double* inv = p.inv;
    const double u = c.u0 + inv[1], v = c.v0 + inv[4];  // the next row's origin
    const char* base = static_cast<const char*>(p.ctx.data);
    const double wl = p.ctx.w - 1.0, hl = p.ctx.h - 1.0;
    for (int k = c.k0; k < c.k1; k += 16) {
        const double uk = std::floor(u + k * inv[0]) - 1.0, vk = std::floor(v + k * inv[3]) + 1.0;
        // Clamped in double first (NaN included), so the conversions are defined.
        const auto col = static_cast<std::ptrdiff_t>(uk >= 0.0 ? (uk <= wl ? uk : wl) : 0.0);
        const auto row = static_cast<std::ptrdiff_t>(vk >= 0.0 ? (vk <= hl ? vk : hl) : 0.0);
        const char* a = base + (row * p.ctx.stride + col) * static_cast<std::ptrdiff_t>(elem);
        __builtin_prefetch(a, 0, 3);
        __builtin_prefetch(a + 64, 0, 3);
    }
}

void process_row(const Prepared& p, const Kernels& kern, double X0, double Y, int n, double* num,
                 float* den) {
    process_cover(p, kern, row_cover(p, X0, Y, n), X0, Y, num, den);
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

Block block_at(const BlockGrid& grid, const Canvas& canvas, std::size_t b) {
    Block blk;
    blk.i0 = grid.win.row0 + static_cast<long long>(b) / grid.nbx * kBlockRows;
    blk.j0 = (grid.bx0 + static_cast<long long>(b) % grid.nbx) * kBlockCols;
    blk.rows = static_cast<int>(std::min<long long>(kBlockRows, grid.win.row0 + grid.win.rows - blk.i0));
    blk.cols = static_cast<int>(std::min<long long>(kBlockCols, canvas.width - blk.j0));
    blk.c0 = std::max(blk.j0, grid.win.col0);
    blk.c1 = std::min(blk.j0 + blk.cols, grid.win.col0 + grid.win.cols);
    return blk;
}

BlockGrid bin_tiles(const std::vector<Prepared>& tiles, const Canvas& c, const Window& win) {
    BlockGrid g;
    g.win = win;
    g.bx0 = win.col0 / kBlockCols;
    g.nbx = (win.col0 + win.cols - 1) / kBlockCols - g.bx0 + 1;
    g.nby = (win.rows + kBlockRows - 1) / kBlockRows;
    g.bins.resize(static_cast<std::size_t>(g.nbx * g.nby));
    const double wj0 = static_cast<double>(g.bx0 * kBlockCols);
    const double wj1 = std::min(static_cast<double>(c.width), static_cast<double>((g.bx0 + g.nbx) * kBlockCols)) - 1;
    const double wi0 = static_cast<double>(win.row0), wi1 = static_cast<double>(win.row0 + win.rows - 1);
    for (std::size_t t = 0; t < tiles.size(); ++t) {
        const Prepared& p = tiles[t];
        // Canvas columns j with x0 + j in [bx0, bx1], within the window's blocks.
        const double j0 = std::max(wj0, std::floor(p.bx0 - c.x0));
        const double j1 = std::min(wj1, std::ceil(p.bx1 - c.x0));
        const double i0 = std::max(wi0, std::floor(p.by0 - c.y0));
        const double i1 = std::min(wi1, std::ceil(p.by1 - c.y0));
        if (!(j1 >= j0 && i1 >= i0)) continue;
        const long long bx0 = static_cast<long long>(j0) / kBlockCols - g.bx0;
        const long long bx1 = static_cast<long long>(j1) / kBlockCols - g.bx0;
        const long long by0 = (static_cast<long long>(i0) - win.row0) / kBlockRows;
        const long long by1 = (static_cast<long long>(i1) - win.row0) / kBlockRows;
        for (long long by = by0; by <= by1; ++by)
            for (long long bx = bx0; bx <= bx1; ++bx)
                g.bins[static_cast<std::size_t>(by * g.nbx + bx)].push_back(static_cast<int>(t));
    }
    return g;
}

Window whole(const Canvas& c) { return Window{0, 0, c.height, c.width}; }

std::vector<Prepared> prepare_all(const std::vector<RenderTile>& tiles, double blend,
                                  bool cubic) {
    std::vector<Prepared> out;
    out.reserve(tiles.size());
    for (std::size_t k = 0; k < tiles.size(); ++k) out.push_back(prepare(tiles[k], k, blend, cubic));
    return out;
}

}  // namespace render_detail

using namespace render_detail;

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

void accumulate_tile(const RenderTile& tile, PixelType type, const Canvas& canvas,
                     const RenderOptions& opt, double* num, float* den) {
    check_canvas(canvas);
    check_options(opt);
    if (tile.data == nullptr || tile.row_stride < tile.width)
        throw std::invalid_argument("tile has no valid pixel data");
    const Prepared p = prepare(tile, 0, opt.blend, opt.interp == Interp::Cubic);
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

void finalize_canvas(const double* num, const float* den, const Canvas& canvas, PixelType type,
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
    const BlockGrid grid = bin_tiles(prep, canvas, whole(canvas));
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

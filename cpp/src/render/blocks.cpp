// render_canvas and render_window: every tile rendered into the output in
// one pass over blocks of it (see engine.hpp for the shared pieces).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/parallel.hpp"
#include "render/engine.hpp"
#include "spectralign_fast/core/interrupt.hpp"
#include "spectralign_fast/render/render.hpp"

namespace spectralign_fast {

using namespace render_detail;

namespace {

// Columns [a, b) of cover where tile p's feathering weight is exactly 1 in
// combine_row's float arithmetic: the edge distance is at least blend plus a
// margin far above the float rounding of u, v, e and e / blend (relative
// 2^-24 each, on coordinates below 2^22).
void full_weight(const Prepared& p, const RowCover& c, double blend, int& a, int& b) {
    a = b = 0;
    const double w = p.ctx.w, h = p.ctx.h, du = p.inv[0], dv = p.inv[3];
    const double reach = std::fabs(c.u0) + std::fabs(c.v0) + kChunk * (std::fabs(du) + std::fabs(dv));
    if (!(blend > 0) || w + h + reach > 4e6) return;
    const double margin = 1e-5 * (blend + w + h + reach + 1.0);
    const double ulo = blend - 0.5 + margin, uhi = w - 0.5 - blend - margin;
    const double vlo = blend - 0.5 + margin, vhi = h - 0.5 - blend - margin;
    if (!(ulo <= uhi && vlo <= vhi)) return;
    int a0, a1, b0, b1;
    span_1d(c.u0, du, ulo, uhi, c.k1, a0, a1);
    span_1d(c.v0, dv, vlo, vhi, c.k1, b0, b1);
    a = std::max({a0, b0, c.k0});
    b = std::max(a, std::min(a1, b1));
}

// How a tile meets a block of output pixels (columns X0 .. X0 + cols - 1,
// rows Y0 .. Y1 of model space), decided once per block from its corners
// with margins far above the rounding in row_cover and full_weight.
struct Meet {
    const Prepared* p = nullptr;
    bool outside = false;  // no row's cover reaches the block
    bool inside = false;   // every row's cover is the whole block row
    int full = 0;          // feathering weight exactly 1: 0 nowhere, 1 maybe somewhere, 2 everywhere
};

Meet meet(const Prepared& p, double X0, double X1, double Y0, double Y1, double blend) {
    const double* inv = p.inv;
    Meet m;
    m.p = &p;
    double umin = std::numeric_limits<double>::infinity(), umax = -umin, vmin = umin, vmax = -umin;
    for (double X : {X0, X1})
        for (double Y : {Y0, Y1}) {
            const double u = inv[0] * X + inv[1] * Y + inv[2], v = inv[3] * X + inv[4] * Y + inv[5];
            umin = std::min(umin, u);
            umax = std::max(umax, u);
            vmin = std::min(vmin, v);
            vmax = std::max(vmax, v);
        }
    const double w = p.ctx.w, h = p.ctx.h;
    const double big = std::max(std::fabs(umin), std::fabs(umax)) + std::max(std::fabs(vmin), std::fabs(vmax)) +
                       w + h + 1.0;
    if (!(big < 1e15)) return m;  // partial: row by row
    const double e = 1e-6 * big;
    m.outside = umax < -1.0 - e || umin > w + e || vmax < -1.0 - e || vmin > h + e;
    if (m.outside) return m;
    m.inside = Y0 >= p.by0 && Y1 <= p.by1 && umin >= -1.0 + e && umax <= w - e && vmin >= -1.0 + e &&
               vmax <= h - e;
    const double reach = big + kChunk * (std::fabs(inv[0]) + std::fabs(inv[3]));
    if (!(blend > 0) || reach > 4e6) return m;
    const double margin = 1e-5 * (blend + reach);  // at least full_weight's
    const double lo = blend - 0.5 + margin, uhi = w - 0.5 - blend - margin, vhi = h - 0.5 - blend - margin;
    if (m.inside && umin >= lo && umax <= uhi && vmin >= lo && vmax <= vhi)
        m.full = 2;
    else if (umax >= lo - 1.0 && umin <= uhi + 1.0 && vmax >= lo - 1.0 && vmin <= vhi + 1.0)
        m.full = 1;
    return m;
}

// Coverage bytes (0 or 1) -> bits in numpy.packbits order (first pixel in
// the highest bit); bytes[n .. n + 7] are scratch. One multiply gathers the
// low bits of eight bytes into the top byte, first byte highest (no carries:
// every partial product lands on its own bit).
void pack_bits(std::uint8_t* bytes, int n, std::uint8_t* bits) {
    std::fill(bytes + n, bytes + n + 8, std::uint8_t{0});
    for (int k = 0; k < n; k += 8) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        std::uint64_t x;
        std::memcpy(&x, bytes + k, 8);
        bits[k / 8] = static_cast<std::uint8_t>((x * 0x8040201008040201ull) >> 56);
#else
        unsigned b = 0;
        for (int q = 0; q < 8; ++q) b |= static_cast<unsigned>(bytes[k + q] != 0) << (7 - q);
        bits[k / 8] = static_cast<std::uint8_t>(b);
#endif
    }
}

// n set bits in packbits order.
void fill_bits(std::uint8_t* bits, int n) {
    std::fill(bits, bits + n / 8, std::uint8_t{0xff});
    if (n % 8) bits[n / 8] = static_cast<std::uint8_t>(0xff00u >> (n % 8));
}

// Shrinks [a, b) to its longest part outside [c, d).
void cut(int& a, int& b, int c, int d) {
    if (d <= a || c >= b) return;
    if (c <= a)
        a = std::min(b, d);
    else if (d >= b)
        b = c;
    else if (c - a >= b - d)
        b = c;
    else
        a = d;
}

}  // namespace

void render_canvas(const std::vector<RenderTile>& tiles, PixelType type, const Canvas& canvas,
                   const RenderOptions& opt, void* out, std::ptrdiff_t out_stride,
                   std::uint8_t* coverage) {
    render_window(tiles, type, canvas, whole(canvas), opt, out, out_stride, coverage);
}

void render_window(const std::vector<RenderTile>& tiles, PixelType type, const Canvas& canvas,
                   const Window& win, const RenderOptions& opt, void* out,
                   std::ptrdiff_t out_stride, std::uint8_t* coverage, bool coverage_bits) {
    check_canvas(canvas);
    check_options(opt);
    if (win.rows < 1 || win.cols < 1 || win.row0 < 0 || win.col0 < 0 ||
        win.row0 > canvas.height - win.rows || win.col0 > canvas.width - win.cols)
        throw std::invalid_argument("the window is empty or not inside the canvas");
    if (coverage_bits && win.col0 % 8 != 0)
        throw std::invalid_argument("a coverage bit mask needs a window starting at a multiple of 8 columns");
    const long long bit_row = (win.cols + 7) / 8;  // bytes per row of the bit mask
    for (std::size_t k = 0; k < tiles.size(); ++k)
        if (tiles[k].data == nullptr || tiles[k].row_stride < tiles[k].width)
            throw std::invalid_argument("tile " + std::to_string(k) + " has no valid pixel data");
    const std::vector<Prepared> prep = prepare_all(tiles, opt.blend, opt.interp == Interp::Cubic);
    const bool hard = opt.blend == 0;
    const Kernels kern = pick_kernels(type, opt.interp, hard);
    const BlockGrid grid = bin_tiles(prep, canvas, win);
    const std::size_t psize = pixel_size(type);
    const float den0 = hard ? std::numeric_limits<float>::infinity() : 0.0f;

    // Row by row through the block: the tiles that reach the row (in the
    // renderer's order), then the columns that one tile alone covers at full
    // weight go straight to the output; the rest accumulate in one row of
    // sums (cache-hot) and are finalized.
    struct RowSums {
        std::vector<double> num;
        std::vector<float> den;
        std::vector<Meet> meets;
        std::vector<std::pair<const Meet*, RowCover>> act;
        std::vector<std::uint8_t> cov;  // a row of coverage bytes (bit mask mode)
    };
    static_assert(kBlockCols <= kChunk, "a block row is one sampling chunk (direct path)");
    parallel_for(
        grid.bins.size(), opt.threads,
        [&]() {
            return RowSums{std::vector<double>(kBlockCols), std::vector<float>(kBlockCols), {}, {},
                           std::vector<std::uint8_t>(kBlockCols + 8)};
        },
        [&](RowSums& sums, std::size_t b) {
            double* num = sums.num.data();
            float* den = sums.den.data();
            auto& act = sums.act;
            auto& meets = sums.meets;
            const Block blk = block_at(grid, canvas, b);
            const long long i0 = blk.i0, j0 = blk.j0;
            const int rows = blk.rows, cols = blk.cols;
            const int s0 = static_cast<int>(blk.c0 - j0), s1 = static_cast<int>(blk.c1 - j0);
            const double X0 = canvas.x0 + static_cast<double>(j0);
            meets.clear();
            for (int t : grid.bins[b]) {
                const Meet m = meet(prep[static_cast<std::size_t>(t)], X0, canvas.x0 + static_cast<double>(j0 + cols - 1),
                                    canvas.y0 + static_cast<double>(i0),
                                    canvas.y0 + static_cast<double>(i0 + rows - 1), opt.blend);
                if (!m.outside) meets.push_back(m);
            }
            // One tile alone over the block, at full weight: its samples are the output.
            const bool solo = meets.size() == 1 && meets[0].full == 2;
            for (int i = 0; i < rows; ++i) {
                if (i % 16 == 0) check_interrupt();  // a block under thousands of tiles is a long item
                const double Y = canvas.y0 + static_cast<double>(i0 + i);
                const long long r = i0 + i - win.row0, c = blk.c0 - win.col0;
                Direct d;
                d.s0 = s0;
                d.s1 = s1;
                d.psize = psize;
                d.out = static_cast<char*>(out) + (r * out_stride + c) * static_cast<std::ptrdiff_t>(psize);
                std::uint8_t* cv = !coverage ? nullptr
                                   : coverage_bits ? sums.cov.data()
                                                   : coverage + r * win.cols + c;
                if (solo) {
                    RowCover rc = row_origin(*meets[0].p, X0, Y);
                    rc.k1 = d.b = cols;
                    prefetch_next_row(*meets[0].p, rc, psize);
                    process_cover(*meets[0].p, kern, rc, X0, Y, num, den, &d);
                    if (cv && coverage_bits)
                        fill_bits(coverage + r * bit_row + c / 8, s1 - s0);
                    else if (cv)
                        std::fill(cv, cv + (s1 - s0), std::uint8_t{1});
                    continue;
                }
                act.clear();
                for (const Meet& m : meets) {
                    const Prepared& p = *m.p;
                    RowCover rc;
                    if (m.inside) {
                        rc = row_origin(p, X0, Y);
                        rc.k1 = cols;
                    } else {
                        if (Y < p.by0 || Y > p.by1) continue;
                        rc = row_cover(p, X0, Y, cols);
                        if (rc.k1 <= rc.k0) continue;
                    }
                    act.emplace_back(&m, rc);
                }
                int best = -1;
                for (std::size_t q = 0; q < act.size(); ++q) {
                    const Meet& m = *act[q].first;
                    if (m.full == 0) continue;
                    int a = 0, e = cols;
                    if (m.full == 1) full_weight(*m.p, act[q].second, opt.blend, a, e);
                    for (std::size_t o = 0; o < act.size() && e > a; ++o)
                        if (o != q) cut(a, e, act[o].second.k0, act[o].second.k1);
                    if (e - a > d.b - d.a) {
                        best = static_cast<int>(q);
                        d.a = a;
                        d.b = e;
                    }
                }
                for (const auto& q : act) prefetch_next_row(*q.first->p, q.second, psize);
                std::fill(num, num + d.a, 0.0);
                std::fill(den, den + d.a, den0);
                std::fill(num + d.b, num + cols, 0.0);
                std::fill(den + d.b, den + cols, den0);
                for (std::size_t q = 0; q < act.size(); ++q)
                    process_cover(*act[q].first->p, kern, act[q].second, X0, Y, num, den,
                                  static_cast<int>(q) == best ? &d : nullptr);
                auto fin = [&](int a, int e) {
                    if (e > a)
                        kern.finalize(num + a, den + a, e - a, hard, opt.fill,
                                      d.out + static_cast<std::size_t>(a - s0) * psize,
                                      cv ? cv + (a - s0) : nullptr);
                };
                fin(s0, std::min(s1, d.a));
                const int da = std::max(s0, d.a), db = std::min(s1, d.b);
                if (cv && db > da) std::fill(cv + (da - s0), cv + (db - s0), std::uint8_t{1});
                fin(std::max(s0, d.b), s1);
                if (cv && coverage_bits) pack_bits(cv, s1 - s0, coverage + r * bit_row + c / 8);
            }
        });
}

}  // namespace spectralign_fast

// The Renderer's engine, shared by render.cpp (kernels, tile preparation,
// incremental rendering, masks) and blocks.cpp (render_canvas and
// render_window: the one-call block renderer). Internal header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sample/rows.hpp"  // the sample core's row functions do the interpolation
#include "spectralign_fast/render/render.hpp"

namespace spectralign_fast::render_detail {

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

using CombineFn = void (*)(const TileCtx&, const RowGeom&, int, int, const float*, double*, float*);
using FinalizeFn = void (*)(const double*, const float*, int, bool, float, void*, std::uint8_t*);
using DirectFn = void (*)(const float*, int, void*);

struct Kernels {
    sample::detail::RowFn sample32;  // 32-bit element offsets (tiles under 2^31 elements)
    sample::detail::RowFn sample64;
    CombineFn combine;
    FinalizeFn finalize;
    DirectFn direct;
};

// Everything the engine precomputes about one tile.
struct Prepared {
    TileCtx ctx;
    sample::detail::Source src;  // the tile as the sample core reads it (edges replicated)
    std::vector<int> taps[2];    // cubic tap tables (rows, columns)
    double inv[6];
    double inv_d[2];  // 1 / inv[3], 1 / inv[0] (0 if infinite): the sample rows' inv_d
    double cx, cy;  // centre in model space
    bool small_index;  // every pixel index fits in an int
    double bx0, by0, bx1, by1;  // model bounding box of the tile area, 2 px margin
};

constexpr int kChunk = 256;  // columns per kernel call (keeps float steps accurate)

// Tile coordinates (u0, v0) of output pixel (X0, Y), and the columns
// [k0, k1) of the n pixels (X0 + k, Y) that may fall on tile p: a margin of
// half a pixel beyond the tile area; the kernels decide coverage exactly
// (e > 0) and clamp their reads.
struct RowCover {
    double u0, v0;
    int k0, k1;
};

// (u0, v0) alone (k0 = k1 = 0), as row_cover computes them.
inline RowCover row_origin(const Prepared& p, double X0, double Y) {
    const double* inv = p.inv;
    RowCover c;
    c.u0 = inv[0] * X0 + inv[1] * Y + inv[2];
    c.v0 = inv[3] * X0 + inv[4] * Y + inv[5];
    c.k0 = c.k1 = 0;
    return c;
}

// Columns of a row whose samples from one tile go straight to the output
// (kern.direct) instead of into the accumulators: [a, b), counted like k;
// of those, the window shows [s0, s1), and out is the output pixel of
// column s0.
struct Direct {
    int a = 0, b = 0, s0 = 0, s1 = 0;
    char* out = nullptr;
    std::size_t psize = 0;
};

constexpr int kBlockRows = 64;
constexpr int kBlockCols = 256;

// The blocks of a window of the canvas: columns in blocks of kBlockCols
// aligned to the canvas (a block's pixels are computed from its first column
// on, whatever part of it the window shows, so a window renders bit for bit as
// the same pixels of the whole canvas), rows in bands of kBlockRows from the
// window's first row (rows are independent).
struct BlockGrid {
    long long bx0 = 0, nbx = 0, nby = 0;
    Window win;
    std::vector<std::vector<int>> bins;  // tiles overlapping each block
};

// Canvas rows [i0, i0 + rows) and columns [j0, j0 + cols) of block b; the
// window shows columns [c0, c1) of them.
struct Block {
    long long i0, j0, c0, c1;
    int rows, cols;
};

// Definitions in render.cpp.
Kernels pick_kernels(PixelType type, Interp interp, bool hard);
Prepared prepare(const RenderTile& t, std::size_t index, double blend, bool cubic = false);
std::vector<Prepared> prepare_all(const std::vector<RenderTile>& tiles, double blend, bool cubic = false);
// Range [k0, k1) of k in [0, n) with lo <= p0 + k dp <= hi.
void span_1d(double p0, double dp, double lo, double hi, int n, int& k0, int& k1);
RowCover row_cover(const Prepared& p, double X0, double Y, int n);
void process_cover(const Prepared& p, const Kernels& kern, const RowCover& cover, double X0, double Y,
                   double* num, float* den, const Direct* direct = nullptr);
// A cache hint only (no value depends on it): the tile pixels that the next
// output row (Y + 1) will newly read over cover's columns, the tile row below
// the two this row reads, in 128-byte pieces every 16 columns. Rows of a
// block read 1 KB pieces of tile rows one after another, a stride the
// hardware prefetcher does not foresee. elem: bytes per tile pixel.
void prefetch_next_row(const Prepared& p, const RowCover& c, std::size_t elem);
void check_canvas(const Canvas& c);
void check_options(const RenderOptions& opt);
Block block_at(const BlockGrid& grid, const Canvas& canvas, std::size_t b);
BlockGrid bin_tiles(const std::vector<Prepared>& tiles, const Canvas& c, const Window& win);
Window whole(const Canvas& c);

}  // namespace spectralign_fast::render_detail

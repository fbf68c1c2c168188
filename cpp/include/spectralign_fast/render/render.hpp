// Rendering of transformed tiles into model space (a mosaic), blended.
//
// Coordinates: x is the column, y the row. A tile's pixel (row r, col c) has
// its centre at tile coordinates (x, y) = (c, r) and covers the pixel area
// [c - 0.5, c + 0.5) x [r - 0.5, r + 0.5); a tile as a whole covers
// [-0.5, W - 0.5) x [-0.5, H - 0.5). Each tile has a forward affine
// `fwd` = [[a, b, tx], [c, d, ty]] mapping tile coordinates to model space.
// Output pixel (row i, col j) of a canvas shows model point (x0 + j, y0 + i).
//
// Every output pixel is sampled from each tile that covers it through the
// inverse transform. Blending:
//  * blend > 0 (feathering): weight = clamp(e / blend, 0, 1), with e the
//    distance (in tile pixels) from the sample point to the nearest edge of
//    the tile's area; the output is the weighted mean of the covering tiles.
//  * blend == 0 (hard seams): the covering tile whose centre is nearest (in
//    model space) wins; on an exact tie the larger value wins, which keeps
//    the result independent of the order of the tiles.
// Accumulation: weighted sums in double (no overflow for values up to the
// float32 maximum), weights in float32; integer outputs are rounded and clamped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace spectralign_fast {

enum class PixelType { U8, U16, F32 };
enum class Interp { Nearest, Linear, Cubic };

std::size_t pixel_size(PixelType t);

struct RenderTile {
    const void* data = nullptr;  // row-major pixels of type PixelType (may be null for masks)
    std::ptrdiff_t row_stride = 0;  // in elements
    int width = 0;
    int height = 0;
    double fwd[6] = {1, 0, 0, 0, 1, 0};  // tile -> model
};

struct Canvas {
    double x0 = 0, y0 = 0;  // model coordinates of output pixel (0, 0)
    long long width = 0, height = 0;
};

// Rows [row0, row0 + rows) and columns [col0, col0 + cols) of a canvas.
struct Window {
    long long row0 = 0, col0 = 0, rows = 0, cols = 0;
};

struct RenderOptions {
    Interp interp = Interp::Linear;
    double blend = 10;  // 0 = hard seams
    float fill = 0;     // value of pixels no tile covers
    int threads = 0;    // 0 = all cores
};

// Throws std::invalid_argument for a non-finite or singular transform or a
// bad tile size; otherwise writes the inverse (model -> tile) into inv.
void tile_inverse(const RenderTile& t, double inv[6], std::size_t index);

// Renders every given tile into the canvas in one pass over blocks of the
// output. `out` has canvas.height rows of `out_stride` elements of `type`;
// `coverage` (optional, canvas.width*canvas.height bytes, C order) gets 1
// where at least one tile contributes. Uses only per-thread scratch.
void render_canvas(const std::vector<RenderTile>& tiles, PixelType type, const Canvas& canvas,
                   const RenderOptions& opt, void* out, std::ptrdiff_t out_stride,
                   std::uint8_t* coverage);

// The pixels of a window of the canvas, bit for bit those that render_canvas
// gives them: `out` has win.rows rows of `out_stride` elements, `coverage`
// win.rows * win.cols bytes; or, with coverage_bits, win.rows rows of
// (win.cols + 7) / 8 bytes, one bit per pixel in numpy.packbits order
// (column c: byte c / 8, bit 7 - c % 8; win.col0 must be a multiple of 8).
// Throws std::invalid_argument unless the window is non-empty and inside the
// canvas.
void render_window(const std::vector<RenderTile>& tiles, PixelType type, const Canvas& canvas,
                   const Window& win, const RenderOptions& opt, void* out,
                   std::ptrdiff_t out_stride, std::uint8_t* coverage, bool coverage_bits = false);

// Incremental rendering: adds one tile to the accumulators num (double) and
// den (float32), canvas-sized, C order. Initialise num to 0 and den to 0 (blend > 0)
// or +inf (blend == 0) before the first tile.
void accumulate_tile(const RenderTile& tile, PixelType type, const Canvas& canvas,
                     const RenderOptions& opt, double* num, float* den);

// Turns the accumulators into the output image (and optional coverage).
void finalize_canvas(const double* num, const float* den, const Canvas& canvas, PixelType type,
                     bool hard, float fill, int threads, void* out, std::uint8_t* coverage);

// mask[i*width + j] = 1 where any (all_tiles=false) or every (true) tile's
// area contains the output pixel centre; only the tiles' geometry is used.
void tile_coverage(const std::vector<RenderTile>& tiles, const Canvas& canvas, bool all_tiles,
                   int threads, std::uint8_t* mask);

}  // namespace spectralign_fast

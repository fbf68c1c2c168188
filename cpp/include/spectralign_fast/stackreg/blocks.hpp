// Non-rigid (piecewise-rigid) stack registration: every 2-D frame of a movie
// registered to a reference block by block, on a grid of overlapping blocks
// (suite2p's "nonrigid", NoRMCorre's piecewise-rigid), and the per-block
// displacements upsampled into a dense displacement field and applied
// through the sample core's warp.
//
// Conventions are stack registration's (stackreg.hpp): array axis order
// (d_row, d_col), and a block's delta is the displacement of the frame's
// content relative to the reference's, frame(x) ~ reference(x - delta)
// near the block. The dense field d maps OUTPUT (reference) coordinates to
// FRAME coordinates: registered(x) = frame(x + d(x)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "spectralign_fast/fft/fft.hpp"
#include "spectralign_fast/stackreg/stackreg.hpp"

namespace spectralign_fast {

struct BlockRegOptions {
    // Exponent applied to |F conj(R)| (as StackRegOptions::whiten).
    float whiten = -0.65f;
    // Largest |displacement| searched per block around its window offset
    // (pixels), per axis; < 0: the whole cyclic range of the block.
    int max_shift[2] = {-1, -1};
    // Fraction of the block, per side, over which the raised-cosine taper
    // falls from 1 to 0 (0: no taper, 0.5: a Hann window).
    double taper = 0.25;
};

// Holds the tapered, normalised, conjugated spectrum of every reference block
// (computed once) and registers frames against them.
class BlockRegistrar {
public:
    // reference: rows x cols. Blocks are block_rows x block_cols with top-left
    // corners starts_y[i], starts_x[j] (every block inside the frame). A
    // reference block without contrast is kept but always reports quality 0
    // and NaN deltas; throws std::invalid_argument for bad sizes, a
    // non-finite reference, or one without contrast in every block.
    BlockRegistrar(const float* reference, int rows, int cols, std::vector<int> starts_y,
                   std::vector<int> starts_x, int block_rows, int block_cols, BlockRegOptions options);

    int rows() const noexcept { return rows_; }
    int cols() const noexcept { return cols_; }
    std::size_t blocks() const noexcept { return starts_y_.size() * starts_x_.size(); }

    // frames: n contiguous rows x cols frames. prior: n x 2 rigid displacements
    // (or null): each block window is read from the frame at the reference
    // block's position plus round(prior) (clamped into the frame), and the
    // block's delta is that integer offset plus the correlation peak found
    // there. Writes deltas n x ny x nx x 2 (array order), quality n x ny x nx
    // (correlation peak over the correlation's RMS: ~1-3 for noise, tens for
    // a clear match) and status n (kFrameNotFinite: a NaN/inf pixel anywhere
    // in the frame: every delta NaN, quality 0). A block without contrast
    // gets NaN deltas and quality 0. Work is spread over frames x blocks on
    // `threads` threads (0: all cores); results do not depend on threads.
    void fit(const float* frames, std::size_t n, const double* prior, int threads, double* deltas,
             float* quality, std::int8_t* status) const;

private:
    int rows_, cols_, brows_, bcols_;
    std::vector<int> starts_y_, starts_x_;
    BlockRegOptions options_;
    std::vector<float> taper_y_, taper_x_;
    std::vector<ComplexBuffer> refs_;  // conj(R) per block (empty: no contrast)
    friend class BlockWorkspace;
};

enum class FieldInterpolation { linear, cubic };

// Dense displacement field (rows x cols x 2, float32, array order) of one
// frame from its block grid (ny x nx x 2, array order) whose block centres
// lie at centers_y (ny, increasing) and centers_x (nx, increasing): separable
// interpolation in block index space u(y) (piecewise linear between centres),
// linear or cubic convolution (Catmull-Rom), taps clamped to the grid; outside
// the outermost centres the field is held constant along that axis. Every
// grid entry must be finite.
void block_field(const double* grid, int ny, int nx, const double* centers_y, const double* centers_x,
                 int rows, int cols, FieldInterpolation upsampling, float* field);

// out frame k (x) = frame k (x + d_k(x)), d_k = block_field of grids k (n x
// ny x nx x 2), sampled with linear or cubic (Catmull-Rom) interpolation,
// coordinates clamped into the frame (nearest-edge filling), through the
// sample core's warp_field. A frame whose grid has a non-finite entry is
// copied unchanged. Frames spread over threads; results do not depend on it.
void warp_block_frames(const float* frames, std::size_t n, int rows, int cols, const double* grids, int ny,
                       int nx, const double* centers_y, const double* centers_x, FieldInterpolation upsampling,
                       ShiftInterpolation interpolation, int threads, float* out);

}  // namespace spectralign_fast

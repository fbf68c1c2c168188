// Non-rigid (piecewise-rigid) stack registration: every frame of a movie (2-D)
// or of a series of volumes (3-D) registered to a reference block by block, on
// a grid of overlapping blocks
// (suite2p's "nonrigid", NoRMCorre's piecewise-rigid), and the per-block
// displacements upsampled into a dense displacement field and applied
// through the sample core's warp.
//
// Conventions are stack registration's (stackreg.hpp): array axis order
// ((d_row, d_col), or (d_plane, d_row, d_col) for volumes), and a block's delta is the displacement of the frame's
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
    // (pixels), one per axis; < 0 or empty: the whole cyclic range.
    std::vector<int> max_shift;
    // Fraction of the block, per side, over which the raised-cosine taper
    // falls from 1 to 0 (0: no taper, 0.5: a Hann window).
    double taper = 0.5;
    // Taper the frame's block as well as the reference's (default). Tapering
    // both biases the peak slightly towards zero (the two windows correlate
    // too), which the refinement passes remove; tapering only the reference
    // (false: the frame's block is mean-subtracted only) avoids that bias but
    // measured worse: 0.086 against 0.070 px on the 2-D test movie, 0.74
    // against 0.13 px on 3-D blocks of 16 planes.
    bool taper_frames = true;
};

// Holds the tapered, normalised, conjugated spectrum of every reference block
// (computed once) and registers frames against them.
class BlockRegistrar {
public:
    // reference: a frame of `shape` (rank 2 or 3). Blocks have shape `block`
    // and their first corner at starts[0][i] x starts[1][j] (x starts[2][k]),
    // every block inside the frame; they are numbered in row-major order of
    // the grid. A reference block without contrast is kept but always reports
    // quality 0 and NaN deltas; throws std::invalid_argument for bad sizes, a
    // non-finite reference, or one without contrast in every block.
    BlockRegistrar(const float* reference, std::vector<int> shape, std::vector<std::vector<int>> starts,
                   std::vector<int> block, BlockRegOptions options);

    const std::vector<int>& shape() const noexcept { return shape_; }
    std::size_t rank() const noexcept { return shape_.size(); }
    std::size_t blocks() const noexcept { return nblocks_; }
    std::size_t frame_size() const noexcept { return frame_size_; }

    // frames: n contiguous frames of shape(). prior: n x rank rigid
    // displacements (or null): each block window is read from the frame at the
    // reference block's position plus round(prior) (clamped into the frame),
    // and the block's delta is that integer offset plus the correlation peak
    // found there. Writes deltas n x blocks x rank (array order), quality n x
    // blocks (correlation peak over the correlation's RMS: ~4 for noise, tens
    // for a clear match) and status n (kFrameNotFinite: a NaN/inf pixel
    // anywhere in the frame: every delta NaN, quality 0). A block without
    // contrast gets NaN deltas and quality 0. Work is spread over frames x
    // blocks on `threads` threads (0: all cores); results do not depend on
    // threads.
    void fit(const float* frames, std::size_t n, const double* prior, int threads, double* deltas,
             float* quality, std::int8_t* status) const;

private:
    std::vector<int> shape_, block_;
    std::vector<std::vector<int>> starts_;
    std::size_t nblocks_ = 0, frame_size_ = 0;
    BlockRegOptions options_;
    std::vector<std::vector<float>> taper_;  // per axis
    std::vector<ComplexBuffer> refs_;        // conj(R) per block (empty: no contrast)
    friend class BlockWorkspace;
};

enum class FieldInterpolation { linear, cubic };

// Dense displacement field (shape x rank, float32, array order) of one frame
// from its block grid (grid_shape x rank, array order) whose block centres lie
// at centers[a] (grid_shape[a] increasing values per axis): separable
// interpolation in block-index space u(p) (piecewise linear between centres),
// linear or cubic convolution (Catmull-Rom), taps clamped to the grid;
// beyond the outermost centres the field is held constant along that axis.
// Every grid entry must be finite.
void block_field(const double* grid, const std::vector<int>& grid_shape,
                 const std::vector<std::vector<double>>& centers, const std::vector<int>& shape,
                 FieldInterpolation upsampling, float* field);

// out frame k (x) = frame k (x + d_k(x)), d_k = block_field of grid k (n x
// grid_shape x rank), sampled with linear or cubic (Catmull-Rom)
// interpolation, coordinates clamped into the frame (nearest-edge filling),
// through the sample core's warp_field. A frame whose grid has a non-finite
// entry is copied unchanged. Frames spread over threads; results do not
// depend on it.
void warp_block_frames(const float* frames, std::size_t n, const std::vector<int>& shape, const double* grids,
                       const std::vector<int>& grid_shape, const std::vector<std::vector<double>>& centers,
                       FieldInterpolation upsampling, ShiftInterpolation interpolation, int threads, float* out);

}  // namespace spectralign_fast

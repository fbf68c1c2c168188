// Stack registration: every frame of a movie (2-D frames) or of a series of
// volumes (3-D frames) registered to a reference by FFT cross-correlation,
// as thunder-registration's CrossCorr, with whitening and subpixel peaks.
//
// Axis order is the array's (row-major) order: for 2-D frames a
// displacement is (d_row, d_col), for volumes (d_plane, d_row, d_col).
// Sign (thunder-registration's): delta is the displacement of the frame
// relative to the reference, i.e. frame(x) ~ reference(x - delta); the
// correlation is irfft(F conj(R)) and its peak sits at +delta. Undoing it
// means sampling the frame at x + delta (shift_frames).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "spectralign_fast/fft/fft.hpp"

namespace spectralign_fast {

struct StackRegOptions {
    // Exponent applied to |F conj(R)|: 0 is plain cross-correlation
    // (thunder's), -1 phase correlation, -0.65 the Matcher's default.
    float whiten = -0.65f;
    // Refine the integer peak to subpixel precision: a parabola through the
    // peak's neighbours, then Newton steps on the band-limited (trigonometric)
    // interpolant of the correlation, evaluated exactly from the spectrum.
    bool subpixel = true;
    // Largest |displacement| searched, per axis (pixels); < 0 or empty means
    // unlimited (the whole cyclic range, as thunder).
    std::vector<int> max_shift;
    // After the peak, refine each displacement by Gauss-Newton steps on the
    // intensity difference with the reference (gain and offset solved for
    // too; see src/stackreg/refine.hpp). The FFT estimate is the start, and
    // is kept (status kFrameRefineKept) when the steps do not lower the
    // residual or the frame has no usable interior.
    bool refine = false;
    // The reference's trustworthy region for the refinement: 2 * rank ints
    // (lows, then exclusive highs, array order); empty: the whole frame.
    std::vector<int> reference_box;
    // Raised-cosine taper over this fraction of each axis at both ends, on
    // the normalised frames and references before their FFT (not in the
    // intensity refinement); 0: none (thunder's). In [0, 0.5].
    double taper = 0.0;
};

enum FrameStatus : std::int8_t {
    kFrameOk = 0,
    kFrameNotFinite = 1,  // NaN/inf pixels: displacement NaN
    kFrameNoContrast = 2, // constant frame: displacement 0 (any shift leaves it unchanged)
    kFrameRefineKept = 3, // refine: the FFT estimate was kept (no residual reduction / no interior)
};

namespace stackreg_detail {
class RefineReference;
}

// Holds the conjugated reference spectra (computed once) and registers
// frames against them. Several reference "planes" serve the per-plane mode:
// frame k of a call uses reference (first_plane + k) % planes.
class StackRegistrar {
public:
    // references: `planes` contiguous arrays of `shape` (rank 2 or 3).
    // Throws std::invalid_argument for a bad shape, non-finite or constant
    // references, or bad options.
    StackRegistrar(const float* references, std::size_t planes, std::vector<int> shape,
                   StackRegOptions options);
    ~StackRegistrar();
    StackRegistrar(const StackRegistrar&) = delete;
    StackRegistrar& operator=(const StackRegistrar&) = delete;

    const std::vector<int>& shape() const noexcept { return shape_; }
    std::size_t planes() const noexcept { return refs_.size(); }
    std::size_t rank() const noexcept { return shape_.size(); }
    std::size_t frame_size() const noexcept { return frame_size_; }

    // frames: n contiguous frames of shape(). Writes n x rank displacements
    // (array order) and n statuses. Frames are spread over `threads` threads
    // (0: all cores), one workspace each; results do not depend on threads.
    //
    // self_weight > 0 says the reference is a mean to which each frame
    // contributed frame * self_weight (1 / number of frames averaged),
    // shifted by self_deltas[k] (n x rank, linear interpolation, as
    // shift_frames; null: unshifted). That share is left out of the
    // cross-power spectrum (leave-one-out), because the frame's own noise,
    // once whitened, would otherwise pull its peak to the lag it was
    // averaged in at.
    void fit(const float* frames, std::size_t n, std::size_t first_plane, int threads,
             double* deltas, std::int8_t* status, double self_weight = 0,
             const double* self_deltas = nullptr) const;

    // The intensity refinement alone (a core made with options.refine),
    // starting from deltas (n x rank, in/out) instead of the FFT peak: for a
    // reference that changed little since the deltas were estimated (a mean
    // re-taken from the frames registered with them). Statuses as fit's: a
    // frame or start that is not finite gets NaN (1), a constant frame zero
    // (2), a refinement that kept its start 3.
    void refine(const float* frames, std::size_t n, std::size_t first_plane, int threads, double* deltas,
                std::int8_t* status) const;

private:
    std::vector<int> shape_;
    std::size_t frame_size_ = 0, spectrum_size_ = 0;
    StackRegOptions options_;
    std::vector<ComplexBuffer> refs_;  // conj(R) of each normalised reference
    std::vector<double> ref_spread_;   // its standard deviation before normalising
    std::vector<std::vector<float>> taper_;  // the window per axis (options.taper > 0)
    std::vector<std::unique_ptr<stackreg_detail::RefineReference>> refine_refs_;  // with options.refine
};

enum class ShiftInterpolation { linear, cubic, fourier };

// out frame k (x) = frame k (x + delta_k), each coordinate clamped into the
// frame (nearest-edge filling), sampled with separable linear or cubic
// (Catmull-Rom, as the Renderer) interpolation, or shifted in the Fourier
// domain: the frame is edge-replicated by 8 or more pixels (to a size
// FFTW is fast at), shifted by the
// fractional part of delta as a phase ramp (band-limited, no blur), and the
// integer part is applied by clamped indexing, so the edges are filled with
// (shifted) edge pixels. frames, out: n contiguous
// frames of `shape` (rank 2 or 3; out must not overlap frames); deltas:
// n x rank in array order. A frame whose delta is not finite is copied
// unchanged. Integer deltas copy pixels exactly (a clamped row copy, no
// arithmetic).
void shift_frames(const float* frames, std::size_t n, const std::vector<int>& shape,
                  const double* deltas, ShiftInterpolation interpolation, int threads, float* out);

// sum(x) += sum over frames k of frame k (x + delta_k), sampled exactly as
// shift_frames' linear interpolation (the same float32 values), added in
// float64 in frame order: the mean of registered frames without writing
// them. Frames whose delta is not finite are skipped. frames: n contiguous
// frames of `shape` (rank 2 or 3); deltas n x rank; sum: one frame of
// float64. Results do not depend on threads (parallel over rows).
void accumulate_shifted(const float* frames, std::size_t n, const std::vector<int>& shape, const double* deltas,
                        int threads, double* sum);

// The integer-shift fast path on pixels of any type (itemsize bytes each,
// copied as bytes): out frame k (x) = frame k (clamp(x + delta_k)), deltas
// n x rank whole numbers (a frame with a non-finite delta is copied
// unchanged). Throws std::invalid_argument for a fractional delta.
void shift_frames_integer(const void* frames, std::size_t itemsize, std::size_t n, const std::vector<int>& shape,
                          const double* deltas, int threads, void* out);

}  // namespace spectralign_fast

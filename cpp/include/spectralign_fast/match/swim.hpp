// SWiFT-IR "swim" matching: whitened cross-power spectrum of an apodized
// window and a second window (apodized too by default), integer peak plus
// centre of mass, and the iterative refinement of spectralign's
// Matcher.refine.
//
// Windows are cut at the integer pixel below their origin (x - w/2,
// y - h/2); the fractional remainder is applied in the frequency domain
// (band-limited subpixel windows), which avoids the shift bias of bilinear
// resampling that spectralign has.
//
// Conventions: points are (x, y) = (column, row). A shift (dx, dy) is
// positive when the features of the second ("moving") window lie to the
// right of / below those of the first ("stationary") window. Refinement moves
// the first point by -shift/2 and the second by +shift/2.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "spectralign_fast/fft/fft.hpp"
#include "spectralign_fast/core/image_ops.hpp"
#include "spectralign_fast/core/threads.hpp"

namespace spectralign_fast {

namespace kernels {
struct WindowRow;
}

class Team;

struct SwimOptions {
    float whiten = -0.65f;  // exponent applied to |cross-power spectrum|
    int peak_radius = 5;    // centre of mass over (2r+1)^2 pixels around the peak
    // Apodize the moving window too. SWiFT-IR/spectralign apodize only the
    // stationary one, which leaves the correlation peak of aligned windows
    // slightly asymmetric: a content-dependent bias of up to ~0.1 px at
    // 512 px windows on real images, which apodizing both removes.
    bool apodize_both = true;
};

struct SwimResult {
    double dx = 0, dy = 0;  // shift of the moving window's content
    double sx = 0, sy = 0;  // peak width (sqrt of second moments), pixels
    double snr = 0;         // (peak - mean) / std of the correlation image
    bool contrast = true;   // false: a window had no contrast; result is zero
};

// Buffers and plans for one window size, reused across calls. Not shared
// between threads (make one per thread), except by the members of one Team
// inside match().
class SwimWorkspace {
public:
    // lanes: how many threads of a Team may share this workspace in match()
    // (each needs its own scratch; only the fused path uses more than one).
    SwimWorkspace(int width, int height, int lanes = 1);

    int width() const noexcept { return width_; }
    int height() const noexcept { return height_; }

    // Measures the shift between windows centred on p1 in img1 and p2 in
    // img2. Windows are cut at the integer pixel below their origin
    // p - size/2 (read straight from the image where they lie inside it;
    // out-of-image pixels take the mean of the image under the window), the
    // stationary one apodized (fade to its own mean; the moving one too when
    // options.apodize_both) with the profile centred on p itself, both
    // mean-subtracted, and the fractional part of the origins applied exactly
    // as a phase ramp on the cross-power spectrum, so no interpolation blurs
    // the windows and neither the cut nor the envelope biases the shift.
    //
    // With a team (at most lanes() members), the fused path spreads each
    // step of this one match over the team; the result is the same to the
    // last bit as without.
    SwimResult match(const ImageView& img1, const double p1[2], const ImageView& img2,
                     const double p2[2], const SwimOptions& options, Team* team = nullptr);

    int lanes() const noexcept { return static_cast<int>(lanes_.size()); }
    bool fused() const noexcept { return fused_; }

private:
    // How one window is normalized on its way into the packed buffer.
    struct WindowNorm {
        const float* src = nullptr;  // row 0 of the window
        std::ptrdiff_t stride = 0;   // floats between rows
        float gray = 0, offset = 0, scale = 1;
        bool contrast = false;
    };
    void prefetch_window_rows(const WindowNorm* norms, int row) const;
    void window_rows(const WindowNorm* norms, int row, kernels::WindowRow* rows) const;
    // Moments of rows [first, last) of window `which` (row i at src + i *
    // stride) into row_sums_[which]; then their sum, in row order, and how
    // to normalize the window.
    void moment_rows(int which, const float* src, std::ptrdiff_t stride, int first, int last);
    WindowNorm normalization(int which, const float* src, std::ptrdiff_t stride, bool apodize) const;
    void shift_apodization(int which, double frac_x, double frac_y);
    void flat_apodization(int which);
    SwimResult correlate(const SwimOptions& options, double offset_x, double offset_y);
    void pack_fused(const WindowNorm* norms, Team* team);
    SwimResult correlate_fused(const SwimOptions& options, double offset_x, double offset_y, Team* team);
    void column_block(int lane, int block, float half_exponent);
    // Integer peak and centre of mass from the 2 * radius + 1 rows around
    // the best row (rows[radius]), and the snr.
    SwimResult peak(const float* const* rows, int best_row, float best_value, double mean_c, double std_c,
                    const SwimOptions& options) const;

    int width_, height_;
    // Both windows go into one complex image (stationary in the real parts,
    // moving in the imaginary parts): one complex FFT costs less than two
    // real ones, and the whitening pass separates the two spectra.
    //
    // Small windows (below 192 x 192 px) use FFTW's 2-D transforms: the
    // packed image row-major in packed_, the cross spectrum in cross_, the
    // correlation image back in packed_.
    //
    // Larger windows are "fused": the 2-D transforms are taken apart so that
    // each step works on data in cache instead of passing over the whole
    // window several times (at 1024 px, each such pass leaves the caches).
    // Rows are packed and transformed eight at a time and stored transposed
    // in packed_ (spectrum column k at k * column_stride_, column w repeating
    // column 0); blocks of columns and their partner columns are
    // transformed, whitened and transformed back while in L2; rows are
    // transformed back eight at a time, each followed by its peak search,
    // and the few rows around the peak are made again for the centre of mass.
    bool fused_;
    std::size_t column_stride_;   // complex values between the columns of packed_ (fused)
    std::size_t spectra_stride_;  // complex values between the rows of row_spectra_ (whole cache lines)
    static constexpr int max_block = 16;
    static constexpr int group_ = 8;  // rows per group: 8 complex values fill a cache line
    int block_;                       // columns per block: 16, fewer for narrow windows
    const C2CPlan* c2c_ = nullptr;    // 2-D, small windows
    const C2RPlan* c2r_ = nullptr;
    const C2CPlan* row_fft_ = nullptr;  // 1-D pieces, fused
    const C2CPlan* column_fft_ = nullptr;
    const C2CPlan* column_ifft_ = nullptr;
    const C2CPlan* last_column_fft_ = nullptr;   // a last block of fewer columns
    const C2CPlan* last_column_ifft_ = nullptr;
    const C2RPlan* row_c2r_ = nullptr;
    int blocks_ = 0, last_block_columns_ = 0;
    ComplexBuffer packed_;
    ComplexBuffer cross_;         // whitened cross-power half spectrum (small windows)
    // One team member's scratch (fused path).
    struct Lane {
        ComplexBuffer row_buffer;    // one packed row before its transform
        ComplexBuffer row_spectra;   // a group of rows: spectra, or half spectra on the way back
        RealBuffer real_row;         // one row of the correlation image
        ComplexBuffer block_spectrum, partner_spectrum;  // a block of columns and their partners, transformed
        ComplexBuffer column_mirror;  // a partner column, reversed (bins -r)
        RealBuffer column_scratch;
    };
    std::vector<Lane> lanes_;
    // Per-row and per-column partial results, summed in order afterwards so
    // that a team's result equals one thread's to the last bit.
    std::vector<double> row_sums_[2];  // per window row: sum, sum of squares, sum with apodization
    std::vector<double> column_energy_;
    std::vector<float> row_max_;
    double dc_ = 0;  // the whitened cross spectrum at (0, 0): the correlation image's mean
    RealBuffer neighbourhood_;     // the rows around the peak, made again
    std::vector<const float*> neighbour_rows_;
    RealBuffer outside_[2];      // windows that cross the image border (made on first need)
    // Apodization of each window (0: stationary, 1: moving), its profile
    // evaluated at the window's subpixel position, so the envelope sits on
    // the same content in both windows whatever their integer cuts; all
    // ones for a window that is not apodized.
    std::vector<float> apo_x_[2], apo_y_[2];
    double apo_total_[2] = {0, 0};  // sum of each window's 2-D apodization weights
    bool flat_[2] = {false, false};  // the profile is all ones
    ComplexBuffer ramp_x_, ramp_y_;
    ComplexBuffer mirrored_[2];  // partner bins -k of a pair of spectrum rows r and -r (small windows)
    RealBuffer scratch_;         // one spectrum row of floats (small windows)
};

// Test hooks and benchmark knobs, built with SPECTRALIGN_DEV_TOOLS only (_core.dev).
#ifdef SPECTRALIGN_DEV_TOOLS

// Windows of at least this many pixels (width * height) take the fused path
// in workspaces made from now on (default 192 * 192). For benchmarks and
// tests that compare the two paths; returns the previous value.
long long set_fused_min_pixels(long long pixels);

// Windows of at least this many pixels (default 640 * 640; fused path only)
// are matched by teams of two threads in refine_many (threads >= 2): two
// threads on one pair share one workspace, where two pairs side by side
// would need twice the cache. For benchmarks and tests; returns the
// previous value.
long long set_team_min_pixels(long long pixels);

// A team splits up for the rest of a refine_many call, its two threads then
// taking pairs one each, when its leader waited for the helper more than
// this share of a pair's time (default 0.2), two pairs in a row: the
// machine keeps pausing one of them. Results do not change. For tests (a
// negative value splits every team after two pairs); returns the previous
// value.
double set_team_wait_limit(double fraction);

#endif  // SPECTRALIGN_DEV_TOOLS

// Reuses workspaces across calls (fresh ones cost page faults on every
// call: several MB per window size). Thread-safe; keeps at most
// `max_kept` idle workspaces, all of one window size and lane count.
class WorkspacePool {
public:
    explicit WorkspacePool(std::size_t max_kept);
    std::unique_ptr<SwimWorkspace> acquire(int width, int height, int lanes = 1);
    void release(std::unique_ptr<SwimWorkspace> workspace);

private:
    std::mutex mutex_;
    std::size_t max_kept_;
    std::vector<std::unique_ptr<SwimWorkspace>> idle_;
};

struct RefineResult {
    double p1[2] = {0, 0};
    double p2[2] = {0, 0};
    std::vector<SwimResult> iterations;  // one per iteration performed
};

struct RefineParams {
    int width = 0, height = 0;  // window size, pixels
    int iterations = 1;
    double tolerance = 0;  // stop once |shift| < tolerance (0: never early)
    SwimOptions swim;
};

// Validates the window size against both images and the options; throws
// std::invalid_argument with a message naming the problem.
void check_refine_params(const ImageView& img1, const ImageView& img2, const RefineParams& params);

// Throws std::invalid_argument when p is not finite or its window does not
// overlap the image at all; `which` and `index` name it in the message.
void check_refine_point(const ImageView& img, const double p[2], const RefineParams& params,
                        const char* which, std::size_t index);

// Refines one point pair. Both images must outlive the call.
RefineResult refine(const ImageView& img1, const ImageView& img2, const double p1[2],
                    const double p2[2], const RefineParams& params, SwimWorkspace& workspace,
                    Team* team = nullptr);

// Per-pair outputs of refine_many, each an array the caller owns:
// p1_out, p2_out, shift, peakwidth: n x 2; snr: n; niters: n.
struct RefineManyOutput {
    double* p1_out;
    double* p2_out;
    double* shift;
    double* peakwidth;
    double* snr;
    int* niters;
};

// Refines n pairs (P1[k], P2[k]) (row-major n x 2, (x, y)) spread over
// `threads` threads (0: all cores). Results equal n calls of refine().
// Workspaces come from `pool` when given.
void refine_many(const ImageView& img1, const ImageView& img2, const double* P1, const double* P2,
                 std::size_t n, const RefineParams& params, int threads, const RefineManyOutput& out,
                 WorkspacePool* pool = nullptr);

}  // namespace spectralign_fast

// Intensity refinement of a rigid displacement (CrossCorr(refine="intensity")):
// a few inverse-compositional Gauss-Newton steps on
//
//     E(d, gain, offset) = sum_x (F(x + d) - gain * R(x) - offset)^2
//
// over an interior box, starting at the FFT estimate. F(x + d) is sampled
// with an 8-tap cardinal cubic B-spline interpolator (the spline's impulse
// response truncated to +-4 samples and renormalised: the interpolation
// model of TurboReg/StackReg without a per-frame prefilter), the
// reference's gradients are the same spline's derivative at the grid
// points, computed once per reference. Gain and offset make the fit blind
// to the brightness and contrast differences a mean reference has.
//
// The iteration stops after a step below 0.005 px (at most 4 steps). The
// result is kept only if it lowers the residual of the frame against the
// reference resampled at x - d (the frame's own noise is not resampled, so
// the comparison does not favour half-pixel positions, where resampling
// averages noise away), or raises it by less than the comparison's noise (2
// sigma); otherwise, and when a step fails (gain <= 0, a singular system,
// more than 1 px away from the FFT estimate) or an axis has fewer than 8
// interior samples, the FFT estimate is kept.
//
// Axis order and sign are StackRegistrar's: frame(x) ~ reference(x - d).
#pragma once

#include <cstddef>
#include <vector>

namespace spectralign_fast::stackreg_detail {

// One reference plane, prepared once: values normalised to zero mean and
// unit spread, and the spline gradient along every axis.
class RefineReference {
public:
    // ref: one frame of `shape` (rank 2 or 3, finite, with contrast).
    // box: 2 * rank ints (lo..., hi...) of the reference's trustworthy
    // region (hi exclusive), or empty for the whole frame.
    RefineReference(const float* ref, const std::vector<int>& shape, const std::vector<int>& box);

    std::vector<int> shape;
    int box_lo[3] = {0, 0, 0}, box_hi[3] = {1, 1, 1};
    std::vector<float> value;     // normalised reference
    std::vector<float> grad[3];   // d value / d axis, axes padded to 3 (leading axis of 2-D frames: empty)
    // The largest interior (box and gradient border) and its reference sums
    // (products of g0, g1, g2, r, 1 as in reference_sums, then the count).
    int outer_lo[3] = {0, 0, 0}, outer_hi[3] = {1, 1, 1};
    double total[15] = {};

    // Adds the sums of the row segment at off (width samples) to out[15].
    void add_reference_sums(std::size_t off, int width, double* out) const;
};

// Statistics of one refinement, for tests.
struct RefineResult {
    int evaluations = 0;     // Gauss-Newton steps (resamplings of the frame)
    bool fallback = false;   // the FFT estimate was kept (no reduction, failed step, no interior)
    double residual_start = 0, residual_end = 0;  // residual check at the FFT and refined estimates
};

// Per-thread buffers.
class RefineWorkspace {
public:
    explicit RefineWorkspace(const std::vector<int>& shape);

    // Refines delta (rank values, array order) in place from its FFT value;
    // the frame must be finite. Deterministic: one frame, one thread.
    RefineResult refine(const float* frame, const RefineReference& ref, double* delta);

private:
    struct Sums;
    template <class RowFn>
    void warp(const float* src, const double* d, const int* lo, const int* hi, int ystep, float mean, float scale,
              RowFn&& row_fn);
    void region_sums(const RefineReference& ref, const int* lo, const int* hi, Sums& s) const;
    bool improves(const float* frame, const RefineReference& ref, const double* d0, const double* d, const int* lo,
                  const int* hi, RefineResult& res);
    void accumulate(const float* frame, const RefineReference& ref, const double* d, const int* lo,
                    const int* hi, Sums& s);

    std::vector<int> shape_;
    int rank_;
    std::vector<float> plane_, rows_, fw_, second_;
    float frame_mean_ = 0, frame_scale_ = 1;
};

// Taps of the truncated cardinal cubic spline for sampling at x + delta:
// out[x] = sum_{j<8} w[j] in[x + base + j]; base = floor(delta) - 3.
void spline_taps(double delta, int& base, float w[8]);

}  // namespace spectralign_fast::stackreg_detail

// Intensity metrics for affine registration and their analytic gradients.
//
// Conventions: 2-D or 3-D float32 arrays, C order, coordinates are ARRAY
// INDICES in array axis order. `matrix` is the (d + 1) x (d + 1) homogeneous
// map, row major, from a FIXED (static) index to a MOVING index; the moving
// image is sampled there by d-linear interpolation. A fixed voxel takes part
// when its moving coordinate lies inside [0, n - 1] on every axis and both
// masks (fixed at the voxel, moving at the nearest moving voxel) are set.
//
// The gradient is d(value) / d(matrix[r][c]) for the top d rows, row major
// (d * (d + 1) numbers), taken through the exact derivative of the linear
// interpolant, so it agrees with finite differences of `value` wherever the
// overlap does not change. Chain it through d(matrix)/d(parameters) outside.
//
// Determinism: the voxels are cut into chunks whose number depends on the
// image size only, never on the thread count; each chunk sums on its own, in order, and the
// chunks are reduced in chunk order. Every result is bit-identical for any
// `threads` and on every run.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace spectralign_fast::reg {

struct Volume {
    const float* data = nullptr;
    int ndim = 2;
    std::int64_t shape[3] = {0, 0, 0};
};

enum class MetricKind {
    MutualInformation,  // Mattes: fixed in its nearest bin, moving by a cubic B-spline window
    Correlation,        // Pearson correlation coefficient
};

struct MetricSetup {
    MetricKind kind = MetricKind::MutualInformation;
    Volume fixed;
    Volume moving;
    const std::uint8_t* fixed_mask = nullptr;   // fixed's shape; nullptr = all
    const std::uint8_t* moving_mask = nullptr;  // moving's shape; nullptr = all
    // Flat indices into `fixed`, strictly increasing; nullptr = every voxel.
    const std::int64_t* samples = nullptr;
    std::int64_t sample_count = 0;
    // Fixed sample points moved off the grid by a pseudo-random offset in
    // [-0.5, 0.5) per axis (10 bits of a hash of the voxel index and
    // `jitter_seed`, so reproducible), the fixed image d-linearly interpolated
    // there. On the grid, d-linear interpolation smooths the moving image's
    // noise by an amount that depends on the sub-voxel part of the map, which
    // biases both metrics towards half-voxel offsets when noise dominates;
    // with jitter that amount no longer depends on the map.
    bool jitter = false;
    std::uint64_t jitter_seed = 0;
    // Mutual information: bins per axis and the intensity ranges they span.
    int nbins = 32;
    double fixed_min = 0.0, fixed_max = 1.0;
    double moving_min = 0.0, moving_max = 1.0;
};

struct MetricValue {
    double value = 0.0;             // MI in nats, or the correlation coefficient
    std::vector<double> gradient;   // d * (d + 1), empty unless asked for
    std::int64_t overlap = 0;       // voxels that took part
};

// A metric prepared for one fixed/moving pair: the fixed side (values at the
// sample points, masks) is computed once, here; evaluate() then maps the
// moving image. The first pass keeps each point's moving value and gradient
// (4 or 5 bytes per point per axis, allocated at the first gradient
// evaluation) so the gradient pass reads them instead of sampling again.
// Throws std::invalid_argument for inconsistent shapes, samples, nbins
// outside [8, 1024] or an empty/invalid intensity range. The arrays `setup`
// points to must outlive the engine. Evaluations are serialised (one scratch).
class MetricEngine {
public:
    MetricEngine(const MetricSetup& setup, int threads);
    ~MetricEngine();
    MetricEngine(const MetricEngine&) = delete;
    MetricEngine& operator=(const MetricEngine&) = delete;

    int ndim() const;
    int nbins() const;
    // Throws std::invalid_argument for a non-finite matrix.
    MetricValue evaluate(const double* matrix, bool want_gradient, int threads);
    // The joint histogram (nbins x nbins, fixed along rows, probabilities) of
    // the mutual-information metric at `matrix`, for inspection and tests.
    std::vector<double> joint_histogram(const double* matrix, int threads);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// scipy.ndimage.gaussian_filter(image, sigma, mode="reflect", truncate=4.0)
// in float32 arithmetic; sigma per axis in voxels (0 = that axis untouched).
std::vector<float> gaussian_smooth(const Volume& image, const double* sigma, int threads);

// The same, in place on `data`, with `work` (as large as data) as scratch;
// sigma per axis is assumed checked (finite, >= 0, at most 1e4).
void gaussian_smooth_inplace(float* data, float* work, int ndim, const std::int64_t* shape, const double* sigma,
                             int threads);


}  // namespace spectralign_fast::reg

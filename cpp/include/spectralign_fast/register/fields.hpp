// Displacement fields for diffeomorphic registration (DIPY's vector_fields
// semantics, on the sample core's threading and determinism rules).
//
// Conventions: a field of dimension d (2 or 3) over a grid of `shape` (array
// axis order) is float32, C order, shape + (d,); component k is the
// displacement along WORLD axis k in world units. Matrices are homogeneous
// (d + 1) x (d + 1), row major, array axis order. Off-grid values come from
// DIPY's zero-padded d-linear interpolation: a point strictly inside
// (-1, n) on every axis takes the weighted sum of the corner samples that
// exist (the missing ones count as zero); "inside" means all 2^d corners
// exist. Every output element's arithmetic depends only on its own index and
// reductions run over a fixed chunking in a fixed order, so every result is
// bit-identical for any thread count.
#pragma once

#include <cstdint>
#include <vector>

namespace spectralign_fast::reg {

struct FieldShape {
    int ndim = 2;
    std::int64_t shape[3] = {0, 0, 0};
    std::int64_t voxels() const {
        std::int64_t n = 1;
        for (int a = 0; a < ndim; ++a) n *= shape[a];
        return n;
    }
};

// Maximum, root mean square and DIPY's "standard deviation" of the squared
// norms' square root, over the voxels where d2 was inside (compose_fields).
struct CompositionStats {
    double max_norm = 0.0;
    double mean_norm = 0.0;
    double std_norm = 0.0;
    std::int64_t inside = 0;
};

// comp[i] = d1[i] + t * d2(A (i, 1) + B (d1[i], 0)) where d2 is inside,
// else 0 (DIPY's compose_vector_fields). comp may be d1 (in place) but not
// d2. A = premult_index, B = premult_disp (homogeneous, (d+1)^2 each).
// Without with_stats the stats are not made and come back as zeros (the
// row kernels then skip the norms: SyN's update does not read them).
CompositionStats compose_fields(const float* d1, const FieldShape& s1, const float* d2, const FieldShape& s2,
                                const double* premult_index, const double* premult_disp, double t, float* comp,
                                int threads, bool with_stats = true);

// DIPY's fixed-point inversion (Chen et al. 2008): p <- p - eps * (p o d)
// with DIPY's step limiting and stopping rules (2-D: iterations and mean
// error; 3-D: also the largest residual below 0.1). `p` holds the start on
// entry (zeros for none) and the inverse on return. Returns iterations run.
// `work` (optional, voxels x d floats, neither d nor p): scratch for the
// residual, else one is allocated per call.
int invert_field(const float* d, const FieldShape& s, const double* world2grid, const double* spacing,
                 int max_iter, double tolerance, float* p, double* final_error, int threads,
                 float* work = nullptr);

// out[i] = field(diag(factors) i) (zero-padded d-linear), out_shape grid.
void resample_field(const float* field, const FieldShape& s, const double* factors, const FieldShape& out_shape,
                    float* out, int threads);

// Fields on every factor-th voxel of an image grid of n voxels along an
// axis have coarse_extent(n, factor) = ceil((n - 1) / factor) + 1 nodes
// (node i at voxel factor i; the last node at or past voxel n - 1).
std::int64_t coarse_extent(std::int64_t n, int factor);

// A step on the image grid brought to its coarse grid (coarse_extent per
// axis; out holds that many voxels x d): per axis a tent average of the
// 2 factor - 1 voxels around voxel factor i (weights (factor - |k|) /
// factor^2, scipy's 'reflect' edge), then smooth_field_components on the
// coarse grid with the rest of a Gaussian of `sigma` voxels (the tent holds
// (factor^2 - 1) / 6 voxels^2 of its variance). Approximates smoothing at
// full resolution and taking every factor-th voxel.
void restrict_field(const float* field, const FieldShape& s, int factor, double sigma, float* out, int threads);

// out[i] = coarse(i / factor), d-linear, float32, on out_shape (whose
// coarse_extent must be the coarse field's shape).
void upsample_field(const float* coarse, const FieldShape& coarse_shape, int factor, const FieldShape& out_shape,
                    float* out, int threads);

// The field at n points given in grid coordinates (n x d, row major).
void interpolate_field(const float* field, const FieldShape& s, const double* points, std::int64_t n,
                       double* out, int threads);

// DIPY's step preparation: zero on the grid's boundary faces, then divided
// by max |step / spacing| when that is > 0. In place. Returns that maximum.
double normalize_step(float* step, const FieldShape& s, const double* spacing, int threads);

// det(I + du/dx) per voxel; du/di by central differences (one-sided at the
// edges, as numpy.gradient), chained with grid2world's inverse linear part.
void jacobian_determinant(const float* field, const FieldShape& s, const double* grid2world, float* out,
                          int threads);

// Image warping through a field (DIPY's warp_2d/3d and warp_*_nn):
//   out[i] = image(W (field(A (i,1)) , 0) + B (i, 1))
// with A = idx_in, B = idx_out, W = disp (homogeneous, (d+1)^2 each);
// the field is read directly at i when A is the identity and the field grid
// has the output's shape. Linear: zero-padded d-linear (float32 image).
// Nearest: the nearest sample when the point lies in [0, n - 1] (ties go to
// the lower index), else 0.
enum class FieldDtype { U8, U16, I32, F32 };
enum class FieldInterp { Linear, Nearest };
void warp_with_field(const void* image, FieldDtype type, const FieldShape& image_shape, const float* field,
                     const FieldShape& field_shape, const double* idx_in, const double* idx_out,
                     const double* disp, const FieldShape& out_shape, FieldInterp interp, void* out,
                     int threads);

// ----------------------------------------------------------------- metrics
// Both images live on one grid (the reference grid of an iteration); spacing
// (d) and direction (d x d, row major) describe it. Image gradients are
// numpy.gradient (central differences, one-sided at the edges), divided by
// the spacing and turned by the direction, as DIPY's metrics do. Steps are
// float32 fields over the grid; energies are DIPY's.
struct StepResult {
    double forward_energy = 0.0;
    double backward_energy = 0.0;
};

// DIPY's CCMetric: local cross-correlation over (2 radius + 1)^d windows
// clipped at the edges (box sums, cost independent of the radius), steps in
// the interior [radius, n - radius), each component Gaussian-smoothed with
// sigma_diff voxels (scipy's gaussian_filter, mode "reflect").
StepResult cc_steps(const float* static_img, const float* moving_img, const FieldShape& s, int radius,
                    const double* spacing, const double* direction, double sigma_diff, float* forward,
                    float* backward, int threads);

// DIPY's SSDMetric with the demons step: step = delta * grad / (delta^2 /
// sigma_x^2 + |grad|^2) (0 where the denominator is below 1e-9), then
// Gaussian smoothing with `smooth` voxels. sigma_x^2 = mean(spacing^2).
StepResult ssd_demons_steps(const float* static_img, const float* moving_img, const FieldShape& s,
                            const double* spacing, const double* direction, double smooth, float* forward,
                            float* backward, int threads);

// DIPY's SSDMetric with the Gauss-Newton step: the linearised SSD energy
// with a membrane regulariser of weight `smooth` (lambda), solved by a
// multigrid V-cycle of depth levels_below with inner_iter Gauss-Seidel
// sweeps per visit (red-black order, so the sweeps parallelise and give the
// same bits for any thread count; DIPY sweeps in raster order). No smoothing.
StepResult ssd_gauss_newton_steps(const float* static_img, const float* moving_img, const FieldShape& s,
                                  const double* spacing, const double* direction, double smooth, int inner_iter,
                                  int levels_below, float* forward, float* backward, int threads);

// DIPY's EMMetric: each image is quantised into q_levels classes
// (quantize_positive: values <= 0 are class 0), the other image's mean and
// variance per class (inside both masks; nullptr = everywhere) predict it,
// and the step is the demons step (smoothed by `smooth` voxels) or the
// Gauss-Newton V-cycle as for SSD, with the class variances as noise.
StepResult em_steps(const float* static_img, const float* moving_img, const std::int32_t* static_mask,
                    const std::int32_t* moving_mask, const FieldShape& s, const double* spacing,
                    const double* direction, int q_levels, double smooth, bool double_gradient, bool gauss_newton,
                    int inner_iter, int levels_below, float* forward, float* backward, int threads);

// Global mutual information with cubic B-spline Parzen windows over the
// grid: d(MI)/d(image value) per voxel times the image's gradient, smoothed
// by sigma_diff voxels; energies are -MI (nats) for both directions.
StepResult mi_steps(const float* static_img, const float* moving_img, const FieldShape& s, int nbins,
                    const double* spacing, const double* direction, double sigma_diff, float* forward,
                    float* backward, int threads);

// In place: scipy.ndimage.gaussian_filter's kernel and edges on every
// component of a field, in float32 arithmetic (not scipy's bits).
void smooth_field_components(float* field, const FieldShape& s, double sigma, int threads);

}  // namespace spectralign_fast::reg

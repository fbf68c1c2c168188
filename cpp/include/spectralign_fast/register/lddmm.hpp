// LDDMM with an affine part and a contrast model (STalign's energy), in 2-D
// and 3-D, and the flows, samplers and rasterizer STalign's functions use.
//
// Conventions (STalign's): coordinates are physical, in array axis order
// ((row, col) or (slice, row, col)); a grid's point of index i on axis a is
// origin[a] + i * spacing[a]. Images are double, channels first:
// (channels, grid...). A velocity field is (nt, grid..., d): component k is
// the velocity along axis k. Matrices are homogeneous (d+1)x(d+1), row major.
// The map found is source -> target: x -> A phi_1(x), where phi_1 is the flow
// of v (forward Euler, nt steps); images are sampled through its inverse,
// phi_1^{-1}(A^{-1} y), integrated backward with the same Euler steps.
// Interpolation is d-linear with torch's grid_sample(align_corners=True)
// rules: "zeros" lets a corner outside the grid count as 0 (velocities),
// "border" clamps the coordinate into the grid (images).
//
// Every per-point result depends only on that point; reductions (sums,
// splats of gradients onto the velocity grid) run over a fixed chunking of
// the target in a fixed order, so results are bit-identical for any thread
// count.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace spectralign_fast::reg {

struct PhysGrid {
    int ndim = 2;
    std::int64_t shape[3] = {1, 1, 1};
    double origin[3] = {0.0, 0.0, 0.0};
    double spacing[3] = {1.0, 1.0, 1.0};
    std::int64_t points() const {
        std::int64_t n = 1;
        for (int a = 0; a < ndim; ++a) n *= shape[a];
        return n;
    }
};

enum class Padding { border, zeros };

// out (channels, n) = image sampled at n points (n x d, physical).
void lddmm_sample(const double* image, int channels, const PhysGrid& grid, const double* points, std::int64_t n,
                  Padding padding, double* out, int threads);

// Flows n points (n x d, in place) through the velocity v (nt, grid..., d).
// forward: p += v_t(p) / nt for t = 0 .. nt-1, then p = M p.
// backward: p = M p, then p -= v_t(p) / nt for t = nt-1 .. 0.
// M may be null (identity). nt == 0 leaves only M.
void lddmm_flow_points(const double* v, int nt, const PhysGrid& vgrid, const double* M, double* points,
                       std::int64_t n, bool forward, int threads);

// STalign's rasterize: every point (x[i], y[i]) with weight g[i] adds, for
// each blur b, a Gaussian of standard deviation 2 * dx * blur[b] over the
// window of pixels within ceil(4 max(blur)) of its nearest pixel (clamped to
// the image), normalised to sum g[i] over that window; wavelet_magnitude
// turns channel b into channel b minus channel b-1 (b >= 1). The absolute
// value of the sum goes to out (nb, ny, nx). X (nx) and Y (ny) are the pixel
// centres.
void rasterize_points(const double* x, const double* y, const double* g, std::int64_t n, const double* X,
                      std::int64_t nx, const double* Y, std::int64_t ny, double dx, const double* blur, int nb,
                      bool wavelet_magnitude, double* out, int threads);

struct LddmmSettings {
    int nt = 3;
    double a = 500.0;       // smoothness length of the velocity (physical units)
    double p = 2.0;         // power of the operator (I - a^2 Laplacian)^p
    double sigmaM = 1.0;    // matching
    double sigmaB = 2.0;    // background
    double sigmaA = 5.0;    // artifact
    double sigmaR = 5e5;    // regularisation
    double sigmaP = 2e1;    // landmarks
    double ridge = 0.1;     // the contrast fit's ridge (STalign's `small`)
};

struct LddmmEnergy {
    double total = 0.0, matching = 0.0, regularization = 0.0, points = 0.0;
};

// One registration problem: the source I on gridI, the target J on gridJ,
// the velocity grid, landmark pairs, and the state (v, A, the mixture
// weights and means). step() is one iteration of STalign's gradient descent.
class LddmmProblem {
public:
    LddmmProblem(const double* I, int channelsI, const PhysGrid& gridI, const double* J, int channelsJ,
                 const PhysGrid& gridJ, const PhysGrid& gridV, const LddmmSettings& settings,
                 const double* pointsI, const double* pointsJ, std::int64_t npoints, int threads);
    ~LddmmProblem();
    LddmmProblem(const LddmmProblem&) = delete;
    LddmmProblem& operator=(const LddmmProblem&) = delete;

    int ndim() const;
    int channels_source() const;
    int channels_target() const;
    std::int64_t target_points() const;
    std::int64_t velocity_size() const;  // nt * grid points * d

    // State, read and written by the caller between iterations.
    double* velocity();  // (nt, gridV..., d)
    double* affine();    // (d+1)^2
    double* weight_matching();    // WM (gridJ)
    double* weight_artifact();    // WA
    double* weight_background();  // WB
    double* mean_artifact();      // muA (channelsJ)
    double* mean_background();    // muB (channelsJ)
    // Fixes the contrast coefficients ((channelsI + 1) x channelsJ, row
    // major) instead of fitting them each iteration (null: fit again).
    void fix_contrast(const double* coefficients);

    // The energy at the current state (fits the contrast first).
    LddmmEnergy evaluate();
    // Energy at the current state, then one gradient step: L -= epL dE/dL,
    // T -= epT dE/dT, v -= epV K*(dE/dv) (K the smoothing kernel 1/|L|^2;
    // epV == 0 leaves v). Returns the energy before the step.
    LddmmEnergy step(double epL, double epT, double epV);
    // The raw gradients at the current state (no smoothing): dE/dv (same
    // layout as v) and dE/dA ((d+1)^2, last row 0). For tests.
    LddmmEnergy gradient(double* grad_v, double* grad_A);
    // STalign's weight update from the last evaluation: means of the
    // artifact and background classes (M step; skipped for a fixed mean),
    // then, if e_step, the weights from the Gaussian mixture.
    void update_weights(bool estimate_muA, bool estimate_muB, bool e_step);

    // From the last evaluation: the source sampled into the target grid
    // (channelsI, gridJ), after the contrast map (channelsJ, gridJ), and the
    // contrast coefficients ((channelsI + 1) x channelsJ).
    const std::vector<double>& deformed_source() const;
    const std::vector<double>& contrast_source() const;
    const std::vector<double>& contrast_coefficients() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace spectralign_fast::reg

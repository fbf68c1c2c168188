// Normalised mutual information of the global initialiser's coarse images
// (register/_coarse.py, Scorer): the moving coarse image pulled through an
// affine index map by d-linear interpolation, as the warp core's "constant"
// mode does it (no sample outside [0, n - 1]; the moving image holds -1 where
// it has no field of view, so a pulled value below 0 is not a sample), its
// intensity binned into nbins, against the static image's precomputed bins.
// One pass, no allocation beyond the nbins^2 counts: the numpy version spent
// more time on array bookkeeping than on the arithmetic.
#include "spectralign_fast/register/coarse_score.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace spectralign_fast::reg {

namespace {

// The moving image d-linearly interpolated at y (inside [0, n - 1] on every
// axis, checked by the caller).
inline double interpolate(const float* img, int d, const std::int64_t* n, const std::int64_t* stride,
                          const double* y) {
    if (d == 2) {
        const std::int64_t i0 = std::min<std::int64_t>(static_cast<std::int64_t>(y[0]), n[0] - 2);
        const std::int64_t i1 = std::min<std::int64_t>(static_cast<std::int64_t>(y[1]), n[1] - 2);
        const double t0 = y[0] - double(i0), t1 = y[1] - double(i1);
        const float* p = img + i0 * stride[0] + i1;
        const double top = p[0] + t1 * (double(p[1]) - p[0]);
        const double bottom = p[stride[0]] + t1 * (double(p[stride[0] + 1]) - p[stride[0]]);
        return top + t0 * (bottom - top);
    }
    const std::int64_t i0 = std::min<std::int64_t>(static_cast<std::int64_t>(y[0]), n[0] - 2);
    const std::int64_t i1 = std::min<std::int64_t>(static_cast<std::int64_t>(y[1]), n[1] - 2);
    const std::int64_t i2 = std::min<std::int64_t>(static_cast<std::int64_t>(y[2]), n[2] - 2);
    const double t0 = y[0] - double(i0), t1 = y[1] - double(i1), t2 = y[2] - double(i2);
    const float* p = img + i0 * stride[0] + i1 * stride[1] + i2;
    const std::int64_t sy = stride[1], sz = stride[0];
    auto lerp_x = [&](const float* q) { return q[0] + t2 * (double(q[1]) - q[0]); };
    const double a0 = lerp_x(p), a1 = lerp_x(p + sy), b0 = lerp_x(p + sz), b1 = lerp_x(p + sz + sy);
    const double c0 = a0 + t1 * (a1 - a0), c1 = b0 + t1 * (b1 - b0);
    return c0 + t0 * (c1 - c0);
}

double entropy(const std::vector<double>& p) {
    double h = 0.0;
    for (double v : p)
        if (v > 0.0) h -= v * std::log(v);
    return h;
}

}  // namespace

CoarseScore coarse_nmi(const CoarseImages& im, const double* matrix, int nbins) {
    const int d = im.ndim;
    if (d != 2 && d != 3) throw std::invalid_argument("coarse images must be 2-D or 3-D");
    if (nbins < 2 || nbins > 4096) throw std::invalid_argument("nbins must lie in [2, 4096]");
    for (int a = 0; a < d; ++a)
        if (im.static_shape[a] < 1 || im.moving_shape[a] < 2)
            throw std::invalid_argument("coarse images are too small");
    for (int k = 0; k < (d + 1) * (d + 1); ++k)
        if (!std::isfinite(matrix[k])) throw std::invalid_argument("matrix must be finite");
    std::int64_t stride[3] = {1, 1, 1};
    for (int a = d - 2; a >= 0; --a) stride[a] = stride[a + 1] * im.moving_shape[a + 1];
    std::vector<double> joint(std::size_t(nbins) * std::size_t(nbins), 0.0);
    std::int64_t n = 0;
    const std::int64_t width = im.static_shape[d - 1];
    const std::int64_t rows = (d == 3 ? im.static_shape[0] * im.static_shape[1] : im.static_shape[0]);
    double hi[3];
    for (int a = 0; a < d; ++a) hi[a] = double(im.moving_shape[a] - 1);
    // Along a row only the last index moves: the map is stepped by its last column.
    for (std::int64_t row = 0; row < rows; ++row) {
        double lead[2] = {double(row), 0.0};
        if (d == 3) {
            lead[0] = double(row / im.static_shape[1]);
            lead[1] = double(row % im.static_shape[1]);
        }
        double base[3], step[3];
        for (int r = 0; r < d; ++r) {
            double acc = matrix[r * (d + 1) + d];
            for (int c = 0; c < d - 1; ++c) acc += matrix[r * (d + 1) + c] * lead[c];
            base[r] = acc;
            step[r] = matrix[r * (d + 1) + d - 1];
        }
        const std::int16_t* bins = im.static_bins + row * width;
        for (std::int64_t i = 0; i < width; ++i) {
            const int fb = bins[i];
            if (fb < 0) continue;
            double y[3];
            bool inside = true;
            for (int r = 0; r < d; ++r) {
                y[r] = base[r] + step[r] * double(i);
                inside = inside && y[r] >= 0.0 && y[r] <= hi[r];
            }
            if (!inside) continue;
            const double w = interpolate(im.moving, d, im.moving_shape, stride, y);
            if (!(w >= 0.0)) continue;
            if (im.moving_mask && !(interpolate(im.moving_mask, d, im.moving_shape, stride, y) >= 0.5)) continue;
            const int mb = std::min(static_cast<int>(w * nbins), nbins - 1);
            joint[std::size_t(std::min(fb, nbins - 1)) * nbins + mb] += 1.0;
            ++n;
        }
    }
    CoarseScore out;
    out.overlap = n;
    if (n == 0) return out;
    std::vector<double> pa(nbins, 0.0), pb(nbins, 0.0);
    for (int i = 0; i < nbins; ++i)
        for (int j = 0; j < nbins; ++j) {
            double& p = joint[std::size_t(i) * nbins + j];
            p /= double(n);
            pa[i] += p;
            pb[j] += p;
        }
    const double h_ab = entropy(joint);
    if (h_ab > 0.0) out.nmi = (entropy(pa) + entropy(pb)) / h_ab - 1.0;
    return out;
}

}  // namespace spectralign_fast::reg

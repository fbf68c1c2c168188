// Separable Gaussian smoothing with scipy.ndimage.gaussian_filter's kernel
// (truncate = 4) and edge rule (mode "reflect": d c b a | a b c d | d c b a),
// one axis after another, each pass written as float32 as scipy does.
// Along an outer axis a whole contiguous slab is a weighted sum of slabs, so
// the inner loop runs over contiguous memory; along the last axis each line
// is copied once into a reflected, padded buffer.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "core/parallel.hpp"
#include "gaussian_kernel.hpp"
#include "spectralign_fast/register/metric.hpp"

namespace spectralign_fast::reg {

namespace {

void smooth_axis(const float* in, float* out, const std::int64_t* shape, int ndim, int axis,
                 const std::vector<double>& w, int threads) {
    std::int64_t outer = 1, inner = 1;
    for (int a = 0; a < axis; ++a) outer *= shape[a];
    for (int a = axis + 1; a < ndim; ++a) inner *= shape[a];
    const std::int64_t n = shape[axis];
    const int radius = static_cast<int>(w.size() / 2);
    if (inner == 1) {
        parallel_for_runs(static_cast<std::size_t>(outer), threads,
                          [&] { return std::vector<double>(static_cast<std::size_t>(n + 2 * radius)); },
                          [&](std::vector<double>& line, std::size_t o) {
                         const float* src = in + std::int64_t(o) * n;
                         for (std::int64_t i = -radius; i < n + radius; ++i)
                             line[std::size_t(i + radius)] = src[reflect_index(i, n)];
                         float* dst = out + std::int64_t(o) * n;
                         for (std::int64_t i = 0; i < n; ++i) {
                             const double* l = &line[std::size_t(i)];
                             double acc = 0.0;
                             for (std::size_t k = 0; k < w.size(); ++k) acc += w[k] * l[k];
                             dst[i] = static_cast<float>(acc);
                         }
                     });
        return;
    }
    parallel_for_runs(static_cast<std::size_t>(outer * n), threads,
                      [&] { return std::vector<double>(static_cast<std::size_t>(inner)); },
                      [&](std::vector<double>& acc, std::size_t unit) {
                     const std::int64_t o = std::int64_t(unit) / n, i = std::int64_t(unit) % n;
                     std::fill(acc.begin(), acc.end(), 0.0);
                     const float* slab0 = in + o * n * inner;
                     for (int k = -radius; k <= radius; ++k) {
                         const double wk = w[std::size_t(k + radius)];
                         const float* src = slab0 + reflect_index(i + k, n) * inner;
                         for (std::int64_t j = 0; j < inner; ++j) acc[std::size_t(j)] += wk * src[j];
                     }
                     float* dst = out + (o * n + i) * inner;
                     for (std::int64_t j = 0; j < inner; ++j) dst[j] = static_cast<float>(acc[std::size_t(j)]);
                 });
}

}  // namespace

void gaussian_smooth_inplace(float* data, float* work, int ndim, const std::int64_t* shape, const double* sigma,
                             int threads) {
    std::int64_t total = 1;
    for (int a = 0; a < ndim; ++a) total *= shape[a];
    float* cur = data;
    float* next = work;
    for (int a = 0; a < ndim; ++a) {
        if (sigma[a] == 0.0) continue;
        smooth_axis(cur, next, shape, ndim, a, gaussian_kernel(sigma[a]), threads);
        std::swap(cur, next);
    }
    if (cur != data) std::copy(cur, cur + total, data);
}

std::vector<float> gaussian_smooth(const Volume& image, const double* sigma, int threads) {
    if (image.ndim < 1 || image.ndim > 3) throw std::invalid_argument("image must be 1-D, 2-D or 3-D");
    std::int64_t total = 1;
    for (int a = 0; a < image.ndim; ++a) {
        if (image.shape[a] < 1) throw std::invalid_argument("image is empty");
        if (!std::isfinite(sigma[a]) || sigma[a] < 0.0)
            throw std::invalid_argument("sigma must be finite and non-negative");
        if (sigma[a] > 1e4) throw std::invalid_argument("sigma is too large (at most 1e4 voxels)");
        total *= image.shape[a];
    }
    std::vector<float> cur(image.data, image.data + total);
    std::vector<float> next(static_cast<std::size_t>(total));
    for (int a = 0; a < image.ndim; ++a) {
        if (sigma[a] == 0.0) continue;
        smooth_axis(cur.data(), next.data(), image.shape, image.ndim, a, gaussian_kernel(sigma[a]), threads);
        cur.swap(next);
    }
    return cur;
}

}  // namespace spectralign_fast::reg

// Shared pieces of the displacement-field kernels: a grid of dimension D,
// DIPY's zero-padded d-linear interpolation, and a dispatcher on D.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "spectralign_fast/register/fields.hpp"

namespace spectralign_fast::reg::fieldkit {

template <int D>
struct Grid {
    std::int64_t n[D];
    std::int64_t stride[D];  // in voxels
    explicit Grid(const FieldShape& s) {
        std::int64_t st = 1;
        for (int a = D - 1; a >= 0; --a) {
            n[a] = s.shape[a];
            stride[a] = st;
            st *= n[a];
        }
    }
    std::int64_t voxels() const { return n[0] * stride[0]; }
    // Rows: every axis but the last; a row is n[D-1] contiguous voxels.
    std::int64_t rows() const { return voxels() / n[D - 1]; }
    // The index of the first voxel of `row`, as array indices.
    void row_index(std::int64_t row, std::int64_t* idx) const {
        for (int a = D - 2; a >= 0; --a) {
            idx[a] = row % n[a];
            row /= n[a];
        }
        idx[D - 1] = 0;
    }
};

// floor() for |x| < 2^62 without a libm call (the baseline x86-64 build has
// no rounding instruction); callers range-check x first.
inline double floor_small(double x) {
    const double t = static_cast<double>(static_cast<std::int64_t>(x));
    return t > x ? t - 1.0 : t;
}

// DIPY's _interpolate_vector / _interpolate_scalar: zero outside
// (-1, n) on any axis; otherwise the weighted sum of the 2^D corners that
// exist. Returns true when all corners exist ("inside"). `comps` values per
// voxel (1 for a scalar image, D for a field).
template <int D, class T>
inline bool interpolate(const T* data, const Grid<D>& g, int comps, const double* x, double* out) {
    for (int k = 0; k < comps; ++k) out[k] = 0.0;
    std::int64_t base[D];
    double frac[D];
    bool interior = true;
    for (int a = 0; a < D; ++a) {
        if (!(x[a] > -1.0 && x[a] < double(g.n[a]))) return false;
        const double f = floor_small(x[a]);
        base[a] = static_cast<std::int64_t>(f);
        frac[a] = x[a] - f;
        interior = interior && base[a] >= 0 && base[a] + 1 < g.n[a];
    }
    if (interior) {
        // Every corner exists (the common case): the same weights without the
        // per-corner bounds checks (summed in a tree; the edge path below sums
        // in corner order, so the two may differ in the last bit).
        std::int64_t off = 0;
        for (int a = 0; a < D; ++a) off += base[a] * g.stride[a];
        const T* p = data + off * comps;
        if constexpr (D == 2) {
            const std::int64_t s0 = g.stride[0] * comps, s1 = g.stride[1] * comps;
            const double w00 = (1.0 - frac[0]) * (1.0 - frac[1]), w01 = (1.0 - frac[0]) * frac[1],
                         w10 = frac[0] * (1.0 - frac[1]), w11 = frac[0] * frac[1];
            for (int k = 0; k < comps; ++k)
                out[k] = (w00 * double(p[k]) + w01 * double(p[s1 + k])) +
                         (w10 * double(p[s0 + k]) + w11 * double(p[s0 + s1 + k]));
        } else {
            const std::int64_t s0 = g.stride[0] * comps, s1 = g.stride[1] * comps, s2 = g.stride[2] * comps;
            const double a0 = 1.0 - frac[0], a1 = 1.0 - frac[1], a2 = 1.0 - frac[2];
            const double w[8] = {a0 * a1 * a2,           a0 * a1 * frac[2],           a0 * frac[1] * a2,
                                 a0 * frac[1] * frac[2], frac[0] * a1 * a2,           frac[0] * a1 * frac[2],
                                 frac[0] * frac[1] * a2, frac[0] * frac[1] * frac[2]};
            const std::int64_t o[8] = {0, s2, s1, s1 + s2, s0, s0 + s2, s0 + s1, s0 + s1 + s2};
            // A balanced sum: the corners' products in a tree, not one chain of dependent adds.
            for (int k = 0; k < comps; ++k) {
                const T* q = p + k;
                out[k] = ((w[0] * double(q[o[0]]) + w[1] * double(q[o[1]])) +
                          (w[2] * double(q[o[2]]) + w[3] * double(q[o[3]]))) +
                         ((w[4] * double(q[o[4]]) + w[5] * double(q[o[5]])) +
                          (w[6] * double(q[o[6]]) + w[7] * double(q[o[7]])));
            }
        }
        return true;
    }
    int present = 0;
    for (int corner = 0; corner < (1 << D); ++corner) {
        double w = 1.0;
        std::int64_t off = 0;
        bool ok = true;
        for (int a = 0; a < D; ++a) {
            const int bit = (corner >> (D - 1 - a)) & 1;
            const std::int64_t i = base[a] + bit;
            if (i < 0 || i >= g.n[a]) {
                ok = false;
                break;
            }
            w *= bit ? frac[a] : 1.0 - frac[a];
            off += i * g.stride[a];
        }
        if (!ok) continue;
        ++present;
        const T* v = data + off * comps;
        for (int k = 0; k < comps; ++k) out[k] += w * double(v[k]);
    }
    return present == (1 << D);
}

// (d+1)x(d+1) homogeneous matrix applied to a point (h = 1) or a vector (h = 0).
template <int D>
inline void apply(const double* M, const double* x, double h, double* out) {
    for (int r = 0; r < D; ++r) {
        double acc = M[r * (D + 1) + D] * h;
        for (int c = 0; c < D; ++c) acc += M[r * (D + 1) + c] * x[c];
        out[r] = acc;
    }
}

inline bool is_identity(const double* M, int d) {
    for (int r = 0; r <= d; ++r)
        for (int c = 0; c <= d; ++c)
            if (M[r * (d + 1) + c] != (r == c ? 1.0 : 0.0)) return false;
    return true;
}

inline void check_matrix(const double* M, int d, const char* what) {
    for (int k = 0; k < (d + 1) * (d + 1); ++k)
        if (!std::isfinite(M[k])) throw std::invalid_argument(std::string(what) + " must be finite");
}

inline void check_shape(const FieldShape& s, const char* what) {
    if (s.ndim != 2 && s.ndim != 3) throw std::invalid_argument(std::string(what) + " must be 2-D or 3-D");
    for (int a = 0; a < s.ndim; ++a)
        if (s.shape[a] < 1) throw std::invalid_argument(std::string(what) + " is empty");
}

inline void check_spacing(const double* spacing, int d) {
    for (int a = 0; a < d; ++a)
        if (!std::isfinite(spacing[a]) || !(spacing[a] > 0.0))
            throw std::invalid_argument("spacing must be finite and positive");
}

// numpy.gradient's central difference at an interior sample i.
__attribute__((always_inline)) inline float np_central(const float* img, std::int64_t i, std::int64_t stride) {
    return (img[i + stride] - img[i - stride]) / 2.0f;
}

// numpy.gradient of a float32 image along `axis` at flat index `i` (index
// `ia` on that axis): central difference / 2 inside, one-sided at the edges,
// 0 for an axis of length 1; float32 arithmetic as numpy does.
inline float np_gradient(const float* img, std::int64_t i, std::int64_t ia, std::int64_t n, std::int64_t stride) {
    if (n < 2) return 0.0f;
    if (ia == 0) return img[i + stride] - img[i];
    if (ia == n - 1) return img[i] - img[i - stride];
    return np_central(img, i, stride);
}

template <class F>
decltype(auto) with_dim(int d, F&& f) {
    if (d == 2) return f(std::integral_constant<int, 2>{});
    if (d == 3) return f(std::integral_constant<int, 3>{});
    throw std::invalid_argument("fields must be 2-D or 3-D");
}

}  // namespace spectralign_fast::reg::fieldkit

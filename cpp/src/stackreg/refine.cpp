#include "refine.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/simd_clones.hpp"

namespace spectralign_fast::stackreg_detail {

namespace {

constexpr int kTaps = 8;          // interpolation taps, at -3..4
constexpr int kTapLo = 3;         // taps before the sample
constexpr int kTapHi = 4;         // taps after it
constexpr int kGradTaps = 4;      // reference gradient: +-4 samples
constexpr int kMaxEvaluations = 4;
constexpr double kConverged = 1e-3;   // px: a step this small ends the iteration
constexpr double kMaxMove = 1.0;      // px per axis from the FFT estimate (the interior allows for it)
constexpr int kMinInterior = 8;       // samples per axis

const double kPole = std::sqrt(3.0) - 2.0;

double bspline3(double x) {
    x = std::fabs(x);
    if (x < 1) return 2.0 / 3.0 - x * x + 0.5 * x * x * x;
    if (x < 2) return (2 - x) * (2 - x) * (2 - x) / 6.0;
    return 0;
}

double bspline3_derivative(double x) {
    const double a = std::fabs(x), s = x < 0 ? -1.0 : 1.0;
    if (a < 1) return s * (-2 * a + 1.5 * a * a);
    if (a < 2) return s * (-0.5 * (2 - a) * (2 - a));
    return 0;
}

// The cardinal cubic spline eta (eta(k) = delta_k0) and its derivative:
// sum_k c_k beta3(x - k), c_k = -6 z / (1 - z^2) z^|k|.
double cardinal(double x, bool derivative) {
    const double c0 = -6.0 * kPole / (1.0 - kPole * kPole);
    double s = 0;
    const int k0 = static_cast<int>(std::floor(x));
    for (int k = k0 - 16; k <= k0 + 17; ++k) {
        const double c = c0 * std::pow(std::fabs(kPole), std::abs(k)) * ((std::abs(k) % 2) ? -1.0 : 1.0);
        s += c * (derivative ? bspline3_derivative(x - k) : bspline3(x - k));
    }
    return s;
}

// ---- row kernels ---------------------------------------------------------------

SPECTRALIGN_CLONES void combine8(const float* const* src, const float* w, float* out, int n) {
    const float* a = src[0];
    const float* b = src[1];
    const float* c = src[2];
    const float* d = src[3];
    const float* e = src[4];
    const float* f = src[5];
    const float* g = src[6];
    const float* h = src[7];
#pragma omp simd
    for (int k = 0; k < n; ++k)
        out[k] = w[0] * a[k] + w[1] * b[k] + w[2] * c[k] + w[3] * d[k] + w[4] * e[k] + w[5] * f[k] +
                 w[6] * g[k] + w[7] * h[k];
}

// out[x] = (sum_j w[j] in[x + j] - mean) * scale.
SPECTRALIGN_CLONES void fir8(const float* in, const float* w, float mean, float scale, float* out, int n) {
#pragma omp simd
    for (int x = 0; x < n; ++x)
        out[x] = (w[0] * in[x] + w[1] * in[x + 1] + w[2] * in[x + 2] + w[3] * in[x + 3] + w[4] * in[x + 4] +
                  w[5] * in[x + 5] + w[6] * in[x + 6] + w[7] * in[x + 7] - mean) *
                 scale;
}

// s = (sum g0 f, sum g1 f, sum g2 f, sum r f, sum f, sum f f); g0 may be null.
SPECTRALIGN_CLONES void frame_sums(const float* f, const float* r, const float* g0, const float* g1,
                                   const float* g2, int n, float s[6]) {
    float a0 = 0, a1 = 0, a2 = 0, ar = 0, a = 0, aa = 0;
    if (g0 != nullptr) {
#pragma omp simd reduction(+ : a0)
        for (int k = 0; k < n; ++k) a0 += g0[k] * f[k];
    }
#pragma omp simd reduction(+ : a1, a2, ar, a, aa)
    for (int k = 0; k < n; ++k) {
        const float v = f[k];
        a1 += g1[k] * v;
        a2 += g2[k] * v;
        ar += r[k] * v;
        a += v;
        aa += v * v;
    }
    s[0] = a0;
    s[1] = a1;
    s[2] = a2;
    s[3] = ar;
    s[4] = a;
    s[5] = aa;
}

// (sum f, sum f f, sum r, sum r r, sum f r) with f = (x - mean) * scale.
SPECTRALIGN_CLONES void pair_sums(const float* x, const float* r, float mean, float scale, int n, float s[5]) {
    float a = 0, aa = 0, b = 0, bb = 0, ab = 0;
#pragma omp simd reduction(+ : a, aa, b, bb, ab)
    for (int k = 0; k < n; ++k) {
        const float f = (x[k] - mean) * scale, v = r[k];
        a += f;
        aa += f * f;
        b += v;
        bb += v * v;
        ab += f * v;
    }
    s[0] = a;
    s[1] = aa;
    s[2] = b;
    s[3] = bb;
    s[4] = ab;
}

// Reference sums over a row: products of (g0, g1, g2, r, 1) pairs, upper
// triangle in row-major order (15 values; the g0 terms are 0 when g0 is null).
SPECTRALIGN_CLONES void reference_sums(const float* r, const float* g0, const float* g1, const float* g2,
                                       int n, float s[15]) {
    float s00 = 0, s01 = 0, s02 = 0, s0r = 0, s0 = 0;
    if (g0 != nullptr) {
#pragma omp simd reduction(+ : s00, s01, s02, s0r, s0)
        for (int k = 0; k < n; ++k) {
            const float v = g0[k];
            s00 += v * v;
            s01 += v * g1[k];
            s02 += v * g2[k];
            s0r += v * r[k];
            s0 += v;
        }
    }
    float s11 = 0, s12 = 0, s1r = 0, s1 = 0, s22 = 0, s2r = 0, s2 = 0, srr = 0, sr = 0;
#pragma omp simd reduction(+ : s11, s12, s1r, s1, s22, s2r, s2, srr, sr)
    for (int k = 0; k < n; ++k) {
        const float a = g1[k], b = g2[k], c = r[k];
        s11 += a * a;
        s12 += a * b;
        s1r += a * c;
        s1 += a;
        s22 += b * b;
        s2r += b * c;
        s2 += b;
        srr += c * c;
        sr += c;
    }
    const float out[15] = {s00, s01, s02, s0r, s0, s11, s12, s1r, s1, s22, s2r, s2, srr, sr, 0};
    std::copy(out, out + 15, s);
}

// Cholesky solve of A x = b, A symmetric positive definite (m <= 5); false
// when it is not.
bool solve_spd(double A[5][5], const double b[5], int m, double x[5]) {
    double L[5][5] = {};
    for (int i = 0; i < m; ++i)
        for (int j = 0; j <= i; ++j) {
            double s = A[i][j];
            for (int k = 0; k < j; ++k) s -= L[i][k] * L[j][k];
            if (i == j) {
                if (!(s > 0)) return false;
                L[i][i] = std::sqrt(s);
            } else {
                L[i][j] = s / L[j][j];
            }
        }
    double y[5];
    for (int i = 0; i < m; ++i) {
        double s = b[i];
        for (int k = 0; k < i; ++k) s -= L[i][k] * y[k];
        y[i] = s / L[i][i];
    }
    for (int i = m - 1; i >= 0; --i) {
        double s = y[i];
        for (int k = i + 1; k < m; ++k) s -= L[k][i] * x[k];
        x[i] = s / L[i][i];
    }
    return true;
}

}  // namespace

void spline_taps(double delta, int& base, float w[8]) {
    const double fl = std::floor(delta);
    const double t = delta - fl;
    base = static_cast<int>(fl) - kTapLo;
    double v[kTaps], total = 0;
    for (int j = 0; j < kTaps; ++j) {
        v[j] = t == 0 ? (j == kTapLo ? 1.0 : 0.0) : cardinal(static_cast<double>(j - kTapLo) - t, false);
        total += v[j];
    }
    for (int j = 0; j < kTaps; ++j) w[j] = static_cast<float>(v[j] / total);
}

RefineReference::RefineReference(const float* ref, const std::vector<int>& shape_, const std::vector<int>& box)
    : shape(shape_) {
    const int rank = static_cast<int>(shape.size());
    if (rank != 2 && rank != 3) throw std::invalid_argument("refinement needs 2-D or 3-D frames");
    if (!box.empty() && box.size() != 2 * static_cast<std::size_t>(rank))
        throw std::invalid_argument("reference_box needs 2 values per frame axis (lows, then highs)");
    // Internally every frame is (nz, ny, nx); 2-D frames have nz = 1.
    int n3[3] = {1, 1, 1};
    for (int a = 0; a < rank; ++a) n3[3 - rank + a] = shape[a];
    for (int a = 0; a < 3; ++a) {
        box_lo[a] = 0;
        box_hi[a] = n3[a];
    }
    if (!box.empty())
        for (int a = 0; a < rank; ++a) {
            box_lo[3 - rank + a] = std::clamp(box[a], 0, n3[3 - rank + a]);
            box_hi[3 - rank + a] = std::clamp(box[rank + a], 0, n3[3 - rank + a]);
        }
    const std::size_t n = static_cast<std::size_t>(n3[0]) * n3[1] * n3[2];
    double sum = 0, sum_sq = 0;
    for (std::size_t k = 0; k < n; ++k) {
        sum += ref[k];
        sum_sq += static_cast<double>(ref[k]) * ref[k];
    }
    const double mean = sum / static_cast<double>(n);
    const double spread = std::sqrt(std::max(0.0, sum_sq / static_cast<double>(n) - mean * mean));
    const double scale = spread > 0 ? 1.0 / spread : 1.0;
    value.resize(n);
    for (std::size_t k = 0; k < n; ++k) value[k] = static_cast<float>((ref[k] - mean) * scale);
    // Spline derivative at the grid points: g[x] = sum_j eta'(-j) v[x + j].
    double dw[2 * kGradTaps + 1];
    for (int j = -kGradTaps; j <= kGradTaps; ++j) dw[j + kGradTaps] = cardinal(-static_cast<double>(j), true);
    const std::size_t stride[3] = {static_cast<std::size_t>(n3[1]) * n3[2], static_cast<std::size_t>(n3[2]), 1};
    for (int a = 3 - rank; a < 3; ++a) {
        grad[a].assign(n, 0.0f);
        for (int z = 0; z < n3[0]; ++z)
            for (int y = 0; y < n3[1]; ++y)
                for (int x = 0; x < n3[2]; ++x) {
                    const int idx[3] = {z, y, x};
                    const std::size_t here = z * stride[0] + y * stride[1] + x;
                    double g = 0;
                    for (int j = -kGradTaps; j <= kGradTaps; ++j) {
                        const int i = std::clamp(idx[a] + j, 0, n3[a] - 1);
                        g += dw[j + kGradTaps] * value[here + (static_cast<std::ptrdiff_t>(i) - idx[a]) *
                                                                   static_cast<std::ptrdiff_t>(stride[a])];
                    }
                    grad[a][here] = static_cast<float>(g);
                }
    }
}

struct RefineWorkspace::Sums {
    double a[3] = {0, 0, 0}, ar = 0, a1 = 0, aff = 0;  // frame against reference
    double g[3][3] = {}, gr[3] = {0, 0, 0}, g1[3] = {0, 0, 0}, rr = 0, r1 = 0, count = 0;  // reference only
};

RefineWorkspace::RefineWorkspace(const std::vector<int>& shape) : shape_(shape), rank_(static_cast<int>(shape.size())) {
    int n3[3] = {1, 1, 1};
    for (int a = 0; a < rank_; ++a) n3[3 - rank_ + a] = shape[a];
    plane_.resize(static_cast<std::size_t>(n3[1] + kTaps) * (n3[2] + kTaps));
    rows_.resize(static_cast<std::size_t>(n3[2]) + kTaps);
    fw_.resize(static_cast<std::size_t>(n3[2]));
}

template <class RowFn>
void RefineWorkspace::warp(const float* src_image, const double* d, const int* lo, const int* hi, float mean,
                           float scale, RowFn&& row_fn) {
    int n3[3] = {1, 1, 1};
    for (int a = 0; a < rank_; ++a) n3[3 - rank_ + a] = shape_[a];
    int base[3] = {0, 0, 0};
    float w[3][kTaps] = {};
    for (int a = 0; a < 3; ++a) spline_taps(d[a], base[a], w[a]);
    const std::size_t plane_size = static_cast<std::size_t>(n3[1]) * n3[2];
    const int width = hi[2] - lo[2];
    const int in_width = width + kTaps - 1;
    for (int z = lo[0]; z < hi[0]; ++z) {
        // Source plane: the image's own (2-D) or 8 planes combined along z.
        const float* src;
        std::size_t stride;
        int oy, ox;
        if (rank_ == 2) {
            src = src_image;
            stride = static_cast<std::size_t>(n3[2]);
            oy = ox = 0;
        } else {
            oy = lo[1] + base[1];
            ox = lo[2] + base[2];
            const int prow = hi[1] - lo[1] + kTaps - 1;
            stride = static_cast<std::size_t>(in_width);
            for (int y = 0; y < prow; ++y) {
                const float* p[kTaps];
                for (int j = 0; j < kTaps; ++j)
                    p[j] = src_image + static_cast<std::size_t>(z + base[0] + j) * plane_size +
                           static_cast<std::size_t>(oy + y) * n3[2] + ox;
                combine8(p, w[0], plane_.data() + static_cast<std::size_t>(y) * stride, in_width);
            }
            src = plane_.data();
        }
        for (int y = lo[1]; y < hi[1]; ++y) {
            const float* p[kTaps];
            for (int j = 0; j < kTaps; ++j)
                p[j] = src + static_cast<std::size_t>(y + base[1] + j - oy) * stride + (lo[2] + base[2] - ox);
            combine8(p, w[1], rows_.data(), in_width);
            fir8(rows_.data(), w[2], mean, scale, fw_.data(), width);
            row_fn(static_cast<std::size_t>(z) * plane_size + static_cast<std::size_t>(y) * n3[2] + lo[2],
                   fw_.data(), width);
        }
    }
}

void RefineWorkspace::accumulate(const float* frame, const RefineReference& ref, const double* d, const int* lo,
                                 const int* hi, bool with_reference, Sums& s) {
    warp(frame, d, lo, hi, frame_mean_, frame_scale_, [&](std::size_t off, const float* fw, int width) {
        const float* r = ref.value.data() + off;
        const float* g0 = rank_ == 3 ? ref.grad[0].data() + off : nullptr;
        const float* g1 = ref.grad[1].data() + off;
        const float* g2 = ref.grad[2].data() + off;
        float fs[6];
        frame_sums(fw, r, g0, g1, g2, width, fs);
        s.a[0] += fs[0];
        s.a[1] += fs[1];
        s.a[2] += fs[2];
        s.ar += fs[3];
        s.a1 += fs[4];
        s.aff += fs[5];
        if (with_reference) {
            float rs[15];
            reference_sums(r, g0, g1, g2, width, rs);
            s.g[0][0] += rs[0];
            s.g[0][1] += rs[1];
            s.g[0][2] += rs[2];
            s.gr[0] += rs[3];
            s.g1[0] += rs[4];
            s.g[1][1] += rs[5];
            s.g[1][2] += rs[6];
            s.gr[1] += rs[7];
            s.g1[1] += rs[8];
            s.g[2][2] += rs[9];
            s.gr[2] += rs[10];
            s.g1[2] += rs[11];
            s.rr += rs[12];
            s.r1 += rs[13];
            s.count += width;
        }
    });
}

double RefineWorkspace::residual(const float* frame, const RefineReference& ref, const double* d, const int* lo,
                                 const int* hi) {
    // The reference sampled at x - d against the frame's own pixels: the
    // frame's noise is not resampled (a resampled frame's noise shrinks with
    // the fractional shift, which would bias the comparison towards
    // half-pixel positions); a mean reference has little noise to resample.
    const double back[3] = {-d[0], -d[1], -d[2]};
    double sf = 0, sff = 0, sr = 0, srr = 0, sfr = 0, count = 0;
    const float mean = frame_mean_, scale = frame_scale_;
    warp(ref.value.data(), back, lo, hi, 0.0f, 1.0f, [&](std::size_t off, const float* rw, int width) {
        float out[5];
        pair_sums(frame + off, rw, mean, scale, width, out);
        sf += out[0];
        sff += out[1];
        sr += out[2];
        srr += out[3];
        sfr += out[4];
        count += width;
    });
    const double vr = srr - sr * sr / count, vf = sff - sf * sf / count, c = sfr - sf * sr / count;
    if (!(vr > 0)) return std::numeric_limits<double>::infinity();
    return std::max(0.0, vf - c * c / vr);
}

RefineResult RefineWorkspace::refine(const float* frame, const RefineReference& ref, double* delta) {
    RefineResult res;
    res.fallback = true;
    int n3[3] = {1, 1, 1};
    for (int a = 0; a < rank_; ++a) n3[3 - rank_ + a] = shape_[a];
    double d0[3] = {0, 0, 0};
    for (int a = 0; a < rank_; ++a) d0[3 - rank_ + a] = delta[a];
    // Interiors, for any d within kMaxMove of d0 (with a pixel to spare):
    // lo/hi: x + d and its taps inside the frame, inside the reference box,
    //        clear of the reference gradient's clamped border (the steps);
    // lo2/hi2: x - d and its taps inside the reference box (the residual check).
    int lo[3], hi[3], lo2[3], hi2[3];
    for (int a = 0; a < 3; ++a) {
        if (a < 3 - rank_) {
            lo[a] = lo2[a] = 0;
            hi[a] = hi2[a] = 1;
            continue;
        }
        if (!std::isfinite(d0[a])) return res;
        const double dlo = d0[a] - kMaxMove, dhi = d0[a] + kMaxMove;
        lo[a] = std::max({ref.box_lo[a], kGradTaps, static_cast<int>(std::ceil(-dlo)) + kTapLo + 1});
        hi[a] = std::min({ref.box_hi[a], n3[a] - kGradTaps,
                          static_cast<int>(std::floor(static_cast<double>(n3[a] - 1) - dhi)) - kTapHi});
        lo2[a] = std::max(0, static_cast<int>(std::ceil(ref.box_lo[a] + dhi)) + kTapLo + 1);
        hi2[a] = std::min(n3[a], static_cast<int>(std::floor(ref.box_hi[a] - 1 + dlo)) - kTapHi);
        if (hi[a] - lo[a] < kMinInterior || hi2[a] - lo2[a] < kMinInterior) return res;
    }
    // Frame normalisation (conditioning only: gain and offset absorb it).
    {
        const std::size_t n = static_cast<std::size_t>(n3[0]) * n3[1] * n3[2];
        double sum = 0, sum_sq = 0;
        for (std::size_t k = 0; k < n; ++k) {
            sum += frame[k];
            sum_sq += static_cast<double>(frame[k]) * frame[k];
        }
        const double mean = sum / static_cast<double>(n);
        const double spread = std::sqrt(std::max(0.0, sum_sq / static_cast<double>(n) - mean * mean));
        if (!(spread > 0)) return res;
        frame_mean_ = static_cast<float>(mean);
        frame_scale_ = static_cast<float>(1.0 / spread);
    }
    const int first = 3 - rank_;   // first real axis
    const int m = rank_ + 2;       // parameters: delta, gain, offset
    Sums ref_sums;
    double d[3] = {d0[0], d0[1], d0[2]};
    bool ok = true;
    for (int it = 0; it < kMaxEvaluations; ++it) {
        Sums s;
        accumulate(frame, ref, d, lo, hi, it == 0, s);
        if (it == 0) ref_sums = s;
        const Sums& r = ref_sums;
        ++res.evaluations;
        // Gain and offset by least squares at this d.
        const double n = r.count;
        const double vr = r.rr - r.r1 * r.r1 / n, cf = s.ar - s.a1 * r.r1 / n;
        if (!(vr > 0)) {
            ok = false;
            break;
        }
        const double gain = cf / vr, offset = (s.a1 - gain * r.r1) / n;
        if (!(gain > 0)) {  // anti-correlated: not this frame's position
            ok = false;
            break;
        }
        // Gauss-Newton step on (delta, gain, offset), Jacobian (gain g, R, 1).
        double A[5][5] = {}, b[5] = {}, x[5] = {};
        for (int i = 0; i < rank_; ++i) {
            const int ai = first + i;
            for (int j = 0; j <= i; ++j) {
                const int aj = first + j;
                A[i][j] = gain * gain * r.g[aj][ai];  // aj <= ai: the upper triangle holds it
            }
            A[rank_][i] = gain * r.gr[ai];
            A[rank_ + 1][i] = gain * r.g1[ai];
            b[i] = gain * (s.a[ai] - gain * r.gr[ai] - offset * r.g1[ai]);
        }
        A[rank_][rank_] = r.rr;
        A[rank_ + 1][rank_] = r.r1;
        A[rank_ + 1][rank_ + 1] = n;
        b[rank_] = s.ar - gain * r.rr - offset * r.r1;
        b[rank_ + 1] = s.a1 - gain * r.r1 - offset * n;
        for (int i = 0; i < m; ++i)
            for (int j = i + 1; j < m; ++j) A[i][j] = A[j][i];
        if (!solve_spd(A, b, m, x)) {
            ok = false;
            break;
        }
        // F(x + d) ~ gain R(x + D) + offset  =>  the frame's displacement is d - D.
        double biggest = 0;
        for (int i = 0; i < rank_; ++i) {
            const int a = first + i;
            d[a] -= x[i];
            biggest = std::max(biggest, std::fabs(x[i]));
            ok = ok && std::isfinite(d[a]) && std::fabs(d[a] - d0[a]) <= kMaxMove;
        }
        if (!ok || biggest < kConverged) break;
    }
    if (!ok) return res;
    // Keep the refined estimate only if it lowers the residual.
    res.residual_start = residual(frame, ref, d0, lo2, hi2);
    res.residual_end = residual(frame, ref, d, lo2, hi2);
    if (!(res.residual_end < res.residual_start)) return res;
    res.fallback = false;
    for (int a = first; a < 3; ++a) delta[a - first] = d[a];
    return res;
}

}  // namespace spectralign_fast::stackreg_detail

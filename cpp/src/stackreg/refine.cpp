#include "refine.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/simd_clones.hpp"
#include "newton.hpp"  // solve_spd

namespace spectralign_fast::stackreg_detail {

namespace {

constexpr int kTaps = 8;          // interpolation taps, at -3..4
constexpr int kTapLo = 3;         // taps before the sample
constexpr int kTapHi = 4;         // taps after it
constexpr int kGradTaps = 4;      // reference gradient: +-4 samples
constexpr int kMaxEvaluations = 4;
constexpr double kConverged = 5e-3;   // px: a step this small is the last (the next would be ~1e-4)
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

SPECTRALIGN_CLONES void combine8(const float* const* src, const float* wp, float* out, int n) {
    const float w[kTaps] = {wp[0], wp[1], wp[2], wp[3], wp[4], wp[5], wp[6], wp[7]};
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
SPECTRALIGN_CLONES void fir8(const float* in, const float* wp, float mean, float scale, float* out, int n) {
    const float w[kTaps] = {wp[0], wp[1], wp[2], wp[3], wp[4], wp[5], wp[6], wp[7]};
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

// Sums of a frame row f = (x - mean) * scale against two resampled
// reference rows r0, r1: (f, f f, r0, r0 r0, f r0, r1, r1 r1, f r1,
// r1 - r0, (r1 - r0)^2).
SPECTRALIGN_CLONES void pair_sums(const float* x, const float* r0, const float* r1, float mean, float scale, int n,
                                  float s[10]) {
    float a = 0, aa = 0, b = 0, bb = 0, ab = 0, c = 0, cc = 0, ac = 0, e = 0, ee = 0;
#pragma omp simd reduction(+ : a, aa, b, bb, ab, c, cc, ac, e, ee)
    for (int k = 0; k < n; ++k) {
        const float f = (x[k] - mean) * scale, u = r0[k], v = r1[k], dv = v - u;
        a += f;
        aa += f * f;
        b += u;
        bb += u * u;
        ab += f * u;
        c += v;
        cc += v * v;
        ac += f * v;
        e += dv;
        ee += dv * dv;
    }
    const float out[10] = {a, aa, b, bb, ab, c, cc, ac, e, ee};
    std::copy(out, out + 10, s);
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

SPECTRALIGN_CLONES void moments(const float* x, std::size_t n, double& sum, double& sum_sq) {
    double s = 0, ss = 0;
#pragma omp simd reduction(+ : s, ss)
    for (std::size_t k = 0; k < n; ++k) {
        const double v = x[k];
        s += v;
        ss += v * v;
    }
    sum = s;
    sum_sq = ss;
}

// out[k] = sum_j w[j] src[j][k], 9 rows.
SPECTRALIGN_CLONES void combine9(const float* const* src, const float* w, float* out, int n) {
#pragma omp simd
    for (int k = 0; k < n; ++k) {
        float v = 0;
        for (int j = 0; j < 9; ++j) v += w[j] * src[j][k];
        out[k] = v;
    }
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
    // Spline derivative at the grid points: g[x] = sum_j eta'(-j) v[x + j]
    // (indices clamped at the ends).
    float dw[2 * kGradTaps + 1];
    for (int j = -kGradTaps; j <= kGradTaps; ++j)
        dw[j + kGradTaps] = static_cast<float>(cardinal(-static_cast<double>(j), true));
    const std::size_t plane = static_cast<std::size_t>(n3[1]) * n3[2];
    const int nx = n3[2];
    std::vector<float> padded(static_cast<std::size_t>(nx) + 2 * kGradTaps);
    const float* src[2 * kGradTaps + 1];
    for (int a = 3 - rank; a < 3; ++a) grad[a].assign(n, 0.0f);
    for (int z = 0; z < n3[0]; ++z)
        for (int y = 0; y < n3[1]; ++y) {
            const std::size_t off = z * plane + static_cast<std::size_t>(y) * nx;
            // along x: through an edge-padded copy of the row
            const float* row = value.data() + off;
            std::fill(padded.begin(), padded.begin() + kGradTaps, row[0]);
            std::copy(row, row + nx, padded.begin() + kGradTaps);
            std::fill(padded.begin() + kGradTaps + nx, padded.end(), row[nx - 1]);
            for (int j = 0; j <= 2 * kGradTaps; ++j) src[j] = padded.data() + j;
            combine9(src, dw, grad[2].data() + off, nx);
            // along y
            for (int j = -kGradTaps; j <= kGradTaps; ++j)
                src[j + kGradTaps] = value.data() + z * plane + static_cast<std::size_t>(std::clamp(y + j, 0, n3[1] - 1)) * nx;
            combine9(src, dw, grad[1].data() + off, nx);
            // along z
            if (rank == 3) {
                for (int j = -kGradTaps; j <= kGradTaps; ++j)
                    src[j + kGradTaps] = value.data() + static_cast<std::size_t>(std::clamp(z + j, 0, n3[0] - 1)) * plane +
                                         static_cast<std::size_t>(y) * nx;
                combine9(src, dw, grad[0].data() + off, nx);
            }
        }
    // Reference sums over the largest interior any frame can have.
    for (int a = 0; a < 3; ++a) {
        outer_lo[a] = a < 3 - rank ? 0 : std::max(box_lo[a], kGradTaps);
        outer_hi[a] = a < 3 - rank ? 1 : std::min(box_hi[a], n3[a] - kGradTaps);
    }
    for (int z = outer_lo[0]; z < outer_hi[0]; ++z)
        for (int y = outer_lo[1]; y < outer_hi[1]; ++y)
            add_reference_sums(z * plane + static_cast<std::size_t>(y) * nx + outer_lo[2],
                               outer_hi[2] - outer_lo[2], total);
}

void RefineReference::add_reference_sums(std::size_t off, int width, double* out) const {
    if (width <= 0) return;
    float rs[15];
    const bool three = !grad[0].empty();
    reference_sums(value.data() + off, three ? grad[0].data() + off : nullptr, grad[1].data() + off,
                   grad[2].data() + off, width, rs);
    for (int k = 0; k < 14; ++k) out[k] += rs[k];
    out[14] += width;
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
    second_.resize(static_cast<std::size_t>(n3[0]) * n3[1] * n3[2]);
}

template <class RowFn>
void RefineWorkspace::warp(const float* src_image, const double* d, const int* lo, const int* hi, int ystep,
                           float mean, float scale, RowFn&& row_fn) {
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
        for (int y = lo[1]; y < hi[1]; y += ystep) {
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
                                 const int* hi, Sums& s) {
    warp(frame, d, lo, hi, 1, frame_mean_, frame_scale_, [&](std::size_t off, const float* fw, int width) {
        float fs[6];
        frame_sums(fw, ref.value.data() + off, rank_ == 3 ? ref.grad[0].data() + off : nullptr,
                   ref.grad[1].data() + off, ref.grad[2].data() + off, width, fs);
        s.a[0] += fs[0];
        s.a[1] += fs[1];
        s.a[2] += fs[2];
        s.ar += fs[3];
        s.a1 += fs[4];
        s.aff += fs[5];
    });
}

void RefineWorkspace::region_sums(const RefineReference& ref, const int* lo, const int* hi, Sums& s) const {
    // The interior's sums: directly, or as the outer box's minus the strips
    // between the two, whichever touches fewer pixels.
    const int* olo = ref.outer_lo;
    const int* ohi = ref.outer_hi;
    double inner = 1, outer = 1;
    for (int a = 0; a < 3; ++a) {
        inner *= hi[a] - lo[a];
        outer *= ohi[a] - olo[a];
    }
    int n3[3] = {1, 1, 1};
    for (int a = 0; a < rank_; ++a) n3[3 - rank_ + a] = shape_[a];
    const std::size_t plane = static_cast<std::size_t>(n3[1]) * n3[2];
    double t[15] = {};
    if (inner <= outer - inner) {
        for (int z = lo[0]; z < hi[0]; ++z)
            for (int y = lo[1]; y < hi[1]; ++y)
                ref.add_reference_sums(z * plane + static_cast<std::size_t>(y) * n3[2] + lo[2], hi[2] - lo[2], t);
    } else {
        double ex[15] = {};
        for (int z = olo[0]; z < ohi[0]; ++z)
            for (int y = olo[1]; y < ohi[1]; ++y) {
                const std::size_t off = z * plane + static_cast<std::size_t>(y) * n3[2];
                if (z >= lo[0] && z < hi[0] && y >= lo[1] && y < hi[1]) {
                    ref.add_reference_sums(off + olo[2], lo[2] - olo[2], ex);
                    ref.add_reference_sums(off + hi[2], ohi[2] - hi[2], ex);
                } else {
                    ref.add_reference_sums(off + olo[2], ohi[2] - olo[2], ex);
                }
            }
        for (int k = 0; k < 15; ++k) t[k] = ref.total[k] - ex[k];
    }
    s.g[0][0] = t[0];
    s.g[0][1] = t[1];
    s.g[0][2] = t[2];
    s.gr[0] = t[3];
    s.g1[0] = t[4];
    s.g[1][1] = t[5];
    s.g[1][2] = t[6];
    s.gr[1] = t[7];
    s.g1[1] = t[8];
    s.g[2][2] = t[9];
    s.gr[2] = t[10];
    s.g1[2] = t[11];
    s.rr = t[12];
    s.r1 = t[13];
    s.count = inner;
}

bool RefineWorkspace::improves(const float* frame, const RefineReference& ref, const double* d0, const double* d,
                               const int* lo, const int* hi, RefineResult& res) {
    // The reference resampled at x - d0 and at x - d against the frame's own
    // pixels: the frame's noise is not resampled (a resampled frame's noise
    // shrinks with the fractional shift, which would bias the comparison
    // towards half-pixel positions); a mean reference has little noise to
    // resample. Every 4th row (2nd, all) of a tall interior.
    const int rows = hi[1] - lo[1];
    const int ystep = rows >= 128 ? 4 : rows >= 64 ? 2 : 1;
    const double back0[3] = {-d0[0], -d0[1], -d0[2]}, back1[3] = {-d[0], -d[1], -d[2]};
    const int width = hi[2] - lo[2];
    std::vector<float>& r0 = second_;
    double t[10] = {};
    double count = 0;
    const float mean = frame_mean_, scale = frame_scale_;
    // Two passes over the same rows: the first keeps its rows, the second sums.
    std::size_t row = 0;
    warp(ref.value.data(), back0, lo, hi, ystep, 0.0f, 1.0f, [&](std::size_t, const float* rw, int w) {
        std::copy(rw, rw + w, r0.begin() + static_cast<std::ptrdiff_t>(row * width));
        ++row;
    });
    row = 0;
    warp(ref.value.data(), back1, lo, hi, ystep, 0.0f, 1.0f, [&](std::size_t off, const float* rw, int w) {
        float out[10];
        pair_sums(frame + off, r0.data() + row * width, rw, mean, scale, w, out);
        for (int k = 0; k < 10; ++k) t[k] += out[k];
        count += w;
        ++row;
    });
    auto fit = [&](double sr, double srr, double sfr, double& gain) {
        const double vr = srr - sr * sr / count, vf = t[1] - t[0] * t[0] / count, c = sfr - t[0] * sr / count;
        gain = vr > 0 ? c / vr : 0;
        return vr > 0 ? std::max(0.0, vf - c * c / vr) : std::numeric_limits<double>::infinity();
    };
    double g0 = 0, g1 = 0;
    const double e0 = fit(t[2], t[3], t[4], g0), e1 = fit(t[5], t[6], t[7], g1);
    res.residual_start = e0;
    res.residual_end = e1;
    if (!std::isfinite(e1) || !(g1 > 0)) return false;
    if (e1 < e0) return true;
    // Not lower: still kept when the difference is within the comparison's
    // noise, 2 sigma of the cross term 2 gain sum n (r1 - r0) (sigma^2 per
    // pixel from the residual), so the check rejects wrong answers, not
    // coin flips between two close ones.
    const double dvar = std::max(0.0, t[9] - t[8] * t[8] / count);
    const double sigma = std::sqrt(std::min(e0, e1) / count);
    return e1 - e0 <= 4.0 * std::fabs(g1) * sigma * std::sqrt(dvar);
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
        moments(frame, n, sum, sum_sq);
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
        accumulate(frame, ref, d, lo, hi, s);
        if (it == 0) region_sums(ref, lo, hi, ref_sums);
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
    if (!improves(frame, ref, d0, d, lo2, hi2, res)) return res;
    res.fallback = false;
    for (int a = first; a < 3; ++a) delta[a - first] = d[a];
    return res;
}

}  // namespace spectralign_fast::stackreg_detail

#include "spectralign_fast/stackreg/blocks.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/parallel.hpp"
#include "core/simd_clones.hpp"
#include "spectralign_fast/core/image_ops.hpp"  // has_contrast
#include "spectralign_fast/core/threads.hpp"
#include "spectralign_fast/fft/spectral.hpp"
#include "spectralign_fast/sample/warp.hpp"

namespace spectralign_fast {

namespace {

constexpr double kTwoPi = 6.283185307179586476925;
constexpr double kPi = 3.141592653589793238462;
constexpr std::size_t kWhitenBlock = 1024;

// Raised-cosine taper of n samples: 1 in the middle, falling to 0 over
// round(fraction * n) samples at each end (sampled at pixel centres).
std::vector<float> taper_window(int n, double fraction) {
    std::vector<float> w(static_cast<std::size_t>(n), 1.0f);
    const double len = fraction * n;
    if (len < 1) return w;
    for (int i = 0; i < n; ++i) {
        const double p = std::min(i + 0.5, n - i - 0.5);
        if (p < len) w[static_cast<std::size_t>(i)] = static_cast<float>(0.5 * (1.0 - std::cos(kPi * p / len)));
    }
    return w;
}

// One spectrum row of the Newton sums (as stackreg.cpp's newton_row):
// q_k = p_k ex_k, s = (sum q, sum w q, sum w^2 q) as (re, im) pairs.
SPECTRALIGN_CLONES void block_newton_row(const float* p, const float* ex, const float* w, const float* w2, int n,
                                         float s[6]) {
    float s0r = 0, s0i = 0, s1r = 0, s1i = 0, s2r = 0, s2i = 0;
#pragma omp simd reduction(+ : s0r, s0i, s1r, s1i, s2r, s2i)
    for (int k = 0; k < n; ++k) {
        const float pr = p[2 * k], pi = p[2 * k + 1], er = ex[2 * k], ei = ex[2 * k + 1];
        const float qr = pr * er - pi * ei, qi = pr * ei + pi * er;
        s0r += qr;
        s0i += qi;
        s1r += w[k] * qr;
        s1i += w[k] * qi;
        s2r += w2[k] * qr;
        s2i += w2[k] * qi;
    }
    s[0] = s0r;
    s[1] = s0i;
    s[2] = s1r;
    s[3] = s1i;
    s[4] = s2r;
    s[5] = s2i;
}

SPECTRALIGN_CLONES double sum_squares(const float* x, std::size_t n) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (std::size_t k = 0; k < n; ++k) s += static_cast<double>(x[k]) * x[k];
    return s;
}

int signed_index(int i, int n) { return i > n / 2 ? i - n : i; }

// Index ranges [lo, hi) of an n-point cyclic axis whose signed displacement
// lies within +-limit (limit < 0: all).
std::vector<std::pair<int, int>> allowed_ranges(int n, int limit) {
    if (limit < 0 || limit >= n) return {{0, n}};
    std::vector<std::pair<int, int>> r;
    r.emplace_back(0, std::min(limit, n / 2) + 1);
    const int lo = std::max(n - limit, n / 2 + 1);
    if (lo < n) r.emplace_back(lo, n);
    return r;
}

// x * 0 is 0 for finite x and NaN for NaN or inf, so the sum is 0 exactly when
// every pixel is finite (the reduction order does not matter).
SPECTRALIGN_CLONES bool frame_finite(const float* x, std::size_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (std::size_t k = 0; k < n; ++k) acc += x[k] * 0.0f;
    return acc == 0.0f;
}

// Sum and sum of squares of one row (float products, double sums, as
// stackreg.cpp's moments).
SPECTRALIGN_CLONES void row_moments(const float* x, int n, double& s, double& ss) {
    double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (int k = 0; k < n; ++k) {
        const double v = x[k];
        a += v;
        b += v * v;
    }
    s += a;
    ss += b;
}

}  // namespace

// Per-thread buffers of the block fit.
class BlockWorkspace {
public:
    explicit BlockWorkspace(const BlockRegistrar& reg)
        : reg_(reg),
          by_(reg.brows_),
          bx_(reg.bcols_),
          half_(reg.bcols_ / 2 + 1),
          r2c_(&R2CPlan::get(reg.brows_, reg.bcols_)),
          c2r_(&C2RPlan::get(reg.brows_, reg.bcols_)) {
        const std::size_t n = static_cast<std::size_t>(by_) * bx_, ns = static_cast<std::size_t>(by_) * half_;
        block_.resize(n);
        corr_.resize(n);
        spec_.resize(ns);
        work_.resize(ns);
        scratch_.resize(kWhitenBlock);
        ex_.resize(2 * static_cast<std::size_t>(half_));
        omega_x_.resize(static_cast<std::size_t>(half_));
        omega_x2_.resize(static_cast<std::size_t>(half_));
        weight_x_.resize(static_cast<std::size_t>(half_));
        for (int k = 0; k < half_; ++k) {
            const double om = kTwoPi * k / bx_;
            omega_x_[k] = static_cast<float>(om);
            omega_x2_[k] = static_cast<float>(om * om);
            weight_x_[k] = k == 0 ? 1.0f : (bx_ % 2 == 0 && k == bx_ / 2) ? 0.0f : 2.0f;
        }
        omega_y_.resize(static_cast<std::size_t>(by_));
        for (int k = 0; k < by_; ++k)
            omega_y_[k] = (by_ % 2 == 0 && k == by_ / 2) ? std::nan("")
                                                          : kTwoPi * spectral::signed_bin(k, by_) / by_;
    }

    // Registers block q of a frame; writes 2 deltas and the quality.
    void fit(const float* frame, std::size_t q, const double* prior, double* delta, float* quality) {
        const double nan = std::numeric_limits<double>::quiet_NaN();
        delta[0] = delta[1] = nan;
        *quality = 0.0f;
        const ComplexBuffer& ref = reg_.refs_[q];
        if (ref.size() == 0) return;
        const std::size_t nbx = reg_.starts_x_.size();
        const int sy = reg_.starts_y_[q / nbx], sx = reg_.starts_x_[q % nbx];
        int off[2] = {0, 0};
        if (prior != nullptr) {
            for (int a = 0; a < 2; ++a)
                if (std::isfinite(prior[a]))
                    off[a] = static_cast<int>(std::clamp(std::nearbyint(prior[a]), -1e9, 1e9));
        }
        off[0] = std::clamp(off[0], -sy, reg_.rows_ - by_ - sy);
        off[1] = std::clamp(off[1], -sx, reg_.cols_ - bx_ - sx);
        // Window moments, then the normalised, tapered block.
        double s = 0, ss = 0;
        for (int y = 0; y < by_; ++y) {
            const float* row = frame + static_cast<std::size_t>(sy + off[0] + y) * reg_.cols_ + (sx + off[1]);
            row_moments(row, bx_, s, ss);
        }
        const double count = static_cast<double>(by_) * bx_;
        const double mean = s / count;
        const double spread = std::sqrt(std::max(0.0, ss / count - mean * mean));
        if (!has_contrast(mean, spread)) return;
        const float m = static_cast<float>(mean), sc = static_cast<float>(1.0 / spread);
        for (int y = 0; y < by_; ++y) {
            const float* row = frame + static_cast<std::size_t>(sy + off[0] + y) * reg_.cols_ + (sx + off[1]);
            float* out = block_.data() + static_cast<std::size_t>(y) * bx_;
            const float ty = reg_.taper_y_[y] * sc;
            const float* tx = reg_.taper_x_.data();
            for (int x = 0; x < bx_; ++x) out[x] = (row[x] - m) * ty * tx[x];
        }
        r2c_->execute(block_.data(), spec_.data());
        const std::size_t ns = spec_.size();
        float* sp = reinterpret_cast<float*>(spec_.data());
        float* wp = reinterpret_cast<float*>(work_.data());
        const float* rp = reinterpret_cast<const float*>(ref.data());
        for (std::size_t k0 = 0; k0 < ns; k0 += kWhitenBlock) {
            const std::size_t len = std::min(kWhitenBlock, ns - k0);
            spectral::cross_power(sp + 2 * k0, rp + 2 * k0, sp + 2 * k0, wp + 2 * k0, 0.5f * reg_.options_.whiten, len,
                                  scratch_.data());
        }
        spec_[0] = work_[0] = 0.0f;
        c2r_->execute(work_.data(), corr_.data());

        int peak[2];
        const float best = find_peak(peak);
        const double rms = std::sqrt(sum_squares(corr_.data(), corr_.size()) / count);
        *quality = rms > 0 ? static_cast<float>(best / rms) : 0.0f;
        double r[2] = {static_cast<double>(signed_index(peak[0], by_)), static_cast<double>(signed_index(peak[1], bx_))};
        refine_peak(peak, r);
        for (int a = 0; a < 2; ++a) {
            const int lim = reg_.options_.max_shift[a];
            if (lim >= 0) r[a] = std::clamp(r[a], -static_cast<double>(lim), static_cast<double>(lim));
            delta[a] = off[a] + r[a];
        }
    }

private:
    float find_peak(int peak[2]) const {
        const auto ry = allowed_ranges(by_, reg_.options_.max_shift[0]);
        const auto rx = allowed_ranges(bx_, reg_.options_.max_shift[1]);
        float best = -std::numeric_limits<float>::infinity();
        peak[0] = peak[1] = 0;
        for (auto [ylo, yhi] : ry)
            for (int y = ylo; y < yhi; ++y) {
                const float* row = corr_.data() + static_cast<std::size_t>(y) * bx_;
                for (auto [xlo, xhi] : rx)
                    for (int x = xlo; x < xhi; ++x)
                        if (row[x] > best) {
                            best = row[x];
                            peak[0] = y;
                            peak[1] = x;
                        }
            }
        return best;
    }

    float corr_at(int y, int x) const { return corr_[static_cast<std::size_t>(y) * bx_ + x]; }

    // Parabola through the neighbours, then Newton steps on the band-limited
    // interpolant of the correlation (as stack registration's refine_peak).
    void refine_peak(const int peak[2], double r[2]) {
        const double base[2] = {r[0], r[1]};
        const double c0 = corr_at(peak[0], peak[1]);
        const int n[2] = {by_, bx_};
        for (int a = 0; a < 2; ++a) {
            if (n[a] < 3) continue;
            int lo[2] = {peak[0], peak[1]}, hi[2] = {peak[0], peak[1]};
            lo[a] = (peak[a] + n[a] - 1) % n[a];
            hi[a] = (peak[a] + 1) % n[a];
            const double cm = corr_at(lo[0], lo[1]), cp = corr_at(hi[0], hi[1]);
            const double den = cm - 2.0 * c0 + cp;
            if (den < 0) r[a] += std::clamp(0.5 * (cm - cp) / den, -0.5, 0.5);
        }
        const float* p = reinterpret_cast<const float*>(spec_.data());
        const std::size_t row_floats = 2 * static_cast<std::size_t>(half_);
        for (int it = 0; it < 3; ++it) {
            for (int k = 0; k < half_; ++k) {
                const double ph = static_cast<double>(omega_x_[k]) * r[1];
                ex_[2 * k] = weight_x_[k] * static_cast<float>(std::cos(ph));
                ex_[2 * k + 1] = weight_x_[k] * static_cast<float>(std::sin(ph));
            }
            double g[2] = {0, 0}, H[2][2] = {};
            float s[6];
            for (int y = 0; y < by_; ++y) {
                const double om = omega_y_[y];
                if (std::isnan(om)) continue;
                block_newton_row(p + y * row_floats, ex_.data(), omega_x_.data(), omega_x2_.data(), half_, s);
                const std::complex<double> e = std::polar(1.0, om * r[0]);
                const std::complex<double> t0 = e * std::complex<double>(s[0], s[1]);
                const std::complex<double> t1 = e * std::complex<double>(s[2], s[3]);
                const std::complex<double> t2 = e * std::complex<double>(s[4], s[5]);
                g[1] -= t1.imag();
                H[1][1] -= t2.real();
                g[0] -= om * t0.imag();
                H[0][1] -= om * t1.real();
                H[0][0] -= om * om * t0.real();
            }
            // Newton for a maximum: solve (-H) step = g (2 x 2, must be
            // positive definite, else the estimate stays as is).
            const double a = -H[0][0], b = -H[0][1], d = -H[1][1];
            double step[2] = {0, 0};
            if (n[0] < 3 && n[1] < 3) break;
            if (n[0] < 3) {
                if (!(d > 0)) break;
                step[1] = g[1] / d;
            } else if (n[1] < 3) {
                if (!(a > 0)) break;
                step[0] = g[0] / a;
            } else {
                const double det = a * d - b * b;
                if (!(a > 0) || !(det > 0)) break;
                step[0] = (d * g[0] - b * g[1]) / det;
                step[1] = (a * g[1] - b * g[0]) / det;
            }
            double biggest = 0;
            for (int k = 0; k < 2; ++k) {
                const double st = std::clamp(step[k], -0.5, 0.5);
                r[k] = std::clamp(r[k] + st, base[k] - 1.0, base[k] + 1.0);
                biggest = std::max(biggest, std::fabs(st));
            }
            if (biggest < 0.02) break;
        }
    }

    const BlockRegistrar& reg_;
    int by_, bx_, half_;
    const R2CPlan* r2c_;
    const C2RPlan* c2r_;
    RealBuffer block_, corr_;
    ComplexBuffer spec_, work_;
    std::vector<float> scratch_, ex_, omega_x_, omega_x2_, weight_x_;
    std::vector<double> omega_y_;  // NaN marks the Nyquist row
};

BlockRegistrar::BlockRegistrar(const float* reference, int rows, int cols, std::vector<int> starts_y,
                               std::vector<int> starts_x, int block_rows, int block_cols, BlockRegOptions options)
    : rows_(rows),
      cols_(cols),
      brows_(block_rows),
      bcols_(block_cols),
      starts_y_(std::move(starts_y)),
      starts_x_(std::move(starts_x)),
      options_(options) {
    if (rows < 1 || cols < 1) throw std::invalid_argument("frame shape must be positive");
    if (block_rows < 1 || block_cols < 1) throw std::invalid_argument("block size must be positive");
    if (block_rows > rows || block_cols > cols)
        throw std::invalid_argument("block size (" + std::to_string(block_rows) + ", " + std::to_string(block_cols) +
                                    ") is larger than the frame (" + std::to_string(rows) + ", " +
                                    std::to_string(cols) + ")");
    if (starts_y_.empty() || starts_x_.empty()) throw std::invalid_argument("at least one block per axis is needed");
    for (int s : starts_y_)
        if (s < 0 || s + block_rows > rows) throw std::invalid_argument("a block lies outside the frame (rows)");
    for (int s : starts_x_)
        if (s < 0 || s + block_cols > cols) throw std::invalid_argument("a block lies outside the frame (columns)");
    if (!std::isfinite(options_.whiten) || options_.whiten < -1.0f || options_.whiten > 0.0f)
        throw std::invalid_argument("whiten must be between -1 and 0");
    if (!(options_.taper >= 0.0 && options_.taper <= 0.5)) throw std::invalid_argument("taper must be in [0, 0.5]");
    if (!frame_finite(reference, static_cast<std::size_t>(rows) * cols))
        throw std::invalid_argument("reference contains NaN or inf pixels");
    taper_y_ = taper_window(block_rows, options_.taper);
    taper_x_ = taper_window(block_cols, options_.taper);
    const R2CPlan& r2c = R2CPlan::get(block_rows, block_cols);
    C2RPlan::get(block_rows, block_cols);  // plan now, not in the first worker
    const std::size_t n = static_cast<std::size_t>(block_rows) * block_cols;
    const std::size_t ns = static_cast<std::size_t>(block_rows) * (block_cols / 2 + 1);
    RealBuffer buf(n);
    bool any = false;
    for (int sy : starts_y_)
        for (int sx : starts_x_) {
            double s = 0, ss = 0;
            for (int y = 0; y < block_rows; ++y)
                for (int x = 0; x < block_cols; ++x) {
                    const double v = reference[static_cast<std::size_t>(sy + y) * cols + sx + x];
                    s += v;
                    ss += v * v;
                }
            const double mean = s / static_cast<double>(n);
            const double spread = std::sqrt(std::max(0.0, ss / static_cast<double>(n) - mean * mean));
            ComplexBuffer spec;
            if (has_contrast(mean, spread)) {
                for (int y = 0; y < block_rows; ++y)
                    for (int x = 0; x < block_cols; ++x)
                        buf[static_cast<std::size_t>(y) * block_cols + x] = static_cast<float>(
                            (reference[static_cast<std::size_t>(sy + y) * cols + sx + x] - mean) / spread *
                            taper_y_[y] * taper_x_[x]);
                spec.resize(ns);
                r2c.execute(buf.data(), spec.data());
                for (std::size_t k = 0; k < ns; ++k) spec[k] = std::conj(spec[k]);
                any = true;
            }
            refs_.push_back(std::move(spec));
        }
    if (!any) throw std::invalid_argument("reference is constant in every block: it carries no position information");
}

void BlockRegistrar::fit(const float* frames, std::size_t n, const double* prior, int threads, double* deltas,
                         float* quality, std::int8_t* status) const {
    resolve_threads(threads);  // validates
    const std::size_t size = static_cast<std::size_t>(rows_) * cols_;
    const std::size_t nb = blocks();
    parallel_for(n, threads, [] { return 0; }, [&](int&, std::size_t k) {
        status[k] = frame_finite(frames + k * size, size) ? kFrameOk : kFrameNotFinite;
    });
    parallel_for(
        n * nb, threads, [&]() { return BlockWorkspace(*this); },
        [&](BlockWorkspace& ws, std::size_t item) {
            const std::size_t f = item / nb, q = item % nb;
            double* d = deltas + 2 * item;
            if (status[f] != kFrameOk) {
                d[0] = d[1] = std::numeric_limits<double>::quiet_NaN();
                quality[item] = 0.0f;
                return;
            }
            ws.fit(frames + f * size, q, prior != nullptr ? prior + 2 * f : nullptr, d, quality + item);
        });
}

namespace {

// Interpolation taps along one axis: for every pixel, `count` grid indices
// and weights.
struct AxisTaps {
    int count = 2;
    std::vector<int> index;
    std::vector<float> weight;
};

AxisTaps axis_taps(const double* centers, int nb, int n, FieldInterpolation up) {
    for (int i = 0; i < nb; ++i)
        if (!std::isfinite(centers[i]) || (i > 0 && !(centers[i] > centers[i - 1])))
            throw std::invalid_argument("block centres must be finite and increasing");
    AxisTaps t;
    t.count = up == FieldInterpolation::cubic ? 4 : 2;
    t.index.resize(static_cast<std::size_t>(n) * t.count);
    t.weight.resize(static_cast<std::size_t>(n) * t.count);
    int seg = 0;
    for (int p = 0; p < n; ++p) {
        double u;
        if (nb == 1 || p <= centers[0]) {
            u = 0;
        } else if (p >= centers[nb - 1]) {
            u = nb - 1;
        } else {
            while (seg + 1 < nb - 1 && p >= centers[seg + 1]) ++seg;
            u = seg + (p - centers[seg]) / (centers[seg + 1] - centers[seg]);
        }
        const int i0 = static_cast<int>(std::floor(u));
        const double f = u - i0;
        int* idx = t.index.data() + static_cast<std::size_t>(p) * t.count;
        float* w = t.weight.data() + static_cast<std::size_t>(p) * t.count;
        if (t.count == 2) {
            idx[0] = std::clamp(i0, 0, nb - 1);
            idx[1] = std::clamp(i0 + 1, 0, nb - 1);
            w[0] = static_cast<float>(1.0 - f);
            w[1] = static_cast<float>(f);
        } else {
            // Catmull-Rom (Keys a = -0.5).
            const double f2 = f * f, f3 = f2 * f;
            const double c[4] = {-0.5 * f3 + f2 - 0.5 * f, 1.5 * f3 - 2.5 * f2 + 1.0, -1.5 * f3 + 2.0 * f2 + 0.5 * f,
                                 0.5 * f3 - 0.5 * f2};
            for (int j = 0; j < 4; ++j) {
                idx[j] = std::clamp(i0 - 1 + j, 0, nb - 1);
                w[j] = static_cast<float>(c[j]);
            }
        }
    }
    return t;
}

// Field of one frame from precomputed taps; tmp: ny * cols * 2 floats.
void field_from_taps(const double* grid, int ny, int nx, const AxisTaps& ty, const AxisTaps& tx, int rows, int cols,
                     float* tmp, float* field) {
    // Along x, for every block row.
    for (int i = 0; i < ny; ++i) {
        const double* g = grid + static_cast<std::size_t>(i) * nx * 2;
        float* o = tmp + static_cast<std::size_t>(i) * cols * 2;
        for (int x = 0; x < cols; ++x) {
            const int* idx = tx.index.data() + static_cast<std::size_t>(x) * tx.count;
            const float* w = tx.weight.data() + static_cast<std::size_t>(x) * tx.count;
            float a0 = 0, a1 = 0;
            for (int j = 0; j < tx.count; ++j) {
                a0 += w[j] * static_cast<float>(g[2 * idx[j]]);
                a1 += w[j] * static_cast<float>(g[2 * idx[j] + 1]);
            }
            o[2 * x] = a0;
            o[2 * x + 1] = a1;
        }
    }
    // Along y: rows of the field as weighted sums of tmp rows.
    const std::size_t row = static_cast<std::size_t>(cols) * 2;
    for (int y = 0; y < rows; ++y) {
        const int* idx = ty.index.data() + static_cast<std::size_t>(y) * ty.count;
        const float* w = ty.weight.data() + static_cast<std::size_t>(y) * ty.count;
        float* o = field + static_cast<std::size_t>(y) * row;
        const float* r0 = tmp + idx[0] * row;
        const float w0 = w[0];
#pragma omp simd
        for (std::size_t k = 0; k < row; ++k) o[k] = w0 * r0[k];
        for (int j = 1; j < ty.count; ++j) {
            const float* rj = tmp + idx[j] * row;
            const float wj = w[j];
#pragma omp simd
            for (std::size_t k = 0; k < row; ++k) o[k] += wj * rj[k];
        }
    }
}

void check_grid_args(int ny, int nx, int rows, int cols) {
    if (ny < 1 || nx < 1) throw std::invalid_argument("the block grid must have at least one block per axis");
    if (rows < 1 || cols < 1) throw std::invalid_argument("frame shape must be positive");
}

}  // namespace

void block_field(const double* grid, int ny, int nx, const double* centers_y, const double* centers_x, int rows,
                 int cols, FieldInterpolation upsampling, float* field) {
    check_grid_args(ny, nx, rows, cols);
    for (std::size_t k = 0; k < static_cast<std::size_t>(ny) * nx * 2; ++k)
        if (!std::isfinite(grid[k])) throw std::invalid_argument("the block displacements must be finite");
    const AxisTaps ty = axis_taps(centers_y, ny, rows, upsampling);
    const AxisTaps tx = axis_taps(centers_x, nx, cols, upsampling);
    std::vector<float> tmp(static_cast<std::size_t>(ny) * cols * 2);
    field_from_taps(grid, ny, nx, ty, tx, rows, cols, tmp.data(), field);
}

void warp_block_frames(const float* frames, std::size_t n, int rows, int cols, const double* grids, int ny, int nx,
                       const double* centers_y, const double* centers_x, FieldInterpolation upsampling,
                       ShiftInterpolation interpolation, int threads, float* out) {
    check_grid_args(ny, nx, rows, cols);
    if (interpolation == ShiftInterpolation::fourier)
        throw std::invalid_argument("non-rigid fields are applied with linear or cubic interpolation");
    resolve_threads(threads);  // validates
    const AxisTaps ty = axis_taps(centers_y, ny, rows, upsampling);
    const AxisTaps tx = axis_taps(centers_x, nx, cols, upsampling);
    const std::size_t size = static_cast<std::size_t>(rows) * cols;
    const std::size_t gsize = static_cast<std::size_t>(ny) * nx * 2;
    sample::WarpOptions opt;
    opt.kernel = interpolation == ShiftInterpolation::cubic ? sample::Kernel::CatmullRom : sample::Kernel::Linear;
    opt.boundary = sample::Boundary::Nearest;
    opt.threads = 1;
    const std::int64_t shape[2] = {rows, cols};
    struct Buffers {
        std::vector<float> tmp, field;
    };
    parallel_for(
        n, threads,
        [&]() {
            return Buffers{std::vector<float>(static_cast<std::size_t>(ny) * cols * 2), std::vector<float>(size * 2)};
        },
        [&](Buffers& b, std::size_t k) {
            const double* g = grids + k * gsize;
            bool finite = true;
            for (std::size_t i = 0; i < gsize; ++i) finite = finite && std::isfinite(g[i]);
            if (!finite) {
                std::copy(frames + k * size, frames + (k + 1) * size, out + k * size);
                return;
            }
            field_from_taps(g, ny, nx, ty, tx, rows, cols, b.tmp.data(), b.field.data());
            sample::Grid in;
            in.data = frames + k * size;
            in.type = sample::Dtype::F32;
            in.ndim = 2;
            in.shape[0] = rows;
            in.shape[1] = cols;
            sample::warp_field(in, b.field.data(), shape, out + k * size, opt);
        });
}

}  // namespace spectralign_fast

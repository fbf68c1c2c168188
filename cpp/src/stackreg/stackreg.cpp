#include "spectralign_fast/stackreg/stackreg.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/parallel.hpp"
#include "core/simd_clones.hpp"
#include "fft/spectral_kernels.hpp"
#include "frame_checks.hpp"
#include "newton.hpp"
#include "refine.hpp"
#include "taper.hpp"
#include "sample/shift.hpp"  // shift taps and row combiners of the sample core
#include "spectralign_fast/core/image_ops.hpp"  // has_contrast
#include "spectralign_fast/core/threads.hpp"
#include "spectralign_fast/fft/spectral.hpp"

namespace spectralign_fast {

namespace {

constexpr double kTwoPi = 6.283185307179586476925;
// Whitening runs over the spectrum in blocks this long, so the power pass
// reads a contiguous scratch array that stays in L1.
constexpr std::size_t kWhitenBlock = 1024;

// ---- row kernels -------------------------------------------------------------

struct Moments {
    double sum = 0, sum_sq = 0;
};

SPECTRALIGN_CLONES Moments moments(const float* x, std::size_t n) {
    double s = 0, ss = 0;
#pragma omp simd reduction(+ : s, ss)
    for (std::size_t k = 0; k < n; ++k) {
        const double v = x[k];
        s += v;
        ss += v * v;
    }
    return {s, ss};
}

SPECTRALIGN_CLONES void normalize(const float* x, float* out, float mean, float scale, std::size_t n) {
#pragma omp simd
    for (std::size_t k = 0; k < n; ++k) out[k] = (x[k] - mean) * scale;
}

// One spectrum row of the leave-one-out cross-power: p = f conj(r) -
// coef |f|^2 conj(t_row tx) removes the frame's own share of a mean
// reference (its own noise would otherwise correlate into a peak at the
// lag it was averaged in with). p may alias f.
SPECTRALIGN_CLONES void cross_self_row(const float* f, const float* r, const float* tx, float t_re, float t_im,
                                       float coef, float* p, int n) {
#pragma omp simd
    for (int k = 0; k < n; ++k) {
        const float fr = f[2 * k], fi = f[2 * k + 1];
        float tr, ti, pr, pi;
        spectral::detail::complex_mul(t_re, t_im, tx[2 * k], tx[2 * k + 1], tr, ti);
        spectral::detail::complex_mul(fr, fi, r[2 * k], r[2 * k + 1], pr, pi);
        const float m = coef * (fr * fr + fi * fi);
        p[2 * k] = pr - m * tr;
        p[2 * k + 1] = pi + m * ti;
    }
}

SPECTRALIGN_CLONES float max_of(const float* x, int n) {
    float best = x[0];
#pragma omp simd reduction(max : best)
    for (int k = 0; k < n; ++k) best = x[k] > best ? x[k] : best;
    return best;
}

// ---- threads ---------------------------------------------------------------------

// ---- registration helpers ----------------------------------------------------------

// The frame's status from its moments: not finite, no contrast, or usable,
// with its mean and spread.
FrameStatus frame_status(const float* x, std::size_t n, double& mean, double& spread) {
    const Moments m = moments(x, n);
    if (!std::isfinite(m.sum) || !std::isfinite(m.sum_sq)) return kFrameNotFinite;
    mean = m.sum / static_cast<double>(n);
    spread = std::sqrt(std::max(0.0, m.sum_sq / static_cast<double>(n) - mean * mean));
    return has_contrast(mean, spread) ? kFrameOk : kFrameNoContrast;
}

// Writes (x - mean) / spread to out; returns the frame's status (and the
// spread through *spread_out when given).
FrameStatus normalize_frame(const float* x, float* out, std::size_t n, double* spread_out = nullptr) {
    double mean = 0.0, spread = 0.0;
    const FrameStatus status = frame_status(x, n, mean, spread);
    if (status != kFrameOk) return status;
    if (spread_out != nullptr) *spread_out = spread;
    normalize(x, out, static_cast<float>(mean), static_cast<float>(1.0 / spread), n);
    return kFrameOk;
}

// Per-thread buffers of the fit.
class FitWorkspace {
public:
    explicit FitWorkspace(const std::vector<int>& shape)
        : shape_(shape),
          rank_(static_cast<int>(shape.size())),
          last_(shape.back()),
          half_(shape.back() / 2 + 1),
          r2c_(&R2CPlan::get(shape)),
          c2r_(&C2RPlan::get(shape)),
          peak_(shape) {
        std::size_t n = 1, ns = 1;
        for (int a = 0; a < rank_; ++a) {
            n *= static_cast<std::size_t>(shape[a]);
            ns *= static_cast<std::size_t>(a + 1 == rank_ ? half_ : shape[a]);
        }
        frame_.resize(n);
        corr_.resize(n);
        spec_.resize(ns);
        work_.resize(ns);
        scratch_.resize(kWhitenBlock);
        ex_.resize(2 * static_cast<std::size_t>(half_));
    }

    // Registers one frame; returns its status and writes rank displacements.
    // self_coef > 0: the reference is a mean that contains this frame with
    // that weight (relative to the normalised frame), shifted by self_delta
    // (linear interpolation; null: unshifted); its share is left out.
    // taper: the window per axis (empty: none), as the reference's.
    FrameStatus fit(const float* frame, const std::complex<float>* ref, const StackRegOptions& opt,
                    const std::vector<std::vector<float>>& taper, double self_coef, const double* self_delta,
                    double* delta) {
        const std::size_t n = frame_.size(), ns = spec_.size();
        double spread = 1;
        const FrameStatus st = normalize_frame(frame, frame_.data(), n, &spread);
        if (st != kFrameOk) {
            const double v = st == kFrameNotFinite ? std::numeric_limits<double>::quiet_NaN() : 0.0;
            for (int a = 0; a < rank_; ++a) delta[a] = v;
            return st;
        }
        if (!taper.empty()) stackreg_detail::apply_taper(frame_.data(), shape_, taper);
        r2c_->execute(frame_.data(), spec_.data());
        const float* rp = reinterpret_cast<const float*>(ref);
        float* sp = reinterpret_cast<float*>(spec_.data());
        float* wp = reinterpret_cast<float*>(work_.data());
        if (self_coef > 0) {
            leave_self_out(rp, static_cast<float>(self_coef * spread), self_delta);
            for (std::size_t k0 = 0; k0 < ns; k0 += kWhitenBlock) {
                const std::size_t len = std::min(kWhitenBlock, ns - k0);
                spectral::whiten(sp + 2 * k0, wp + 2 * k0, 0.5f * opt.whiten, len, scratch_.data());
            }
        } else {
            for (std::size_t k0 = 0; k0 < ns; k0 += kWhitenBlock) {
                const std::size_t len = std::min(kWhitenBlock, ns - k0);
                spectral::cross_power(sp + 2 * k0, rp + 2 * k0, sp + 2 * k0, wp + 2 * k0, 0.5f * opt.whiten,
                                      len, scratch_.data());
            }
        }
        // The DC term only adds a constant to every lag.
        spec_[0] = work_[0] = 0.0f;
        c2r_->execute(work_.data(), corr_.data());

        int peak[3] = {0, 0, 0};
        find_peak(opt, peak);
        double r[3] = {0, 0, 0};
        for (int a = 0; a < rank_; ++a) r[a] = stackreg_detail::signed_index(peak[a], shape_[a]);
        if (opt.subpixel) peak_.refine(corr_.data(), spec_.data(), peak, r);
        for (int a = 0; a < rank_; ++a) {
            const int m = a < static_cast<int>(opt.max_shift.size()) ? opt.max_shift[a] : -1;
            delta[a] = m >= 0 ? std::clamp(r[a], -static_cast<double>(m), static_cast<double>(m)) : r[a];
        }
        return kFrameOk;
    }

private:
    // Spectrum of a linear-interpolation shift sampling at x + d along an
    // axis of n, bins 0..count-1: e^{i w i0} ((1 - f) + f e^{i w}).
    static void shift_transfer(double d, int n, int count, std::complex<double>* out) {
        const double i0 = std::floor(d), f = d - i0;
        for (int k = 0; k < count; ++k) {
            const double w = kTwoPi * k / n;
            out[k] = std::polar(1.0, w * i0) * ((1.0 - f) + f * std::polar(1.0, w));
        }
    }

    // spec_ <- F conj(R) - coef |F|^2 conj(T), T the transfer of self_delta.
    void leave_self_out(const float* rp, float coef, const double* self_delta) {
        const int last = rank_ - 1;
        std::vector<std::complex<double>> t[3];
        for (int a = 0; a < rank_; ++a) {
            const int count = a == last ? half_ : shape_[a];
            t[a].assign(static_cast<std::size_t>(count), 1.0);
            if (self_delta != nullptr && std::isfinite(self_delta[a])) shift_transfer(self_delta[a], shape_[a], count, t[a].data());
        }
        for (int k = 0; k < half_; ++k) {
            ex_[2 * k] = static_cast<float>(t[last][k].real());
            ex_[2 * k + 1] = static_cast<float>(t[last][k].imag());
        }
        float* sp = reinterpret_cast<float*>(spec_.data());
        const std::size_t row = 2 * static_cast<std::size_t>(half_);
        const std::size_t rows = spec_.size() / static_cast<std::size_t>(half_);
        for (std::size_t r = 0; r < rows; ++r) {
            std::complex<double> tr = rank_ == 2 ? t[0][r] : t[0][r / shape_[1]] * t[1][r % shape_[1]];
            cross_self_row(sp + r * row, rp + r * row, ex_.data(), static_cast<float>(tr.real()),
                           static_cast<float>(tr.imag()), coef, sp + r * row, half_);
        }
    }

    // Integer peak of the correlation within the allowed displacements:
    // the first maximum in row-major order, as numpy.argmax.
    void find_peak(const StackRegOptions& opt, int peak[3]) const {
        std::vector<std::pair<int, int>> ranges[3];
        for (int a = 0; a < rank_; ++a) {
            const int limit = a < static_cast<int>(opt.max_shift.size()) ? opt.max_shift[a] : -1;
            ranges[a] = stackreg_detail::allowed_ranges(shape_[a], limit);
        }
        // Outer rows (all axes but the last) in ascending order.
        std::vector<std::size_t> rows;
        if (rank_ == 2) {
            for (auto [lo, hi] : ranges[0])
                for (int i = lo; i < hi; ++i) rows.push_back(static_cast<std::size_t>(i));
        } else {
            for (auto [zlo, zhi] : ranges[0])
                for (int z = zlo; z < zhi; ++z)
                    for (auto [ylo, yhi] : ranges[1])
                        for (int y = ylo; y < yhi; ++y)
                            rows.push_back(static_cast<std::size_t>(z) * shape_[1] + y);
        }
        const float* c = corr_.data();
        float best = -std::numeric_limits<float>::infinity();
        std::size_t best_pos = 0;
        bool found = false;
        for (std::size_t row : rows) {
            const float* rc = c + row * last_;
            for (auto [lo, hi] : ranges[rank_ - 1]) {
                const float m = max_of(rc + lo, hi - lo);
                if (!found || m > best) {
                    int j = lo;
                    while (rc[j] != m) ++j;
                    best = m;
                    best_pos = row * last_ + j;
                    found = true;
                }
            }
        }
        std::size_t rest = best_pos;
        for (int a = rank_ - 1; a >= 0; --a) {
            peak[a] = static_cast<int>(rest % shape_[a]);
            rest /= shape_[a];
        }
    }

    std::vector<int> shape_;
    int rank_, last_, half_;
    const R2CPlan* r2c_;
    const C2RPlan* c2r_;
    RealBuffer frame_, corr_;
    ComplexBuffer spec_, work_;
    std::vector<float> scratch_;
    std::vector<float> ex_;  // the self share's transfer along the last axis
    stackreg_detail::PeakRefiner peak_;
};

std::size_t count(const std::vector<int>& shape) {
    std::size_t n = 1;
    for (int s : shape) n *= static_cast<std::size_t>(s);
    return n;
}

}  // namespace

StackRegistrar::StackRegistrar(const float* references, std::size_t planes, std::vector<int> shape,
                               StackRegOptions options)
    : shape_(std::move(shape)), options_(std::move(options)) {
    stackreg_detail::check_frame_shape(shape_);
    if (planes < 1) throw std::invalid_argument("at least one reference is needed");
    if (!std::isfinite(options_.whiten) || options_.whiten < -1.0f || options_.whiten > 0.0f)
        throw std::invalid_argument("whiten must be between -1 and 0");
    if (!options_.max_shift.empty() && options_.max_shift.size() != shape_.size())
        throw std::invalid_argument("max_shift needs one value per frame axis");
    if (!options_.reference_box.empty() && options_.reference_box.size() != 2 * shape_.size())
        throw std::invalid_argument("reference_box needs two values per frame axis");
    if (!(options_.taper >= 0.0 && options_.taper <= 0.5)) throw std::invalid_argument("taper must be in [0, 0.5]");
    if (options_.taper > 0)
        for (int n : shape_) taper_.push_back(stackreg_detail::taper_window(n, options_.taper));
    frame_size_ = count(shape_);
    spectrum_size_ = frame_size_ / static_cast<std::size_t>(shape_.back()) *
                     static_cast<std::size_t>(shape_.back() / 2 + 1);
    const R2CPlan& r2c = R2CPlan::get(shape_);
    RealBuffer buf(frame_size_);
    for (std::size_t p = 0; p < planes; ++p) {
        double spread = 1;
        const FrameStatus st = normalize_frame(references + p * frame_size_, buf.data(), frame_size_, &spread);
        if (st == kFrameNotFinite)
            throw std::invalid_argument("reference " + std::to_string(p) + " contains NaN or inf pixels");
        if (st == kFrameNoContrast)
            throw std::invalid_argument("reference " + std::to_string(p) +
                                        " is constant: it carries no position information");
        if (!taper_.empty()) stackreg_detail::apply_taper(buf.data(), shape_, taper_);
        ComplexBuffer spec(spectrum_size_);
        r2c.execute(buf.data(), spec.data());
        for (std::size_t k = 0; k < spectrum_size_; ++k) spec[k] = std::conj(spec[k]);
        refs_.push_back(std::move(spec));
        ref_spread_.push_back(spread);
        if (options_.refine)
            refine_refs_.push_back(std::make_unique<stackreg_detail::RefineReference>(
                references + p * frame_size_, shape_, options_.reference_box));
    }
    C2RPlan::get(shape_);  // plan now, not in the first worker
}

StackRegistrar::~StackRegistrar() = default;

void StackRegistrar::fit(const float* frames, std::size_t n, std::size_t first_plane, int threads,
                         double* deltas, std::int8_t* status, double self_weight,
                         const double* self_deltas) const {
    resolve_threads(threads);  // validates
    if (!(self_weight >= 0 && self_weight <= 1)) throw std::invalid_argument("self_weight must be in [0, 1]");
    const std::size_t planes = refs_.size();
    const std::size_t rank = shape_.size();
    struct Workspaces {
        FitWorkspace fit;
        std::optional<stackreg_detail::RefineWorkspace> refine;
    };
    parallel_for(
        n, threads,
        [&]() {
            Workspaces ws{FitWorkspace(shape_), std::nullopt};
            if (options_.refine) ws.refine.emplace(shape_);
            return ws;
        },
        [&](Workspaces& ws, std::size_t k) {
            const std::size_t plane = (first_plane + k) % planes;
            // The frame entered the mean reference as frame * weight; in the
            // normalised units of both: weight * spread_frame / spread_ref.
            const double coef = self_weight / ref_spread_[plane];
            const float* frame = frames + k * frame_size_;
            status[k] = ws.fit.fit(frame, refs_[plane].data(), options_, taper_, coef,
                                   self_deltas != nullptr ? self_deltas + k * rank : nullptr, deltas + k * rank);
            if (status[k] == kFrameOk && ws.refine) {
                const stackreg_detail::RefineResult r =
                    ws.refine->refine(frame, *refine_refs_[plane], deltas + k * rank);
                if (r.fallback) status[k] = kFrameRefineKept;
            }
        });
}

void StackRegistrar::refine(const float* frames, std::size_t n, std::size_t first_plane, int threads,
                            double* deltas, std::int8_t* status) const {
    if (!options_.refine) throw std::invalid_argument("refine() needs a core made with refine=True");
    resolve_threads(threads);  // validates
    const std::size_t planes = refs_.size();
    const std::size_t rank = shape_.size();
    parallel_for(
        n, threads, [&]() { return stackreg_detail::RefineWorkspace(shape_); },
        [&](stackreg_detail::RefineWorkspace& ws, std::size_t k) {
            const float* frame = frames + k * frame_size_;
            double* d = deltas + k * rank;
            double mean = 0.0, spread = 0.0;
            const FrameStatus fs = stackreg_detail::finite_shift(d, rank)
                                       ? frame_status(frame, frame_size_, mean, spread)
                                       : kFrameNotFinite;
            if (fs == kFrameNotFinite) {
                for (std::size_t a = 0; a < rank; ++a) d[a] = std::numeric_limits<double>::quiet_NaN();
                status[k] = kFrameNotFinite;
                return;
            }
            if (fs == kFrameNoContrast) {
                for (std::size_t a = 0; a < rank; ++a) d[a] = 0.0;
                status[k] = kFrameNoContrast;
                return;
            }
            const stackreg_detail::RefineResult r = ws.refine(frame, *refine_refs_[(first_plane + k) % planes], d);
            status[k] = r.fallback ? kFrameRefineKept : kFrameOk;
        });
}

namespace {

// out(x) = in(clamp(x + delta)) for whole-number deltas, on pixels of
// `item` bytes: rows are copied as one run plus edge fills.
void copy_shifted(const void* in_, std::size_t item, const std::vector<int>& shape, const double* delta,
                  void* out_) {
    const auto* in = static_cast<const unsigned char*>(in_);
    auto* out = static_cast<unsigned char*>(out_);
    const int rank = static_cast<int>(shape.size());
    long long whole[3] = {0, 0, 0};
    for (int a = 0; a < rank; ++a)
        whole[a] = static_cast<long long>(
            std::clamp(delta[a], -static_cast<double>(shape[a]) - 1.0, static_cast<double>(shape[a]) + 1.0));
    auto src = [&](int a, long long x) { return static_cast<std::size_t>(std::clamp<long long>(x + whole[a], 0, shape[a] - 1)); };
    const int nc = shape[rank - 1];
    const std::size_t row_bytes = static_cast<std::size_t>(nc) * item;
    const long long wx = whole[rank - 1];
    const int x0 = static_cast<int>(std::clamp<long long>(-wx, 0, nc));
    const int x1 = static_cast<int>(std::clamp<long long>(nc - wx, x0, nc));
    const int rows = rank == 2 ? shape[0] : shape[0] * shape[1];
    for (int r = 0; r < rows; ++r) {
        const std::size_t srow = rank == 2 ? src(0, r) : src(0, r / shape[1]) * shape[1] + src(1, r % shape[1]);
        const unsigned char* g = in + srow * row_bytes;
        unsigned char* o = out + static_cast<std::size_t>(r) * row_bytes;
        const unsigned char* lo = g + src(rank - 1, 0) * item;
        const unsigned char* hi = g + src(rank - 1, nc - 1) * item;
        for (int x = 0; x < x0; ++x) std::memcpy(o + static_cast<std::size_t>(x) * item, lo, item);
        if (x1 > x0) std::memcpy(o + static_cast<std::size_t>(x0) * item, g + static_cast<std::size_t>(x0 + wx) * item,
                                 static_cast<std::size_t>(x1 - x0) * item);
        for (int x = x1; x < nc; ++x) std::memcpy(o + static_cast<std::size_t>(x) * item, hi, item);
    }
}

// Edge-replicated margin (at least this much on each side) around a frame
// before a Fourier shift, so the cyclic transform wraps nothing but edge
// pixels into the frame.
constexpr int kFourierPad = 8;

class ShiftWorkspace {
public:
    ShiftWorkspace(const std::vector<int>& shape, ShiftInterpolation interp)
        : shape_(shape), row_(static_cast<std::size_t>(shape.back())) {
        if (shape.size() == 3) plane_.resize(static_cast<std::size_t>(shape[1]) * shape[2]);
        if (interp == ShiftInterpolation::fourier) {
            padded_ = shape;
            std::size_t n = 1, ns = 1;
            for (std::size_t a = 0; a < shape.size(); ++a) {
                padded_[a] = spectral::next_fast_size(shape[a] + 2 * kFourierPad);
                pad_lo_[a] = (padded_[a] - shape[a]) / 2;
                n *= static_cast<std::size_t>(padded_[a]);
                ns *= static_cast<std::size_t>(a + 1 == shape.size() ? padded_[a] / 2 + 1 : padded_[a]);
                phase_[a].resize(static_cast<std::size_t>(a + 1 == shape.size() ? padded_[a] / 2 + 1 : padded_[a]));
            }
            r2c_ = &R2CPlan::get(padded_);
            c2r_ = &C2RPlan::get(padded_);
            pad_.resize(n);
            spec_.resize(ns);
        }
    }

    void shift(const float* in, const double* delta, ShiftInterpolation interp, float* out) {
        bool integer = true;
        for (std::size_t a = 0; a < shape_.size(); ++a) integer = integer && delta[a] == std::floor(delta[a]);
        // Integer shifts copy pixels exactly (no arithmetic, no FFT round-off).
        if (integer) {
            copy_shifted(in, sizeof(float), shape_, delta, out);
            return;
        }
        if (interp == ShiftInterpolation::fourier) {
            fourier(in, delta, out);
            return;
        }
        if (shape_.size() == 2) {
            shift2d(in, shape_[0], shape_[1], delta, interp, out);
            return;
        }
        const int nz = shape_[0];
        const std::size_t plane = static_cast<std::size_t>(shape_[1]) * shape_[2];
        const sample::ShiftTaps tz = sample::shift_taps(delta[0], nz, interp == ShiftInterpolation::cubic);
        const float* src[4];
        for (int z = 0; z < nz; ++z) {
            for (int j = 0; j < tz.count; ++j)
                src[j] = in + static_cast<std::size_t>(std::clamp(z + tz.base + j, 0, nz - 1)) * plane;
            sample::combine_rows(src, tz, plane_.data(), plane);
            shift2d(plane_.data(), shape_[1], shape_[2], delta + 1, interp, out + z * plane);
        }
    }

private:
    void shift2d(const float* in, int rows, int cols, const double* delta, ShiftInterpolation interp,
                 float* out) {
        const sample::ShiftTaps ty = sample::shift_taps(delta[0], rows, interp == ShiftInterpolation::cubic);
        const sample::ShiftTaps tx = sample::shift_taps(delta[1], cols, interp == ShiftInterpolation::cubic);
        const float* src[4];
        for (int y = 0; y < rows; ++y) {
            for (int j = 0; j < ty.count; ++j)
                src[j] = in + static_cast<std::size_t>(std::clamp(y + ty.base + j, 0, rows - 1)) * cols;
            sample::combine_rows(src, ty, row_.data(), static_cast<std::size_t>(cols));
            sample::shift_row(row_.data(), tx, cols, out + static_cast<std::size_t>(y) * cols);
        }
    }

    // The frame, edge-replicated by kFourierPad, shifted by the fractional
    // parts f (|f| <= 0.5) as a phase ramp; the integer parts i then pick
    // out[x] = shifted[clamp(x + i)] (nearest-edge filling).
    void fourier(const float* in, const double* delta, float* out) {
        const int rank = static_cast<int>(shape_.size());
        long long whole[3] = {0, 0, 0};
        double frac[3] = {0, 0, 0};
        std::size_t total = 1;
        for (int a = 0; a < rank; ++a) total *= static_cast<std::size_t>(padded_[a]);
        for (int a = 0; a < rank; ++a) {
            const double d = std::clamp(delta[a], -static_cast<double>(shape_[a]) - 4.0,
                                        static_cast<double>(shape_[a]) + 4.0);
            whole[a] = std::llround(d);
            frac[a] = d - static_cast<double>(whole[a]);
            spectral::phase_ramp(phase_[a].data(), padded_[a], static_cast<int>(phase_[a].size()), frac[a],
                                 a == rank - 1 ? 1.0 / static_cast<double>(total) : 1.0);
        }
        // Edge-replicated copy into the padded buffer.
        const int pc = padded_[rank - 1], nc = shape_[rank - 1];
        const int outer_rows = rank == 2 ? padded_[0] : padded_[0] * padded_[1];
        for (int r = 0; r < outer_rows; ++r) {
            std::size_t src_row;
            if (rank == 2) {
                src_row = static_cast<std::size_t>(std::clamp(r - pad_lo_[0], 0, shape_[0] - 1));
            } else {
                const int z = std::clamp(r / padded_[1] - pad_lo_[0], 0, shape_[0] - 1);
                const int y = std::clamp(r % padded_[1] - pad_lo_[1], 0, shape_[1] - 1);
                src_row = static_cast<std::size_t>(z) * shape_[1] + y;
            }
            const int lo = pad_lo_[rank - 1];
            const float* s = in + src_row * nc;
            float* d = pad_.data() + static_cast<std::size_t>(r) * pc;
            std::fill(d, d + lo, s[0]);
            std::copy(s, s + nc, d + lo);
            std::fill(d + lo + nc, d + pc, s[nc - 1]);
        }
        r2c_->execute(pad_.data(), spec_.data());
        const int half = pc / 2 + 1;
        const int spec_rows = static_cast<int>(spec_.size() / static_cast<std::size_t>(half));
        const std::complex<float>* px = phase_[rank - 1].data();
        for (int r = 0; r < spec_rows; ++r) {
            const std::complex<float> t =
                rank == 2 ? phase_[0][r] : phase_[0][r / padded_[1]] * phase_[1][r % padded_[1]];
            std::complex<float>* row = spec_.data() + static_cast<std::size_t>(r) * half;
            spectral::ramp_row(reinterpret_cast<float*>(row), reinterpret_cast<const float*>(px), t.real(),
                               t.imag(), half);
        }
        c2r_->execute(spec_.data(), pad_.data());
        // Integer part: clamped indices into the shifted, padded frame.
        auto src_index = [&](int a, long long x) {
            return static_cast<std::size_t>(pad_lo_[a] + std::clamp<long long>(x + whole[a], 0, shape_[a] - 1));
        };
        const int out_rows = rank == 2 ? shape_[0] : shape_[0] * shape_[1];
        for (int r = 0; r < out_rows; ++r) {
            std::size_t prow;
            if (rank == 2) {
                prow = src_index(0, r);
            } else {
                prow = src_index(0, r / shape_[1]) * padded_[1] + src_index(1, r % shape_[1]);
            }
            const float* g = pad_.data() + prow * pc;
            float* o = out + static_cast<std::size_t>(r) * nc;
            // Columns whose source x + whole lies inside the frame are one contiguous
            // run; only the edges need clamping.
            const long long wx = whole[rank - 1];
            const int x0 = static_cast<int>(std::clamp<long long>(-wx, 0, nc));
            const int x1 = static_cast<int>(std::clamp<long long>(nc - wx, x0, nc));
            const float lo = g[src_index(rank - 1, 0 - wx)], hi = g[src_index(rank - 1, nc - 1 - wx)];
            std::fill(o, o + x0, lo);
            std::copy(g + pad_lo_[rank - 1] + x0 + wx, g + pad_lo_[rank - 1] + x1 + wx, o + x0);
            std::fill(o + x1, o + nc, hi);
        }
    }

    std::vector<int> shape_;
    std::vector<float> row_, plane_;
    std::vector<int> padded_;
    int pad_lo_[3] = {0, 0, 0};
    const R2CPlan* r2c_ = nullptr;
    const C2RPlan* c2r_ = nullptr;
    RealBuffer pad_;
    ComplexBuffer spec_;
    std::vector<std::complex<float>> phase_[3];
};

}  // namespace

void shift_frames(const float* frames, std::size_t n, const std::vector<int>& shape, const double* deltas,
                  ShiftInterpolation interpolation, int threads, float* out) {
    stackreg_detail::check_frame_shape(shape);
    resolve_threads(threads);  // validates
    const std::size_t size = count(shape);
    const std::size_t rank = shape.size();
    parallel_for(
        n, threads, [&]() { return ShiftWorkspace(shape, interpolation); },
        [&](ShiftWorkspace& ws, std::size_t k) {
            const double* d = deltas + k * rank;
            if (!stackreg_detail::finite_shift(d, rank)) {
                std::copy(frames + k * size, frames + (k + 1) * size, out + k * size);
                return;
            }
            ws.shift(frames + k * size, d, interpolation, out + k * size);
        });
}

void shift_frames_integer(const void* frames, std::size_t itemsize, std::size_t n, const std::vector<int>& shape,
                          const double* deltas, int threads, void* out) {
    stackreg_detail::check_frame_shape(shape);
    resolve_threads(threads);  // validates
    if (itemsize == 0) throw std::invalid_argument("itemsize must be positive");
    const std::size_t size = count(shape);
    const std::size_t rank = shape.size();
    for (std::size_t k = 0; k < n * rank; ++k)
        if (std::isfinite(deltas[k]) && deltas[k] != std::floor(deltas[k]))
            throw std::invalid_argument("shift_frames_integer needs whole-number displacements");
    const auto* in = static_cast<const unsigned char*>(frames);
    auto* o = static_cast<unsigned char*>(out);
    const std::size_t bytes = size * itemsize;
    parallel_for(
        n, threads, [] { return 0; },
        [&](int&, std::size_t k) {
            const double* d = deltas + k * rank;
            if (!stackreg_detail::finite_shift(d, rank)) {
                std::memcpy(o + k * bytes, in + k * bytes, bytes);
                return;
            }
            copy_shifted(in + k * bytes, itemsize, shape, d, o + k * bytes);
        });
}

}  // namespace spectralign_fast

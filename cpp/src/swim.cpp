#include "spectralign_fast/swim.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "fastmath.hpp"

namespace spectralign_fast {

namespace {

struct WindowMoments {
    double mean = 0;
    double std = 0;
    double apodized_sum = 0;  // sum of pixel * apodization weight
    bool contrast = true;
};

// A window whose spread is below float32 resolution of its level carries no
// position information; correlating it would only amplify rounding noise.
bool has_contrast(double mean, double std) { return std > 1e-6 * std::fabs(mean) && std > 0; }

}  // namespace

SwimWorkspace::SwimWorkspace(int width, int height)
    : width_(width),
      height_(height),
      spectrum_size_(static_cast<std::size_t>(height) * (width / 2 + 1)),
      r2c_(&R2CPlan::get(height, width)),
      c2r_(&C2RPlan::get(height, width)),
      sta_(static_cast<std::size_t>(width) * height),
      mov_(static_cast<std::size_t>(width) * height),
      corr_(static_cast<std::size_t>(width) * height),
      sta_spec_(spectrum_size_),
      mov_spec_(spectrum_size_),
      apo_x_(apodization_profile(width)),
      apo_y_(apodization_profile(height)),
      ramp_x_(static_cast<std::size_t>(width / 2 + 1)),
      ramp_y_(static_cast<std::size_t>(height)) {}

namespace {

// exp(i * omega_k * delta) for the FFT bins k of an n-point axis (first
// `count` bins), omega_k = 2 pi k' / n with k' the signed bin; the Nyquist
// bin of an even axis gets the real cos(pi delta) so the spectrum stays
// Hermitian. Rotation by recurrence in double: exact to ~1e-13.
void fill_phase_ramp(std::complex<float>* ramp, int n, int count, double delta) {
    const double two_pi = 6.283185307179586476925;
    const std::complex<double> step = std::polar(1.0, two_pi * delta / n);
    std::complex<double> z = 1.0;
    const int positive = (n - 1) / 2;  // bins 1..positive have k' = k
    for (int k = 0; k < count && k <= positive; ++k) {
        ramp[k] = std::complex<float>(z);
        z *= step;
    }
    if (n % 2 == 0 && n / 2 < count) ramp[n / 2] = std::complex<float>(std::cos(two_pi * delta / 2), 0.0);
    // Negative bins k' = k - n, walking down from k = n-1 (k' = -1).
    z = std::conj(step);
    for (int k = n - 1; k > n / 2 && k < count; --k) {
        ramp[k] = std::complex<float>(z);
        z *= std::conj(step);
    }
}

}  // namespace

SwimResult SwimWorkspace::align(const SwimOptions& options, double offset_x, double offset_y) {
    const int w = width_, h = height_;
    const double npix = static_cast<double>(w) * h;
    SwimResult result;

    // Moments of both windows, row by row while the row is in L1.
    WindowMoments ms, mm;
    {
        double s = 0, ss = 0, sa = 0, m = 0, mq = 0;
        for (int i = 0; i < h; ++i) {
            const float* a = sta_.data() + static_cast<std::size_t>(i) * w;
            const float* b = mov_.data() + static_cast<std::size_t>(i) * w;
            float rs = 0, rss = 0, rsa = 0, rm = 0, rmq = 0;
            for (int j = 0; j < w; ++j) {
                rs += a[j];
                rss += a[j] * a[j];
                rsa += a[j] * apo_x_[j];
                rm += b[j];
                rmq += b[j] * b[j];
            }
            s += rs;
            ss += rss;
            sa += static_cast<double>(rsa) * apo_y_[i];
            m += rm;
            mq += rmq;
        }
        ms.mean = s / npix;
        ms.std = std::sqrt(std::max(0.0, ss / npix - ms.mean * ms.mean));
        ms.apodized_sum = sa;
        ms.contrast = has_contrast(ms.mean, ms.std);
        mm.mean = m / npix;
        mm.std = std::sqrt(std::max(0.0, mq / npix - mm.mean * mm.mean));
        mm.contrast = has_contrast(mm.mean, mm.std);
    }
    if (!ms.contrast || !mm.contrast) {
        result.contrast = false;
        return result;
    }

    // Stationary: apodize towards its mean, subtract the mean of the result.
    // Both windows are scaled to unit spread: the outcome is scale-invariant
    // and the cross-power spectrum then cannot overflow float32.
    {
        double apo_total = 0;
        {
            double ax = 0, ay = 0;
            for (float v : apo_x_) ax += v;
            for (float v : apo_y_) ay += v;
            apo_total = ax * ay;
        }
        const float gray = static_cast<float>(ms.mean);
        const float offset = static_cast<float>((ms.apodized_sum - ms.mean * apo_total) / npix);
        const float scale_s = static_cast<float>(1.0 / ms.std);
        const float mean_m = static_cast<float>(mm.mean);
        const float scale_m = static_cast<float>(1.0 / mm.std);
        for (int i = 0; i < h; ++i) {
            float* a = sta_.data() + static_cast<std::size_t>(i) * w;
            float* b = mov_.data() + static_cast<std::size_t>(i) * w;
            const float ay = apo_y_[i];
            for (int j = 0; j < w; ++j) {
                a[j] = ((a[j] - gray) * (ay * apo_x_[j]) - offset) * scale_s;
                b[j] = (b[j] - mean_m) * scale_m;
            }
        }
    }

    r2c_->execute(sta_.data(), sta_spec_.data());
    r2c_->execute(mov_.data(), mov_spec_.data());

    // Whitened cross-power spectrum P = S conj(M) |S conj(M)|^whiten, and
    // its energy, which by Parseval gives the correlation image's moments
    // without another pass over it.
    const int hw = w / 2 + 1;
    const float half_exponent = 0.5f * options.whiten;
    fill_phase_ramp(ramp_x_.data(), w, hw, offset_x);
    fill_phase_ramp(ramp_y_.data(), h, h, offset_y);
    double energy = 0;
    {
        float* s = reinterpret_cast<float*>(sta_spec_.data());
        const float* m = reinterpret_cast<const float*>(mov_spec_.data());
        const float* rx = reinterpret_cast<const float*>(ramp_x_.data());
        const bool even = (w % 2) == 0;
        for (int r = 0; r < h; ++r) {
            float* sr = s + static_cast<std::size_t>(r) * hw * 2;
            const float* mr = m + static_cast<std::size_t>(r) * hw * 2;
            const float ryr = ramp_y_[r].real(), ryi = ramp_y_[r].imag();
            float row_energy = 0, edge_energy = 0;
            for (int k = 0; k < hw; ++k) {
                const float ar = sr[2 * k], ai = sr[2 * k + 1];
                const float br = mr[2 * k], bi = mr[2 * k + 1];
                // S conj(M), then the subpixel phase ramp ry * rx.
                const float qr = ar * br + ai * bi;
                const float qi = ai * br - ar * bi;
                const float tr = ryr * rx[2 * k] - ryi * rx[2 * k + 1];
                const float ti = ryr * rx[2 * k + 1] + ryi * rx[2 * k];
                const float pr = qr * tr - qi * ti;
                const float pi = qr * ti + qi * tr;
                const float pw = pr * pr + pi * pi;
                const float f = fastmath::pow_positive(pw, half_exponent);
                sr[2 * k] = pr * f;
                sr[2 * k + 1] = pi * f;
                row_energy += pw * f * f;
            }
            // Columns 0 and (for even w) w/2 are their own Hermitian partners;
            // every other column stands for two entries of the full spectrum.
            {
                const float e0 = sr[0] * sr[0] + sr[1] * sr[1];
                edge_energy += e0;
                if (even && hw > 1) {
                    const float* last = sr + 2 * (hw - 1);
                    edge_energy += last[0] * last[0] + last[1] * last[1];
                }
            }
            energy += 2.0 * row_energy - edge_energy;
        }
    }
    const double mean_c = static_cast<double>(sta_spec_[0].real());
    const double std_c = std::sqrt(std::max(0.0, energy - mean_c * mean_c));

    c2r_->execute(sta_spec_.data(), corr_.data());

    // Integer peak: first maximum in row-major order, as numpy.argmax.
    const float* c = corr_.data();
    const std::size_t n = static_cast<std::size_t>(w) * h;
    std::size_t best = 0;
    float best_value = c[0];
    for (std::size_t k = 1; k < n; ++k) {
        if (c[k] > best_value) {
            best_value = c[k];
            best = k;
        }
    }
    int px = static_cast<int>(best % w), py = static_cast<int>(best / w);
    if (px >= w / 2.0) px -= w;
    if (py >= h / 2.0) py -= h;

    // Centre of mass of the peak neighbourhood (cyclic), after subtracting
    // its mean and clipping negative values.
    const int rad = options.peak_radius, side = 2 * rad + 1;
    std::vector<double> win(static_cast<std::size_t>(side) * side);
    double win_sum = 0;
    for (int i = 0; i < side; ++i) {
        const int yy = ((py - rad + i) % h + h) % h;
        for (int j = 0; j < side; ++j) {
            const int xx = ((px - rad + j) % w + w) % w;
            const double v = c[static_cast<std::size_t>(yy) * w + xx];
            win[static_cast<std::size_t>(i) * side + j] = v;
            win_sum += v;
        }
    }
    const double win_mean = win_sum / win.size();
    double sw = 0, sx = 0, sy = 0;
    for (int i = 0; i < side; ++i) {
        for (int j = 0; j < side; ++j) {
            double& v = win[static_cast<std::size_t>(i) * side + j];
            v = std::max(0.0, v - win_mean);
            sw += v;
            sx += v * (j - rad);
            sy += v * (i - rad);
        }
    }
    const double denom = sw + 1e-40;
    const double cx = sx / denom, cy = sy / denom;
    double vx = 0, vy = 0;
    for (int i = 0; i < side; ++i) {
        for (int j = 0; j < side; ++j) {
            const double v = win[static_cast<std::size_t>(i) * side + j];
            vx += v * (j - rad - cx) * (j - rad - cx);
            vy += v * (i - rad - cy) * (i - rad - cy);
        }
    }

    result.dx = -(px + cx);
    result.dy = -(py + cy);
    result.sx = std::sqrt(vx / denom);
    result.sy = std::sqrt(vy / denom);
    result.snr = (static_cast<double>(best_value) - mean_c) / (std_c + 1e-40);
    return result;
}

void check_refine_params(const ImageView& img1, const ImageView& img2, const RefineParams& p) {
    check_image(img1, "image 1");
    check_image(img2, "image 2");
    const int rad = p.swim.peak_radius;
    if (rad < 0) throw std::invalid_argument("peak radius must be >= 0");
    if (p.width < 1 || p.height < 1)
        throw std::invalid_argument("window size must be positive, got (" + std::to_string(p.width) +
                                    ", " + std::to_string(p.height) + ")");
    const int min_side = std::max(4, 2 * rad + 1);
    if (p.width < min_side || p.height < min_side)
        throw std::invalid_argument("window size (" + std::to_string(p.width) + ", " +
                                    std::to_string(p.height) + ") is too small: each side must be >= " +
                                    std::to_string(min_side) + " (at least 4 and 2*peak_radius+1)");
    for (const ImageView* img : {&img1, &img2}) {
        if (p.width > img->cols || p.height > img->rows)
            throw std::invalid_argument(
                "window size (" + std::to_string(p.width) + ", " + std::to_string(p.height) +
                ") is larger than image " + (img == &img1 ? "1" : "2") + " (width " +
                std::to_string(img->cols) + ", height " + std::to_string(img->rows) +
                "): use a smaller window");
    }
    if (p.iterations < 1) throw std::invalid_argument("iters must be >= 1");
    if (!(p.tolerance >= 0) || !std::isfinite(p.tolerance))
        throw std::invalid_argument("tolerance must be a finite number >= 0");
    if (!std::isfinite(p.swim.whiten)) throw std::invalid_argument("whitening exponent must be finite");
}

void check_refine_point(const ImageView& img, const double p[2], const RefineParams& params,
                        const char* which, std::size_t index) {
    const std::string where = std::string(which) + " of pair " + std::to_string(index);
    if (!std::isfinite(p[0]) || !std::isfinite(p[1]))
        throw std::invalid_argument(where + " is not finite");
    const double x0 = p[0] - params.width / 2.0, y0 = p[1] - params.height / 2.0;
    if (!window_overlaps(img, x0, y0, params.width, params.height))
        throw std::invalid_argument(where + " (" + std::to_string(p[0]) + ", " + std::to_string(p[1]) +
                                    ") is so far outside the image that its window does not "
                                    "overlap it");
}

namespace {

// Cuts the window at the integer pixel below its origin p - size/2 and
// returns the fractional part of that origin, (fx, fy).
std::array<double, 2> cut_window(const ImageView& img, const double p[2], const RefineParams& params,
                                 float* out) {
    const double x0 = p[0] - params.width / 2.0, y0 = p[1] - params.height / 2.0;
    const double fx0 = std::floor(x0), fy0 = std::floor(y0);
    const double m = covered_mean(img, x0, y0, params.width, params.height);
    const float fill = std::isnan(m) ? 0.0f : static_cast<float>(m);
    extract_integer_window(img, static_cast<long long>(fx0), static_cast<long long>(fy0), params.width,
                           params.height, fill, out);
    return {x0 - fx0, y0 - fy0};
}

}  // namespace

RefineResult refine(const ImageView& img1, const ImageView& img2, const double p1[2],
                    const double p2[2], const RefineParams& params, SwimWorkspace& ws) {
    if (ws.width() != params.width || ws.height() != params.height)
        throw std::invalid_argument("workspace size does not match the window size");
    RefineResult out;
    out.p1[0] = p1[0];
    out.p1[1] = p1[1];
    out.p2[0] = p2[0];
    out.p2[1] = p2[1];
    out.iterations.reserve(static_cast<std::size_t>(params.iterations));
    const double tol2 = params.tolerance * params.tolerance;
    for (int k = 0; k < params.iterations; ++k) {
        const auto f1 = cut_window(img1, out.p1, params, ws.stationary());
        const auto f2 = cut_window(img2, out.p2, params, ws.moving());
        const SwimResult r = ws.align(params.swim, f1[0] - f2[0], f1[1] - f2[1]);
        out.iterations.push_back(r);
        out.p1[0] -= r.dx / 2;
        out.p1[1] -= r.dy / 2;
        out.p2[0] += r.dx / 2;
        out.p2[1] += r.dy / 2;
        if (params.tolerance > 0 && r.dx * r.dx + r.dy * r.dy < tol2) break;
    }
    return out;
}

int resolve_threads(int threads) {
    if (threads < 0) throw std::invalid_argument("threads must be >= 0 (0 means all cores)");
    if (threads > 0) return threads;
    const unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(hc);
}

void refine_many(const ImageView& img1, const ImageView& img2, const double* P1, const double* P2,
                 std::size_t n, const RefineParams& params, int threads,
                 const RefineManyOutput& out) {
    check_refine_params(img1, img2, params);
    for (std::size_t k = 0; k < n; ++k) {
        check_refine_point(img1, P1 + 2 * k, params, "point 1", k);
        check_refine_point(img2, P2 + 2 * k, params, "point 2", k);
    }
    if (n == 0) return;
    const int nthreads = static_cast<int>(std::min<std::size_t>(resolve_threads(threads), n));

    std::atomic<std::size_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto worker = [&]() {
        try {
            SwimWorkspace ws(params.width, params.height);
            for (std::size_t k = next++; k < n; k = next++) {
                const RefineResult r = refine(img1, img2, P1 + 2 * k, P2 + 2 * k, params, ws);
                const SwimResult& last = r.iterations.back();
                out.p1_out[2 * k] = r.p1[0];
                out.p1_out[2 * k + 1] = r.p1[1];
                out.p2_out[2 * k] = r.p2[0];
                out.p2_out[2 * k + 1] = r.p2[1];
                out.shift[2 * k] = last.dx;
                out.shift[2 * k + 1] = last.dy;
                out.peakwidth[2 * k] = last.sx;
                out.peakwidth[2 * k + 1] = last.sy;
                out.snr[k] = last.snr;
                out.niters[k] = static_cast<int>(r.iterations.size());
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(failure_mutex);
            if (!failure) failure = std::current_exception();
            next = n;  // stop the other workers early
        }
    };
    if (nthreads == 1) {
        worker();
    } else {
        std::vector<std::thread> pool;
        pool.reserve(static_cast<std::size_t>(nthreads));
        try {
            for (int t = 0; t < nthreads; ++t) pool.emplace_back(worker);
        } catch (...) {
            // Could not start every thread: let the running ones finish the
            // work rather than abandon joinable threads.
            if (pool.empty()) throw;
        }
        for (auto& t : pool) t.join();
    }
    if (failure) std::rethrow_exception(failure);
}

}  // namespace spectralign_fast

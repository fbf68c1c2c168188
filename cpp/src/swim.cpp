#include "spectralign_fast/swim.hpp"

#include "parallel.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "swim_kernels.hpp"

namespace spectralign_fast {

namespace {

// In place once the separate cross spectrum would take the workspace past
// 8 MiB (12 bytes per pixel; about 836 x 836). Measured here: FFTW's in-place
// c2r is 5% slower at 512 px, even at 640-768 px, and 5-8% faster at 1024 px,
// where two threads' workspaces no longer fit the L3 cache together.
bool whiten_in_place(int width, int height) {
    return 12.0 * width * height > 8.0 * 1024 * 1024;
}

void prefetch_row(const float* row, int n) {
#if defined(__GNUC__) || defined(__clang__)
    for (int j = 0; j < n; j += 16) __builtin_prefetch(row + j, 0, 3);
    __builtin_prefetch(row + n - 1, 0, 3);
#else
    (void)row;
    (void)n;
#endif
}

}  // namespace

SwimWorkspace::SwimWorkspace(int width, int height)
    : width_(width),
      height_(height),
      spectrum_size_(static_cast<std::size_t>(height) * (width / 2 + 1)),
      in_place_(whiten_in_place(width, height)),
      c2c_(&C2CPlan::get(height, width)),
      c2r_(in_place_ ? &C2RPlan::get_in_place(height, width, width) : &C2RPlan::get(height, width)),
      packed_(static_cast<std::size_t>(width) * height),
      cross_(in_place_ ? 0 : spectrum_size_),
      ramp_x_(static_cast<std::size_t>(width / 2 + 1)),
      ramp_y_(static_cast<std::size_t>(height)),
      scratch_(static_cast<std::size_t>(width / 2 + 1)) {
    for (int k = 0; k < 2; ++k) {
        mirrored_[k].resize(static_cast<std::size_t>(width / 2 + 1));
        apo_x_[k].resize(static_cast<std::size_t>(width));
        apo_y_[k].resize(static_cast<std::size_t>(height));
    }
}

namespace {

// spectralign's profile (image_ops apodization_profile) of an n-pixel window
// whose true origin lies `frac` pixels past its first pixel: pixel j sits at
// window coordinate j - frac. Returns the sum of the weights.
double shifted_profile(float* out, int n, double frac) {
    const double pi = 3.14159265358979323846;
    const double step = n > 1 ? 2.0 / (n - 1) : 0.0;
    double total = 0;
    for (int j = 0; j < n; ++j) {
        const double u = -1.0 + step * (j - frac);
        double v = 1.0;
        if (std::fabs(u) > 0.5) v = std::fabs(u) >= 1.0 ? 0.0 : 0.5 - 0.5 * std::cos(2 * pi * u);
        out[j] = static_cast<float>(v);
        total += out[j];
    }
    return total;
}

}  // namespace

void SwimWorkspace::shift_apodization(int which, double frac_x, double frac_y) {
    const double ax = shifted_profile(apo_x_[which].data(), width_, frac_x);
    const double ay = shifted_profile(apo_y_[which].data(), height_, frac_y);
    apo_total_[which] = ax * ay;
    flat_[which] = false;
}

void SwimWorkspace::flat_apodization(int which) {
    if (flat_[which]) return;
    std::fill(apo_x_[which].begin(), apo_x_[which].end(), 1.0f);
    std::fill(apo_y_[which].begin(), apo_y_[which].end(), 1.0f);
    apo_total_[which] = static_cast<double>(width_) * height_;
    flat_[which] = true;
}

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

// Moments of a window given by its rows (row i at src + i * stride), and how
// to normalize it. An apodized window fades towards its mean, then the mean
// of the result is removed; otherwise the window only loses its mean. Both
// are scaled to unit spread: the outcome is scale-invariant, and the
// cross-power spectrum cannot overflow.
SwimWorkspace::WindowNorm SwimWorkspace::moments(const float* src, std::ptrdiff_t stride, bool apodize,
                                                 int which) const {
    const int w = width_, h = height_;
    const double npix = static_cast<double>(w) * h;
    const float* apo_x = apo_x_[which].data();
    const float* apo_y = apo_y_[which].data();
    double s = 0, ss = 0, sa = 0;
    // Rows of a window inside a wide image start on different pages, where
    // the hardware prefetcher starts over: ask for rows a few ahead.
    const int ahead = 8;  // measured: 6-10 rows do best at 256-1024 px
    for (int i = 0; i < std::min(ahead, h); ++i) prefetch_row(src + i * stride, w);
    for (int i = 0; i < h; ++i) {
        if (i + ahead < h) prefetch_row(src + (i + ahead) * stride, w);
        const kernels::RowSums r = kernels::row_sums(src + i * stride, apo_x, w);
        s += r.sum;
        ss += r.sum_sq;
        sa += r.sum_apo * apo_y[i];
    }
    const double mean = s / npix;
    const double spread = std::sqrt(std::max(0.0, ss / npix - mean * mean));
    WindowNorm norm;
    norm.src = src;
    norm.stride = stride;
    norm.contrast = has_contrast(mean, spread);
    if (!norm.contrast) return norm;
    norm.gray = static_cast<float>(mean);
    norm.offset = apodize ? static_cast<float>((sa - mean * apo_total_[which]) / npix) : 0.0f;
    norm.scale = static_cast<float>(1.0 / spread);
    return norm;
}

SwimResult SwimWorkspace::match(const ImageView& img1, const double p1[2], const ImageView& img2,
                                const double p2[2], const SwimOptions& options) {
    double frac[2][2];
    WindowNorm norms[2];
    const ImageView* imgs[2] = {&img1, &img2};
    const double* pts[2] = {p1, p2};
    const std::size_t npix = static_cast<std::size_t>(width_) * height_;
    for (int k = 0; k < 2; ++k) {
        const ImageView& img = *imgs[k];
        const double x0 = pts[k][0] - width_ / 2.0, y0 = pts[k][1] - height_ / 2.0;
        const double fx0 = std::floor(x0), fy0 = std::floor(y0);
        frac[k][0] = x0 - fx0;
        frac[k][1] = y0 - fy0;
        const bool apodize = k == 0 || options.apodize_both;
        if (apodize)
            shift_apodization(k, frac[k][0], frac[k][1]);
        else
            flat_apodization(k);
        const bool inside = fx0 >= 0 && fy0 >= 0 && fx0 + width_ <= img.cols && fy0 + height_ <= img.rows;
        if (inside) {
            // Read straight from the image: no copy before normalizing.
            const float* src = img.row(static_cast<int>(fy0)) + static_cast<std::ptrdiff_t>(fx0);
            norms[k] = moments(src, img.row_stride, apodize, k);
        } else {
            if (outside_[k].size() != npix) outside_[k].resize(npix);
            const double m = covered_mean(img, x0, y0, width_, height_);
            extract_integer_window(img, static_cast<long long>(fx0), static_cast<long long>(fy0), width_,
                                   height_, std::isnan(m) ? 0.0f : static_cast<float>(m), outside_[k].data());
            norms[k] = moments(outside_[k].data(), width_, apodize, k);
        }
    }
    const bool contrast = norms[0].contrast && norms[1].contrast;
    if (contrast) {
        float* out = reinterpret_cast<float*>(packed_.data());
        // Large windows have left L2 by now: prefetch their rows again.
        const int pack_ahead = 4;
        for (int i = 0; i < height_; ++i) {
            if (i + pack_ahead < height_)
                for (int k = 0; k < 2; ++k) prefetch_row(norms[k].src + (i + pack_ahead) * norms[k].stride, width_);
            kernels::WindowRow rows[2];
            for (int k = 0; k < 2; ++k) {
                const WindowNorm& n = norms[k];
                rows[k] = {n.src + i * n.stride, apo_x_[k].data(), apo_y_[k][static_cast<std::size_t>(i)],
                           n.gray, n.offset, n.scale};
            }
            kernels::row_pack(rows[0], rows[1], out + 2 * static_cast<std::size_t>(i) * width_, width_);
        }
    }
    return correlate(options, frac[0][0] - frac[1][0], frac[0][1] - frac[1][1], contrast);
}

SwimResult SwimWorkspace::correlate(const SwimOptions& options, double offset_x, double offset_y,
                                    bool contrast) {
    const int w = width_, h = height_;
    SwimResult result;
    if (!contrast) {
        result.contrast = false;
        return result;
    }

    c2c_->execute(packed_.data());

    // Whitened cross-power spectrum P = S conj(M) |S conj(M)|^whiten, each
    // row r from rows r and -r of the packed spectrum (taken in pairs, so
    // the partner row is still in cache), and its energy, which by Parseval
    // gives the correlation image's moments without another pass over it.
    const int hw = w / 2 + 1;
    fill_phase_ramp(ramp_x_.data(), w, hw, offset_x);
    fill_phase_ramp(ramp_y_.data(), h, h, offset_y);
    double energy = 0;
    float* const z = reinterpret_cast<float*>(packed_.data());
    // Row r of the cross spectrum: in place over the first hw values of
    // packed row r, or in its own buffer.
    float* const cp = in_place_ ? z : reinterpret_cast<float*>(cross_.data());
    const std::size_t cross_stride = 2 * static_cast<std::size_t>(in_place_ ? w : hw);  // floats
    {
        const float* rx = reinterpret_cast<const float*>(ramp_x_.data());
        const bool even = (w % 2) == 0;
        auto whiten_row = [&](int r, const float* mirrored) {
            float* pr = cp + r * cross_stride;
            const float row_energy =
                kernels::row_whiten_packed(z + 2 * static_cast<std::size_t>(r) * w, mirrored, pr, rx,
                                           ramp_y_[r].real(), ramp_y_[r].imag(), 0.5f * options.whiten, hw,
                                           scratch_.data());
            // Columns 0 and (for even w) w/2 are their own Hermitian partners;
            // every other column stands for two entries of the full spectrum.
            double edge = static_cast<double>(pr[0]) * pr[0] + static_cast<double>(pr[1]) * pr[1];
            if (even && hw > 1) {
                const float* last = pr + 2 * (hw - 1);
                edge += static_cast<double>(last[0]) * last[0] + static_cast<double>(last[1]) * last[1];
            }
            energy += 2.0 * row_energy - edge;
        };
        float* mirrored[2] = {reinterpret_cast<float*>(mirrored_[0].data()),
                              reinterpret_cast<float*>(mirrored_[1].data())};
        for (int r = 0; 2 * r <= h; ++r) {
            // Both partner rows are copied before either row is overwritten
            // (in place, row r's output covers what row -r still needs).
            const int partner = (h - r) % h;
            kernels::row_mirror(z + 2 * static_cast<std::size_t>(partner) * w, mirrored[0], w, hw);
            if (partner != r) kernels::row_mirror(z + 2 * static_cast<std::size_t>(r) * w, mirrored[1], w, hw);
            whiten_row(r, mirrored[0]);
            if (partner != r) whiten_row(partner, mirrored[1]);
        }
    }
    const double mean_c = static_cast<double>(cp[0]);
    const double std_c = std::sqrt(std::max(0.0, energy - mean_c * mean_c));

    // The packed windows are spent: the correlation image goes there (rows
    // 2 * w floats apart when transformed in place).
    float* const corr = z;
    const std::size_t corr_stride = in_place_ ? 2 * static_cast<std::size_t>(w) : static_cast<std::size_t>(w);
    if (in_place_)
        c2r_->execute(packed_.data(), corr);
    else
        c2r_->execute(cross_.data(), corr);

    // Integer peak: first maximum in row-major order, as numpy.argmax.
    // A vectorised max per row, then one scalar scan of the winning row.
    const float* c = corr;
    int best_row = 0;
    float best_value = c[0];
    for (int r = 0; r < h; ++r) {
        const float row_max = kernels::row_max(c + r * corr_stride, w);
        if (row_max > best_value) {
            best_value = row_max;
            best_row = r;
        }
    }
    const float* winning_row = c + best_row * corr_stride;
    int px = 0;
    while (winning_row[px] != best_value) ++px;
    int py = best_row;
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
            const double v = c[static_cast<std::size_t>(yy) * corr_stride + static_cast<std::size_t>(xx)];
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
        const SwimResult r = ws.match(img1, out.p1, img2, out.p2, params.swim);
        out.iterations.push_back(r);
        out.p1[0] -= r.dx / 2;
        out.p1[1] -= r.dy / 2;
        out.p2[0] += r.dx / 2;
        out.p2[1] += r.dy / 2;
        if (params.tolerance > 0 && r.dx * r.dx + r.dy * r.dy < tol2) break;
    }
    return out;
}

WorkspacePool::WorkspacePool(std::size_t max_kept) : max_kept_(max_kept) {}

std::unique_ptr<SwimWorkspace> WorkspacePool::acquire(int width, int height) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto it = idle_.begin(); it != idle_.end(); ++it) {
            if ((*it)->width() == width && (*it)->height() == height) {
                std::unique_ptr<SwimWorkspace> ws = std::move(*it);
                idle_.erase(it);
                return ws;
            }
        }
    }
    return std::make_unique<SwimWorkspace>(width, height);
}

void WorkspacePool::release(std::unique_ptr<SwimWorkspace> ws) {
    if (!ws) return;
    std::lock_guard<std::mutex> lock(mutex_);
    // Keep one window size only: a new size makes the old ones dead weight.
    if (!idle_.empty() && (idle_.front()->width() != ws->width() || idle_.front()->height() != ws->height()))
        idle_.clear();
    if (idle_.size() < max_kept_) idle_.push_back(std::move(ws));
}

int resolve_threads(int threads) {
    if (threads < 0) throw std::invalid_argument("threads must be >= 0 (0 means all cores)");
    if (threads > 0) return threads;
    const unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(hc);
}

void refine_many(const ImageView& img1, const ImageView& img2, const double* P1, const double* P2,
                 std::size_t n, const RefineParams& params, int threads, const RefineManyOutput& out,
                 WorkspacePool* pool) {
    check_refine_params(img1, img2, params);
    for (std::size_t k = 0; k < n; ++k) {
        check_refine_point(img1, P1 + 2 * k, params, "point 1", k);
        check_refine_point(img2, P2 + 2 * k, params, "point 2", k);
    }
    // Each worker's workspace goes back to the pool when the worker is done.
    struct Lease {
        WorkspacePool* pool;
        std::unique_ptr<SwimWorkspace> ws;
        ~Lease() {
            if (pool && ws) pool->release(std::move(ws));
        }
    };
    parallel_for(
        n, threads,
        [&]() {
            return Lease{pool, pool ? pool->acquire(params.width, params.height)
                                    : std::make_unique<SwimWorkspace>(params.width, params.height)};
        },
        [&](Lease& lease, std::size_t k) {
            const RefineResult r = refine(img1, img2, P1 + 2 * k, P2 + 2 * k, params, *lease.ws);
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
        });
}

}  // namespace spectralign_fast

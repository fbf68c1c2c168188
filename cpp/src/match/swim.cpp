#include "spectralign_fast/match/swim.hpp"

#include "core/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "core/team.hpp"
#include "spectralign_fast/core/interrupt.hpp"
#include "match/swim_kernels.hpp"
#include "spectralign_fast/fft/spectral.hpp"

namespace spectralign_fast {

namespace {

void prefetch_row(const float* row, int n) {
    for (int j = 0; j < n; j += 16) kernels::prefetch_line<0>(row + j);
    kernels::prefetch_line<0>(row + n - 1);
}

// The fused path from 192 x 192 px on. Measured here (1 thread, per pair):
// within 5% of the 2-D path up to 176 px either way (15% slower at 160 px,
// probably where FFTW's 1-D plans do less well), and faster from 192 px on: 10% at
// 192-256 px, 25% at 384-512 px, 30% at 768-1024 px, where each pass of
// FFTW's 2-D transforms over the whole window leaves the caches.
std::atomic<long long> g_fused_min_pixels{192LL * 192};

// Teams of two threads per pair (refine_many, threads >= 2) from 640 x 640
// px on. Measured here side by side (2-thread time per pair): 5-10% slower
// at 256-512 px, even at 576-640 px, 4% faster at 704 px, 11% at 768 px and
// 12% at 1024 px, where two pairs' workspaces side by side no longer share
// the L3 cache well.
std::atomic<long long> g_team_min_pixels{640LL * 640};

// A team splits up when its leader waited for the helper more than this
// share of a pair's time, two pairs in a row (normally a few percent).
std::atomic<double> g_team_wait_limit{0.2};

bool use_fused(int width, int height) {
    return static_cast<long long>(width) * height >= g_fused_min_pixels.load(std::memory_order_relaxed);
}

constexpr int pack_ahead = 4;  // rows of prefetch while packing

// Columns of the fused workspace start on a cache line, and their stride is
// not a large power of two, so that the columns of a block do not crowd into
// a few cache sets.
std::size_t padded_stride(int n) { return (static_cast<std::size_t>(n) + 7) / 8 * 8 + 8; }

}  // namespace

#ifdef SPECTRALIGN_DEV_TOOLS
long long set_team_min_pixels(long long pixels) {
    if (pixels < 0) throw std::invalid_argument("the team mode's minimum window size must be >= 0 pixels");
    return g_team_min_pixels.exchange(pixels);
}

double set_team_wait_limit(double fraction) {
    if (!(fraction <= 1.0)) throw std::invalid_argument("the team wait limit must be a number <= 1");
    return g_team_wait_limit.exchange(fraction);
}

long long set_fused_min_pixels(long long pixels) {
    if (pixels < 0) throw std::invalid_argument("the fused path's minimum window size must be >= 0 pixels");
    return g_fused_min_pixels.exchange(pixels);
}
#endif  // SPECTRALIGN_DEV_TOOLS

SwimWorkspace::SwimWorkspace(int width, int height, int lanes)
    : width_(width),
      height_(height),
      fused_(use_fused(width, height)),
      column_stride_(padded_stride(height)),
      spectra_stride_((static_cast<std::size_t>(width) + 7) / 8 * 8),
      block_(std::min(max_block, width / 2 + 1)),
      packed_(fused_ ? column_stride_ * (static_cast<std::size_t>(width) + 1)
                     : static_cast<std::size_t>(width) * height),
      cross_(fused_ ? 0 : static_cast<std::size_t>(height) * (width / 2 + 1)),
      lanes_(static_cast<std::size_t>(fused_ ? std::max(1, lanes) : 1)),
      ramp_x_(static_cast<std::size_t>(width / 2 + 1)),
      ramp_y_(static_cast<std::size_t>(height)),
      scratch_(static_cast<std::size_t>(width / 2 + 1)) {
    for (int k = 0; k < 2; ++k) {
        row_sums_[k].resize(3 * static_cast<std::size_t>(height));
        apo_x_[k].resize(static_cast<std::size_t>(width));
        apo_y_[k].resize(static_cast<std::size_t>(height));
    }
    if (!fused_) {
        c2c_ = &C2CPlan::get(height, width);
        c2r_ = &C2RPlan::get(height, width);
        for (int k = 0; k < 2; ++k) mirrored_[k].resize(static_cast<std::size_t>(width / 2 + 1));
        return;
    }
    const int hw = width / 2 + 1;
    blocks_ = (hw + block_ - 1) / block_;
    last_block_columns_ = hw - (blocks_ - 1) * block_;
    const int cs = static_cast<int>(column_stride_);
    row_fft_ = &C2CPlan::get_many(width, 1, width, FFTW_FORWARD);
    column_fft_ = &C2CPlan::get_many(height, block_, cs, FFTW_FORWARD);
    column_ifft_ = &C2CPlan::get_many(height, block_, cs, FFTW_BACKWARD);
    last_column_fft_ = &C2CPlan::get_many(height, last_block_columns_, cs, FFTW_FORWARD);
    last_column_ifft_ = &C2CPlan::get_many(height, last_block_columns_, cs, FFTW_BACKWARD);
    row_c2r_ = &C2RPlan::get(std::vector<int>{width});
    for (Lane& lane : lanes_) {
        lane.row_buffer.resize(static_cast<std::size_t>(width));
        lane.real_row.resize(static_cast<std::size_t>(width));
        lane.row_spectra.resize(static_cast<std::size_t>(group_) * spectra_stride_);
        lane.block_spectrum.resize(column_stride_ * block_);
        lane.partner_spectrum.resize(column_stride_ * block_);
        lane.column_mirror.resize(static_cast<std::size_t>(height));
        lane.column_scratch.resize(static_cast<std::size_t>(height));
    }
    column_energy_.resize(static_cast<std::size_t>(hw));
    row_max_.resize(static_cast<std::size_t>(height));
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

// Moments of a window's rows (row i at src + i * stride), kept per row.
void SwimWorkspace::moment_rows(int which, const float* src, std::ptrdiff_t stride, int first, int last) {
    const int w = width_;
    const float* apo_x = apo_x_[which].data();
    double* sums = row_sums_[which].data();
    // Rows of a window inside a wide image start on different pages, where
    // the hardware prefetcher starts over: ask for rows a few ahead.
    const int ahead = 8;  // measured: 6-10 rows do best at 256-1024 px
    if (first == 0)
        for (int i = 0; i < std::min(ahead, height_); ++i) prefetch_row(src + i * stride, w);
    for (int i = first; i < last; ++i) {
        if (i + ahead < height_) prefetch_row(src + (i + ahead) * stride, w);
        const kernels::RowSums r = kernels::row_sums(src + i * stride, apo_x, w);
        sums[3 * i] = r.sum;
        sums[3 * i + 1] = r.sum_sq;
        sums[3 * i + 2] = r.sum_apo;
    }
}

// How to normalize a window, from its rows' moments. An apodized window
// fades towards its mean, then the mean of the result is removed; otherwise
// the window only loses its mean. Both are scaled to unit spread: the
// outcome is scale-invariant, and the cross-power spectrum cannot overflow.
SwimWorkspace::WindowNorm SwimWorkspace::normalization(int which, const float* src, std::ptrdiff_t stride,
                                                      bool apodize) const {
    const int h = height_;
    const double npix = static_cast<double>(width_) * h;
    const float* apo_y = apo_y_[which].data();
    const double* sums = row_sums_[which].data();
    double s = 0, ss = 0, sa = 0;
    for (int i = 0; i < h; ++i) {
        s += sums[3 * i];
        ss += sums[3 * i + 1];
        sa += sums[3 * i + 2] * apo_y[i];
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

// Large windows have left L2 by the time they are packed: their rows are
// asked for again a few rows ahead.
void SwimWorkspace::prefetch_window_rows(const WindowNorm* norms, int i) const {
    if (i >= height_) return;
    for (int k = 0; k < 2; ++k) prefetch_row(norms[k].src + i * norms[k].stride, width_);
}

void SwimWorkspace::window_rows(const WindowNorm* norms, int i, kernels::WindowRow* rows) const {
    for (int k = 0; k < 2; ++k) {
        const WindowNorm& n = norms[k];
        rows[k] = {n.src + i * n.stride, apo_x_[k].data(), apo_y_[k][static_cast<std::size_t>(i)], n.gray, n.offset,
                   n.scale};
    }
}

namespace {

// Runs task(lane, item) for every item: over the team if there is one.
void run_items(Team* team, int items, const std::function<void(int, int)>& task) {
    if (team != nullptr) {
        team->run(items, task);
    } else {
        for (int item = 0; item < items; ++item) {
            check_interrupt();
            task(0, item);
        }
    }
}

constexpr int moment_chunk = 32;  // window rows per item of the moments step

}  // namespace

SwimResult SwimWorkspace::match(const ImageView& img1, const double p1[2], const ImageView& img2,
                                const double p2[2], const SwimOptions& options, Team* team) {
    if (!fused_) team = nullptr;  // the 2-D path runs on one thread
    if (team != nullptr && team->size() > lanes())
        throw std::invalid_argument("a team larger than the workspace's lanes");
    double frac[2][2];
    WindowNorm norms[2];
    const float* src[2];
    std::ptrdiff_t stride[2];
    bool apodize[2];
    const ImageView* imgs[2] = {&img1, &img2};
    const double* pts[2] = {p1, p2};
    const std::size_t npix = static_cast<std::size_t>(width_) * height_;
    for (int k = 0; k < 2; ++k) {
        const ImageView& img = *imgs[k];
        const double x0 = pts[k][0] - width_ / 2.0, y0 = pts[k][1] - height_ / 2.0;
        const double fx0 = std::floor(x0), fy0 = std::floor(y0);
        frac[k][0] = x0 - fx0;
        frac[k][1] = y0 - fy0;
        apodize[k] = k == 0 || options.apodize_both;
        if (apodize[k])
            shift_apodization(k, frac[k][0], frac[k][1]);
        else
            flat_apodization(k);
        const bool inside = fx0 >= 0 && fy0 >= 0 && fx0 + width_ <= img.cols && fy0 + height_ <= img.rows;
        if (inside) {
            // Read straight from the image: no copy before normalizing.
            src[k] = img.row(static_cast<int>(fy0)) + static_cast<std::ptrdiff_t>(fx0);
            stride[k] = img.row_stride;
        } else {
            if (outside_[k].size() != npix) outside_[k].resize(npix);
            const double m = covered_mean(img, x0, y0, width_, height_);
            extract_integer_window(img, static_cast<long long>(fx0), static_cast<long long>(fy0), width_,
                                   height_, std::isnan(m) ? 0.0f : static_cast<float>(m), outside_[k].data());
            src[k] = outside_[k].data();
            stride[k] = width_;
        }
    }
    const int chunks = (height_ + moment_chunk - 1) / moment_chunk;
    run_items(team, 2 * chunks, [&](int, int item) {
        const int k = item / chunks, first = (item % chunks) * moment_chunk;
        moment_rows(k, src[k], stride[k], first, std::min(height_, first + moment_chunk));
    });
    for (int k = 0; k < 2; ++k) norms[k] = normalization(k, src[k], stride[k], apodize[k]);
    const bool contrast = norms[0].contrast && norms[1].contrast;
    if (!contrast) {
        SwimResult none;
        none.contrast = false;
        return none;
    }
    const double offset_x = frac[0][0] - frac[1][0], offset_y = frac[0][1] - frac[1][1];
    if (fused_) {
        pack_fused(norms, team);
        return correlate_fused(options, offset_x, offset_y, team);
    }
    for (int i = 0; i < height_; ++i) {
        prefetch_window_rows(norms, i + pack_ahead);
        kernels::WindowRow rows[2];
        window_rows(norms, i, rows);
        float* packed_row = reinterpret_cast<float*>(packed_.data() + static_cast<std::size_t>(i) * width_);
        kernels::row_pack(rows[0], rows[1], packed_row, width_);
    }
    return correlate(options, offset_x, offset_y);
}

SwimResult SwimWorkspace::correlate(const SwimOptions& options, double offset_x, double offset_y) {
    const int w = width_, h = height_;
    c2c_->execute(packed_.data());

    // Whitened cross-power spectrum P = S conj(M) |S conj(M)|^whiten, each
    // row r from rows r and -r of the packed spectrum (taken in pairs, so
    // the partner row is still in cache), and its energy, which by Parseval
    // gives the correlation image's moments without another pass over it.
    const int hw = w / 2 + 1;
    spectral::phase_ramp(ramp_x_.data(), w, hw, offset_x, 1.0, spectral::RampEvaluation::rotation);
    spectral::phase_ramp(ramp_y_.data(), h, h, offset_y, 1.0, spectral::RampEvaluation::rotation);
    double energy = 0;
    float* const z = reinterpret_cast<float*>(packed_.data());
    float* const cp = reinterpret_cast<float*>(cross_.data());
    const std::size_t cross_stride = 2 * static_cast<std::size_t>(hw);  // floats
    {
        const float* rx = reinterpret_cast<const float*>(ramp_x_.data());
        const bool even = (w % 2) == 0;
        auto whiten_row = [&](int r, const float* mirrored) {
            float* pr = cp + r * cross_stride;
            const float row_energy =
                spectral::whiten_packed(z + 2 * static_cast<std::size_t>(r) * w, mirrored, pr, rx,
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
            const int partner = (h - r) % h;
            kernels::row_mirror(z + 2 * static_cast<std::size_t>(partner) * w, mirrored[0], w, hw);
            if (partner != r) kernels::row_mirror(z + 2 * static_cast<std::size_t>(r) * w, mirrored[1], w, hw);
            whiten_row(r, mirrored[0]);
            if (partner != r) whiten_row(partner, mirrored[1]);
        }
    }
    const double mean_c = static_cast<double>(cp[0]);
    const double std_c = std::sqrt(std::max(0.0, energy - mean_c * mean_c));

    // The packed windows are spent: the correlation image goes there.
    float* const corr = z;
    const std::size_t corr_stride = static_cast<std::size_t>(w);
    c2r_->execute(cross_.data(), corr);

    // Integer peak: first maximum in row-major order, as numpy.argmax.
    // A vectorised max per row, then one scalar scan of the winning row.
    int best_row = 0;
    float best_value = corr[0];
    for (int r = 0; r < h; ++r) {
        const float row_max = kernels::row_max(corr + r * corr_stride, w);
        if (row_max > best_value) {
            best_value = row_max;
            best_row = r;
        }
    }
    const int rad = options.peak_radius;
    neighbour_rows_.resize(static_cast<std::size_t>(2 * rad + 1));
    for (int i = 0; i <= 2 * rad; ++i)
        neighbour_rows_[static_cast<std::size_t>(i)] = corr + ((best_row - rad + i) % h + h) % h * corr_stride;
    return peak(neighbour_rows_.data(), best_row, best_value, mean_c, std_c, options);
}

void SwimWorkspace::pack_fused(const WindowNorm* norms, Team* team) {
    const int w = width_, h = height_;
    const std::size_t cs = column_stride_;
    std::complex<float>* const columns = packed_.data();
    // Eight rows at a time: packed, transformed while in L1/L2, and stored
    // transposed (column k of the spectrum at columns + k * cs), so that
    // each row group fills whole cache lines, one per column.
    run_items(team, (h + group_ - 1) / group_, [&](int lane_index, int group) {
        Lane& lane = lanes_[static_cast<std::size_t>(lane_index)];
        const int i0 = group * group_, rows_here = std::min(group_, h - i0);
        for (int g = 0; g < rows_here; ++g) {
            const int i = i0 + g;
            prefetch_window_rows(norms, i + pack_ahead);
            kernels::WindowRow rows[2];
            window_rows(norms, i, rows);
            kernels::row_pack(rows[0], rows[1], reinterpret_cast<float*>(lane.row_buffer.data()), w);
            row_fft_->execute(lane.row_buffer.data(),
                              lane.row_spectra.data() + static_cast<std::size_t>(g) * spectra_stride_);
        }
        kernels::transpose_rows(lane.row_spectra.data(), spectra_stride_, rows_here, w, columns + i0, cs);
    });
    // Column w repeats column 0 (its own partner), so that the partners of
    // every block of columns are one run.
    std::copy(columns, columns + h, columns + static_cast<std::size_t>(w) * cs);
}

// Block b of columns k0 .. k0+n-1 and their partners -k (the run w-k0-n+1 ..
// w-k0, in reverse): transform both, whiten (which needs both), transform
// back over the block's own columns. Partners lie past w/2 (w/2 itself is
// the last block's own), so no block writes over another's partners, and
// blocks may run at the same time.
void SwimWorkspace::column_block(int lane_index, int block, float half_exponent) {
    Lane& lane = lanes_[static_cast<std::size_t>(lane_index)];
    const int w = width_, h = height_;
    const std::size_t cs = column_stride_;
    const int k0 = block * block_;
    const bool last = block == blocks_ - 1;
    const int n = last ? last_block_columns_ : block_;
    const C2CPlan& forward = last ? *last_column_fft_ : *column_fft_;
    const C2CPlan& inverse = last ? *last_column_ifft_ : *column_ifft_;
    std::complex<float>* const columns = packed_.data();
    std::complex<float>* const spectrum = lane.block_spectrum.data();
    std::complex<float>* const partners = lane.partner_spectrum.data();
    float* const mirror = reinterpret_cast<float*>(lane.column_mirror.data());
    const float* const ry = reinterpret_cast<const float*>(ramp_y_.data());
    const bool even = (w % 2) == 0;
    forward.execute(columns + static_cast<std::size_t>(k0) * cs, spectrum);
    forward.execute(columns + static_cast<std::size_t>(w - k0 - n + 1) * cs, partners);
    for (int b = 0; b < n; ++b) {
        const int k = k0 + b;
        float* u = reinterpret_cast<float*>(spectrum + b * cs);
        kernels::row_mirror(reinterpret_cast<const float*>(partners + (n - 1 - b) * cs), mirror, h, h);
        const std::complex<float> rx = ramp_x_[static_cast<std::size_t>(k)];
        const double energy = spectral::whiten_packed(u, mirror, u, ry, rx.real(), rx.imag(), half_exponent, h,
                                                      lane.column_scratch.data());
        // Columns 0 and (for even w) w/2 are their own Hermitian partners;
        // every other column stands for two columns of the full spectrum.
        column_energy_[static_cast<std::size_t>(k)] = (k == 0 || (even && 2 * k == w)) ? energy : 2.0 * energy;
    }
    if (k0 == 0) dc_ = spectrum[0].real();
    inverse.execute(spectrum, columns + static_cast<std::size_t>(k0) * cs);
}

SwimResult SwimWorkspace::correlate_fused(const SwimOptions& options, double offset_x, double offset_y,
                                          Team* team) {
    const int w = width_, h = height_, hw = w / 2 + 1;
    const std::size_t cs = column_stride_;
    std::complex<float>* const columns = packed_.data();
    spectral::phase_ramp(ramp_x_.data(), w, hw, offset_x, 1.0, spectral::RampEvaluation::rotation);
    spectral::phase_ramp(ramp_y_.data(), h, h, offset_y, 1.0, spectral::RampEvaluation::rotation);

    const float half_exponent = 0.5f * options.whiten;
    run_items(team, blocks_, [&](int lane, int block) { column_block(lane, block, half_exponent); });
    double energy = 0;
    for (int k = 0; k < hw; ++k) energy += column_energy_[static_cast<std::size_t>(k)];
    const double mean_c = dc_;
    const double std_c = std::sqrt(std::max(0.0, energy - mean_c * mean_c));

    // Rows back to real values, eight at a time (whole cache lines of the
    // transposed half spectrum), each row's maximum taken while in cache.
    // Nothing is kept: the few rows around the peak are made again below.
    run_items(team, (h + group_ - 1) / group_, [&](int lane_index, int group) {
        Lane& lane = lanes_[static_cast<std::size_t>(lane_index)];
        const int r0 = group * group_, rows_here = std::min(group_, h - r0);
        kernels::transpose_columns(columns + r0, cs, hw, rows_here, lane.row_spectra.data(), spectra_stride_);
        for (int g = 0; g < rows_here; ++g) {
            row_c2r_->execute(lane.row_spectra.data() + static_cast<std::size_t>(g) * spectra_stride_,
                              lane.real_row.data());
            row_max_[static_cast<std::size_t>(r0 + g)] = kernels::row_max(lane.real_row.data(), w);
        }
    });
    int best_row = 0;
    float best_value = row_max_[0];
    for (int r = 1; r < h; ++r) {
        if (row_max_[static_cast<std::size_t>(r)] > best_value) {
            best_value = row_max_[static_cast<std::size_t>(r)];
            best_row = r;
        }
    }
    const int rad = options.peak_radius, side = 2 * rad + 1;
    neighbourhood_.resize(static_cast<std::size_t>(side) * w);
    neighbour_rows_.resize(static_cast<std::size_t>(side));
    const float** rows = neighbour_rows_.data();
    Lane& lane = lanes_[0];
    for (int i = 0; i < side; ++i) {
        const int r = ((best_row - rad + i) % h + h) % h;
        kernels::transpose_columns(columns + r, cs, hw, 1, lane.row_spectra.data(), spectra_stride_);
        float* out = neighbourhood_.data() + static_cast<std::size_t>(i) * w;
        row_c2r_->execute(lane.row_spectra.data(), lane.real_row.data());
        std::copy(lane.real_row.data(), lane.real_row.data() + w, out);
        rows[i] = out;
    }
    return peak(rows, best_row, best_value, mean_c, std_c, options);
}

SwimResult SwimWorkspace::peak(const float* const* rows, int best_row, float best_value, double mean_c,
                               double std_c, const SwimOptions& options) const {
    const int w = width_, h = height_;
    SwimResult result;
    // First maximum of the winning row, as numpy.argmax.
    const float* winning_row = rows[options.peak_radius];
    const float row_best = kernels::row_max(winning_row, w);
    int px = 0;
    while (px + 1 < w && !(winning_row[px] == row_best)) ++px;
    int py = best_row;
    if (px >= w / 2.0) px -= w;
    if (py >= h / 2.0) py -= h;

    // Centre of mass of the peak neighbourhood (cyclic), after subtracting
    // its mean and clipping negative values.
    const int rad = options.peak_radius, side = 2 * rad + 1;
    std::vector<double> win(static_cast<std::size_t>(side) * side);
    double win_sum = 0;
    for (int i = 0; i < side; ++i) {
        for (int j = 0; j < side; ++j) {
            const int xx = ((px - rad + j) % w + w) % w;
            const double v = rows[i][xx];
            win[static_cast<std::size_t>(i) * side + j] = v;
            win_sum += v;
        }
    }
    const double win_mean = win_sum / static_cast<double>(win.size());
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
    // 2 * rad + 1 below must not overflow; no window side reaches this anyway.
    if (rad > (1 << 24)) throw std::invalid_argument("peak radius is too large (at most 2^24)");
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
                    const double p2[2], const RefineParams& params, SwimWorkspace& ws, Team* team) {
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
        check_interrupt();
        const SwimResult r = ws.match(img1, out.p1, img2, out.p2, params.swim, team);
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

std::unique_ptr<SwimWorkspace> WorkspacePool::acquire(int width, int height, int lanes) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto it = idle_.begin(); it != idle_.end(); ++it) {
            const SwimWorkspace& candidate = **it;
            if (candidate.width() == width && candidate.height() == height &&
                (candidate.lanes() >= lanes || !candidate.fused())) {
                std::unique_ptr<SwimWorkspace> ws = std::move(*it);
                idle_.erase(it);
                return ws;
            }
        }
    }
    return std::make_unique<SwimWorkspace>(width, height, lanes);
}

void WorkspacePool::release(std::unique_ptr<SwimWorkspace> ws) {
    if (!ws) return;
    std::lock_guard<std::mutex> lock(mutex_);
    // Keep one window size only: a new size makes the old ones dead weight.
    if (!idle_.empty() && (idle_.front()->width() != ws->width() || idle_.front()->height() != ws->height()))
        idle_.clear();
    if (idle_.size() < max_kept_) idle_.push_back(std::move(ws));
}

void refine_many(const ImageView& img1, const ImageView& img2, const double* P1, const double* P2,
                 std::size_t n, const RefineParams& params, int threads, const RefineManyOutput& out,
                 WorkspacePool* pool) {
    check_refine_params(img1, img2, params);
    for (std::size_t k = 0; k < n; ++k) {
        check_refine_point(img1, P1 + 2 * k, params, "point 1", k);
        check_refine_point(img2, P2 + 2 * k, params, "point 2", k);
    }
    auto acquire = [&](int lanes) {
        return pool ? pool->acquire(params.width, params.height, lanes)
                    : std::make_unique<SwimWorkspace>(params.width, params.height, lanes);
    };
    auto refine_pair = [&](SwimWorkspace& ws, Team* team, std::size_t k) {
        const RefineResult r = refine(img1, img2, P1 + 2 * k, P2 + 2 * k, params, ws, team);
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
    };
    // Each worker's workspace goes back to the pool when the worker is done
    // (after its team's helper has stopped).
    struct Lease {
        WorkspacePool* pool;
        std::unique_ptr<SwimWorkspace> ws;
        std::unique_ptr<Team> team;
        Lease(WorkspacePool* p, std::unique_ptr<SwimWorkspace> w, std::unique_ptr<Team> t)
            : pool(p), ws(std::move(w)), team(std::move(t)) {}
        Lease(Lease&&) = default;
        ~Lease() {
            team.reset();
            if (pool && ws) pool->release(std::move(ws));
        }
    };

    // Large windows: teams of two threads, each team on one pair at a time
    // (its workspace shared), rather than every thread on its own pair. The
    // first workspace tells whether this size takes the fused path (a pool
    // may keep workspaces made under another setting).
    const int nthreads = resolve_threads(threads);
    const bool large = static_cast<long long>(params.width) * params.height >=
                       g_team_min_pixels.load(std::memory_order_relaxed);
    const int team_size = nthreads >= 2 && large ? 2 : 1;
    std::unique_ptr<SwimWorkspace> first = n > 0 ? acquire(team_size) : nullptr;
    const bool teams = team_size > 1 && first && first->fused() && first->lanes() >= team_size;
    std::mutex first_mutex;
    auto workspace = [&]() {  // the first one, then more from the pool
        std::unique_ptr<SwimWorkspace> ws;
        {
            std::lock_guard<std::mutex> lock(first_mutex);
            ws = std::move(first);
        }
        return ws ? std::move(ws) : acquire(teams ? team_size : 1);
    };
    if (!teams) {
        parallel_for(
            n, nthreads, [&]() { return Lease(pool, workspace(), nullptr); },
            [&](Lease& lease, std::size_t k) { refine_pair(*lease.ws, nullptr, k); });
        return;
    }
    // Results are the same to the last bit with or without a team, so a
    // team whose helper the machine keeps pausing (the leader waits for it
    // at every step) splits up: its two threads take the remaining pairs
    // one each.
    const double wait_limit = g_team_wait_limit.load(std::memory_order_relaxed);
    std::atomic<std::size_t> next{0};
    const std::size_t teams_count =
        std::min<std::size_t>(n, static_cast<std::size_t>(std::max(1, nthreads / team_size)));
    parallel_for(
        teams_count, static_cast<int>(teams_count),
        [&]() { return Lease(pool, workspace(), std::make_unique<Team>(team_size)); },
        [&](Lease& lease, std::size_t) {
            Team& team = *lease.team;
            int slow_pairs = 0;
            for (std::size_t k = next++; k < n; k = next++) {
                const auto start = std::chrono::steady_clock::now();
                team.reset_waited();
                refine_pair(*lease.ws, &team, k);
                const double spent =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                slow_pairs = team.waited() > wait_limit * spent ? slow_pairs + 1 : 0;
                if (slow_pairs < 2) continue;
                team.run_each([&](int member) {
                    if (member == 0) {
                        for (std::size_t j = next++; j < n; j = next++) refine_pair(*lease.ws, nullptr, j);
                        return;
                    }
                    Lease own(pool, acquire(1), nullptr);
                    for (std::size_t j = next++; j < n; j = next++) refine_pair(*own.ws, nullptr, j);
                });
                break;
            }
        });
}

}  // namespace spectralign_fast

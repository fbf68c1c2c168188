#include "spectralign_fast/stackreg/zshift.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/parallel.hpp"
#include "spectralign_fast/fft/fft.hpp"
#include "spectralign_fast/fft/spectral.hpp"

namespace spectralign_fast {

namespace {

constexpr double kPi = 3.14159265358979323846;

std::vector<float> raised_cosine(int rows, int cols, float fraction) {
    auto edge = [&](int n) {
        std::vector<double> v(static_cast<std::size_t>(n), 1.0);
        const int ramp = std::max(1, static_cast<int>(std::lround(fraction * n)));
        for (int i = 0; i < n; ++i) {
            const int d = std::min(i, n - 1 - i);
            if (d < ramp) v[static_cast<std::size_t>(i)] = 0.5 - 0.5 * std::cos(kPi * (d + 0.5) / ramp);
        }
        return v;
    };
    const auto wy = edge(rows), wx = edge(cols);
    std::vector<float> w(static_cast<std::size_t>(rows) * cols);
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c)
            w[static_cast<std::size_t>(r) * cols + c] = static_cast<float>(wy[r] * wx[c]);
    return w;
}

// (x - mean) / std * window into out; false for a constant or non-finite image (out untouched).
bool normalised(const float* x, const float* window, float* out, std::size_t n, bool& finite) {
    double s = 0, ss = 0;
    finite = true;
    for (std::size_t k = 0; k < n; ++k) {
        const double v = x[k];
        if (!std::isfinite(v)) {
            finite = false;
            return false;
        }
        s += v;
        ss += v * v;
    }
    const double mean = s / static_cast<double>(n);
    const double var = ss / static_cast<double>(n) - mean * mean;
    if (!(var > 1e-20 * std::max(1.0, mean * mean))) return false;
    const float m = static_cast<float>(mean), scale = static_cast<float>(1.0 / std::sqrt(var));
    for (std::size_t k = 0; k < n; ++k) out[k] = (x[k] - m) * scale * window[k];
    return true;
}

struct Workspace {
    RealBuffer tile, real;
    ComplexBuffer frame, product;
    RealBuffer scratch;
    Workspace(std::size_t npix, std::size_t ppix, std::size_t nspec)
        : tile(npix), real(ppix), frame(nspec), product(nspec), scratch(nspec) {}
};

}  // namespace

ZStackReference::ZStackReference(const float* planes, int nplanes, int rows, int cols, ZStackOptions options)
    : nplanes_(nplanes), rows_(rows), cols_(cols), options_(std::move(options)) {
    if (nplanes < 2) throw std::invalid_argument("a reference z-stack needs at least 2 planes");
    if (rows < 8 || cols < 8) throw std::invalid_argument("frames must be at least 8 x 8 pixels");
    if (!(options_.whiten >= -1.0f && options_.whiten <= 0.0f))
        throw std::invalid_argument("whiten must lie in [-1, 0]");
    if (!(options_.taper >= 0.0f && options_.taper <= 0.5f))
        throw std::invalid_argument("taper must lie in [0, 0.5]");
    if (options_.max_shift.empty()) options_.max_shift = {rows / 4, cols / 4};
    if (options_.max_shift.size() != 2 || options_.max_shift[0] < 0 || options_.max_shift[1] < 0)
        throw std::invalid_argument("max_shift must be two non-negative integers (rows, cols)");
    window_ = raised_cosine(rows, cols, options_.taper);
    // Zero-padded to FFT-friendly sizes (FFTW is several times slower on a large prime factor);
    // the taper makes the padding seamless.
    prows_ = spectral::next_fast_size(rows);
    pcols_ = spectral::next_fast_size(cols);
    const std::size_t npix = static_cast<std::size_t>(rows) * cols;
    const std::size_t nspec = static_cast<std::size_t>(prows_) * (pcols_ / 2 + 1);
    spectra_.assign(static_cast<std::size_t>(nplanes) * nspec * 2, 0.0f);
    const R2CPlan& r2c = R2CPlan::get(prows_, pcols_);
    RealBuffer tile(npix), real(static_cast<std::size_t>(prows_) * pcols_);
    ComplexBuffer spec(nspec);
    for (int z = 0; z < nplanes; ++z) {
        bool finite = true;
        if (!normalised(planes + static_cast<std::size_t>(z) * npix, window_.data(), tile.data(), npix, finite))
            throw std::invalid_argument("reference plane " + std::to_string(z) +
                                        (finite ? " is constant" : " has NaN or inf values"));
        pad(tile.data(), real.data());
        r2c.execute(real.data(), spec.data());
        float* dst = spectra_.data() + static_cast<std::size_t>(z) * nspec * 2;
        for (std::size_t k = 0; k < nspec; ++k) {
            dst[2 * k] = spec[k].real();
            dst[2 * k + 1] = -spec[k].imag();  // conj(R): cross_power wants it so
        }
    }
}

void ZStackReference::pad(const float* tile, float* padded) const {
    std::fill(padded, padded + static_cast<std::size_t>(prows_) * pcols_, 0.0f);
    for (int r = 0; r < rows_; ++r)
        std::copy(tile + static_cast<std::size_t>(r) * cols_, tile + static_cast<std::size_t>(r + 1) * cols_,
                  padded + static_cast<std::size_t>(r) * pcols_);
}

void ZStackReference::correlate(const float* frames, std::size_t nframes, int threads, float* corr) const {
    const std::size_t npix = static_cast<std::size_t>(rows_) * cols_;
    const std::size_t ppix = static_cast<std::size_t>(prows_) * pcols_;
    const std::size_t nspec = static_cast<std::size_t>(prows_) * (pcols_ / 2 + 1);
    const R2CPlan& r2c = R2CPlan::get(prows_, pcols_);
    const C2RPlan& c2r = C2RPlan::get(prows_, pcols_);
    const float half = options_.whiten / 2.0f;
    const int sy = std::min(options_.max_shift[0], rows_ / 2), sx = std::min(options_.max_shift[1], cols_ / 2);
    // With phase correlation a perfect match peaks at 1 after dividing by the transform size.
    const float norm = 1.0f / static_cast<float>(ppix);
    parallel_for(
        nframes, threads, [&] { return Workspace(npix, ppix, nspec); },
        [&](Workspace& ws, std::size_t k) {
            float* out = corr + k * static_cast<std::size_t>(nplanes_);
            bool finite = true;
            if (!normalised(frames + k * npix, window_.data(), ws.tile.data(), npix, finite)) {
                std::fill(out, out + nplanes_, finite ? 0.0f : std::numeric_limits<float>::quiet_NaN());
                return;
            }
            pad(ws.tile.data(), ws.real.data());
            r2c.execute(ws.real.data(), ws.frame.data());
            for (int z = 0; z < nplanes_; ++z) {
                const float* ref = spectra_.data() + static_cast<std::size_t>(z) * nspec * 2;
                spectral::cross_power(reinterpret_cast<const float*>(ws.frame.data()), ref,
                                      reinterpret_cast<float*>(ws.product.data()), nullptr, half, nspec,
                                      ws.scratch.data());
                c2r.execute(ws.product.data(), ws.real.data());
                float best = -std::numeric_limits<float>::infinity();
                for (int dy = -sy; dy <= sy; ++dy) {
                    const float* row = ws.real.data() + static_cast<std::size_t>((dy + prows_) % prows_) * pcols_;
                    for (int dx = -sx; dx <= sx; ++dx) best = std::max(best, row[(dx + pcols_) % pcols_]);
                }
                out[z] = best * norm;
            }
        });
}

}  // namespace spectralign_fast

#include "spectralign_fast/core/image_ops.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "sample/kernels.hpp"  // the sample core's interpolation primitives

namespace spectralign_fast {

void check_image(const ImageView& img, const char* what) {
    if (img.data == nullptr || img.rows < 1 || img.cols < 1)
        throw std::invalid_argument(std::string(what) + " must be a non-empty 2-D image");
    if (img.row_stride < img.cols)
        throw std::invalid_argument(std::string(what) + " has an invalid row stride");
}

namespace {

// Bilinear sample with a constant outside the image; safe for any finite
// (x, y), however far outside.
inline float sample_bilinear(const ImageView& img, double x, double y, float border) {
    if (!(x > -1.0 && y > -1.0 && x < img.cols && y < img.rows)) return border;
    const double fx0 = std::floor(x), fy0 = std::floor(y);
    const int ix = static_cast<int>(fx0), iy = static_cast<int>(fy0);
    const float fx = static_cast<float>(x - fx0), fy = static_cast<float>(y - fy0);
    const bool x0in = ix >= 0, x1in = ix + 1 < img.cols;
    const bool y0in = iy >= 0, y1in = iy + 1 < img.rows;
    float v00 = border, v01 = border, v10 = border, v11 = border;
    if (y0in) {
        const float* r = img.row(iy);
        if (x0in) v00 = r[ix];
        if (x1in) v01 = r[ix + 1];
    }
    if (y1in) {
        const float* r = img.row(iy + 1);
        if (x0in) v10 = r[ix];
        if (x1in) v11 = r[ix + 1];
    }
    using sample::kern::lerp;
    return lerp(lerp(v00, v01, fx), lerp(v10, v11, fx), fy);
}

float resolve_border(const ImageView& img, double x0, double y0, int w, int h, float border) {
    if (!std::isnan(border)) return border;
    const double m = covered_mean(img, x0, y0, w, h);
    return std::isnan(m) ? 0.0f : static_cast<float>(m);
}

}  // namespace

double covered_mean(const ImageView& img, double x0, double y0, int w, int h) {
    const double c0 = std::max(0.0, std::ceil(x0));
    const double c1 = std::min(static_cast<double>(img.cols), std::ceil(x0 + w));
    const double r0 = std::max(0.0, std::ceil(y0));
    const double r1 = std::min(static_cast<double>(img.rows), std::ceil(y0 + h));
    if (!(c1 > c0 && r1 > r0)) return std::numeric_limits<double>::quiet_NaN();
    const int cb = static_cast<int>(c0), ce = static_cast<int>(c1);
    const int rb = static_cast<int>(r0), re = static_cast<int>(r1);
    double total = 0.0;
    for (int r = rb; r < re; ++r) {
        const float* row = img.row(r);
        float row_sum = 0.0f;
        for (int c = cb; c < ce; ++c) row_sum += row[c];
        total += row_sum;
    }
    return total / (static_cast<double>(ce - cb) * (re - rb));
}

bool window_overlaps(const ImageView& img, double x0, double y0, int w, int h) {
    return x0 < img.cols - 0.5 && x0 + w > -0.5 && y0 < img.rows - 0.5 && y0 + h > -0.5;
}

void extract_straight_window(const ImageView& img, double cx, double cy, int w, int h,
                             float border, float* out) {
    const double x0 = cx - w / 2.0, y0 = cy - h / 2.0;
    const double fx0 = std::floor(x0), fy0 = std::floor(y0);
    const bool inside = fx0 >= 0 && fy0 >= 0 && fx0 + w < img.cols && fy0 + h < img.rows;
    if (inside) {
        // Pure translation: the bilinear weights are the same for every pixel.
        const int ix = static_cast<int>(fx0), iy = static_cast<int>(fy0);
        // (The sample core's bilinear form, as sample_bilinear and the warp.)
        using sample::kern::lerp;
        const float fx = static_cast<float>(x0 - fx0), fy = static_cast<float>(y0 - fy0);
        for (int i = 0; i < h; ++i) {
            const float* r0 = img.row(iy + i) + ix;
            const float* r1 = r0 + img.row_stride;
            float* o = out + static_cast<std::ptrdiff_t>(i) * w;
            for (int j = 0; j < w; ++j) o[j] = lerp(lerp(r0[j], r0[j + 1], fx), lerp(r1[j], r1[j + 1], fx), fy);
        }
        return;
    }
    const float fill = resolve_border(img, x0, y0, w, h, border);
    for (int i = 0; i < h; ++i) {
        float* o = out + static_cast<std::ptrdiff_t>(i) * w;
        for (int j = 0; j < w; ++j) o[j] = sample_bilinear(img, x0 + j, y0 + i, fill);
    }
}

void extract_integer_window(const ImageView& img, long long ix, long long iy, int w, int h,
                            float fill, float* out) {
    // Columns [c0, c1) of the window come from the image; the rest is fill.
    const long long c0 = std::clamp<long long>(-ix, 0, w);
    const long long c1 = std::clamp<long long>(img.cols - ix, c0, w);
    for (int i = 0; i < h; ++i) {
        float* o = out + static_cast<std::ptrdiff_t>(i) * w;
        const long long r = iy + i;
        if (r < 0 || r >= img.rows || c1 <= c0) {
            std::fill(o, o + w, fill);
            continue;
        }
        std::fill(o, o + c0, fill);
        std::memcpy(o + c0, img.row(static_cast<int>(r)) + (ix + c0),
                    static_cast<std::size_t>(c1 - c0) * sizeof(float));
        std::fill(o + c1, o + w, fill);
    }
}

void extract_transformed_window(const ImageView& img, double cx, double cy, const double lin[4],
                                int w, int h, float border, float* out) {
    const double hw = w / 2.0, hh = h / 2.0;
    float fill = border;
    if (std::isnan(border)) {
        // Mean over the bounding box of the transformed window.
        double xs[4], ys[4];
        const double cu[4] = {-hw, hw, -hw, hw}, cv[4] = {-hh, -hh, hh, hh};
        for (int k = 0; k < 4; ++k) {
            xs[k] = lin[0] * cu[k] + lin[1] * cv[k] + cx;
            ys[k] = lin[2] * cu[k] + lin[3] * cv[k] + cy;
        }
        const double bx0 = *std::min_element(xs, xs + 4), bx1 = *std::max_element(xs, xs + 4);
        const double by0 = *std::min_element(ys, ys + 4), by1 = *std::max_element(ys, ys + 4);
        const double m = covered_mean(img, bx0, by0, static_cast<int>(std::ceil(bx1 - bx0)),
                                      static_cast<int>(std::ceil(by1 - by0)));
        fill = std::isnan(m) ? 0.0f : static_cast<float>(m);
    }
    for (int i = 0; i < h; ++i) {
        const double v = i - hh;
        double x = lin[0] * (-hw) + lin[1] * v + cx;
        double y = lin[2] * (-hw) + lin[3] * v + cy;
        float* o = out + static_cast<std::ptrdiff_t>(i) * w;
        for (int j = 0; j < w; ++j) {
            o[j] = sample_bilinear(img, x, y, fill);
            x += lin[0];
            y += lin[2];
        }
    }
}

void warp_affine(const ImageView& img, const double inv[6], double x0, double y0, int w, int h,
                 float border, float* out) {
    for (int i = 0; i < h; ++i) {
        const double u = x0, v = y0 + i;
        double x = inv[0] * u + inv[1] * v + inv[2];
        double y = inv[3] * u + inv[4] * v + inv[5];
        float* o = out + static_cast<std::ptrdiff_t>(i) * w;
        for (int j = 0; j < w; ++j) {
            o[j] = sample_bilinear(img, x, y, border);
            x += inv[0];
            y += inv[3];
        }
    }
}

std::vector<float> apodization_profile(int n) {
    std::vector<float> p(static_cast<std::size_t>(std::max(n, 0)), 1.0f);
    const double pi = 3.14159265358979323846;
    for (int k = 0; k < n; ++k) {
        // np.linspace(-1, 1, n)
        const double xx = n > 1 ? -1.0 + 2.0 * k / (n - 1) : -1.0;
        if (std::fabs(xx) > 0.5) p[k] = static_cast<float>(0.5 - 0.5 * std::cos(2 * pi * xx));
    }
    return p;
}

void apodize(float* data, int rows, int cols, float gray) {
    const std::size_t n = static_cast<std::size_t>(rows) * cols;
    if (std::isnan(gray)) {
        double total = 0.0;
        for (int r = 0; r < rows; ++r) {
            float s = 0.0f;
            const float* row = data + static_cast<std::size_t>(r) * cols;
            for (int c = 0; c < cols; ++c) s += row[c];
            total += s;
        }
        gray = static_cast<float>(total / static_cast<double>(n));
    }
    const std::vector<float> py = apodization_profile(rows), px = apodization_profile(cols);
    for (int r = 0; r < rows; ++r) {
        float* row = data + static_cast<std::size_t>(r) * cols;
        for (int c = 0; c < cols; ++c) {
            const float a = py[r] * px[c];
            row[c] = row[c] * a + (1 - a) * gray;
        }
    }
}

bool all_finite(const ImageView& img) {
    std::uint32_t bad = 0;
    for (int r = 0; r < img.rows; ++r) {
        const float* row = img.row(r);
        std::uint32_t row_bad = 0;
        for (int c = 0; c < img.cols; ++c) {
            std::uint32_t bits;
            std::memcpy(&bits, row + c, sizeof bits);
            row_bad |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
        }
        bad |= row_bad;
        if (bad) return false;
    }
    return true;
}

bool has_contrast(double mean, double spread) { return spread > 1e-6 * std::fabs(mean) && spread > 0; }

}  // namespace spectralign_fast

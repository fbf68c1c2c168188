// Pixel-level operations on 2-D float32 images.
//
// Coordinates: x is the column, y the row; pixel (row r, col c) has its
// centre at (x, y) = (c, r). Sampling between pixel centres is bilinear.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace spectralign_fast {

// A read-only view of a row-major float image (row_stride in elements).
struct ImageView {
    const float* data = nullptr;
    int rows = 0;
    int cols = 0;
    std::ptrdiff_t row_stride = 0;

    ImageView() = default;
    ImageView(const float* d, int r, int c, std::ptrdiff_t stride)
        : data(d), rows(r), cols(c), row_stride(stride) {}
    ImageView(const float* d, int r, int c) : ImageView(d, r, c, c) {}

    const float* row(int r) const noexcept { return data + r * row_stride; }
};

// Throws std::invalid_argument unless the view has positive size and a
// non-null buffer.
void check_image(const ImageView& img, const char* what);

// Value used for "choose the border value automatically".
constexpr float kAutoBorder = std::numeric_limits<float>::quiet_NaN();

// Mean of the image pixels whose centres lie in the axis-aligned rectangle
// [x0, x0+w) x [y0, y0+h), clipped to the image; NaN if none does.
double covered_mean(const ImageView& img, double x0, double y0, int w, int h);

// True when the rectangle [x0, x0+w) x [y0, y0+h) overlaps the image's pixel
// area [-0.5, cols-0.5) x [-0.5, rows-0.5) at all.
bool window_overlaps(const ImageView& img, double x0, double y0, int w, int h);

// Window of w x h pixels centred on (cx, cy): out[i*w + j] samples the image
// at (cx - w/2 + j, cy - h/2 + i), as spectralign's straightwindow.
// Pixels outside the image read `border`; kAutoBorder means the mean of the
// covered part of the image (0 when nothing is covered).
void extract_straight_window(const ImageView& img, double cx, double cy, int w, int h,
                             float border, float* out);

// Integer-aligned window: out[i*w + j] = image(row iy + i, col ix + j),
// `fill` outside the image. No interpolation.
void extract_integer_window(const ImageView& img, long long ix, long long iy, int w, int h,
                            float fill, float* out);

// Window whose pixel (j, i) samples the image at
// lin * (j - w/2, i - h/2) + (cx, cy), with lin = [a b; c d] row-major.
void extract_transformed_window(const ImageView& img, double cx, double cy, const double lin[4],
                                int w, int h, float border, float* out);

// Output pixel (j, i) samples the image at inv * (j + x0, i + y0) with
// inv = [[a, b, tx], [c, d, ty]] (row-major 2x3, maps model to image space).
void warp_affine(const ImageView& img, const double inv[6], double x0, double y0, int w, int h,
                 float border, float* out);

// spectralign's apodization profile of length n: 1 in the central half,
// a raised-cosine fade to 0 at both ends.
std::vector<float> apodization_profile(int n);

// In place: out = img*apo + (1-apo)*gray, apo = profile(rows) x profile(cols).
// gray NaN means the mean of the image.
void apodize(float* data, int rows, int cols, float gray);

// True when every value is finite.
bool all_finite(const ImageView& img);

// A window or frame whose spread is below float32 resolution of its level
// carries no position information; correlating it would only amplify
// rounding noise. Shared by matching and stack registration.
bool has_contrast(double mean, double spread);

}  // namespace spectralign_fast

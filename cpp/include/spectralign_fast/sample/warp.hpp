// The sample core: N-D (2-D and 3-D) resampling of an image through an
// affine map or a displacement field, with scipy.ndimage's conventions.
//
// Conventions: coordinates are ARRAY INDICES in array axis order (z, y, x or
// y, x). A map takes OUTPUT indices to INPUT indices ("pull" resampling), as
// scipy.ndimage.affine_transform(input, matrix) does. Edge rules follow
// scipy.ndimage:
//  * Boundary::Constant (scipy mode="constant"): an output pixel whose input
//    coordinate lies outside [0, n - 1] on any axis gets cval (no
//    interpolation towards cval, unlike "grid-constant"); inside, taps that
//    fall beyond the edge are mirrored about the edge sample.
//  * Boundary::Nearest (scipy mode="nearest"): taps are clamped to the edge.
// Kernels: Nearest (order 0, ties at .5 round up), Linear (order 1),
// BSpline3 (scipy's cubic B-spline: sampled from prefiltered coefficients,
// see bspline3_coefficients), CatmullRom (Keys a = -0.5, interpolating
// cubic, no prefilter; the Renderer's and stack registration's "cubic").
// Arithmetic is float32 (coordinates in double); integer outputs are
// rounded half up and clamped to the type's range. Every output pixel's
// arithmetic depends only on its own index, so results are bit-identical
// for every thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace spectralign_fast::sample {

enum class Dtype { U8, U16, F32 };
enum class Kernel { Nearest, Linear, BSpline3, CatmullRom };
enum class Boundary { Constant, Nearest };

std::size_t dtype_size(Dtype t);

// A C-contiguous 2-D or 3-D array (shape in array axis order).
struct Grid {
    const void* data = nullptr;
    Dtype type = Dtype::F32;
    int ndim = 2;
    std::int64_t shape[3] = {0, 0, 0};
};

struct WarpOptions {
    Kernel kernel = Kernel::Linear;
    Boundary boundary = Boundary::Constant;
    float cval = 0.0f;
    int threads = 0;  // 0 = all cores
};

// out (C order, out_shape, same dtype as in) = in sampled at M * (output
// index, 1); M is the (ndim + 1) x (ndim + 1) homogeneous matrix, row major.
// Throws std::invalid_argument for a bad shape, a non-finite matrix or
// option, and std::out_of_range for sizes beyond 2^31 - 1 per axis.
void warp_affine(const Grid& in, const double* matrix, const std::int64_t* out_shape, void* out,
                 const WarpOptions& opt);

// Input index = output index + field[..., k] along axis k; field is float32
// of shape out_shape + (ndim,), C order.
void warp_field(const Grid& in, const float* field, const std::int64_t* out_shape, void* out,
                const WarpOptions& opt);

// scipy.ndimage.spline_filter(order=3) for the given boundary, as float32.
// Boundary::Constant: mirror boundary, no padding (pad = 0). Boundary::
// Nearest: the image padded by edge replication by kBSplinePad samples per
// side first (as scipy does), so coef_shape = shape + 2 * pad.
constexpr int kBSplinePad = 12;
std::vector<float> bspline3_coefficients(const Grid& in, Boundary b, int threads,
                                         std::int64_t coef_shape[3], int& pad);

}  // namespace spectralign_fast::sample

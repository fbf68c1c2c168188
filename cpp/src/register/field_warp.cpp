// Image warping through a displacement field (DIPY's warp_2d/3d and
// warp_*_nn): each output voxel reads the field at A (i, 1) (directly at i
// when A is the identity and the grids agree), turns it by W, adds B (i, 1)
// and samples the image there. Each output voxel depends only on its own
// index, so rows run in parallel with identical bits for any thread count.
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "core/parallel.hpp"
#include "field_common.hpp"

namespace spectralign_fast::reg {

using namespace fieldkit;

namespace {

// DIPY's _interpolate_scalar_nn: 0 outside [0, n - 1]; ties go to the lower index.
template <int D, class T>
inline T nearest(const T* img, const Grid<D>& g, const double* x) {
    std::int64_t off = 0;
    for (int a = 0; a < D; ++a) {
        if (!(x[a] >= 0.0 && x[a] <= double(g.n[a] - 1))) return T(0);
        const double f = floor_small(x[a]);
        std::int64_t i = static_cast<std::int64_t>(f);
        const double c = x[a] - f;
        if (1.0 - c < c) ++i;
        if (i < 0 || i >= g.n[a]) return T(0);
        off += i * g.stride[a];
    }
    return img[off];
}

template <int D, class T>
void warp_impl(const T* image, const FieldShape& is, const float* field, const FieldShape& fs, const double* A,
               const double* B, const double* W, const FieldShape& os, FieldInterp interp, T* out, int threads) {
    const Grid<D> gi(is), gf(fs), go(os);
    bool direct = is_identity(A, D);
    for (int a = 0; a < D; ++a) direct = direct && fs.shape[a] == os.shape[a];
    const std::int64_t rows = go.rows(), nlast = go.n[D - 1];
    parallel_for(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        go.row_index(std::int64_t(row), idx);
        for (std::int64_t j = 0; j < nlast; ++j) {
            idx[D - 1] = j;
            const std::int64_t v = std::int64_t(row) * nlast + j;
            double fi[D], u[D], wu[D], base[D], x[D];
            for (int a = 0; a < D; ++a) fi[a] = double(idx[a]);
            if (direct) {
                for (int k = 0; k < D; ++k) u[k] = field[v * D + k];
            } else {
                double at[D];
                apply<D>(A, fi, 1.0, at);
                interpolate<D>(field, gf, D, at, u);
            }
            apply<D>(W, u, 0.0, wu);
            apply<D>(B, fi, 1.0, base);
            for (int a = 0; a < D; ++a) x[a] = wu[a] + base[a];
            if (interp == FieldInterp::Nearest) {
                out[v] = nearest<D, T>(image, gi, x);
            } else {
                double val;
                interpolate<D>(image, gi, 1, x, &val);
                out[v] = static_cast<T>(val);
            }
        }
    });
}

}  // namespace

void warp_with_field(const void* image, FieldDtype type, const FieldShape& image_shape, const float* field,
                     const FieldShape& field_shape, const double* idx_in, const double* idx_out, const double* disp,
                     const FieldShape& out_shape, FieldInterp interp, void* out, int threads) {
    check_shape(image_shape, "image");
    check_shape(field_shape, "field");
    check_shape(out_shape, "out_shape");
    const int d = image_shape.ndim;
    if (field_shape.ndim != d || out_shape.ndim != d)
        throw std::invalid_argument("the image, the field and out_shape must have one dimension");
    check_matrix(idx_in, d, "affine_idx_in");
    check_matrix(idx_out, d, "affine_idx_out");
    check_matrix(disp, d, "affine_disp");
    if (interp == FieldInterp::Linear && type != FieldDtype::F32)
        throw std::invalid_argument("linear interpolation needs a float32 image");
    with_dim(d, [&](auto dim) {
        constexpr int D = decltype(dim)::value;
        switch (type) {
            case FieldDtype::U8:
                warp_impl<D>(static_cast<const std::uint8_t*>(image), image_shape, field, field_shape, idx_in,
                             idx_out, disp, out_shape, interp, static_cast<std::uint8_t*>(out), threads);
                break;
            case FieldDtype::U16:
                warp_impl<D>(static_cast<const std::uint16_t*>(image), image_shape, field, field_shape, idx_in,
                             idx_out, disp, out_shape, interp, static_cast<std::uint16_t*>(out), threads);
                break;
            case FieldDtype::I32:
                warp_impl<D>(static_cast<const std::int32_t*>(image), image_shape, field, field_shape, idx_in,
                             idx_out, disp, out_shape, interp, static_cast<std::int32_t*>(out), threads);
                break;
            case FieldDtype::F32:
                warp_impl<D>(static_cast<const float*>(image), image_shape, field, field_shape, idx_in, idx_out,
                             disp, out_shape, interp, static_cast<float*>(out), threads);
                break;
        }
    });
}

}  // namespace spectralign_fast::reg

// Image warping through a displacement field (DIPY's warp_2d/3d and
// warp_*_nn): each output voxel reads the field at A (i, 1) (directly at i
// when A is the identity and the grids agree), turns it by W, adds B (i, 1)
// and samples the image there. Each output voxel depends only on its own
// index, so rows run in parallel with identical bits for any thread count.
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/parallel.hpp"
#include "field_common.hpp"
#include "field_grids.hpp"
#include "field_rows.hpp"

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

// f >= 2 when A reads the field on every f-th voxel of the output grid (A's
// linear part diag(1 / f) and no offset, to 1e-9: SyN's matrices come out of
// products of inverses; the field coarse_extent(n, f) long on every axis):
// the warp then up-samples each field row as upsample_field does (the same
// bits as up-sampling first) instead of interpolating per voxel. Else 0.
template <int D>
int coarse_field_factor(const double* A, const FieldShape& fs, const FieldShape& os) {
    if (!(A[0] > 0.0) || !(A[0] < 1.0)) return 0;
    const int f = int(1.0 / A[0] + 0.5);
    if (f < 2 || f > 16) return 0;
    const double s = 1.0 / double(f), tol = 1e-9;
    for (int r = 0; r <= D; ++r)
        for (int c = 0; c <= D; ++c) {
            const double expect = r == c ? (r == D ? 1.0 : s) : 0.0;
            if (!(std::abs(A[r * (D + 1) + c] - expect) <= tol)) return 0;
        }
    for (int a = 0; a < D; ++a)
        if (fs.shape[a] != coarse_extent(os.shape[a], f)) return 0;
    return f;
}

template <int D, class T>
void warp_impl(const T* image, const FieldShape& is, const float* field, const FieldShape& fs, const double* A,
               const double* B, const double* W, const FieldShape& os, FieldInterp interp, T* out, int threads) {
    const Grid<D> gi(is), gf(fs), go(os);
    bool direct = is_identity(A, D);
    for (int a = 0; a < D; ++a) direct = direct && fs.shape[a] == os.shape[a];
    const int coarse = direct ? 0 : coarse_field_factor<D>(A, fs, os);
    const std::int64_t rows = go.rows(), nlast = go.n[D - 1];
    // Output voxel v (index idx) the scalar way; fv: its field values where known (else the
    // field is interpolated at A (idx, 1)).
    auto voxel = [&](std::int64_t* idx, std::int64_t v, const float* fv) {
        double fi[D], u[D], wu[D], base[D], x[D];
        for (int a = 0; a < D; ++a) fi[a] = double(idx[a]);
        if (fv) {
            for (int k = 0; k < D; ++k) u[k] = fv[k];
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
    };
    if constexpr (std::is_same_v<T, float>) {
        const std::int64_t lim = std::int64_t(1) << 30;
        // 32-bit indices, and a 2^D cell at offset 0 read for points outside (2 voxels on every axis).
        bool fits = gi.voxels() < lim && gf.voxels() * D < lim;
        for (int a = 0; a < D; ++a) fits = fits && gi.n[a] >= 2;
        if ((direct || coarse) && interp == FieldInterp::Linear && fits) {
            // The row kernel where every corner exists; edge points the scalar way.
            WarpGrid3 wg;
            wg.img = image;
            wg.n0 = int(gi.n[0]);
            wg.n1 = int(gi.n[1]);
            wg.n2 = D == 3 ? int(gi.n[D - 1]) : 1;
            for (int r = 0; r < D; ++r) {
                for (int c = 0; c < D; ++c) wg.W[r * D + c] = W[r * (D + 1) + c];
                wg.zW[r] = W[r * (D + 1) + D] * 0.0;
                for (int c = 0; c <= D; ++c) wg.B[r * (D + 1) + c] = B[r * (D + 1) + c];
            }
            // A coarse field: each thread's row of up-sampled values and the blend buffer.
            struct Rows {
                std::vector<float> line, blend;
            };
            const Grid<D>& gcoarse = gf;
            parallel_for_runs(
                static_cast<std::size_t>(rows), threads,
                [&] {
                    Rows r;
                    if (coarse) {
                        r.line.resize(static_cast<std::size_t>(nlast * D));
                        r.blend.resize(static_cast<std::size_t>(gcoarse.n[D - 1] * D));
                    }
                    return r;
                },
                [&](Rows& scratch, std::size_t row) {
                    std::int64_t idx[D];
                    go.row_index(std::int64_t(row), idx);
                    const float* frow = field + std::int64_t(row) * nlast * D;
                    if (coarse) {
                        upsample_row<D>(field, gcoarse, coarse, idx, nlast, scratch.blend.data(), scratch.line.data());
                        frow = scratch.line.data();
                    }
                    int status[kRowChunk];
                    for (std::int64_t j0 = 0; j0 < nlast; j0 += kRowChunk) {
                        const int n = int(std::min<std::int64_t>(kRowChunk, nlast - j0));
                        const std::int64_t v0 = std::int64_t(row) * nlast + j0;
                        if constexpr (D == 3)
                            warp_chunk3(wg, frow + j0 * 3, n, double(idx[0]), double(idx[1]), int(j0), out + v0,
                                        status);
                        else
                            warp_chunk2(wg, frow + j0 * 2, n, double(idx[0]), int(j0), out + v0, status);
                        for (int j = 0; j < n; ++j)
                            if (status[j] == 2) {
                                idx[D - 1] = j0 + j;
                                voxel(idx, v0 + j, frow + (j0 + j) * D);
                            }
                    }
                });
            return;
        }
    }
    parallel_for_runs(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        std::int64_t idx[D];
        go.row_index(std::int64_t(row), idx);
        for (std::int64_t j = 0; j < nlast; ++j) {
            idx[D - 1] = j;
            const std::int64_t v = std::int64_t(row) * nlast + j;
            voxel(idx, v, direct ? field + v * D : nullptr);
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

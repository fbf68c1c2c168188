// The warp driver: checks, the source (image or B-spline coefficients),
// tap tables, and the parallel loop over output rows.
#include "spectralign_fast/sample/warp.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "core/parallel.hpp"
#include "rows.hpp"

namespace spectralign_fast::sample {

std::size_t dtype_size(Dtype t) {
    switch (t) {
        case Dtype::U8: return 1;
        case Dtype::U16: return 2;
        case Dtype::F32: return 4;
    }
    return 4;
}

namespace detail {

RowFn pick_row(Dtype in, Dtype out, int ndim, Kernel k, bool idx32) {
    switch (k) {
        case Kernel::Nearest: return in == out ? pick_nearest(in, ndim, idx32) : nullptr;
        case Kernel::Linear: return in == out ? pick_linear(in, ndim, idx32) : nullptr;
        case Kernel::BSpline3:
        case Kernel::CatmullRom: return pick_cubic(in, out, ndim, k, idx32);
    }
    return nullptr;
}

// Tap index -> element index for cubic kernels, for taps in
// [-kTapPad, n + kTapPad): scipy's mirror map (mode "constant") or a clamp.
std::vector<int> tap_table(std::int64_t n64, bool mirror) {
    const int n = static_cast<int>(n64);
    std::vector<int> t(static_cast<std::size_t>(n + 2 * detail::kTapPad));
    for (int k = 0; k < n + 2 * detail::kTapPad; ++k) {
        long long idx = k - detail::kTapPad;
        if (!mirror || n == 1) {
            idx = std::clamp<long long>(idx, 0, n - 1);
        } else {
            const long long s2 = 2LL * n - 2;  // scipy's edge mapping (ni_interpolation.c)
            if (idx < 0) {
                idx = s2 * (-idx / s2) + idx;
                idx = idx <= 1 - n ? idx + s2 : -idx;
            } else if (idx >= n) {
                idx -= s2 * (idx / s2);
                if (idx >= n) idx = s2 - idx;
            }
        }
        t[static_cast<std::size_t>(k)] = static_cast<int>(idx);
    }
    return t;
}

RowFn pick_row_to_float(Dtype in, Kernel k, bool idx32) {
    switch (k) {
        case Kernel::Nearest: return pick_nearest_to_float(in, idx32);
        case Kernel::Linear: return pick_linear_to_float(in, idx32);
        case Kernel::CatmullRom: return pick_catrom_to_float(in, idx32);
        case Kernel::BSpline3: break;
    }
    return nullptr;
}

}  // namespace detail

namespace {

using detail::Row;
using detail::Source;

constexpr std::int64_t kMaxAxis = 2147483647;  // sizes per axis fit an int

void check_grid(const Grid& in) {
    if (in.ndim != 2 && in.ndim != 3)
        throw std::invalid_argument("warp: the image must be 2-D or 3-D, got " +
                                    std::to_string(in.ndim) + " dimensions");
    if (in.data == nullptr) throw std::invalid_argument("warp: the image has no data");
    for (int a = 0; a < in.ndim; ++a) {
        if (in.shape[a] < 1) throw std::invalid_argument("warp: the image is empty");
        if (in.shape[a] > kMaxAxis)
            throw std::out_of_range("warp: the image has more than 2^31 - 1 samples along an axis");
    }
}

void check_out(const Grid& in, const std::int64_t* out_shape, const void* out) {
    if (out == nullptr) throw std::invalid_argument("warp: no output buffer");
    for (int a = 0; a < in.ndim; ++a) {
        if (out_shape[a] < 1)
            throw std::invalid_argument("warp: output_shape must be positive along every axis");
        if (out_shape[a] > kMaxAxis)
            throw std::out_of_range("warp: output_shape is beyond 2^31 - 1 along an axis");
    }
}

void check_options(const WarpOptions& opt) {
    if (!std::isfinite(opt.cval)) throw std::invalid_argument("warp: cval must be finite");
    if (opt.threads < 0) throw std::invalid_argument("warp: threads must be >= 0 (0 = all cores)");
}

struct Plan {
    Source src;
    std::vector<float> coef;
    std::vector<int> taps[3];
    detail::RowFn fn = nullptr;
};

Plan make_plan(const Grid& in, const WarpOptions& opt) {
    Plan pl;
    Source& s = pl.src;
    const int D = in.ndim;
    s.ndim = D;
    s.constant = opt.boundary == Boundary::Constant;
    s.cval = opt.cval;
    std::int64_t shape[3] = {in.shape[0], in.shape[1], in.shape[2]};
    Dtype src_type = in.type;
    if (opt.kernel == Kernel::BSpline3) {
        int pad = 0;
        pl.coef = bspline3_coefficients(in, opt.boundary, opt.threads, shape, pad);
        for (int a = 0; a < D; ++a)
            if (shape[a] > kMaxAxis)
                throw std::out_of_range("warp: the padded image is too large along an axis");
        s.data = pl.coef.data();
        s.offset = pad;
        src_type = Dtype::F32;
    } else {
        s.data = in.data;
    }
    std::int64_t stride = 1;
    for (int a = D - 1; a >= 0; --a) {
        s.n[a] = static_cast<int>(shape[a]);
        s.stride[a] = stride;
        stride *= shape[a];
    }
    if (opt.kernel == Kernel::BSpline3 || opt.kernel == Kernel::CatmullRom) {
        for (int a = 0; a < D; ++a) {
            pl.taps[a] = detail::tap_table(shape[a], s.constant);
            s.taps[a] = pl.taps[a].data();
        }
    }
    const bool idx32 = stride <= kMaxAxis;
    pl.fn = detail::pick_row(src_type, in.type, D, opt.kernel, idx32);
    if (pl.fn == nullptr) throw std::invalid_argument("warp: unsupported dtype or kernel");
    return pl;
}

// Runs fill(r, c0, c1) for every output row r (row-major index over the
// leading axes) and column range [c0, c1), in parallel over tiles: a band
// of rows (of every plane, planes innermost, for 3-D) times a range of
// columns. Neighbouring output rows and planes read overlapping source
// rows, so a tile's source footprint stays in cache. Tiles are fixed by
// the output shape alone; nothing depends on the thread count.
template <class Fill>
void for_rows(const Grid& in, const std::int64_t* out_shape, int threads, Fill fill) {
    const int D = in.ndim;
    const std::int64_t nz = D == 3 ? out_shape[0] : 1, ny = out_shape[D - 2], nx = out_shape[D - 1];
    // 2-D: whole rows (column tiles measured slower); 3-D: 16 rows x 256 columns.
    const std::int64_t ty = D == 3 ? 16 : 32, tx = D == 3 ? 256 : nx;
    const std::int64_t bands = (ny + ty - 1) / ty, cols = (nx + tx - 1) / tx;
    parallel_for(static_cast<std::size_t>(bands * cols), threads, [] { return 0; },
                 [&](int&, std::size_t item) {
                     const std::int64_t y0 = static_cast<std::int64_t>(item) / cols * ty;
                     const std::int64_t c0 = static_cast<std::int64_t>(item) % cols * tx;
                     const std::int64_t y1 = std::min(ny, y0 + ty), c1 = std::min(nx, c0 + tx);
                     for (std::int64_t z = 0; z < nz; ++z)
                         for (std::int64_t y = y0; y < y1; ++y) fill(z * ny + y, c0, c1);
                 });
}

// Output index of row r's first pixel along the leading axes.
void row_index(int D, const std::int64_t* out_shape, std::int64_t r, double o[3]) {
    if (D == 2) {
        o[0] = static_cast<double>(r);
    } else {
        o[0] = static_cast<double>(r / out_shape[1]);
        o[1] = static_cast<double>(r % out_shape[1]);
    }
}

}  // namespace

void warp_affine(const Grid& in, const double* matrix, const std::int64_t* out_shape, void* out,
                 const WarpOptions& opt) {
    check_grid(in);
    check_out(in, out_shape, out);
    check_options(opt);
    const int D = in.ndim, W = D + 1;
    if (matrix == nullptr) throw std::invalid_argument("warp: no matrix");
    for (int k = 0; k < W * W; ++k)
        if (!std::isfinite(matrix[k]))
            throw std::invalid_argument("warp: the matrix has a NaN or infinite entry");
    for (int b = 0; b < W; ++b)
        if (matrix[D * W + b] != (b == D ? 1.0 : 0.0))
            throw std::invalid_argument("warp: the matrix's last row must be [0, ..., 0, 1]");
    double det, scale = 0.0;
    const double* M = matrix;
    for (int a = 0; a < D; ++a)
        for (int b = 0; b < D; ++b) scale = std::max(scale, std::fabs(M[a * W + b]));
    if (D == 2)
        det = M[0] * M[W + 1] - M[1] * M[W];
    else
        det = M[0] * (M[W + 1] * M[2 * W + 2] - M[W + 2] * M[2 * W + 1]) -
              M[1] * (M[W] * M[2 * W + 2] - M[W + 2] * M[2 * W]) +
              M[2] * (M[W] * M[2 * W + 1] - M[W + 1] * M[2 * W]);
    if (!(std::fabs(det) > 1e-12 * std::pow(scale, D)))
        throw std::invalid_argument("warp: the matrix's linear part is singular");
    const Plan pl = make_plan(in, opt);
    const std::size_t esize = dtype_size(in.type);
    // Source offset of one output plane's step (3-D; for_rows walks planes
    // innermost within a band of rows), for the span path's prefetch.
    std::int64_t next_plane = 0;
    if (D == 3) {
        double step = 0.0;
        for (int a = 0; a < D; ++a)
            step += std::nearbyint(matrix[a * W]) * static_cast<double>(pl.src.stride[a]);
        if (std::fabs(step) < 1e15) next_plane = static_cast<std::int64_t>(step);
    }
    for_rows(in, out_shape, opt.threads, [&](std::int64_t r, std::int64_t c0, std::int64_t c1) {
        double o[3] = {0, 0, 0};
        row_index(D, out_shape, r, o);
        o[D - 1] = static_cast<double>(c0);
        Row row;
        for (int a = 0; a < D; ++a) {
            // p = M[a, :D] . o + M[a, D], from the pixel's own index.
            double p = matrix[a * W + D];
            for (int b = 0; b < D; ++b) p += matrix[a * W + b] * o[b];
            row.p[a] = p;
            row.d[a] = matrix[a * W + D - 1];
        }
        row.n = static_cast<int>(c1 - c0);
        row.out = static_cast<char*>(out) +
                  (r * out_shape[D - 1] + c0) * static_cast<std::int64_t>(esize);
        row.next_plane = next_plane;
        pl.fn(pl.src, row);
    });
}

void warp_field(const Grid& in, const float* field, const std::int64_t* out_shape, void* out,
                const WarpOptions& opt) {
    check_grid(in);
    check_out(in, out_shape, out);
    check_options(opt);
    if (field == nullptr) throw std::invalid_argument("warp: no displacement field");
    const int D = in.ndim;
    const Plan pl = make_plan(in, opt);
    const std::size_t esize = dtype_size(in.type);
    const std::int64_t ncols = out_shape[D - 1];
    for_rows(in, out_shape, opt.threads, [&](std::int64_t r, std::int64_t c0, std::int64_t c1) {
        const float* f = field + (r * ncols + c0) * D;
        int finite = 1;
        for (std::int64_t k = 0; k < (c1 - c0) * D; ++k) finite &= std::isfinite(f[k]) ? 1 : 0;
        if (!finite)
            throw std::invalid_argument("warp: the displacement field has a NaN or infinite entry");
        double o[3] = {0, 0, 0};
        row_index(D, out_shape, r, o);
        Row row;
        for (int a = 0; a < D; ++a) {
            row.p[a] = a < D - 1 ? o[a] : static_cast<double>(c0);
            row.d[a] = a == D - 1 ? 1.0 : 0.0;
        }
        row.field = f;
        row.n = static_cast<int>(c1 - c0);
        row.out = static_cast<char*>(out) + (r * ncols + c0) * static_cast<std::int64_t>(esize);
        pl.fn(pl.src, row);
    });
}

}  // namespace spectralign_fast::sample

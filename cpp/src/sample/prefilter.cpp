// Cubic B-spline prefilter: scipy.ndimage.spline_filter(order=3), so that
// sampling the coefficients with the B-spline weights interpolates the
// image exactly as scipy does with prefilter=True.
//
// Per line (scipy's apply_filter, in double): gain, causal pass, anti-causal
// pass with the single pole z = sqrt(3) - 2; the first coefficient of each
// pass comes from the boundary rule. Mode "constant" uses scipy's mirror
// initialisation; mode "nearest" pads the image by 12 edge samples per side
// first (scipy's _prepad_for_spline_filter) and uses the reflect
// initialisation. Lines along an axis other than the last are filtered
// kBatch at a time, interleaved, so the strided reads are contiguous.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/parallel.hpp"
#include "spectralign_fast/sample/warp.hpp"

namespace spectralign_fast::sample {

namespace {

constexpr double kPole = -0.267949192431122706472553658494127633;  // sqrt(3) - 2
constexpr int kBatch = 16;  // lines filtered together (one cache line of floats)

// Terms z^i below this no longer change a double sum of comparable values.
constexpr double kNegligible = 1e-30;

// c[i * L + l], i < n, l < L: L lines of length n >= 2, interleaved.
void filter_lines(double* c, std::int64_t n, int L, bool mirror) {
    const double z = kPole;
    const double gain = (1.0 - z) * (1.0 - 1.0 / z);
    for (std::int64_t k = 0; k < n * L; ++k) c[k] *= gain;
    double* c0 = c;
    const double* cl = c + (n - 1) * L;
    if (mirror) {
        // scipy _init_causal_mirror
        const double zn1 = std::pow(z, static_cast<double>(n - 1));
        double acc[kBatch];
        for (int l = 0; l < L; ++l) acc[l] = c0[l] + zn1 * cl[l];
        double zi = z;
        for (std::int64_t i = 1; i < n - 1 && std::fabs(zi) > kNegligible; ++i) {
            const double* ci = c + i * L;
            const double* cr = c + (n - 1 - i) * L;
            for (int l = 0; l < L; ++l) acc[l] += zi * (ci[l] + zn1 * cr[l]);
            zi *= z;
        }
        for (int l = 0; l < L; ++l) c0[l] = acc[l] / (1.0 - zn1 * zn1);
    } else {
        // scipy _init_causal_reflect
        const double zn = std::pow(z, static_cast<double>(n));
        double acc[kBatch];
        for (int l = 0; l < L; ++l) acc[l] = c0[l] + zn * cl[l];
        double zi = z;
        for (std::int64_t i = 1; i < n && std::fabs(zi) > kNegligible; ++i) {
            const double* ci = c + i * L;
            const double* cr = c + (n - 1 - i) * L;
            for (int l = 0; l < L; ++l) acc[l] += zi * (ci[l] + zn * cr[l]);
            zi *= z;
        }
        for (int l = 0; l < L; ++l) c0[l] += acc[l] * (z / (1.0 - zn * zn));
    }
    for (std::int64_t i = 1; i < n; ++i) {
        double* ci = c + i * L;
        const double* cp = ci - L;
        for (int l = 0; l < L; ++l) ci[l] += z * cp[l];
    }
    double* cn = c + (n - 1) * L;
    if (mirror) {
        const double* cm = cn - L;  // scipy _init_anticausal_mirror
        for (int l = 0; l < L; ++l) cn[l] = (z * cm[l] + cn[l]) * z / (z * z - 1.0);
    } else {
        for (int l = 0; l < L; ++l) cn[l] *= z / (z - 1.0);  // _init_anticausal_reflect
    }
    for (std::int64_t i = n - 2; i >= 0; --i) {
        double* ci = c + i * L;
        const double* cn1 = ci + L;
        for (int l = 0; l < L; ++l) ci[l] = z * (cn1[l] - ci[l]);
    }
}

template <class T>
void copy_padded(const Grid& in, int pad, const std::int64_t* cs, float* coef, int threads) {
    const T* src = static_cast<const T*>(in.data);
    const int D = in.ndim;
    const std::int64_t nx = in.shape[D - 1], ny = in.shape[D - 2], nz = D == 3 ? in.shape[0] : 1;
    const std::int64_t cx = cs[D - 1], cy = cs[D - 2], cz = D == 3 ? cs[0] : 1;
    const int zpad = D == 3 ? pad : 0;
    parallel_for(static_cast<std::size_t>(cz * cy), threads, [] { return 0; },
                 [&](int&, std::size_t row) {
                     const std::int64_t qz = static_cast<std::int64_t>(row) / cy;
                     const std::int64_t qy = static_cast<std::int64_t>(row) % cy;
                     const std::int64_t z = std::clamp<std::int64_t>(qz - zpad, 0, nz - 1);
                     const std::int64_t y = std::clamp<std::int64_t>(qy - pad, 0, ny - 1);
                     const T* s = src + (z * ny + y) * nx;
                     float* o = coef + static_cast<std::int64_t>(row) * cx;
                     for (std::int64_t x = 0; x < pad; ++x) o[x] = static_cast<float>(s[0]);
                     for (std::int64_t x = 0; x < nx; ++x) o[pad + x] = static_cast<float>(s[x]);
                     for (std::int64_t x = pad + nx; x < cx; ++x) o[x] = static_cast<float>(s[nx - 1]);
                 });
}

}  // namespace

std::vector<float> bspline3_coefficients(const Grid& in, Boundary b, int threads,
                                         std::int64_t coef_shape[3], int& pad) {
    if (in.data == nullptr || (in.ndim != 2 && in.ndim != 3))
        throw std::invalid_argument("spline prefilter: the image must be 2-D or 3-D");
    const int D = in.ndim;
    pad = b == Boundary::Nearest ? kBSplinePad : 0;
    std::int64_t total = 1;
    for (int a = 0; a < 3; ++a) coef_shape[a] = 1;
    for (int a = 0; a < D; ++a) {
        if (in.shape[a] < 1) throw std::invalid_argument("spline prefilter: the image is empty");
        coef_shape[a] = in.shape[a] + 2 * pad;
        total *= coef_shape[a];
    }
    std::vector<float> coef(static_cast<std::size_t>(total));
    switch (in.type) {
        case Dtype::U8: copy_padded<std::uint8_t>(in, pad, coef_shape, coef.data(), threads); break;
        case Dtype::U16: copy_padded<std::uint16_t>(in, pad, coef_shape, coef.data(), threads); break;
        case Dtype::F32: copy_padded<float>(in, pad, coef_shape, coef.data(), threads); break;
    }
    const bool mirror = b == Boundary::Constant;
    for (int a = 0; a < D; ++a) {
        const std::int64_t n = coef_shape[a];
        if (n < 2) continue;  // scipy leaves length-1 axes alone
        std::int64_t outer = 1, inner = 1;
        for (int q = 0; q < a; ++q) outer *= coef_shape[q];
        for (int q = a + 1; q < D; ++q) inner *= coef_shape[q];
        // Work items: (outer index, batch of kBatch inner positions).
        const std::int64_t batches = (inner + kBatch - 1) / kBatch;
        float* data = coef.data();
        parallel_for(
            static_cast<std::size_t>(outer * batches), threads,
            [n] { return std::vector<double>(static_cast<std::size_t>(n) * kBatch); },
            [&](std::vector<double>& buf, std::size_t item) {
                const std::int64_t o = static_cast<std::int64_t>(item) / batches;
                const std::int64_t i0 = static_cast<std::int64_t>(item) % batches * kBatch;
                const int L = static_cast<int>(std::min<std::int64_t>(kBatch, inner - i0));
                float* base = data + o * n * inner + i0;
                for (std::int64_t i = 0; i < n; ++i)
                    for (int l = 0; l < L; ++l) buf[static_cast<std::size_t>(i * L + l)] = base[i * inner + l];
                filter_lines(buf.data(), n, L, mirror);
                for (std::int64_t i = 0; i < n; ++i)
                    for (int l = 0; l < L; ++l)
                        base[i * inner + l] = static_cast<float>(buf[static_cast<std::size_t>(i * L + l)]);
            });
    }
    return coef;
}

}  // namespace spectralign_fast::sample

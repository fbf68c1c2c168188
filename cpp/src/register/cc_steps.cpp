// DIPY's CCMetric steps (local cross-correlation, Avants et al. 2008) with
// box sums: the five window sums (I, J, I^2, J^2, IJ) of every voxel come
// from running sums along each axis, so the cost does not depend on the
// radius. A 3-D volume is processed in fixed chunks of slabs: each slab's 2-D window
// sums are kept in a ring of 2 r + 2 slabs and a running sum over slabs
// gives the 3-D sums, so the extra memory is O(r * slab), not O(volume).
// Sums are double; every line's running sum starts at its own first sample
// and element-wise updates do not depend on the thread count, so results
// are bit-identical for any `threads`.
#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

#include "core/parallel.hpp"
#include "core/simd_clones.hpp"
#include "step_common.hpp"

namespace spectralign_fast::reg {

using namespace fieldkit;

namespace {

constexpr int C = 5;  // I, J, I^2, J^2, IJ
constexpr std::int64_t kColumnBlock = 64;
// Slabs per unit of parallel work in 3-D (fixed: the results must not depend on the thread count).
constexpr std::int64_t kSlabChunk = 12;
// Rows per unit of parallel work in 2-D (fixed, as kSlabChunk).
constexpr std::int64_t kBandRows = 32;

inline std::int64_t window_count(std::int64_t x, std::int64_t n, std::int64_t r) {
    return std::min(n - 1, x + r) - std::max<std::int64_t>(0, x - r) + 1;
}

// Window sums of one slab (n1 x n2 plane) along both in-plane axes. Each
// row holds its C sums as C arrays of n2 (sum c of voxel j at c * n2 + j),
// so the interior run reads them in vectors.
void slab_box_sums(const float* I, const float* J, std::int64_t n1, std::int64_t n2, std::int64_t r,
                   double* rowbox, double* out, int threads) {
    parallel_for_runs(static_cast<std::size_t>(n1), threads, [] { return 0; }, [&](int&, std::size_t row) {
        const float* a = I + std::int64_t(row) * n2;
        const float* b = J + std::int64_t(row) * n2;
        double* o = rowbox + std::int64_t(row) * n2 * C;
        double s[C] = {0, 0, 0, 0, 0};
        auto add = [&](std::int64_t j, double sign) {
            const double x = a[j], y = b[j];
            s[0] += sign * x;
            s[1] += sign * y;
            s[2] += sign * x * x;
            s[3] += sign * y * y;
            s[4] += sign * x * y;
        };
        for (std::int64_t j = 0; j < std::min(r, n2); ++j) add(j, 1.0);
        for (std::int64_t j = 0; j < n2; ++j) {
            if (j + r < n2) add(j + r, 1.0);
            if (j - r - 1 >= 0) add(j - r - 1, -1.0);
            for (int c = 0; c < C; ++c) o[c * n2 + j] = s[c];
        }
    });
    const std::int64_t width = n2 * C;
    const std::int64_t blocks = (width + kColumnBlock - 1) / kColumnBlock;
    parallel_for(static_cast<std::size_t>(blocks), threads, [] { return 0; }, [&](int&, std::size_t blk) {
        const std::int64_t c0 = std::int64_t(blk) * kColumnBlock, c1 = std::min(width, c0 + kColumnBlock);
        double s[kColumnBlock];
        std::fill(s, s + kColumnBlock, 0.0);
        for (std::int64_t i = 0; i < std::min(r, n1); ++i)
            for (std::int64_t c = c0; c < c1; ++c) s[c - c0] += rowbox[i * width + c];
        for (std::int64_t i = 0; i < n1; ++i) {
            if (i + r < n1)
                for (std::int64_t c = c0; c < c1; ++c) s[c - c0] += rowbox[(i + r) * width + c];
            if (i - r - 1 >= 0)
                for (std::int64_t c = c0; c < c1; ++c) s[c - c0] -= rowbox[(i - r - 1) * width + c];
            for (std::int64_t c = c0; c < c1; ++c) out[i * width + c] = s[c - c0];
        }
    });
}

// Eight doubles, their lane masks and eight floats as one vector each (GCC
// vector extensions: one register in the AVX-512 clone, two or four elsewhere).
typedef double Double8 __attribute__((vector_size(64), aligned(8)));
typedef std::int64_t Mask8 __attribute__((vector_size(64), aligned(8)));
typedef float Float8 __attribute__((vector_size(32), aligned(4)));

// DIPY's CC terms from a voxel's five window sums s0..s4 (I, J, I^2, J^2, IJ
// over cnt voxels) and its two values Iv, Jv: the energy share (0 unless
// the voxel is valid and the share below 1) and the step factors tf, tb
// (meaningful where valid), and where valid: neither window flat. T is
// double (one voxel, M bool) or Double8 (eight, M Mask8; the same operations
// per lane). By reference: a vector passed by value would warn of the ABI.
template <class T, class M>
__attribute__((always_inline)) inline void cc_terms(const T& s0, const T& s1, const T& s2, const T& s3, const T& s4,
                                                    const T& Iv, const T& Jv, double cnt, double flat, T& local,
                                                    T& tf, T& tb, M& valid) {
    const T Imean = s0 / cnt, Jmean = s1 / cnt;
    const T Ii = Iv - Imean, Ji = Jv - Jmean;
    const T sfm = s4 - Jmean * s0 - Imean * s1 + cnt * Jmean * Imean;
    const T sff = s2 - Imean * s0 - Imean * s0 + cnt * Imean * Imean;
    const T smm = s3 - Jmean * s1 - Jmean * s1 + cnt * Jmean * Jmean;
    // A variance at or below flat * cnt is rounding residue (DIPY's sff == 0).
    valid = (sff > flat * cnt) & (smm > flat * cnt);
    const T zero = T{} * 0.0;
    const T lc = sff * smm > 1e-5 ? sfm * sfm / (sff * smm) : zero;
    local = valid & (lc < 1.0) ? lc : zero;
    tf = 2.0 * sfm / (sff * smm) * (Ji - sfm / sff * Ii);
    tb = 2.0 * sfm / (sff * smm) * (Ii - sfm / smm * Ji);
}

// The steps of one interior run of a row (every voxel's window inside the
// image, the direction the identity): voxels j in [j0, j1) at flat index
// v0 + j, the row's window sums at sums (sum c of voxel j at sums[c * n2 +
// j]), a window of cnt voxels. The scalar loop's operations in its order:
// the CC terms eight voxels at a time in vectors (divisions included), then
// the gradients and the steps in a loop that vectorises, then the energy
// summed voxel by voxel as before; the same bits. `stride` holds each
// axis' index stride.
template <int D>
__attribute__((always_inline)) inline double cc_interior_run(const float* __restrict I, const float* __restrict J,
                                                             std::int64_t v0, std::int64_t j0, std::int64_t j1,
                                                             const double* __restrict sums, double cnt, double flat,
                                                             const std::int64_t* stride, const double* spacing,
                                                             float* __restrict fwd, float* __restrict bwd) {
    constexpr int kRun = 64;
    const std::int64_t n2 = stride[D - 2];  // the row's length
    double tf[kRun], tb[kRun], local[kRun];
    std::int64_t valid[kRun];
    double energy = 0.0;
    for (std::int64_t a = j0; a < j1; a += kRun) {
        const int n = int(std::min<std::int64_t>(kRun, j1 - a));
        int q = 0;
        // Eight at a time, the last eight ending at n (those made twice get the same values).
        for (; q < n && n >= 8; q += 8) {
            q = std::min(q, n - 8);
            const std::int64_t j = a + q, v = v0 + j;
            Double8 s[C];
            for (int c = 0; c < C; ++c) __builtin_memcpy(&s[c], sums + c * n2 + j, sizeof(Double8));
            Float8 iv, jv;
            __builtin_memcpy(&iv, I + v, sizeof iv);
            __builtin_memcpy(&jv, J + v, sizeof jv);
            const Double8 iv8 = __builtin_convertvector(iv, Double8), jv8 = __builtin_convertvector(jv, Double8);
            Double8 lo, f, b;
            Mask8 ok;
            cc_terms(s[0], s[1], s[2], s[3], s[4], iv8, jv8, cnt, flat, lo, f, b, ok);
            __builtin_memcpy(local + q, &lo, sizeof lo);
            __builtin_memcpy(tf + q, &f, sizeof f);
            __builtin_memcpy(tb + q, &b, sizeof b);
            __builtin_memcpy(valid + q, &ok, sizeof ok);
        }
        for (; q < n; ++q) {  // runs of under eight
            const std::int64_t j = a + q, v = v0 + j;
            const double* sm = sums + j;
            bool ok;
            cc_terms(sm[0], sm[n2], sm[2 * n2], sm[3 * n2], sm[4 * n2], double(I[v]), double(J[v]), cnt, flat,
                     local[q], tf[q], tb[q], ok);
            valid[q] = ok ? -1 : 0;
        }
        for (q = 0; q < n; ++q) {
            const std::int64_t j = a + q, v = v0 + j;
            float* f = fwd + v * D;
            float* b = bwd + v * D;
            for (int k = 0; k < D; ++k) {
                // np_gradient's interior difference, divided by the spacing and kept in float.
                const float gI = static_cast<float>(double(np_central(I, v, stride[k])) / spacing[k]);
                const float gJ = static_cast<float>(double(np_central(J, v, stride[k])) / spacing[k]);
                f[k] = valid[q] ? static_cast<float>(-tf[q] * double(gI)) : 0.0f;
                b[k] = valid[q] ? static_cast<float>(-tb[q] * double(gJ)) : 0.0f;
            }
        }
        for (q = 0; q < n; ++q) energy -= local[q];
    }
    return energy;
}

SPECTRALIGN_CLONES
double cc_interior_run3(const float* I, const float* J, std::int64_t v0, std::int64_t j0, std::int64_t j1,
                        const double* sums, double cnt, double flat, const std::int64_t* stride,
                        const double* spacing, float* fwd, float* bwd) {
    return cc_interior_run<3>(I, J, v0, j0, j1, sums, cnt, flat, stride, spacing, fwd, bwd);
}

SPECTRALIGN_CLONES
double cc_interior_run2(const float* I, const float* J, std::int64_t v0, std::int64_t j0, std::int64_t j1,
                        const double* sums, double cnt, double flat, const std::int64_t* stride,
                        const double* spacing, float* fwd, float* bwd) {
    return cc_interior_run<2>(I, J, v0, j0, j1, sums, cnt, flat, stride, spacing, fwd, bwd);
}

template <int D>
StepResult cc_impl(const float* I, const float* J, const FieldShape& shape, int radius, const double* spacing,
                   const double* direction, double sigma, float* fwd, float* bwd, int threads) {
    const Grid<D> g(shape);
    const std::int64_t n0 = D == 3 ? g.n[0] : 1, n1 = g.n[D - 2], n2 = g.n[D - 1];
    const std::int64_t r = radius, r0 = D == 3 ? r : 0;
    const std::int64_t plane = n1 * n2;
    const bool turn = !direction_is_identity(direction, D);
    // Variances below this are rounding residue of the running sums (the
    // window is flat): DIPY's "sff == 0" case.
    const std::int64_t nvox = g.voxels(), pblocks = (nvox + 65535) / 65536;
    std::vector<double> block_peak(static_cast<std::size_t>(pblocks), 0.0);
    parallel_for(static_cast<std::size_t>(pblocks), threads, [] { return 0; }, [&](int&, std::size_t b) {
        double pk = 0.0;
        const std::int64_t e = std::min(nvox, std::int64_t(b + 1) * 65536);
        for (std::int64_t v = std::int64_t(b) * 65536; v < e; ++v)
            pk = std::max({pk, double(std::abs(I[v])), double(std::abs(J[v]))});
        block_peak[b] = pk;
    });
    double peak = 0.0;
    for (double pk : block_peak) peak = std::max(peak, pk);
    const double flat = 1e-10 * peak * peak;

    std::vector<double> row_energy(static_cast<std::size_t>(n0 * n1), 0.0);
    // One slab's steps from its window sums (rows in parallel with `inner_threads`).
    // Rows [row_begin, row_end) of slab s; sums starts at row_begin's.
    auto slab_steps = [&](std::int64_t s, std::int64_t row_begin, std::int64_t row_end, const double* sums,
                          int inner_threads) {
        const bool slab_inside = s >= r0 && s < n0 - r0;
        const std::int64_t cnt0 = window_count(s, n0, r0);
        parallel_for_runs(static_cast<std::size_t>(row_end - row_begin), inner_threads, [] { return 0; },
                          [&](int&, std::size_t row) {
            const std::int64_t i = row_begin + std::int64_t(row);
            std::int64_t idx[D];
            if constexpr (D == 3) {
                idx[0] = s;
                idx[1] = i;
            } else {
                idx[0] = i;
            }
            const bool row_inside = slab_inside && i >= r && i < n1 - r;
            const std::int64_t cnt01 = cnt0 * window_count(i, n1, r);
            double energy = 0.0;
            if (!turn && row_inside && n2 > 2 * r) {
                // Zero outside the interior run, which the vectorised kernel does.
                const std::int64_t v0 = s * plane + i * n2;
                std::fill(fwd + v0 * D, fwd + (v0 + r) * D, 0.0f);
                std::fill(bwd + v0 * D, bwd + (v0 + r) * D, 0.0f);
                std::fill(fwd + (v0 + n2 - r) * D, fwd + (v0 + n2) * D, 0.0f);
                std::fill(bwd + (v0 + n2 - r) * D, bwd + (v0 + n2) * D, 0.0f);
                const double* row_sums = sums + (i - row_begin) * n2 * C;
                const double cnt = double(cnt01 * (2 * r + 1));
                row_energy[std::size_t(s * n1 + i)] =
                    D == 3 ? cc_interior_run3(I, J, v0, r, n2 - r, row_sums, cnt, flat, g.stride, spacing, fwd, bwd)
                           : cc_interior_run2(I, J, v0, r, n2 - r, row_sums, cnt, flat, g.stride, spacing, fwd, bwd);
                return;
            }
            for (std::int64_t j = 0; j < n2; ++j) {
                const std::int64_t v = s * plane + i * n2 + j;
                float* f = fwd + v * D;
                float* b = bwd + v * D;
                for (int k = 0; k < D; ++k) f[k] = b[k] = 0.0f;
                if (!row_inside || j < r || j >= n2 - r) continue;
                const double* sm = sums + (i - row_begin) * n2 * C + j;
                const double cnt = double(cnt01 * window_count(j, n2, r));
                double local, tf, tb;
                bool ok;
                cc_terms(sm[0], sm[n2], sm[2 * n2], sm[3 * n2], sm[4 * n2], double(I[v]), double(J[v]), cnt, flat,
                         local, tf, tb, ok);
                if (!ok) continue;
                energy -= local;
                idx[D - 1] = j;
                double gs[D], gm[D];
                image_gradient<D>(I, g, idx, v, spacing, direction, turn, gs);
                image_gradient<D>(J, g, idx, v, spacing, direction, turn, gm);
                for (int k = 0; k < D; ++k) {
                    f[k] = static_cast<float>(-tf * gs[k]);
                    b[k] = static_cast<float>(-tb * gm[k]);
                }
            }
            row_energy[std::size_t(s * n1 + i)] = energy;
        });
    };
    if (n0 == 1) {
        // An image: fixed bands of rows (the same for every thread count) in parallel, each with
        // the window sums of its rows and r rows either side (slab_box_sums over those rows: the
        // band's windows lie inside them, or end where the image does), so the extra memory is
        // O((band + 2 r) * n2), not O(image).
        const std::int64_t bands = (n1 + kBandRows - 1) / kBandRows, width = n2 * C;
        const std::size_t band_values = static_cast<std::size_t>((kBandRows + 2 * r) * width);
        struct BandState {
            std::unique_ptr<double[]> rowbox, sums;
        };
        // Every value is written before it is read: no zero fill.
        parallel_for(static_cast<std::size_t>(bands), threads,
                     [&] {
                         return BandState{std::unique_ptr<double[]>(new double[band_values]),
                                          std::unique_ptr<double[]>(new double[band_values])};
                     },
                     [&](BandState& st, std::size_t band) {
                         const std::int64_t b0 = std::int64_t(band) * kBandRows, b1 = std::min(n1, b0 + kBandRows);
                         const std::int64_t lo = std::max<std::int64_t>(0, b0 - r), hi = std::min(n1, b1 + r);
                         slab_box_sums(I + lo * n2, J + lo * n2, hi - lo, n2, r, st.rowbox.get(), st.sums.get(), 1);
                         slab_steps(0, b0, b1, st.sums.get() + (b0 - lo) * width, 1);
                     });
    } else {
        // Volumes: fixed chunks of slabs (the same for every thread count, so the running sums
        // and thus the bits do not depend on it) in parallel, each with its own ring of the
        // 2 r + 2 slabs' plane sums and a running sum over its slabs' windows.
        const std::int64_t ring_size = 2 * r0 + 2;
        const std::int64_t chunks = (n0 + kSlabChunk - 1) / kSlabChunk;
        // rowbox and every ring slot are written before they are read: no zero fill.
        struct ChunkState {
            std::unique_ptr<double[]> rowbox, ring;
            std::vector<double> sums;
        };
        parallel_for(static_cast<std::size_t>(chunks), threads,
                     [&] {
                         return ChunkState{std::unique_ptr<double[]>(new double[static_cast<std::size_t>(plane * C)]),
                                           std::unique_ptr<double[]>(
                                               new double[static_cast<std::size_t>(ring_size * plane * C)]),
                                           std::vector<double>(static_cast<std::size_t>(plane * C))};
                     },
                     [&](ChunkState& st, std::size_t chunk) {
                         const std::int64_t s0 = std::int64_t(chunk) * kSlabChunk;
                         const std::int64_t s1 = std::min(n0, s0 + kSlabChunk);
                         auto slot = [&](std::int64_t k) { return st.ring.get() + (k % ring_size) * plane * C; };
                         std::fill(st.sums.begin(), st.sums.end(), 0.0);
                         std::int64_t lo = std::max<std::int64_t>(0, s0 - r0), hi = lo - 1;
                         for (std::int64_t s = s0; s < s1; ++s) {
                             const std::int64_t want_hi = std::min(n0 - 1, s + r0);
                             const std::int64_t want_lo = std::max<std::int64_t>(0, s - r0);
                             while (hi < want_hi) {
                                 ++hi;
                                 double* dst = slot(hi);
                                 slab_box_sums(I + hi * plane, J + hi * plane, n1, n2, r, st.rowbox.get(), dst, 1);
                                 for (std::int64_t e = 0; e < plane * C; ++e) st.sums[std::size_t(e)] += dst[e];
                             }
                             while (lo < want_lo) {
                                 const double* src = slot(lo);
                                 for (std::int64_t e = 0; e < plane * C; ++e) st.sums[std::size_t(e)] -= src[e];
                                 ++lo;
                             }
                             slab_steps(s, 0, n1, st.sums.data(), 1);
                         }
                     });
    }
    StepResult res;
    for (double e : row_energy) res.forward_energy += e;
    res.backward_energy = res.forward_energy;
    smooth_field_components(fwd, shape, sigma, threads);
    smooth_field_components(bwd, shape, sigma, threads);
    return res;
}

}  // namespace

StepResult cc_steps(const float* static_img, const float* moving_img, const FieldShape& s, int radius,
                    const double* spacing, const double* direction, double sigma_diff, float* forward,
                    float* backward, int threads) {
    check_shape(s, "image");
    if (radius < 1) throw std::invalid_argument("radius must be >= 1");
    for (int a = 0; a < s.ndim; ++a)
        if (s.shape[a] < 2 * std::int64_t(radius) + 1)
            throw std::invalid_argument("each image dimension must be at least 2 * radius + 1");
    check_spacing(spacing, s.ndim);
    if (!std::isfinite(sigma_diff) || sigma_diff < 0.0) throw std::invalid_argument("sigma_diff must be >= 0");
    return with_dim(s.ndim, [&](auto dim) {
        return cc_impl<decltype(dim)::value>(static_img, moving_img, s, radius, spacing, direction, sigma_diff,
                                             forward, backward, threads);
    });
}

}  // namespace spectralign_fast::reg

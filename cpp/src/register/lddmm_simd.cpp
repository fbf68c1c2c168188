// The 2-D LDDMM inner loops over blocks of points held as separate coordinate
// arrays: the Euler step through a velocity and its adjoint
// (lddmm_steps_v8.inc, eight points at a time from a velocity packed by cell,
// one variant per instruction set picked at load time), and the
// border-clamped image sample and gradient, the contrast residual, the run
// sums of the splats and the weights' exp (GCC-vectorised, AVX-512 / AVX2 /
// baseline clones). Points whose bilinear cell leaves the velocity grid are
// marked (base0 = -1) for the caller's general path. Indices are 32-bit: the
// caller uses these only for grids under 2^30 values.
#include "lddmm_simd.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "core/simd_clones.hpp"

#if defined(SPECTRALIGN_HAVE_LIBMVEC)
// glibc's libmvec has exp for 2, 4 and 8 lanes (_ZGV*_exp); declaring exp as SIMD lets each
// clone's loop call the variant of its width. (glibc's own header says so only under
// -ffast-math.)
extern "C" {
#pragma omp declare simd notinbranch
double exp(double) noexcept;
}
#endif

namespace spectralign_fast::reg::lddmmkit {

namespace {

// A point's bilinear cell: its first corner (i0, i1), that corner's node
// i0 n1 + i1, the fractions a along each axis and the four corners' weights
// (00, 01, 10, 11), as every kernel below reads them.
struct Cell2d {
    bool in;
    int i0, i1, node;
    double a0, a1, w00, w01, w10, w11;
};

__attribute__((always_inline)) inline Cell2d make_cell(bool in, double f0, double f1, double a0, double a1,
                                                       int n1) {
    const int i0 = int(f0), i1 = int(f1);
    return {in, i0, i1, i0 * n1 + i1, a0, a1, (1.0 - a0) * (1.0 - a1), (1.0 - a0) * a1, a0 * (1.0 - a1), a0 * a1};
}

// The cell at index coordinates (r0, r1) where all four corners exist (in:
// 0 <= r < n - 1 on both axes); elsewhere cell 0, so that every load stays in
// bounds, and in false.
__attribute__((always_inline)) inline Cell2d cell_2d(double r0, double r1, double hi0, double hi1, int n1) {
    const bool in = (r0 >= 0.0) & (r0 < hi0) & (r1 >= 0.0) & (r1 < hi1);
    const double c0 = in ? r0 : 0.0, c1 = in ? r1 : 0.0;
    const double f0 = std::floor(c0), f1 = std::floor(c1);
    return make_cell(in, f0, f1, c0 - f0, c1 - f1, n1);
}

// The border rule's cell: (r0, r1) clamped into [0, hi] (NaN -> 0), the
// last cell on an axis taking its upper edge.
__attribute__((always_inline)) inline Cell2d border_cell_2d(double r0, double r1, double hi0, double hi1, int n1) {
    const double u0 = r0 > 0.0 ? (r0 < hi0 ? r0 : hi0) : 0.0;
    const double u1 = r1 > 0.0 ? (r1 < hi1 ? r1 : hi1) : 0.0;
    const double fl0 = std::floor(u0), fl1 = std::floor(u1);
    const double f0 = fl0 < hi0 - 1.0 ? fl0 : hi0 - 1.0, f1 = fl1 < hi1 - 1.0 ? fl1 : hi1 - 1.0;
    return make_cell(true, f0, f1, u0 - f0, u1 - f1, n1);
}

}  // namespace

void pack_velocity_2d(const double* v, int n0, int n1, double* pack) {
    const std::int64_t row = 2 * std::int64_t(n1);
    for (int i0 = 0; i0 < n0; ++i0)
        for (int i1 = 0; i1 < n1; ++i1) {
            double* o = pack + 8 * (std::int64_t(i0) * n1 + i1);
            if (i0 + 1 >= n0 || i1 + 1 >= n1) {
                for (int k = 0; k < 8; ++k) o[k] = 0.0;
                continue;
            }
            const double* p = v + 2 * (std::int64_t(i0) * n1 + i1);
            for (int k = 0; k < 4; ++k) {
                o[k] = p[k];
                o[4 + k] = p[row + k];
            }
        }
}

// The Euler step and its adjoint on CPUs without AVX-512: GCC-vectorised clones that read the
// four corners of each point's cell from the velocity itself.
SPECTRALIGN_CLONES
void flow_step_any(const double* __restrict v, const Cell2& g, const double* __restrict x0,
                  const double* __restrict x1, double* __restrict y0, double* __restrict y1, int count, double sdt,
                  int* __restrict base0, int* __restrict base1) {
    const double hi0 = double(g.n0 - 1), hi1 = double(g.n1 - 1);
    const int n1 = g.n1, row = 2 * g.n1;
    const double o0 = g.o0, o1 = g.o1, inv0 = g.inv0, inv1 = g.inv1;
    for (int j = 0; j < count; ++j) {
        const Cell2d c = cell_2d((x0[j] - o0) * inv0, (x1[j] - o1) * inv1, hi0, hi1, n1);
        const int k = 2 * c.node, k2 = k + row;
        const double ux = ((c.w00 * v[k] + c.w01 * v[k + 2]) + c.w10 * v[k2]) + c.w11 * v[k2 + 2];
        const double uy = ((c.w00 * v[k + 1] + c.w01 * v[k + 3]) + c.w10 * v[k2 + 1]) + c.w11 * v[k2 + 3];
        y0[j] = c.in ? x0[j] + sdt * ux : x0[j];
        y1[j] = c.in ? x1[j] + sdt * uy : x1[j];
        base0[j] = c.in ? c.i0 : -1;
        base1[j] = c.i1;
    }
}

SPECTRALIGN_CLONES
void adjoint_step_any(const double* __restrict v, const Cell2& g, const double* __restrict x0,
                     const double* __restrict x1, double* __restrict gx0, double* __restrict gx1, int count,
                     double dt, int* __restrict base0, int* __restrict base1, double* __restrict splat) {
    const double hi0 = double(g.n0 - 1), hi1 = double(g.n1 - 1);
    const int n1 = g.n1, row = 2 * g.n1;
    const double o0 = g.o0, o1 = g.o1, inv0 = g.inv0, inv1 = g.inv1;
    // Two loops over the block: the splats (no velocity loads), then the Jacobian's update of
    // g; one loop with both kept too many values live (the vector registers spilled).
    for (int j = 0; j < count; ++j) {
        const Cell2d c = cell_2d((x0[j] - o0) * inv0, (x1[j] - o1) * inv1, hi0, hi1, n1);
        const bool in = c.in;
        const double a0 = c.a0, a1 = c.a1, b0 = 1.0 - a0, b1 = 1.0 - a1;
        const double gx = gx0[j], gy = gx1[j];
        const double s = -dt;
        splat[8 * j + 0] = in ? s * b0 * b1 * gx : 0.0;
        splat[8 * j + 1] = in ? s * b0 * b1 * gy : 0.0;
        splat[8 * j + 2] = in ? s * b0 * a1 * gx : 0.0;
        splat[8 * j + 3] = in ? s * b0 * a1 * gy : 0.0;
        splat[8 * j + 4] = in ? s * a0 * b1 * gx : 0.0;
        splat[8 * j + 5] = in ? s * a0 * b1 * gy : 0.0;
        splat[8 * j + 6] = in ? s * a0 * a1 * gx : 0.0;
        splat[8 * j + 7] = in ? s * a0 * a1 * gy : 0.0;
        base0[j] = in ? c.i0 : -1;
        base1[j] = c.i1;
    }
    for (int j = 0; j < count; ++j) {
        const Cell2d c = cell_2d((x0[j] - o0) * inv0, (x1[j] - o1) * inv1, hi0, hi1, n1);
        const int k = 2 * c.node, k2 = k + row;
        const double a0 = c.a0, a1 = c.a1, b0 = 1.0 - a0, b1 = 1.0 - a1;
        // d v_k / d x_a from the four corners.
        const double p00x = v[k], p00y = v[k + 1], p01x = v[k + 2], p01y = v[k + 3];
        const double p10x = v[k2], p10y = v[k2 + 1], p11x = v[k2 + 2], p11y = v[k2 + 3];
        const double dx0 = ((p10x - p00x) * b1 + (p11x - p01x) * a1) * inv0;  // d vx / d x0
        const double dx1 = ((p01x - p00x) * b0 + (p11x - p10x) * a0) * inv1;  // d vx / d x1
        const double dy0 = ((p10y - p00y) * b1 + (p11y - p01y) * a1) * inv0;
        const double dy1 = ((p01y - p00y) * b0 + (p11y - p10y) * a0) * inv1;
        const double gx = gx0[j], gy = gx1[j];
        gx0[j] = c.in ? gx - dt * (dx0 * gx + dy0 * gy) : gx;
        gx1[j] = c.in ? gy - dt * (dx1 * gx + dy1 * gy) : gy;
    }
}

// With AVX-512: lddmm_steps_v8.inc, eight points at a time from the packed velocity (about a
// third less time per step here). It is compiled for x86-64-v4 only (under target_clones GCC
// lowers vector comparisons for the baseline before it clones, leaving them scalar; and as
// pairs of AVX2 registers its shuffles cost three times the gathers above).
#if SPECTRALIGN_HAVE_CLONES
// The kernels pass 64-byte vectors only between always-inlined helpers; the note that such a
// return would change the ABI without AVX-512 does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
namespace steps_v4 {
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#include "lddmm_steps_v8.inc"
#pragma GCC pop_options
}  // namespace steps_v4
#endif

bool packed_steps() {
#if SPECTRALIGN_HAVE_CLONES
    static const bool yes = [] {
        const char* no = std::getenv("SPECTRALIGN_NO_AVX512");
        return __builtin_cpu_supports("x86-64-v4") && !(no && std::strcmp(no, "1") == 0);
    }();
    return yes;
#else
    return false;
#endif
}

void flow_step_2d(const double* v, const double* pack, const Cell2& g, const double* x0, const double* x1,
                  double* y0, double* y1, int count, double sdt, int* base0, int* base1) {
#if SPECTRALIGN_HAVE_CLONES
    if (packed_steps()) return steps_v4::flow_step(pack, g, x0, x1, y0, y1, count, sdt, base0, base1);
#endif
    (void)pack;
    flow_step_any(v, g, x0, x1, y0, y1, count, sdt, base0, base1);
}

void adjoint_step_2d(const double* v, const double* pack, const Cell2& g, const double* x0, const double* x1,
                     double* gx0, double* gx1, int count, double dt, int* base0, int* base1, double* splat) {
#if SPECTRALIGN_HAVE_CLONES
    if (packed_steps()) return steps_v4::adjoint_step(pack, g, x0, x1, gx0, gx1, count, dt, base0, base1, splat);
#endif
    (void)pack;
    adjoint_step_any(v, g, x0, x1, gx0, gx1, count, dt, base0, base1, splat);
}

void pack_velocity_3d(const double* v, int n0, int n1, int n2, double* pack) {
    std::fill(pack, pack + 24 * std::int64_t(n0) * n1 * n2, 0.0);
    for (int i0 = 0; i0 + 1 < n0; ++i0)
        for (int i1 = 0; i1 + 1 < n1; ++i1) {
            // The four rows of nodes the cells of this row of cells touch: (b0, b1) = 00, 01, 10, 11.
            const double* row[4];
            for (int r = 0; r < 4; ++r)
                row[r] = v + 3 * ((std::int64_t(i0 + (r >> 1)) * n1 + (i1 + (r & 1))) * n2);
            double* o = pack + 24 * ((std::int64_t(i0) * n1 + i1) * n2);
            for (int i2 = 0; i2 + 1 < n2; ++i2, o += 24)
                for (int q = 0; q < 8; ++q) {
                    const double* src = row[q >> 1] + 3 * (i2 + (q & 1));
                    o[3 * q] = src[0];
                    o[3 * q + 1] = src[1];
                    o[3 * q + 2] = src[2];
                }
        }
}

void flow_step_3d(const double* pack, const Cell3& g, const double* x0, const double* x1, const double* x2,
                  double* y0, double* y1, double* y2, int count, double sdt, int* base0, int* base1, int* base2) {
#if SPECTRALIGN_HAVE_CLONES
    if (packed_steps()) return steps_v4::flow_step3(pack, g, x0, x1, x2, y0, y1, y2, count, sdt, base0, base1, base2);
#endif
    (void)pack, (void)g, (void)x0, (void)x1, (void)x2, (void)y0, (void)y1, (void)y2, (void)count, (void)sdt;
    (void)base0, (void)base1, (void)base2;
    throw std::logic_error("flow_step_3d needs the AVX-512 kernels (packed_steps())");
}

void adjoint_step_3d(const double* pack, const Cell3& g, const double* x0, const double* x1, const double* x2,
                     double* gx0, double* gx1, double* gx2, int count, double dt, int* base0, int* base1,
                     int* base2, double* splat) {
#if SPECTRALIGN_HAVE_CLONES
    if (packed_steps())
        return steps_v4::adjoint_step3(pack, g, x0, x1, x2, gx0, gx1, gx2, count, dt, base0, base1, base2, splat);
#endif
    (void)pack, (void)g, (void)x0, (void)x1, (void)x2, (void)gx0, (void)gx1, (void)gx2, (void)count, (void)dt;
    (void)base0, (void)base1, (void)base2, (void)splat;
    throw std::logic_error("adjoint_step_3d needs the AVX-512 kernels (packed_steps())");
}

SPECTRALIGN_CLONES
void splat_runs_3d(const int* __restrict base0, const int* __restrict base1, const int* __restrict base2,
                   const double* __restrict splat, int count, const std::int64_t* lo, const std::int64_t* stride,
                   double* __restrict buf) {
    std::int64_t corner[8];
    for (int q = 0; q < 8; ++q)
        corner[q] = ((q >> 2) & 1) * stride[0] + ((q >> 1) & 1) * stride[1] + (q & 1) * stride[2];
    std::int64_t cell = -1;
    double run[24] = {};
    for (int j = 0; j <= count; ++j) {
        const std::int64_t local =
            j < count ? (base0[j] - lo[0]) * stride[0] + (base1[j] - lo[1]) * stride[1] + (base2[j] - lo[2]) * stride[2]
                      : -1;
        if (j < count && base0[j] < 0) continue;  // left to the caller's general path
        const double* sp = splat + 24 * std::size_t(j < count ? j : 0);
        if (local == cell) {
            for (int k = 0; k < 24; ++k) run[k] += sp[k];
            continue;
        }
        if (cell >= 0)
            for (int q = 0; q < 8; ++q) {
                double* node = buf + (cell + corner[q]) * 3;
                for (int k = 0; k < 3; ++k) node[k] += run[3 * q + k];
            }
        if (j == count) break;
        cell = local;
        for (int k = 0; k < 24; ++k) run[k] = sp[k];
    }
}

SPECTRALIGN_CLONES
void sample_border_2d(const double* __restrict img, const Cell2& g, const double* __restrict x0,
                      const double* __restrict x1, int count, double* __restrict out) {
    const double hi0 = double(g.n0 - 1), hi1 = double(g.n1 - 1);
    const int n1 = g.n1;
    const double o0 = g.o0, o1 = g.o1, inv0 = g.inv0, inv1 = g.inv1;
    for (int j = 0; j < count; ++j) {
        const Cell2d c = border_cell_2d((x0[j] - o0) * inv0, (x1[j] - o1) * inv1, hi0, hi1, n1);
        const int k = c.node, k2 = k + n1;
        out[j] = (c.w00 * img[k] + c.w01 * img[k + 1]) + (c.w10 * img[k2] + c.w11 * img[k2 + 1]);
    }
}

SPECTRALIGN_CLONES
void sample_grad_border_2d(const double* __restrict img, const Cell2& g, const double* __restrict x0,
                           const double* __restrict x1, int count, double* __restrict out, double* __restrict gr0,
                           double* __restrict gr1) {
    const double hi0 = double(g.n0 - 1), hi1 = double(g.n1 - 1);
    const int n1 = g.n1;
    const double o0 = g.o0, o1 = g.o1, inv0 = g.inv0, inv1 = g.inv1;
    for (int j = 0; j < count; ++j) {
        const double r0 = (x0[j] - o0) * inv0, r1 = (x1[j] - o1) * inv1;
        const double d0 = (r0 >= 0.0) & (r0 <= hi0) ? inv0 : 0.0;
        const double d1 = (r1 >= 0.0) & (r1 <= hi1) ? inv1 : 0.0;
        const Cell2d c = border_cell_2d(r0, r1, hi0, hi1, n1);
        const int k = c.node, k2 = k + n1;
        const double a0 = c.a0, a1 = c.a1;
        const double p00 = img[k], p01 = img[k + 1], p10 = img[k2], p11 = img[k2 + 1];
        // The same expressions as sample_border_2d (identical bits).
        out[j] = (c.w00 * p00 + c.w01 * p01) + (c.w10 * p10 + c.w11 * p11);
        gr0[j] = ((p10 - p00) * (1.0 - a1) + (p11 - p01) * a1) * d0;
        gr1[j] = ((p01 - p00) * (1.0 - a0) + (p11 - p10) * a0) * d1;
    }
}

SPECTRALIGN_CLONES
void contrast_residual(const double* __restrict ai, const double* __restrict jt, std::int64_t plane,
                       const double* __restrict coeffs, int cI, int cJ, const double* __restrict w, double inv_sm2,
                       int count, double* __restrict e, double* __restrict wk, int stride) {
    double res[8][contrast_block];
    for (int c = 0; c < cJ; ++c) {
        const double c0 = coeffs[c];
        double* r = res[c];
        for (int j = 0; j < count; ++j) r[j] = c0;
        for (int k = 0; k < cI; ++k) {
            const double ck = coeffs[(k + 1) * cJ + c];
            const double* ak = ai + k * plane;
            for (int j = 0; j < count; ++j) r[j] += ck * ak[j];
        }
        const double* jc = jt + c * plane;
        for (int j = 0; j < count; ++j) r[j] = r[j] - jc[j];
    }
    for (int j = 0; j < count; ++j) {
        double acc = 0.0;
        for (int c = 0; c < cJ; ++c) acc += res[c][j] * res[c][j];
        e[j] = acc;
    }
    if (!wk) return;
    for (int k = 0; k < cI; ++k) {
        double* o = wk + k * stride;
        for (int j = 0; j < count; ++j) o[j] = 0.0;
        for (int c = 0; c < cJ; ++c) {
            const double ck = coeffs[(k + 1) * cJ + c];
            for (int j = 0; j < count; ++j) o[j] += res[c][j] * ck;
        }
        for (int j = 0; j < count; ++j) o[j] *= w[j] * inv_sm2;
    }
}

SPECTRALIGN_CLONES
void scaled_exp(const double* __restrict arg, double scale, int count, double* __restrict out) {
#pragma omp simd
    for (int j = 0; j < count; ++j) out[j] = scale * std::exp(arg[j]);
}

namespace {
// Eight doubles as one value for splat_runs_2d: one AVX-512 register in its x86-64-v4 clone
// (used only inside the kernel: no vector crosses a call).
typedef double v8d __attribute__((vector_size(64)));
typedef double v4d __attribute__((vector_size(32)));
}  // namespace

SPECTRALIGN_CLONES
void splat_runs_2d(const int* __restrict base0, const int* __restrict base1, const double* __restrict splat,
                   int count, int lo0, int lo1, std::int64_t row, double* __restrict buf) {
    std::int64_t cell = -1;
    v8d run = {};
    for (int j = 0; j <= count; ++j) {
        const std::int64_t local = j < count ? std::int64_t(base0[j] - lo0) * row + (base1[j] - lo1) : -1;
        if (local == cell) {
            v8d sp;
            std::memcpy(&sp, splat + 8 * j, sizeof sp);
            run += sp;
            continue;
        }
        if (cell >= 0) {
            // Corners 00 and 01 are neighbours in the buffer, and so are 10 and 11.
            v4d lo, hi;
            double* p0 = buf + cell * 2;
            double* p1 = buf + (cell + row) * 2;
            std::memcpy(&lo, p0, sizeof lo);
            std::memcpy(&hi, p1, sizeof hi);
            lo += v4d{run[0], run[1], run[2], run[3]};
            hi += v4d{run[4], run[5], run[6], run[7]};
            std::memcpy(p0, &lo, sizeof lo);
            std::memcpy(p1, &hi, sizeof hi);
        }
        if (j == count) break;
        cell = local;
        std::memcpy(&run, splat + 8 * j, sizeof run);
    }
}

}  // namespace spectralign_fast::reg::lddmmkit

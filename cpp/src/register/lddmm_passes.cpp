// The two passes over the target of one LDDMM evaluation (see lddmm.cpp):
// forward (the Euler positions X_t of every target point, the source sampled
// at X_0, the contrast sums) and residual (the contrast-mapped source, the
// matching energy and, when asked, the gradient carried back through the
// Euler steps as splats onto each chunk's box of velocity nodes and the sum
// dE/dA^-1). Points go in blocks, one time step at a time across a block, so
// that independent points' chains of dependent loads overlap; in 2-D the
// block loops are the vectorised kernels of lddmm_simd.cpp, with the general
// stencil for points whose cell leaves the velocity grid. X is planar:
// X[(t * d + a) * nJ + i].
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include <Eigen/Dense>

#include "core/parallel.hpp"
#include "lddmm_impl.hpp"
#include "lddmm_simd.hpp"

namespace spectralign_fast::reg {

using namespace lddmmkit;

namespace {

constexpr int block = 256;

Cell3 cell3_of(const PhysGrid& g) {
    Cell3 c;
    c.n0 = int(g.shape[0]);
    c.n1 = int(g.shape[1]);
    c.n2 = int(g.shape[2]);
    c.o0 = g.origin[0];
    c.o1 = g.origin[1];
    c.o2 = g.origin[2];
    c.inv0 = 1.0 / g.spacing[0];
    c.inv1 = 1.0 / g.spacing[1];
    c.inv2 = 1.0 / g.spacing[2];
    return c;
}

Cell2 cell_of(const PhysGrid& g) {
    Cell2 c;
    c.n0 = int(g.shape[0]);
    c.n1 = int(g.shape[1]);
    c.o0 = g.origin[0];
    c.o1 = g.origin[1];
    c.inv0 = 1.0 / g.spacing[0];
    c.inv1 = 1.0 / g.spacing[1];
    return c;
}

// sum_j w[j] a[j] b[j] over n values (a or b null: ones) in four interleaved partial sums,
// so that the compiler can vectorise it; the order is fixed, so the result is too.
double weighted_dot(const double* w, const double* a, const double* b, int n) {
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    int j = 0;
    for (; j + 4 <= n; j += 4)
        for (int l = 0; l < 4; ++l)
            acc[l] += w[j + l] * (a ? a[j + l] : 1.0) * (b ? b[j + l] : 1.0);
    for (; j < n; ++j) acc[j & 3] += w[j] * (a ? a[j] : 1.0) * (b ? b[j] : 1.0);
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// The block kernels index with 32-bit integers.
bool fits_int32(const PhysGrid& g, int comps) { return g.points() * comps < (std::int64_t(1) << 30); }

// 3-D: the AVX-512 kernels, when the velocity's pack (24 doubles per node and time step) stays
// under 128 MB; larger grids take the general path.
bool packs_3d(const PhysGrid& gV, int nt) {
    return packed_steps() && fits_int32(gV, 3) && double(gV.points()) * nt * 24 * 8 <= 128.0 * (1 << 20);
}

}  // namespace

template <int D>
void LddmmProblem::Impl::forward(bool bbox) {
    const Grid<D> gj(gJ), gv(gV), gi(gI);
    Eigen::Matrix<double, D + 1, D + 1, Eigen::RowMajor> Am;
    for (int r = 0; r <= D; ++r)
        for (int c = 0; c <= D; ++c) Am(r, c) = A[std::size_t(r * (D + 1) + c)];
    const Eigen::Matrix<double, D + 1, D + 1, Eigen::RowMajor> Ai = Am.inverse();
    if (!Ai.allFinite()) throw std::invalid_argument("the affine matrix A is singular");
    const double dt = 1.0 / nt;
    const std::int64_t vstep = nV * D;
    const int nb = cI + 1;
    const bool blocks2d = D == 2 && fits_int32(gV, 2) && fits_int32(gI, 1);
    const bool image3d = D == 3 && fits_int32(gI, 1);
    const Cell2 cv = cell_of(gV), ci2 = cell_of(gI);
    const Cell3 ci3 = D == 3 ? cell3_of(gI) : Cell3{};
    const std::int64_t npI = gi.points();
    const bool local_ends = D == 2 && blocks2d;  // X_0 and X_nt not stored (residual's rule too)
    const bool blocks3d = D == 3 && packs_3d(gV, nt);
    const bool blocks = blocks2d || blocks3d;  // the block kernels' path (base0 = -1: the general one)
    const Cell3 cv3 = D == 3 ? cell3_of(gV) : Cell3{};
    if (blocks2d && packed_steps()) {
        size_velocity_pack(8);
        for (int t = 0; t < nt; ++t) pack_velocity_2d(v.data() + t * vstep, cv.n0, cv.n1, packed_velocity(t));
    }
    if (blocks3d) {
        size_velocity_pack(24);
        for (int t = 0; t < nt; ++t)
            pack_velocity_3d(v.data() + t * vstep, cv3.n0, cv3.n1, cv3.n2, packed_velocity(t));
    }
    for_each(chunks.size(), [] { return 0; }, [&](int&, std::size_t ci) {
        LddmmChunk& ch = chunks[ci];
        const std::int64_t lo = std::int64_t(ci) * chunk_points, hi = std::min(nJ, lo + chunk_points);
        std::int64_t* boxlo = ch.box_lo.data();
        std::int64_t* boxhi = ch.box_hi.data();
        if (bbox)
            for (int k = 0; k < nt * D; ++k) {
                boxlo[k] = INT64_MAX;
                boxhi[k] = INT64_MIN;
            }
        auto grow = [&](int t, const std::int64_t* base) {
            for (int a = 0; a < D; ++a) {
                boxlo[t * D + a] = std::min(boxlo[t * D + a], std::max<std::int64_t>(base[a], 0));
                boxhi[t * D + a] = std::max(boxhi[t * D + a], std::min<std::int64_t>(base[a] + 1, gv.n[a] - 1));
            }
        };
        Stencil<D> st;
        double u[D];
        int b0[block], b1[block], b2[block];
        double bbl[64] = {}, bjl[64] = {};  // nb <= 8, cJ <= 8: the sums stay in locals
        std::int64_t at[D];
        gj.index_of(lo, at);
        // Position t of this block's points, axis a (the kernels write X in place: no copies).
        // In 2-D the gradient pass needs neither X_0 (the gradient is in GI) nor X_nt (A^-1 y,
        // made again there): those stay in this block's buffers and out of memory.
        double ends[2][D][block];
        auto Xt = [&](int t, int a, std::int64_t s0) -> double* {
            if (local_ends && (t == 0 || t == nt)) return ends[t == 0 ? 0 : 1][a];
            return X.data() + (std::size_t(t * D + a) * std::size_t(nJ) + std::size_t(s0));
        };
        for (std::int64_t s0 = lo; s0 < hi; s0 += block) {
            const int nbk = int(std::min<std::int64_t>(block, hi - s0));
            {
                double* xn[D];
                for (int a = 0; a < D; ++a) xn[a] = Xt(nt, a, s0);
                for (int j = 0; j < nbk; ++j, gj.next(at)) {
                    double y[D];
                    for (int a = 0; a < D; ++a) y[a] = gJ.origin[a] + double(at[a]) * gJ.spacing[a];
                    for (int r = 0; r < D; ++r) {
                        double acc = Ai(r, D);
                        for (int c = 0; c < D; ++c) acc += Ai(r, c) * y[c];
                        xn[r][j] = acc;
                    }
                }
            }
            for (int t = nt - 1; t >= 0; --t) {
                const double* vt = v.data() + t * vstep;
                const double* xin[D];
                double* xout[D];
                for (int a = 0; a < D; ++a) {
                    xin[a] = Xt(t + 1, a, s0);
                    xout[a] = Xt(t, a, s0);
                }
                if constexpr (D == 2) {
                    if (blocks2d)
                        flow_step_2d(vt, packed_velocity(t), cv, xin[0], xin[1], xout[0], xout[1], nbk, -dt, b0, b1);
                }
                if constexpr (D == 3) {
                    if (blocks3d)
                        flow_step_3d(packed_velocity(t), cv3, xin[0], xin[1], xin[2], xout[0], xout[1], xout[2], nbk,
                                     -dt, b0, b1, b2);
                }
                bool edges = true;
                if (blocks) {
                    // The interior points' cells (a vectorised min / max), then the rest.
                    int lo0 = INT32_MAX, hi0 = -1, lo1 = INT32_MAX, hi1 = -1, lo2 = INT32_MAX, hi2 = -1, outside = 0;
                    for (int j = 0; j < nbk; ++j) {
                        const bool in = b0[j] >= 0;
                        lo0 = std::min(lo0, in ? b0[j] : INT32_MAX);
                        hi0 = std::max(hi0, b0[j]);
                        lo1 = std::min(lo1, in ? b1[j] : INT32_MAX);
                        hi1 = std::max(hi1, in ? b1[j] : -1);
                        outside += in ? 0 : 1;
                    }
                    if (D == 3)
                        for (int j = 0; j < nbk; ++j) {
                            const bool in = b0[j] >= 0;
                            lo2 = std::min(lo2, in ? b2[j] : INT32_MAX);
                            hi2 = std::max(hi2, in ? b2[j] : -1);
                        }
                    if (bbox && hi0 >= 0) {
                        const std::int64_t lo_b[3] = {lo0, lo1, lo2}, hi_b[3] = {hi0, hi1, hi2};
                        grow(t, lo_b);
                        grow(t, hi_b);
                    }
                    edges = outside > 0;
                }
                for (int j = 0; j < nbk && edges; ++j) {
                    if (blocks && b0[j] >= 0) continue;
                    double x[D];
                    for (int a = 0; a < D; ++a) x[a] = xin[a][j];
                    stencil_zeros<D, false>(gv, x, st);
                    gather<D>(st, vt, D, u);
                    if (bbox && st.any) grow(t, st.base);
                    for (int a = 0; a < D; ++a) xout[a][j] = x[a] - dt * u[a];
                }
            }
            const double* x0[D];
            for (int a = 0; a < D; ++a) x0[a] = Xt(0, a, s0);
            for (int c = 0; c < cI; ++c) {
                const double* img = I.data() + c * npI;
                double* out = AI.data() + std::size_t(c) * std::size_t(nJ) + std::size_t(s0);
                if (D == 2 && blocks2d) {
                    // With the gradient pass ahead: the image gradient from the same stencil.
                    if (bbox) {
                        double* g0 = GI.data() + (std::size_t(c * D) * std::size_t(nJ) + std::size_t(s0));
                        sample_grad_border_2d(img, ci2, x0[0], x0[D - 1], nbk, out, g0, g0 + nJ);
                    } else {
                        sample_border_2d(img, ci2, x0[0], x0[D - 1], nbk, out);
                    }
                    continue;
                }
                if (D == 3 && image3d) {
                    sample_border_3d(img, ci3, x0[0], x0[D > 1 ? 1 : 0], x0[D - 1], nbk, out);
                    continue;
                }
                for (int j = 0; j < nbk; ++j) {
                    double x[D];
                    for (int a = 0; a < D; ++a) x[a] = x0[a][j];
                    stencil_border<D, false>(gi, x, st);
                    double acc = 0.0;
#pragma GCC unroll 8
                    for (int k = 0; k < Stencil<D>::K; ++k) acc += st.w[k] * img[st.off[k]];
                    out[j] = acc;
                }
            }
            if (fixed_coeffs) continue;
            // The weighted normal equations of the contrast fit, B = (1, AI_0, AI_1, ...).
            const double* w = WM.data() + s0;
            const double* Bk[8];
            Bk[0] = nullptr;
            for (int c = 0; c < cI; ++c) Bk[c + 1] = AI.data() + std::size_t(c) * std::size_t(nJ) + std::size_t(s0);
            for (int r = 0; r < nb; ++r) {
                for (int c = r; c < nb; ++c) {
                    const double sum = weighted_dot(w, Bk[r], Bk[c], nbk);
                    bbl[r * nb + c] += sum;
                    if (c != r) bbl[c * nb + r] += sum;
                }
                for (int c = 0; c < cJ; ++c)
                    bjl[r * cJ + c] += weighted_dot(w, Bk[r], J.data() + std::size_t(c) * std::size_t(nJ) + std::size_t(s0), nbk);
            }
        }
        for (int k = 0; k < nb * nb; ++k) ch.bb[std::size_t(k)] = bbl[k];
        for (int k = 0; k < nb * cJ; ++k) ch.bj[std::size_t(k)] = bjl[k];
    });
}

template <int D>
void LddmmProblem::Impl::residual(bool want_gradient) {
    const Grid<D> gj(gJ), gv(gV), gi(gI);
    const double dt = 1.0 / nt;
    const std::int64_t vstep = nV * D;
    const double inv_sm2 = 1.0 / (s.sigmaM * s.sigmaM);
    const std::int64_t npI = gi.points();
    const bool blocks2d = D == 2 && fits_int32(gV, 2) && fits_int32(gI, 1);
    const bool image3d = D == 3 && fits_int32(gI, 1);
    const Cell2 cv = cell_of(gV);
    const Cell3 ci3 = D == 3 ? cell3_of(gI) : Cell3{};
    const bool local_ends = D == 2 && blocks2d;  // forward() kept X_0 and X_nt in its block buffers
    const bool blocks3d = D == 3 && packs_3d(gV, nt);  // forward()'s rule: it made the pack
    const Cell3 cv3 = D == 3 ? cell3_of(gV) : Cell3{};
    Eigen::Matrix<double, D + 1, D + 1, Eigen::RowMajor> Am;
    for (int r = 0; r <= D; ++r)
        for (int c = 0; c <= D; ++c) Am(r, c) = A[std::size_t(r * (D + 1) + c)];
    const Eigen::Matrix<double, D + 1, D + 1, Eigen::RowMajor> Ai = Am.inverse();  // as in forward()
    for_each(chunks.size(), [] { return 0; }, [&](int&, std::size_t ci) {
        LddmmChunk& ch = chunks[ci];
        const std::int64_t lo = std::int64_t(ci) * chunk_points, hi = std::min(nJ, lo + chunk_points);
        if (want_gradient) {
            for (int t = 0; t < nt; ++t) {
                std::int64_t size = 1;
                for (int a = D - 1; a >= 0; --a) {
                    const std::int64_t ext = std::max<std::int64_t>(ch.box_hi[t * D + a] - ch.box_lo[t * D + a] + 1, 0);
                    ch.box_stride[t * D + a] = size;
                    size *= ext;
                }
                ch.splat[std::size_t(t)].assign(std::size_t(size * D), 0.0);
            }
        }
        Stencil<D> st;
        static_assert(block <= contrast_block, "contrast_residual takes at most contrast_block points");
        double gxs[D][block], ys[D][block], xend[D][block], wk[8][block], epts[block], jac[D * D], gAi[12] = {};
        double splat[(D == 3 ? 24 : 8) * block];
        int b0[block], b1[block], b2[block];
        double em = 0.0;
        std::int64_t at[D];
        gj.index_of(lo, at);
        for (std::int64_t s0 = lo; s0 < hi; s0 += block) {
            const int nbk = int(std::min<std::int64_t>(block, hi - s0));
            // The contrast-mapped source's residual and, per source channel, dE/dAI_k (wk).
            const double* w = WM.data() + s0;
            contrast_residual(AI.data() + s0, J.data() + s0, nJ, coeffs.data(), cI, cJ, w, inv_sm2, nbk, epts,
                              want_gradient ? wk[0] : nullptr, block);
            for (int j = 0; j < nbk; ++j) em += w[j] * epts[j];
            if (!want_gradient) continue;
            // The block's target points y and, when forward() did not store it, X_nt = A^-1 y
            // (its expression: the same bits).
            for (int j = 0; j < nbk; ++j, gj.next(at)) {
                for (int a = 0; a < D; ++a) ys[a][j] = gJ.origin[a] + double(at[a]) * gJ.spacing[a];
                if (!local_ends) continue;
                for (int r = 0; r < D; ++r) {
                    double acc = Ai(r, D);
                    for (int c = 0; c < D; ++c) acc += Ai(r, c) * ys[c][j];
                    xend[r][j] = acc;
                }
            }
            // dE/dX_0 = sum_k dE/dAI_k grad(I_k)(X_0)
            for (int a = 0; a < D; ++a) std::fill(gxs[a], gxs[a] + nbk, 0.0);
            const double* X0[D];
            for (int a = 0; a < D; ++a) X0[a] = X.data() + std::size_t(a) * std::size_t(nJ) + std::size_t(s0);
            for (int k = 0; k < cI; ++k) {
                const double* img = I.data() + k * npI;
                if (D == 2 && blocks2d) {  // the gradient forward() left in GI
                    const double* g0 = GI.data() + (std::size_t(k * D) * std::size_t(nJ) + std::size_t(s0));
                    const double* g1 = g0 + nJ;
                    for (int j = 0; j < nbk; ++j) {
                        gxs[0][j] += wk[k][j] * g0[j];
                        gxs[D - 1][j] += wk[k][j] * g1[j];
                    }
                    continue;
                }
                if (D == 3 && image3d) {
                    gradient_border_3d(img, ci3, X0[0], X0[D > 1 ? 1 : 0], X0[D - 1], wk[k], nbk, gxs[0],
                                       gxs[D > 1 ? 1 : 0], gxs[D - 1]);
                    continue;
                }
                for (int j = 0; j < nbk; ++j) {
                    double x[D];
                    for (int a = 0; a < D; ++a) x[a] = X0[a][j];
                    stencil_border<D>(gi, x, st);
                    for (int a = 0; a < D; ++a) {
                        double acc = 0.0;
#pragma GCC unroll 8
                        for (int q = 0; q < Stencil<D>::K; ++q) acc += st.dw[a][q] * img[st.off[q]];
                        gxs[a][j] += wk[k][j] * acc;
                    }
                }
            }
            // Back through X_t = X_{t+1} - dt v_t(X_{t+1}), t = 0 .. nt-1, a block at a time.
            for (int t = 0; t < nt; ++t) {
                const double* vt = v.data() + t * vstep;
                const double* Xn[D];
                for (int a = 0; a < D; ++a)
                    Xn[a] = local_ends && t + 1 == nt
                                ? xend[a]
                                : X.data() + std::size_t((t + 1) * D + a) * std::size_t(nJ) + std::size_t(s0);
                double* buf = ch.splat[std::size_t(t)].data();
                const std::int64_t* blo = ch.box_lo.data() + t * D;
                const std::int64_t* bst = ch.box_stride.data() + t * D;
                std::int64_t corner[Stencil<D>::K];
                for (int q = 0; q < Stencil<D>::K; ++q) {
                    corner[q] = 0;
                    for (int a = 0; a < D; ++a) corner[q] += ((q >> (D - 1 - a)) & 1) * bst[a];
                }
                if constexpr (D == 2) {
                    if (blocks2d) {
                        adjoint_step_2d(vt, packed_velocity(t), cv, Xn[0], Xn[1], gxs[0], gxs[1], nbk, dt, b0, b1,
                                        splat);
                        int outside = 0;
                        for (int j = 0; j < nbk; ++j) outside += b0[j] < 0 ? 1 : 0;
                        if (outside == 0) {  // the common case: every point's cell inside
                            splat_runs_2d(b0, b1, splat, nbk, int(blo[0]), int(blo[D - 1]), bst[0], buf);
                            continue;
                        }
                    }
                }
                if constexpr (D == 3) {
                    if (blocks3d) {
                        adjoint_step_3d(packed_velocity(t), cv3, Xn[0], Xn[1], Xn[2], gxs[0], gxs[1], gxs[2], nbk, dt,
                                        b0, b1, b2, splat);
                        // The interior points' splats (the others: the general path below).
                        splat_runs_3d(b0, b1, b2, splat, nbk, blo, bst, buf);
                        int outside = 0;
                        for (int j = 0; j < nbk; ++j) outside += b0[j] < 0 ? 1 : 0;
                        if (outside == 0) continue;
                    }
                }
                // Neighbouring points mostly share a velocity cell: their splats are summed
                // while the cell stays the same and added to the buffer once per run.
                std::int64_t run_cell = -1;
                double run[8] = {};
                auto flush = [&] {
                    if (run_cell < 0) return;
#pragma GCC unroll 4
                    for (int q = 0; q < 4; ++q) {
                        double* node = buf + (run_cell + corner[q]) * D;
                        node[0] += run[2 * q];
                        node[D - 1] += run[2 * q + 1];
                    }
                };
                for (int j = 0; j < nbk; ++j) {
                    if (D == 2 && blocks2d && b0[j] >= 0) {
                        const std::int64_t local = (b0[j] - blo[0]) * bst[0] + (b1[j] - blo[D - 1]) * bst[D - 1];
                        const double* sp = splat + 8 * j;
                        if (local != run_cell) {
                            flush();
                            run_cell = local;
                            for (int k = 0; k < 8; ++k) run[k] = sp[k];
                        } else {
                            for (int k = 0; k < 8; ++k) run[k] += sp[k];
                        }
                        continue;
                    }
                    if (D == 3 && blocks3d && b0[j] >= 0) continue;  // done by the kernel and splat_runs_3d
                    double x[D];
                    for (int a = 0; a < D; ++a) x[a] = Xn[a][j];
                    stencil_zeros<D>(gv, x, st);
                    if (!st.any) continue;
                    jacobian<D>(st, vt, jac);
                    // Corner q's node sits at base + bits(q); valid corners lie inside the box.
                    std::int64_t local = 0;
                    for (int a = 0; a < D; ++a) local += (st.base[a] - blo[a]) * bst[a];
#pragma GCC unroll 8
                    for (int q = 0; q < Stencil<D>::K; ++q) {
                        if (st.w[q] == 0.0) continue;
                        const double wq = -dt * st.w[q];
                        double* node = buf + (local + corner[q]) * D;
                        for (int a = 0; a < D; ++a) node[a] += wq * gxs[a][j];
                    }
                    double ng[D];
                    for (int a = 0; a < D; ++a) {
                        double acc = 0.0;
                        for (int k = 0; k < D; ++k) acc += jac[k * D + a] * gxs[k][j];
                        ng[a] = gxs[a][j] - dt * acc;
                    }
                    for (int a = 0; a < D; ++a) gxs[a][j] = ng[a];
                }
                flush();
            }
            // dE/dA^-1 += sum_j gx_j (y_j, 1)^T
            for (int rr = 0; rr < D; ++rr) {
                for (int c = 0; c < D; ++c) gAi[rr * (D + 1) + c] += weighted_dot(gxs[rr], ys[c], nullptr, nbk);
                gAi[rr * (D + 1) + D] += weighted_dot(gxs[rr], nullptr, nullptr, nbk);
            }
        }
        ch.em = em;
        if (want_gradient)
            for (int k = 0; k < 12; ++k) ch.gAi[k] = gAi[k];
    });
}

template void LddmmProblem::Impl::forward<2>(bool);
template void LddmmProblem::Impl::forward<3>(bool);
template void LddmmProblem::Impl::residual<2>(bool);
template void LddmmProblem::Impl::residual<3>(bool);

}  // namespace spectralign_fast::reg

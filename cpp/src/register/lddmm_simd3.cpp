// The 3-D LDDMM image kernels: the border-clamped sample and gradient over a block of points,
// vectorised like the 2-D ones (lddmm_simd.cpp). The 3-D Euler step and its adjoint use the
// general stencil (GCC does not vectorise their 24 gathers).
#include <cmath>

#include "core/simd_clones.hpp"
#include "lddmm_simd.hpp"

namespace spectralign_fast::reg::lddmmkit {

namespace {

// Clamps an index coordinate into [0, hi] (NaN -> 0) and gives the cell base and fraction.
inline void clamp_cell(double r, double hi, double& f, double& a) {
    const double u = r > 0.0 ? (r < hi ? r : hi) : 0.0;
    const double fl = std::floor(u);
    f = fl < hi - 1.0 ? fl : hi - 1.0;
    a = u - f;
}

}  // namespace

SPECTRALIGN_CLONES
void sample_border_3d(const double* __restrict img, const Cell3& g, const double* __restrict x0,
                      const double* __restrict x1, const double* __restrict x2, int count, double* __restrict out) {
    const double hi0 = double(g.n0 - 1), hi1 = double(g.n1 - 1), hi2 = double(g.n2 - 1);
    const int n1 = g.n1, n2 = g.n2, s0 = n1 * n2;
    const double o0 = g.o0, o1 = g.o1, o2 = g.o2, inv0 = g.inv0, inv1 = g.inv1, inv2 = g.inv2;
    for (int j = 0; j < count; ++j) {
        double f0, f1, f2, a0, a1, a2;
        clamp_cell((x0[j] - o0) * inv0, hi0, f0, a0);
        clamp_cell((x1[j] - o1) * inv1, hi1, f1, a1);
        clamp_cell((x2[j] - o2) * inv2, hi2, f2, a2);
        const int k = (int(f0) * n1 + int(f1)) * n2 + int(f2);
        const double b0 = 1.0 - a0, b1 = 1.0 - a1, b2 = 1.0 - a2;
        out[j] = ((b0 * b1 * b2 * img[k] + b0 * b1 * a2 * img[k + 1]) +
                  (b0 * a1 * b2 * img[k + n2] + b0 * a1 * a2 * img[k + n2 + 1])) +
                 ((a0 * b1 * b2 * img[k + s0] + a0 * b1 * a2 * img[k + s0 + 1]) +
                  (a0 * a1 * b2 * img[k + s0 + n2] + a0 * a1 * a2 * img[k + s0 + n2 + 1]));
    }
}

SPECTRALIGN_CLONES
void gradient_border_3d(const double* __restrict img, const Cell3& g, const double* __restrict x0,
                        const double* __restrict x1, const double* __restrict x2, const double* __restrict weight,
                        int count, double* __restrict gx0, double* __restrict gx1, double* __restrict gx2) {
    const double hi0 = double(g.n0 - 1), hi1 = double(g.n1 - 1), hi2 = double(g.n2 - 1);
    const int n1 = g.n1, n2 = g.n2, s0 = n1 * n2;
    const double o0 = g.o0, o1 = g.o1, o2 = g.o2, inv0 = g.inv0, inv1 = g.inv1, inv2 = g.inv2;
    for (int j = 0; j < count; ++j) {
        const double r0 = (x0[j] - o0) * inv0, r1 = (x1[j] - o1) * inv1, r2 = (x2[j] - o2) * inv2;
        // A clamped axis has no derivative (torch's border rule); exactly on an edge it has.
        const double e0 = (r0 >= 0.0) & (r0 <= hi0) ? inv0 : 0.0;
        const double e1 = (r1 >= 0.0) & (r1 <= hi1) ? inv1 : 0.0;
        const double e2 = (r2 >= 0.0) & (r2 <= hi2) ? inv2 : 0.0;
        double f0, f1, f2, a0, a1, a2;
        clamp_cell(r0, hi0, f0, a0);
        clamp_cell(r1, hi1, f1, a1);
        clamp_cell(r2, hi2, f2, a2);
        const int k = (int(f0) * n1 + int(f1)) * n2 + int(f2);
        const double b0 = 1.0 - a0, b1 = 1.0 - a1, b2 = 1.0 - a2;
        const double p000 = img[k], p001 = img[k + 1], p010 = img[k + n2], p011 = img[k + n2 + 1];
        const double p100 = img[k + s0], p101 = img[k + s0 + 1], p110 = img[k + s0 + n2], p111 = img[k + s0 + n2 + 1];
        const double w = weight[j];
        gx0[j] += w * e0 * ((p100 - p000) * b1 * b2 + (p101 - p001) * b1 * a2 + (p110 - p010) * a1 * b2 +
                            (p111 - p011) * a1 * a2);
        gx1[j] += w * e1 * ((p010 - p000) * b0 * b2 + (p011 - p001) * b0 * a2 + (p110 - p100) * a0 * b2 +
                            (p111 - p101) * a0 * a2);
        gx2[j] += w * e2 * ((p001 - p000) * b0 * b1 + (p011 - p010) * b0 * a1 + (p101 - p100) * a0 * b1 +
                            (p111 - p110) * a0 * a1);
    }
}

}  // namespace spectralign_fast::reg::lddmmkit

// The field algebra's vectorised row kernels (see field_rows.hpp). The
// warps keep the scalar code's order (field_common.hpp interpolate()) and
// match it to the last bit; the compositions blend whole corner rows in
// float (within a few ulp of it). The file is built with -ffp-contract=off,
// so every clone gives the same bits.
#include "field_rows.hpp"

#include <cmath>

#include "core/simd_clones.hpp"

namespace spectralign_fast::reg::fieldkit {

namespace {

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SPECTRALIGN_PAIR_LOADS 1
// Two consecutive floats as one 8-byte load (first float in the low half).
typedef std::uint64_t PairWord __attribute__((may_alias, aligned(4)));
inline std::uint64_t load_pair(const float* p) { return *reinterpret_cast<const PairWord*>(p); }
inline double lo(std::uint64_t x) { return double(__builtin_bit_cast(float, std::uint32_t(x))); }
inline double hi(std::uint64_t x) { return double(__builtin_bit_cast(float, std::uint32_t(x >> 32))); }
#else
#define SPECTRALIGN_PAIR_LOADS 0
#endif

// Eight / four floats as one vector (GCC / Clang vector extensions: AVX in
// the AVX clones, SSE pairs in the baseline one).
typedef float Float8 __attribute__((vector_size(32)));
typedef float Float4 __attribute__((vector_size(16)));
typedef int Int4 __attribute__((vector_size(16)));
typedef int Int8 __attribute__((vector_size(32)));
typedef double Double8 __attribute__((vector_size(64)));

// Whether every spacing is a power of two (a normal double), so that dividing
// by it and multiplying by its reciprocal give the same bits.
inline bool exact_reciprocals(const double* spacing, int D) {
    for (int k = 0; k < D; ++k) {
        int e = 0;
        if (!(std::isnormal(spacing[k]) && std::frexp(spacing[k], &e) == 0.5 && std::isnormal(1.0 / spacing[k])))
            return false;
    }
    return true;
}

// The largest m2 whose rounded square root is at most maxlen: sqrt is
// correctly rounded and monotonic, so sqrt(m2) > maxlen exactly when
// m2 > cap_threshold(maxlen), and the root is needed only there.
inline double cap_threshold(double maxlen) {
    double t = maxlen * maxlen;
    if (!(t < HUGE_VAL)) return t;  // inf or NaN: no m2 exceeds it, as no m exceeds maxlen
    while (t > 0.0 && std::sqrt(t) > maxlen) t = std::nextafter(t, 0.0);
    for (;;) {
        const double up = std::nextafter(t, HUGE_VAL);
        if (std::sqrt(up) > maxlen) return t;
        t = up;
    }
}

// The inversion's damped update of count voxels of p, p -= factor q
// (invert_impl's rule: factor from m = |q / spacing|, eps * maxlen / m where
// m > maxlen, else eps), D components a voxel: before each composition chunk
// and, as damped_update2/3, after the last one. In 3-D, eight voxels at a
// time: their m^2 in vectors and, where none exceeds the cap (the usual
// case), p -= eps q on the interleaved values with no root or division;
// else those eight one by one. The same operations, so the same bits.
template <int D>
__attribute__((always_inline)) inline void damped_voxels(float* __restrict p, const float* __restrict q,
                                                         std::int64_t count, const double* inv_sp, double eps,
                                                         double maxlen) {
    for (std::int64_t j = 0; j < count; ++j) {
        double m2 = 0.0;
        for (int c = 0; c < D; ++c) {
            const double qc = double(q[D * j + c]) * inv_sp[c];
            m2 += qc * qc;
        }
        const double m = std::sqrt(m2);
        const double factor = m > maxlen ? eps * maxlen / m : eps;
        for (int c = 0; c < D; ++c)
            p[D * j + c] = static_cast<float>(double(p[D * j + c]) - factor * double(q[D * j + c]));
    }
}

template <int D>
__attribute__((always_inline)) inline void damped_chunk(float* __restrict p, const float* __restrict q,
                                                        std::int64_t count, const double* spacing, double eps,
                                                        double maxlen) {
    // Reciprocals: a division per value cost about a sixth of an inversion (the same bits where
    // the spacing is a power of two, within an ulp elsewhere).
    double inv_sp[D];
    for (int c = 0; c < D; ++c) inv_sp[c] = 1.0 / spacing[c];
    std::int64_t j = 0;
    if constexpr (D == 3) {
        typedef std::int64_t Long8 __attribute__((vector_size(64)));
        const double cap2 = cap_threshold(maxlen);
        const double r0 = inv_sp[0], r1 = inv_sp[1], r2 = inv_sp[2];
        // Value 3 v + k of the 24 holds component k: the reciprocals in the three vectors' lanes.
        const Double8 s0 = {r0, r1, r2, r0, r1, r2, r0, r1}, s1 = {r2, r0, r1, r2, r0, r1, r2, r0},
                      s2 = {r1, r2, r0, r1, r2, r0, r1, r2};
        for (; j + 8 <= count; j += 8) {
            const float* qj = q + 3 * j;
            float* pj = p + 3 * j;
            Float8 qa, qb, qc;
            __builtin_memcpy(&qa, qj, sizeof qa);
            __builtin_memcpy(&qb, qj + 8, sizeof qb);
            __builtin_memcpy(&qc, qj + 16, sizeof qc);
            const Double8 A = __builtin_convertvector(qa, Double8), B = __builtin_convertvector(qb, Double8),
                          C = __builtin_convertvector(qc, Double8);
            const Double8 As = A * s0, Bs = B * s1, Cs = C * s2;
            const Double8 X = __builtin_shufflevector(__builtin_shufflevector(As, Bs, 0, 3, 6, 9, 12, 15, 0, 0), Cs,
                                                      0, 1, 2, 3, 4, 5, 10, 13);
            const Double8 Y = __builtin_shufflevector(__builtin_shufflevector(As, Bs, 1, 4, 7, 10, 13, 0, 0, 0), Cs,
                                                      0, 1, 2, 3, 4, 8, 11, 14);
            const Double8 Z = __builtin_shufflevector(__builtin_shufflevector(As, Bs, 2, 5, 8, 11, 14, 0, 0, 0), Cs,
                                                      0, 1, 2, 3, 4, 9, 12, 15);
            const Long8 over = (X * X + Y * Y) + Z * Z > cap2;
            std::int64_t any = 0;
            for (int l = 0; l < 8; ++l) any |= over[l];
            if (any) {
                damped_voxels<3>(pj, qj, 8, inv_sp, eps, maxlen);
                continue;
            }
            Float8 pa, pb, pc;
            __builtin_memcpy(&pa, pj, sizeof pa);
            __builtin_memcpy(&pb, pj + 8, sizeof pb);
            __builtin_memcpy(&pc, pj + 16, sizeof pc);
            pa = __builtin_convertvector(__builtin_convertvector(pa, Double8) - eps * A, Float8);
            pb = __builtin_convertvector(__builtin_convertvector(pb, Double8) - eps * B, Float8);
            pc = __builtin_convertvector(__builtin_convertvector(pc, Double8) - eps * C, Float8);
            __builtin_memcpy(pj, &pa, sizeof pa);
            __builtin_memcpy(pj + 8, &pb, sizeof pb);
            __builtin_memcpy(pj + 16, &pc, sizeof pc);
        }
    }
    damped_voxels<D>(p + D * j, q + D * j, count - j, inv_sp, eps, maxlen);
}

// A composition chunk in four loops. First, across voxels (vectorised):
// each voxel's position i + B u (double, so the fractions are exact at any
// index), whether every corner of its cell exists (interpolate()'s interior:
// 0 <= x < n - 1 on every axis), the offset of its first corner and the
// corner rows' float weights. Then one voxel at a time, with no gathers: a
// corner pair along the last axis is 2 x D consecutive floats, read as one
// vector per corner row and blended in float (within a few ulp of the double
// scalar sum; the same bits for every clone and thread count) into a buffer.
// Then float(t v + u) across the chunk's values, and last the magnitudes.
// u is read before comp is written, so they may be one array.
template <bool Scaled, bool Magnitudes = true>
__attribute__((always_inline)) inline void compose3(const ComposeGrid3& g, const float* u, int count, double i0,
                                                    double i1, int j0, const double* spacing, float* comp,
                                                    double* __restrict mag, int* __restrict inside) {
    // Offsets are 32-bit (fields under 2^31 values), which lets AVX2 convert them in vectors too.
    const int s1 = 3 * g.n2, s0 = s1 * g.n1;
    // The far corner row's 8-float load runs 2 floats past the field for the last cells: those read 6.
    const std::int64_t full_loads = std::int64_t(s0) * g.n0 - 8 - s0 - s1;
    const double hi0 = double(g.n0 - 1), hi1 = double(g.n1 - 1), hi2 = double(g.n2 - 1);
    const double B0 = g.B[0], B1 = g.B[1], B2 = g.B[2], B3 = g.B[3], B4 = g.B[4], B5 = g.B[5], B6 = g.B[6],
                 B7 = g.B[7], B8 = g.B[8];
    int cell[kRowChunk];
    // The corner rows' weights, (1 - r0)(1 - r1), (1 - r0) r1, r0 (1 - r1), r0 r1, and the last
    // axis' pair, made across voxels in float as the blend uses them.
    float wA[kRowChunk], wB[kRowChunk], wC[kRowChunk], wD[kRowChunk], a2[kRowChunk], fr2[kRowChunk];
    for (int j = 0; j < count; ++j) {
        const double ua = u[3 * j], ub = u[3 * j + 1], uc = u[3 * j + 2];
        const double x0 = i0 + ((B0 * ua + B1 * ub) + B2 * uc);
        const double x1 = i1 + ((B3 * ua + B4 * ub) + B5 * uc);
        const double x2 = double(j0 + j) + ((B6 * ua + B7 * ub) + B8 * uc);
        const bool in = (x0 >= 0.0) & (x0 < hi0) & (x1 >= 0.0) & (x1 < hi1) & (x2 >= 0.0) & (x2 < hi2);
        const double c0 = in ? x0 : 0.0, c1 = in ? x1 : 0.0, c2 = in ? x2 : 0.0;
        const double f0 = std::floor(c0), f1 = std::floor(c1), f2 = std::floor(c2);
        cell[j] = int(f0) * s0 + int(f1) * s1 + 3 * int(f2);
        const float r0 = static_cast<float>(c0 - f0), r1 = static_cast<float>(c1 - f1);
        const float r2 = static_cast<float>(c2 - f2);
        const float q0 = 1.0f - r0, q1 = 1.0f - r1;
        wA[j] = q0 * q1;
        wB[j] = q0 * r1;
        wC[j] = r0 * q1;
        wD[j] = r0 * r1;
        fr2[j] = r2;
        a2[j] = 1.0f - r2;
        inside[j] = in ? 1 : 0;
    }
    // One voxel at a time: the blended corner pair's first three floats go to vals[3 j ..] (an
    // 8-float store that the next voxel overwrites), the mask of its three values to keep[3 j ..].
    float vals[3 * kRowChunk + 8];
    int keep[3 * kRowChunk + 8];
    const float* __restrict d = g.d;
    for (int j = 0; j < count; ++j) {
        if (!inside[j]) {  // no loads: a cell outside may not exist
            const Float8 Z = {};
            const Int4 M = {};
            __builtin_memcpy(vals + 3 * j, &Z, sizeof Z);
            __builtin_memcpy(keep + 3 * j, &M, sizeof M);
            continue;
        }
        const std::int64_t k = cell[j];
        Float8 A, B, C, D = {};
        __builtin_memcpy(&A, d + k, sizeof A);
        __builtin_memcpy(&B, d + k + s1, sizeof B);
        __builtin_memcpy(&C, d + k + s0, sizeof C);
        if (k <= full_loads)
            __builtin_memcpy(&D, d + k + s0 + s1, sizeof D);
        else
            __builtin_memcpy(&D, d + k + s0 + s1, 6 * sizeof(float));
        const Float8 R = (A * wA[j] + B * wB[j]) + (C * wC[j] + D * wD[j]);
        const Float8 V = R * a2[j] + __builtin_shufflevector(R, R, 3, 4, 5, 6, 7, 0, 1, 2) * fr2[j];
        __builtin_memcpy(vals + 3 * j, &V, sizeof V);
        const Int4 M = {-1, -1, -1, -1};
        __builtin_memcpy(keep + 3 * j, &M, sizeof M);
    }
    // comp = float(t value + u) where inside, else 0: across the 3 count floats in vectors (the
    // same operations per value as one voxel at a time; u may be comp, read before written).
    const double t = g.t;
    const int nf = 3 * count;
    int i = 0;
    for (; i + 8 <= nf; i += 8) {
        Float8 v, uu;
        Int8 m;
        __builtin_memcpy(&v, vals + i, sizeof v);
        __builtin_memcpy(&uu, u + i, sizeof uu);
        __builtin_memcpy(&m, keep + i, sizeof m);
        const Double8 r = __builtin_convertvector(v, Double8) * t + __builtin_convertvector(uu, Double8);
        const Int8 bits = reinterpret_cast<Int8>(__builtin_convertvector(r, Float8)) & m;
        __builtin_memcpy(comp + i, &bits, sizeof bits);
    }
    for (; i < nf; ++i) comp[i] = keep[i] ? static_cast<float>(t * double(vals[i]) + double(u[i])) : 0.0f;
    if constexpr (!Magnitudes) return;
    const double rs0 = Scaled ? 1.0 / spacing[0] : 1.0, rs1 = Scaled ? 1.0 / spacing[1] : 1.0,
                 rs2 = Scaled ? 1.0 / spacing[2] : 1.0;  // reciprocals, as damped_chunk
    for (int j = 0; j < count; ++j) {  // 0 where not inside: comp is 0 there
        const double q0 = double(comp[3 * j]) * rs0, q1 = double(comp[3 * j + 1]) * rs1,
                     q2 = double(comp[3 * j + 2]) * rs2;
        const double m2 = (q0 * q0 + q1 * q1) + q2 * q2;
        mag[j] = Scaled ? std::sqrt(m2) : m2;
    }
}

// One chunk, with the inversion's damped update of u first (Update).
template <bool Scaled, bool Update>
__attribute__((always_inline)) inline void compose_chunk(const ComposeGrid3& g, float* u, int count, double i0,
                                                         double i1, int j0, const double* spacing, float* comp,
                                                         double* mag, int* inside, double eps, double maxlen) {
    if constexpr (Update) damped_chunk<3>(u, comp, count, spacing, eps, maxlen);
    compose3<Scaled>(g, u, count, i0, i1, j0, spacing, comp, mag, inside);
}

SPECTRALIGN_CLONES
void chunk_plain(const ComposeGrid3& g, float* u, int count, double i0, double i1, int j0, float* comp, double* mag,
                 int* inside) {
    compose_chunk<false, false>(g, u, count, i0, i1, j0, nullptr, comp, mag, inside, 0.0, 0.0);
}

SPECTRALIGN_CLONES
void chunk_bare(const ComposeGrid3& g, float* u, int count, double i0, double i1, int j0, float* comp,
                int* inside) {
    compose3<false, false>(g, u, count, i0, i1, j0, nullptr, comp, nullptr, inside);
}

SPECTRALIGN_CLONES
void chunk_scaled(const ComposeGrid3& g, float* u, int count, double i0, double i1, int j0, const double* spacing,
                  float* comp, double* mag, int* inside) {
    compose_chunk<true, false>(g, u, count, i0, i1, j0, spacing, comp, mag, inside, 0.0, 0.0);
}

SPECTRALIGN_CLONES
void chunk_update(const ComposeGrid3& g, float* u, int count, double i0, double i1, int j0, const double* spacing,
                  float* comp, double* mag, int* inside, double eps, double maxlen) {
    compose_chunk<true, true>(g, u, count, i0, i1, j0, spacing, comp, mag, inside, eps, maxlen);
}

// A warp kernel's select for one voxel, made in a loop of its own after the
// gather loop: out the value where every corner exists, else 0; status 1 there, 2 on the edge (left to the caller's
// scalar interpolation), 0 outside. The loop stays in each kernel: over its
// own local arrays GCC knows the val and edge loads stay in bounds and
// vectorises them as plain loads; a helper holding the loop makes GCC 12 mask
// them.
__attribute__((always_inline)) inline void warp_select(double keep, double edge, double val, float& out,
                                                       int& status) {
    const bool in = keep != 0.0;
    out = in ? static_cast<float>(val) : 0.0f;
    status = in ? 1 : (edge != 0.0 ? 2 : 0);
}

SPECTRALIGN_CLONES
void warp_kernel(const WarpGrid3& g, const float* __restrict u, int count, double i0, double i1, int j0,
                 float* __restrict out, int* __restrict status) {
    double u0[kRowChunk], u1[kRowChunk], u2[kRowChunk], val[kRowChunk], keep[kRowChunk], edge[kRowChunk];
    for (int j = 0; j < count; ++j) {
        u0[j] = u[3 * j];
        u1[j] = u[3 * j + 1];
        u2[j] = u[3 * j + 2];
    }
    const float* __restrict img = g.img;
    const int s1 = g.n2, s0 = g.n1 * g.n2;
    const double lo0 = double(g.n0 - 1), lo1 = double(g.n1 - 1), lo2 = double(g.n2 - 1);
    const double n0 = double(g.n0), n1 = double(g.n1), n2 = double(g.n2);
    const double W0 = g.W[0], W1 = g.W[1], W2 = g.W[2], W3 = g.W[3], W4 = g.W[4], W5 = g.W[5], W6 = g.W[6],
                 W7 = g.W[7], W8 = g.W[8];
    const double z0 = g.zW[0], z1 = g.zW[1], z2 = g.zW[2];
    // apply<3>(B, (i0, i1, j), 1.0)'s first three terms, the same for the whole chunk.
    const double b0 = (g.B[3] * 1.0 + g.B[0] * i0) + g.B[1] * i1, b1 = (g.B[7] * 1.0 + g.B[4] * i0) + g.B[5] * i1,
                 b2 = (g.B[11] * 1.0 + g.B[8] * i0) + g.B[9] * i1;
    const double B2 = g.B[2], B6 = g.B[6], B10 = g.B[10];
    for (int j = 0; j < count; ++j) {
        const double ua = u0[j], ub = u1[j], uc = u2[j], jd = double(j0 + j);
        const double x0 = (((z0 + W0 * ua) + W1 * ub) + W2 * uc) + (b0 + B2 * jd);
        const double x1 = (((z1 + W3 * ua) + W4 * ub) + W5 * uc) + (b1 + B6 * jd);
        const double x2 = (((z2 + W6 * ua) + W7 * ub) + W8 * uc) + (b2 + B10 * jd);
        const bool in = (x0 >= 0.0) & (x0 < lo0) & (x1 >= 0.0) & (x1 < lo1) & (x2 >= 0.0) & (x2 < lo2);
        const bool near = (x0 > -1.0) & (x0 < n0) & (x1 > -1.0) & (x1 < n1) & (x2 > -1.0) & (x2 < n2);
        const double c0 = in ? x0 : 0.0, c1 = in ? x1 : 0.0, c2 = in ? x2 : 0.0;
        const double f0 = std::floor(c0), f1 = std::floor(c1), f2 = std::floor(c2);
        const int k = int(f0) * s0 + int(f1) * s1 + int(f2);
        const double fr0 = c0 - f0, fr1 = c1 - f1, fr2 = c2 - f2;
        const double a0 = 1.0 - fr0, a1 = 1.0 - fr1, a2 = 1.0 - fr2;
        const double w0 = a0 * a1 * a2, w1 = a0 * a1 * fr2, w2 = a0 * fr1 * a2, w3 = a0 * fr1 * fr2;
        const double w4 = fr0 * a1 * a2, w5 = fr0 * a1 * fr2, w6 = fr0 * fr1 * a2, w7 = fr0 * fr1 * fr2;
#if SPECTRALIGN_PAIR_LOADS
        // Each corner pair along the last axis as one 8-byte load.
        const std::uint64_t pA = load_pair(img + k), pB = load_pair(img + k + s1), pC = load_pair(img + k + s0),
                            pD = load_pair(img + k + s0 + s1);
        val[j] = ((w0 * lo(pA) + w1 * hi(pA)) + (w2 * lo(pB) + w3 * hi(pB))) +
                 ((w4 * lo(pC) + w5 * hi(pC)) + (w6 * lo(pD) + w7 * hi(pD)));
#else
        val[j] = ((w0 * double(img[k]) + w1 * double(img[k + 1])) +
                  (w2 * double(img[k + s1]) + w3 * double(img[k + s1 + 1]))) +
                 ((w4 * double(img[k + s0]) + w5 * double(img[k + s0 + 1])) +
                  (w6 * double(img[k + s0 + s1]) + w7 * double(img[k + s0 + s1 + 1])));
#endif
        keep[j] = in ? 1.0 : 0.0;
        edge[j] = near ? 1.0 : 0.0;
    }
    for (int j = 0; j < count; ++j) warp_select(keep[j], edge[j], val[j], out[j], status[j]);
}

// ---- 2-D: the same, with interpolate()'s 2-D interior sum.

// The 2-D counterpart of compose3: a corner pair along the last axis is 4
// consecutive floats, one 4-float vector per row (no load past the field).
template <bool Scaled, bool Update, bool Magnitudes = true>
__attribute__((always_inline)) inline void compose_chunk_2d(const ComposeGrid3& g, float* u, int count, double i0,
                                                            int j0, const double* spacing, float* comp,
                                                            double* __restrict mag, int* __restrict inside,
                                                            double eps, double maxlen) {
    if constexpr (Update) damped_chunk<2>(u, comp, count, spacing, eps, maxlen);
    const int s0 = 2 * g.n1;
    const double hi0 = double(g.n0 - 1), hi1 = double(g.n1 - 1);
    const double B0 = g.B[0], B1 = g.B[1], B2 = g.B[2], B3 = g.B[3];
    int cell[kRowChunk];
    float fr0[kRowChunk], fr1[kRowChunk];
    for (int j = 0; j < count; ++j) {
        const double ua = u[2 * j], ub = u[2 * j + 1];
        const double x0 = i0 + (B0 * ua + B1 * ub);
        const double x1 = double(j0 + j) + (B2 * ua + B3 * ub);
        const bool in = (x0 >= 0.0) & (x0 < hi0) & (x1 >= 0.0) & (x1 < hi1);
        const double c0 = in ? x0 : 0.0, c1 = in ? x1 : 0.0;
        const double f0 = std::floor(c0), f1 = std::floor(c1);
        cell[j] = int(f0) * s0 + 2 * int(f1);
        fr0[j] = static_cast<float>(c0 - f0);
        fr1[j] = static_cast<float>(c1 - f1);
        inside[j] = in ? 1 : 0;
    }
    const float* __restrict d = g.d;
    const double t = g.t;
    for (int j = 0; j < count; ++j) {
        float* o = comp + 2 * j;
        if (!inside[j]) {
            o[0] = o[1] = 0.0f;
            continue;
        }
        const std::int64_t k = cell[j];
        const float r0 = fr0[j], r1 = fr1[j];
        Float4 A, B;
        __builtin_memcpy(&A, d + k, sizeof A);
        __builtin_memcpy(&B, d + k + s0, sizeof B);
        const Float4 R = A * (1.0f - r0) + B * r0;
        const Float4 V = R * (1.0f - r1) + __builtin_shufflevector(R, R, 2, 3, 0, 1) * r1;
        const float ua = u[2 * j], ub = u[2 * j + 1];
        o[0] = static_cast<float>(t * double(V[0]) + double(ua));
        o[1] = static_cast<float>(t * double(V[1]) + double(ub));
    }
    if constexpr (!Magnitudes) return;
    const double rs0 = Scaled ? 1.0 / spacing[0] : 1.0, rs1 = Scaled ? 1.0 / spacing[1] : 1.0;
    for (int j = 0; j < count; ++j) {
        const double q0 = double(comp[2 * j]) * rs0, q1 = double(comp[2 * j + 1]) * rs1;
        const double m2 = q0 * q0 + q1 * q1;
        mag[j] = Scaled ? std::sqrt(m2) : m2;
    }
}

SPECTRALIGN_CLONES
void chunk2_plain(const ComposeGrid3& g, float* u, int count, double i0, int j0, float* comp, double* mag,
                  int* inside) {
    compose_chunk_2d<false, false>(g, u, count, i0, j0, nullptr, comp, mag, inside, 0.0, 0.0);
}

SPECTRALIGN_CLONES
void chunk2_bare(const ComposeGrid3& g, float* u, int count, double i0, int j0, float* comp, int* inside) {
    compose_chunk_2d<false, false, false>(g, u, count, i0, j0, nullptr, comp, nullptr, inside, 0.0, 0.0);
}

SPECTRALIGN_CLONES
void chunk2_scaled(const ComposeGrid3& g, float* u, int count, double i0, int j0, const double* spacing,
                   float* comp, double* mag, int* inside) {
    compose_chunk_2d<true, false>(g, u, count, i0, j0, spacing, comp, mag, inside, 0.0, 0.0);
}

SPECTRALIGN_CLONES
void chunk2_update(const ComposeGrid3& g, float* u, int count, double i0, int j0, const double* spacing,
                   float* comp, double* mag, int* inside, double eps, double maxlen) {
    compose_chunk_2d<true, true>(g, u, count, i0, j0, spacing, comp, mag, inside, eps, maxlen);
}

SPECTRALIGN_CLONES
void warp_kernel2(const WarpGrid3& g, const float* __restrict u, int count, double i0, int j0,
                  float* __restrict out, int* __restrict status) {
    double u0[kRowChunk], u1[kRowChunk], val[kRowChunk], keep[kRowChunk], edge[kRowChunk];
    for (int j = 0; j < count; ++j) {
        u0[j] = u[2 * j];
        u1[j] = u[2 * j + 1];
    }
    const float* __restrict img = g.img;
    const int s0 = g.n1;
    const double lo0 = double(g.n0 - 1), lo1 = double(g.n1 - 1), n0 = double(g.n0), n1 = double(g.n1);
    const double W0 = g.W[0], W1 = g.W[1], W2 = g.W[2], W3 = g.W[3];
    const double z0 = g.zW[0], z1 = g.zW[1];
    // apply<2>(B, (i0, j), 1.0)'s first two terms (B's rows of 3).
    const double b0 = g.B[2] * 1.0 + g.B[0] * i0, b1 = g.B[5] * 1.0 + g.B[3] * i0;
    const double Bj0 = g.B[1], Bj1 = g.B[4];
    for (int j = 0; j < count; ++j) {
        const double ua = u0[j], ub = u1[j], jd = double(j0 + j);
        const double x0 = ((z0 + W0 * ua) + W1 * ub) + (b0 + Bj0 * jd);
        const double x1 = ((z1 + W2 * ua) + W3 * ub) + (b1 + Bj1 * jd);
        const bool in = (x0 >= 0.0) & (x0 < lo0) & (x1 >= 0.0) & (x1 < lo1);
        const bool near = (x0 > -1.0) & (x0 < n0) & (x1 > -1.0) & (x1 < n1);
        const double c0 = in ? x0 : 0.0, c1 = in ? x1 : 0.0;
        const double f0 = std::floor(c0), f1 = std::floor(c1);
        const int k = int(f0) * s0 + int(f1);
        const double fr0 = c0 - f0, fr1 = c1 - f1;
        const double w00 = (1.0 - fr0) * (1.0 - fr1), w01 = (1.0 - fr0) * fr1, w10 = fr0 * (1.0 - fr1),
                     w11 = fr0 * fr1;
        val[j] = (w00 * double(img[k]) + w01 * double(img[k + 1])) +
                 (w10 * double(img[k + s0]) + w11 * double(img[k + s0 + 1]));
        keep[j] = in ? 1.0 : 0.0;
        edge[j] = near ? 1.0 : 0.0;
    }
    for (int j = 0; j < count; ++j) warp_select(keep[j], edge[j], val[j], out[j], status[j]);
}

SPECTRALIGN_CLONES
void damped2(float* p, const float* q, const double* spacing, std::int64_t count, double eps, double maxlen) {
    damped_chunk<2>(p, q, count, spacing, eps, maxlen);
}

}  // namespace

void compose_chunk2(const ComposeGrid3& g, const float* u, int count, double i0, int j0, const double* spacing,
                    float* comp, double* mag, int* inside) {
    float* uu = const_cast<float*>(u);  // only read without the update
    if (spacing)
        chunk2_scaled(g, uu, count, i0, j0, spacing, comp, mag, inside);
    else if (mag)
        chunk2_plain(g, uu, count, i0, j0, comp, mag, inside);
    else
        chunk2_bare(g, uu, count, i0, j0, comp, inside);
}

void update_compose_chunk2(const ComposeGrid3& g, float* p, int count, double i0, int j0, const double* spacing,
                           float* q, double* mag, int* inside, double eps, double maxlen) {
    chunk2_update(g, p, count, i0, j0, spacing, q, mag, inside, eps, maxlen);
}

void damped_update2(float* p, const float* q, const double* spacing, std::int64_t count, double eps,
                    double maxlen) {
    damped2(p, q, spacing, count, eps, maxlen);
}

void warp_chunk2(const WarpGrid3& g, const float* u, int count, double i0, int j0, float* out, int* status) {
    warp_kernel2(g, u, count, i0, j0, out, status);
}

void warp_chunk3(const WarpGrid3& g, const float* u, int count, double i0, double i1, int j0, float* out,
                 int* status) {
    warp_kernel(g, u, count, i0, i1, j0, out, status);
}

void compose_chunk3(const ComposeGrid3& g, const float* u, int count, double i0, double i1, int j0,
                    const double* spacing, float* comp, double* mag, int* inside) {
    // Without Update u is only read.
    float* uu = const_cast<float*>(u);
    if (spacing)
        chunk_scaled(g, uu, count, i0, i1, j0, spacing, comp, mag, inside);
    else if (mag)
        chunk_plain(g, uu, count, i0, i1, j0, comp, mag, inside);
    else
        chunk_bare(g, uu, count, i0, i1, j0, comp, inside);
}

void update_compose_chunk3(const ComposeGrid3& g, float* p, int count, double i0, double i1, int j0,
                           const double* spacing, float* q, double* mag, int* inside, double eps, double maxlen) {
    chunk_update(g, p, count, i0, i1, j0, spacing, q, mag, inside, eps, maxlen);
}

SPECTRALIGN_CLONES
void damped_update3(float* p, const float* q, const double* spacing, std::int64_t count, double eps,
                    double maxlen) {
    damped_chunk<3>(p, q, count, spacing, eps, maxlen);
}

SPECTRALIGN_CLONES
void squared_norms3(const float* __restrict v, std::int64_t count, const double* spacing, double* __restrict sq) {
    const double sp0 = spacing[0], sp1 = spacing[1], sp2 = spacing[2];
    if (exact_reciprocals(spacing, 3)) {  // x / 2^k is x * 2^-k to the last bit
        const double r0 = 1.0 / sp0, r1 = 1.0 / sp1, r2 = 1.0 / sp2;
        for (std::int64_t j = 0; j < count; ++j) {
            const double c0 = double(v[3 * j]) * r0, c1 = double(v[3 * j + 1]) * r1, c2 = double(v[3 * j + 2]) * r2;
            sq[j] = (c0 * c0 + c1 * c1) + c2 * c2;
        }
        return;
    }
    for (std::int64_t j = 0; j < count; ++j) {
        const double c0 = double(v[3 * j]) / sp0, c1 = double(v[3 * j + 1]) / sp1, c2 = double(v[3 * j + 2]) / sp2;
        sq[j] = (c0 * c0 + c1 * c1) + c2 * c2;
    }
}

SPECTRALIGN_CLONES
void squared_norms2(const float* __restrict v, std::int64_t count, const double* spacing, double* __restrict sq) {
    const double sp0 = spacing[0], sp1 = spacing[1];
    for (std::int64_t j = 0; j < count; ++j) {
        const double c0 = double(v[2 * j]) / sp0, c1 = double(v[2 * j + 1]) / sp1;
        sq[j] = c0 * c0 + c1 * c1;
    }
}

void squared_norms(const float* v, std::int64_t count, int D, const double* spacing, double* sq) {
    if (D == 3)
        squared_norms3(v, count, spacing, sq);
    else
        squared_norms2(v, count, spacing, sq);
}

SPECTRALIGN_CLONES
void divide_all(float* v, std::int64_t count, double nrm) {
    for (std::int64_t j = 0; j < count; ++j) v[j] = static_cast<float>(double(v[j]) / nrm);
}

}  // namespace spectralign_fast::reg::fieldkit

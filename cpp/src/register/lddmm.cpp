// One LDDMM problem with STalign's energy and gradient descent:
//   E = 1/(2 sigmaM^2) sum WM |f(I o phi^-1 o A^-1) - J|^2           (matching)
//     + 1/(2 sigmaR^2) sum_t <L v_t, L v_t>  (L = (I - a^2 Laplacian)^p)  (regularisation)
//     + 1/(2 sigmaP^2) sum |A phi(pointsI) - pointsJ|^2                 (landmarks)
// f is the contrast map (an affine map of the source channels per target
// channel) fitted by weighted least squares with the weights WM and held
// fixed while differentiating, as STalign does. The gradients are the
// adjoints of the forward computation: the Euler steps backward, the
// d-linear interpolation's transpose (a splat onto the velocity grid) and
// the chain rule through A^-1. The velocity gradient is smoothed by
// K = 1/|L|^2 with FFTW before the step.
//
// Determinism: the target is cut into fixed chunks; each chunk keeps its own
// partial sums and its own splat buffers (over the bounding box of the
// velocity nodes it touches), and chunks are added in order.
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <Eigen/Dense>

#include "core/parallel.hpp"
#include "lddmm_impl.hpp"
#include "spectralign_fast/fft/fft.hpp"

namespace spectralign_fast::reg {

using namespace lddmmkit;

void LddmmProblem::Impl::setup_spectrum() {
    fshape.assign(gV.shape, gV.shape + d);
    const std::int64_t nl = gV.shape[d - 1] / 2 + 1;
    nhalf = nV / gV.shape[d - 1] * nl;
    LL.resize(std::size_t(nhalf));
    mult.resize(std::size_t(nhalf));
    const double pi = 3.14159265358979323846;
    for (std::int64_t h = 0; h < nhalf; ++h) {
        std::int64_t rest = h;
        double acc = 0.0;
        for (int a = d - 1; a >= 0; --a) {
            const std::int64_t na = a == d - 1 ? nl : gV.shape[a];
            const std::int64_t k = rest % na;
            rest /= na;
            const double dv = gV.spacing[a];
            acc += (1.0 - std::cos(2.0 * pi * double(k) / double(gV.shape[a]))) / (dv * dv);
            if (a == d - 1) {
                const bool self = k == 0 || (gV.shape[a] % 2 == 0 && k == gV.shape[a] / 2);
                mult[std::size_t(h)] = self ? 1.0 : 2.0;
            }
        }
        LL[std::size_t(h)] = std::pow(1.0 + 2.0 * s.a * s.a * acc, 2.0 * s.p);
    }
}

// DV / sigmaR^2: the regulariser's weight per velocity node.
double LddmmProblem::Impl::regularizer_scale() const {
    double DV = 1.0;
    for (int a = 0; a < d; ++a) DV *= gV.spacing[a];
    return DV / (s.sigmaR * s.sigmaR);
}

// For every time step t and component k of `field` (laid out like v), in parallel: its
// forward FFT (float32, half spectrum) goes to spectrum(item, c), which may change c and
// returns whether the inverse is wanted; if so the unnormalised inverse goes to
// back(offset of (t, node 0, k), r).
template <class Spectrum, class Back>
void LddmmProblem::Impl::each_component_fft(const double* field, Spectrum spectrum, Back back) {
    const std::size_t items = std::size_t(nt) * std::size_t(d);
    struct Bufs {
        RealBuffer r;
        ComplexBuffer c;
    };
    const R2CPlan& r2c = R2CPlan::get(fshape);
    const C2RPlan& c2r = C2RPlan::get(fshape);
    for_each(items, [&] { return Bufs{RealBuffer(std::size_t(nV)), ComplexBuffer(std::size_t(nhalf))}; },
                 [&](Bufs& b, std::size_t item) {
        const std::size_t t = item / std::size_t(d), k = item % std::size_t(d);
        const std::size_t base = t * std::size_t(nV) * d + k;
        for (std::int64_t i = 0; i < nV; ++i) b.r[std::size_t(i)] = float(field[base + std::size_t(i * d)]);
        r2c.execute(b.r.data(), b.c.data());
        if (!spectrum(item, b.c.data())) return;
        c2r.execute(b.c.data(), b.r.data());
        back(base, b.r.data());
    });
}

// ER = DV / (2 sigmaR^2 N) sum_t,k sum_f LL |FFT v_tk|^2; its gradient is
// DV / sigmaR^2 IFFT(LL FFT v) (unnormalised FFTs).
double LddmmProblem::Impl::regularization(bool want_gradient, double* grad) {
    std::vector<double> part(std::size_t(nt) * std::size_t(d), 0.0);
    const double scale = regularizer_scale();
    each_component_fft(
        v.data(),
        [&](std::size_t item, std::complex<float>* c) {
            double acc = 0.0;
            for (std::int64_t h = 0; h < nhalf; ++h) acc += mult[std::size_t(h)] * LL[std::size_t(h)] * std::norm(c[h]);
            part[item] = acc;
            if (!want_gradient) return false;
            for (std::int64_t h = 0; h < nhalf; ++h) c[h] *= float(LL[std::size_t(h)]);
            return true;
        },
        [&](std::size_t base, const float* r) {
            for (std::int64_t i = 0; i < nV; ++i) grad[base + std::size_t(i * d)] += scale * double(r[i]) / double(nV);
        });
    double total = 0.0;
    for (double p : part) total += p;
    return total * scale / (2.0 * double(nV));
}

// out = IFFT(K FFT g) / N + DV / sigmaR^2 v: the smoothed gradient of the
// matching and landmark terms plus the regulariser's (K LL = 1 exactly).
void LddmmProblem::Impl::smooth(const double* g, double* out) {
    const double scale = regularizer_scale();
    each_component_fft(
        g,
        [&](std::size_t, std::complex<float>* c) {
            for (std::int64_t h = 0; h < nhalf; ++h) c[h] *= float(1.0 / LL[std::size_t(h)]);
            return true;
        },
        [&](std::size_t base, const float* r) {
            for (std::int64_t i = 0; i < nV; ++i) {
                const std::size_t at = base + std::size_t(i * d);
                out[at] = double(r[i]) / double(nV) + scale * v[at];
            }
        });
}

void LddmmProblem::Impl::fit_contrast() {
    if (fixed_coeffs) return;
    const int nb = cI + 1;
    Eigen::MatrixXd BB = Eigen::MatrixXd::Zero(nb, nb), BJ = Eigen::MatrixXd::Zero(nb, cJ);
    for (const LddmmChunk& ch : chunks) {
        for (int r = 0; r < nb; ++r) {
            for (int c = 0; c < nb; ++c) BB(r, c) += ch.bb[std::size_t(r * nb + c)];
            for (int c = 0; c < cJ; ++c) BJ(r, c) += ch.bj[std::size_t(r * cJ + c)];
        }
    }
    BB += s.ridge * Eigen::MatrixXd::Identity(nb, nb);
    const Eigen::MatrixXd C = BB.partialPivLu().solve(BJ);
    if (!C.allFinite()) throw std::invalid_argument("the contrast fit failed (non-finite coefficients)");
    for (int r = 0; r < nb; ++r)
        for (int c = 0; c < cJ; ++c) coeffs[std::size_t(r * cJ + c)] = C(r, c);
}

// EP = 1/(2 sigmaP^2) sum |A phi(p) - q|^2 with phi the forward Euler flow;
// its gradient splats straight into grad_v (few points, one thread) and adds
// to gA ((d+1)^2).
template <int D>
double LddmmProblem::Impl::landmarks(bool want_gradient, double* gA) {
    if (np == 0) return 0.0;
    const Grid<D> gv(gV);
    const double dt = 1.0 / nt;
    const std::int64_t vstep = nV * D;
    const double inv_sp2 = 1.0 / (s.sigmaP * s.sigmaP);
    double energy = 0.0;
    std::vector<double> path(std::size_t(nt + 1) * D);
    Stencil<D> st;
    double u[D], jac[D * D];
    for (std::int64_t i = 0; i < np; ++i) {
        for (int a = 0; a < D; ++a) path[std::size_t(a)] = pI[std::size_t(i * D + a)];
        for (int t = 0; t < nt; ++t) {
            const double* p = &path[std::size_t(t * D)];
            stencil_zeros<D>(gv, p, st);
            gather<D>(st, v.data() + t * vstep, D, u);
            for (int a = 0; a < D; ++a) path[std::size_t((t + 1) * D + a)] = p[a] + dt * u[a];
        }
        const double* pe = &path[std::size_t(nt * D)];
        double gq[D];
        for (int r = 0; r < D; ++r) {
            double q = A[std::size_t(r * (D + 1) + D)];
            for (int c = 0; c < D; ++c) q += A[std::size_t(r * (D + 1) + c)] * pe[c];
            const double diff = q - pJ[std::size_t(i * D + r)];
            energy += diff * diff;
            gq[r] = diff * inv_sp2;
        }
        if (!want_gradient) continue;
        double gp[D];
        for (int r = 0; r < D; ++r) {
            for (int c = 0; c < D; ++c) gA[r * (D + 1) + c] += gq[r] * pe[c];
            gA[r * (D + 1) + D] += gq[r];
        }
        for (int c = 0; c < D; ++c) {
            double acc = 0.0;
            for (int r = 0; r < D; ++r) acc += A[std::size_t(r * (D + 1) + c)] * gq[r];
            gp[c] = acc;
        }
        // Back through p_{t+1} = p_t + dt v_t(p_t), t = nt-1 .. 0.
        for (int t = nt - 1; t >= 0; --t) {
            const double* p = &path[std::size_t(t * D)];
            stencil_zeros<D>(gv, p, st);
            if (!st.any) continue;
            double* gvt = grad_v.data() + t * vstep;
            for (int q = 0; q < Stencil<D>::K; ++q) {
                if (st.w[q] == 0.0) continue;
                for (int a = 0; a < D; ++a) gvt[st.off[q] * D + a] += dt * st.w[q] * gp[a];
            }
            jacobian<D>(st, v.data() + t * vstep, jac);
            double ng[D];
            for (int a = 0; a < D; ++a) {
                double acc = 0.0;
                for (int k = 0; k < D; ++k) acc += jac[k * D + a] * gp[k];
                ng[a] = gp[a] + dt * acc;
            }
            for (int a = 0; a < D; ++a) gp[a] = ng[a];
        }
    }
    return energy * 0.5 * inv_sp2;
}

// Energy at the current state; with want_gradient, grad_v and grad_A hold
// the raw gradients of the matching and landmark terms (not the
// regulariser's) on return.
LddmmEnergy LddmmProblem::Impl::run(bool want_gradient) {
    LddmmEnergy e;
    dispatch_dim(d, [&](auto dim) {
        constexpr int D = decltype(dim)::value;
        forward<D>(want_gradient);
        fit_contrast();
        residual<D>(want_gradient);
        double em = 0.0;
        for (const LddmmChunk& ch : chunks) em += ch.em;
        e.matching = em / (2.0 * s.sigmaM * s.sigmaM);
        double gA[16] = {};
        if (want_gradient) {
            // The chunks' splats, added in chunk order.
            std::fill(grad_v.begin(), grad_v.end(), 0.0);
            const Grid<D> gv(gV);
            for (const LddmmChunk& ch : chunks) {
                for (int t = 0; t < nt; ++t) {
                    const std::int64_t* blo = ch.box_lo.data() + t * D;
                    const std::int64_t* bhi = ch.box_hi.data() + t * D;
                    if (ch.splat[std::size_t(t)].empty() || blo[0] > bhi[0]) continue;
                    const double* buf = ch.splat[std::size_t(t)].data();
                    double* gvt = grad_v.data() + t * nV * D;
                    std::int64_t idx[D];
                    for (int a = 0; a < D; ++a) idx[a] = blo[a];
                    for (std::int64_t k = 0;; ++k) {
                        std::int64_t off = 0;
                        for (int a = 0; a < D; ++a) off += idx[a] * gv.stride[a];
                        for (int a = 0; a < D; ++a) gvt[off * D + a] += buf[k * D + a];
                        int a = D - 1;
                        while (a >= 0 && ++idx[a] > bhi[a]) {
                            idx[a] = blo[a];
                            --a;
                        }
                        if (a < 0) break;
                    }
                }
                for (int r = 0; r < D; ++r)
                    for (int c = 0; c <= D; ++c) gA[r * (D + 1) + c] += ch.gAi[r * (D + 1) + c];
            }
            // dE/dA = -A^-T (dE/dA^-1) A^-T.
            Eigen::Matrix<double, D + 1, D + 1, Eigen::RowMajor> Am, G;
            for (int r = 0; r <= D; ++r)
                for (int c = 0; c <= D; ++c) {
                    Am(r, c) = A[std::size_t(r * (D + 1) + c)];
                    G(r, c) = gA[r * (D + 1) + c];
                }
            const auto AiT = Am.inverse().transpose();
            const Eigen::Matrix<double, D + 1, D + 1, Eigen::RowMajor> dA = -(AiT * G * AiT);
            for (int r = 0; r <= D; ++r)
                for (int c = 0; c <= D; ++c) gA[r * (D + 1) + c] = r < D ? dA(r, c) : 0.0;
        }
        e.points = landmarks<D>(want_gradient, gA);
        for (int k = 0; k < 16; ++k) grad_A[k] = gA[k];
    });
    e.regularization = regularization(false, nullptr);
    e.total = e.matching + e.regularization + e.points;
    return e;
}

}  // namespace spectralign_fast::reg

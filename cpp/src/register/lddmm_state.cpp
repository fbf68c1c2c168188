// Construction, accessors, the gradient step and STalign's mixture-weight
// update of an LDDMM problem (see lddmm.cpp for the energy).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "core/parallel.hpp"
#include "lddmm_impl.hpp"
#include "lddmm_simd.hpp"

namespace spectralign_fast::reg {

using namespace lddmmkit;

// A team of resolve_threads(threads) (at most one per chunk) for the length of one call, unless
// an outer call already made one; joined when the call returns or throws.
struct LddmmProblem::Impl::TeamScope {
    Impl& m;
    bool own = false;
    explicit TeamScope(Impl& impl) : m(impl) {
        if (m.team) return;
        const int size = int(std::min<std::size_t>(std::size_t(resolve_threads(m.threads)), m.chunks.size()));
        if (size < 2) return;
        m.team = std::make_unique<Team>(size);
        own = true;
    }
    ~TeamScope() {
        if (own) m.team.reset();
    }
    TeamScope(const TeamScope&) = delete;
    TeamScope& operator=(const TeamScope&) = delete;
};

LddmmProblem::LddmmProblem(const double* I, int channelsI, const PhysGrid& gridI, const double* J, int channelsJ,
                           const PhysGrid& gridJ, const PhysGrid& gridV, const LddmmSettings& settings,
                           const double* pointsI, const double* pointsJ, std::int64_t npoints, int threads)
    : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    check_grid(gridI, "the source grid", 2);
    check_grid(gridJ, "the target grid", 1);
    check_grid(gridV, "the velocity grid", 2);
    if (gridJ.ndim != gridI.ndim || gridV.ndim != gridI.ndim)
        throw std::invalid_argument("the source, target and velocity grids must have the same dimension");
    if (channelsI < 1 || channelsJ < 1 || channelsI > 7 || channelsJ > 8)
        throw std::invalid_argument("the source needs 1 to 7 channels and the target 1 to 8");
    if (settings.nt < 1) throw std::invalid_argument("nt must be at least 1");
    for (double x : {settings.a, settings.p, settings.sigmaM, settings.sigmaB, settings.sigmaA, settings.sigmaR,
                     settings.sigmaP})
        if (!(x > 0.0) || !std::isfinite(x))
            throw std::invalid_argument("a, p and the sigmas must be positive and finite");
    if (!(settings.ridge >= 0.0)) throw std::invalid_argument("the contrast ridge must be >= 0");
    if (npoints < 0) throw std::invalid_argument("npoints must be >= 0");
    m.d = gridI.ndim;
    m.cI = channelsI;
    m.cJ = channelsJ;
    m.nt = settings.nt;
    m.threads = threads;
    m.gI = gridI;
    m.gJ = gridJ;
    m.gV = gridV;
    m.s = settings;
    const std::int64_t nI = gridI.points();
    m.nJ = gridJ.points();
    m.nV = gridV.points();
    m.I.assign(I, I + nI * channelsI);
    m.J.assign(J, J + m.nJ * channelsJ);
    for (double x : m.I)
        if (!std::isfinite(x)) throw std::invalid_argument("the source image has NaN or infinite values");
    for (double x : m.J)
        if (!std::isfinite(x)) throw std::invalid_argument("the target image has NaN or infinite values");
    const int d = m.d;
    m.v.assign(std::size_t(m.nt) * std::size_t(m.nV) * d, 0.0);
    m.grad_v.assign(m.v.size(), 0.0);
    m.smooth_v.assign(m.v.size(), 0.0);
    m.A.assign(std::size_t((d + 1) * (d + 1)), 0.0);
    for (int k = 0; k <= d; ++k) m.A[std::size_t(k * (d + 2))] = 1.0;
    m.WM.assign(std::size_t(m.nJ), 0.5);
    m.WB.assign(std::size_t(m.nJ), 0.4);
    m.WA.assign(std::size_t(m.nJ), 0.1);
    m.muA.assign(std::size_t(channelsJ), 0.0);
    m.muB.assign(std::size_t(channelsJ), 0.0);
    m.np = npoints;
    if (npoints > 0) {
        m.pI.assign(pointsI, pointsI + npoints * d);
        m.pJ.assign(pointsJ, pointsJ + npoints * d);
        for (std::size_t k = 0; k < m.pI.size(); ++k)
            if (!std::isfinite(m.pI[k]) || !std::isfinite(m.pJ[k]))
                throw std::invalid_argument("the landmark points must be finite");
    }
    m.X.assign(std::size_t(m.nt + 1) * std::size_t(m.nJ) * d, 0.0);
    m.AI.assign(std::size_t(m.nJ) * channelsI, 0.0);
    if (d == 2) m.GI.assign(std::size_t(m.nJ) * channelsI * 2, 0.0);
    m.fAI.assign(std::size_t(m.nJ) * channelsJ, 0.0);
    m.coeffs.assign(std::size_t(channelsI + 1) * channelsJ, 0.0);
    const std::size_t nchunks = std::size_t((m.nJ + chunk_points - 1) / chunk_points);
    m.chunks.resize(nchunks);
    for (LddmmChunk& ch : m.chunks) {
        ch.bb.assign(std::size_t((channelsI + 1) * (channelsI + 1)), 0.0);
        ch.bj.assign(std::size_t((channelsI + 1) * channelsJ), 0.0);
        ch.box_lo.assign(std::size_t(m.nt * d), 0);
        ch.box_hi.assign(std::size_t(m.nt * d), -1);
        ch.box_stride.assign(std::size_t(m.nt * d), 0);
        ch.splat.resize(std::size_t(m.nt));
        ch.sums.assign(std::size_t(6 + 2 * channelsJ), 0.0);
    }
    m.setup_spectrum();
}

LddmmProblem::~LddmmProblem() = default;

int LddmmProblem::ndim() const { return impl_->d; }
int LddmmProblem::channels_source() const { return impl_->cI; }
int LddmmProblem::channels_target() const { return impl_->cJ; }
std::int64_t LddmmProblem::target_points() const { return impl_->nJ; }
std::int64_t LddmmProblem::velocity_size() const { return std::int64_t(impl_->v.size()); }
double* LddmmProblem::velocity() { return impl_->v.data(); }
double* LddmmProblem::affine() { return impl_->A.data(); }
double* LddmmProblem::weight_matching() { return impl_->WM.data(); }
double* LddmmProblem::weight_artifact() { return impl_->WA.data(); }
double* LddmmProblem::weight_background() { return impl_->WB.data(); }
double* LddmmProblem::mean_artifact() { return impl_->muA.data(); }
double* LddmmProblem::mean_background() { return impl_->muB.data(); }
const std::vector<double>& LddmmProblem::deformed_source() const { return impl_->AI; }
const std::vector<double>& LddmmProblem::contrast_source() const {
    Impl& m = *impl_;
    // Made on demand (the iterations do not need it): f(AI) from the last evaluation.
    for (int c = 0; c < m.cJ; ++c)
        for (std::int64_t i = 0; i < m.nJ; ++i) m.fAI[std::size_t(c * m.nJ + i)] = m.contrast_at(c, i);
    return m.fAI;
}
const std::vector<double>& LddmmProblem::contrast_coefficients() const { return impl_->coeffs; }

void LddmmProblem::fix_contrast(const double* coefficients) {
    Impl& m = *impl_;
    m.fixed_coeffs = coefficients != nullptr;
    if (coefficients) m.coeffs.assign(coefficients, coefficients + m.coeffs.size());
}

LddmmEnergy LddmmProblem::evaluate() {
    Impl::TeamScope scope(*impl_);
    return impl_->run(false);
}

LddmmEnergy LddmmProblem::gradient(double* grad_v, double* grad_A) {
    Impl& m = *impl_;
    Impl::TeamScope scope(m);
    const LddmmEnergy e = m.run(true);
    m.regularization(true, m.grad_v.data());
    std::copy(m.grad_v.begin(), m.grad_v.end(), grad_v);
    const int d = m.d;
    for (int k = 0; k < (d + 1) * (d + 1); ++k) grad_A[k] = m.grad_A[k];
    return e;
}

LddmmEnergy LddmmProblem::step(double epL, double epT, double epV) {
    Impl& m = *impl_;
    if (!std::isfinite(epL) || !std::isfinite(epT) || !std::isfinite(epV))
        throw std::invalid_argument("the step sizes must be finite");
    Impl::TeamScope scope(m);
    const LddmmEnergy e = m.run(true);
    if (!std::isfinite(e.total))
        throw std::invalid_argument("the energy is not finite (the step sizes are too large or the inputs too extreme)");
    const int d = m.d;
    for (int r = 0; r < d; ++r) {
        for (int c = 0; c < d; ++c) m.A[std::size_t(r * (d + 1) + c)] -= epL * m.grad_A[r * (d + 1) + c];
        m.A[std::size_t(r * (d + 1) + d)] -= epT * m.grad_A[r * (d + 1) + d];
    }
    if (epV != 0.0) {
        m.smooth(m.grad_v.data(), m.smooth_v.data());
        for (std::size_t k = 0; k < m.v.size(); ++k) m.v[k] -= epV * m.smooth_v[k];
    }
    return e;
}

void LddmmProblem::update_weights(bool estimate_muA, bool estimate_muB, bool e_step) {
    Impl& m = *impl_;
    Impl::TeamScope scope(m);
    const int cJ = m.cJ;
    const std::int64_t nJ = m.nJ;
    // Per chunk: sum WM, WA, WB, then sum WA J_c, sum WB J_c.
    auto reduce = [&] {
        m.for_each(m.chunks.size(), [] { return 0; }, [&](int&, std::size_t ci) {
            LddmmChunk& ch = m.chunks[ci];
            std::fill(ch.sums.begin(), ch.sums.end(), 0.0);
            const std::int64_t lo = std::int64_t(ci) * chunk_points, hi = std::min(nJ, lo + chunk_points);
            for (std::int64_t i = lo; i < hi; ++i) {
                const std::size_t u = std::size_t(i);
                ch.sums[0] += m.WM[u];
                ch.sums[1] += m.WA[u];
                ch.sums[2] += m.WB[u];
                for (int c = 0; c < cJ; ++c) {
                    const double j = m.J[std::size_t(c) * std::size_t(nJ) + u];
                    ch.sums[std::size_t(6 + c)] += m.WA[u] * j;
                    ch.sums[std::size_t(6 + cJ + c)] += m.WB[u] * j;
                }
            }
        });
        std::vector<double> total(m.chunks.empty() ? 0 : m.chunks[0].sums.size(), 0.0);
        for (const LddmmChunk& ch : m.chunks)
            for (std::size_t k = 0; k < total.size(); ++k) total[k] += ch.sums[k];
        return total;
    };
    const std::vector<double> sums = reduce();
    for (int c = 0; c < cJ; ++c) {
        if (estimate_muA) m.muA[std::size_t(c)] = sums[std::size_t(6 + c)] / sums[1];
        if (estimate_muB) m.muB[std::size_t(c)] = sums[std::size_t(6 + cJ + c)] / sums[2];
    }
    if (!e_step) return;
    double pi[3] = {sums[0], sums[1], sums[2]};
    const double pmax = std::max(pi[0], std::max(pi[1], pi[2]));
    for (double& p : pi) p += pmax * 1e-6;
    const double psum = pi[0] + pi[1] + pi[2];
    for (double& p : pi) p /= psum;
    const double twopi = 2.0 * 3.14159265358979323846;
    const double sM = m.s.sigmaM, sA = m.s.sigmaA, sB = m.s.sigmaB;
    const double nM = pi[0] / std::pow(std::sqrt(twopi * sM * sM), cJ);
    const double nA = pi[1] / std::pow(std::sqrt(twopi * sA * sA), cJ);
    const double nB = pi[2] / std::pow(std::sqrt(twopi * sB * sB), cJ);
    std::vector<double> chunk_max(m.chunks.size(), 0.0);
    m.for_each(m.chunks.size(), [] { return 0; }, [&](int&, std::size_t ci) {
        const std::int64_t lo = std::int64_t(ci) * chunk_points, hi = std::min(nJ, lo + chunk_points);
        double mx = 0.0;
        constexpr int blk = 256;
        double arg[3][blk];
        for (std::int64_t b = lo; b < hi; b += blk) {
            const int n = int(std::min<std::int64_t>(blk, hi - b));
            for (int j = 0; j < n; ++j) {
                const std::int64_t i = b + j;
                double rM = 0.0, rA = 0.0, rB = 0.0;
                for (int c = 0; c < cJ; ++c) {
                    const double jv = m.J[std::size_t(c) * std::size_t(nJ) + std::size_t(i)];
                    const double f = m.contrast_at(c, i);
                    rM += (f - jv) * (f - jv);
                    rA += (m.muA[std::size_t(c)] - jv) * (m.muA[std::size_t(c)] - jv);
                    rB += (m.muB[std::size_t(c)] - jv) * (m.muB[std::size_t(c)] - jv);
                }
                arg[0][j] = -rM / (2.0 * sM * sM);
                arg[1][j] = -rA / (2.0 * sA * sA);
                arg[2][j] = -rB / (2.0 * sB * sB);
            }
            double* wm = m.WM.data() + b;
            double* wa = m.WA.data() + b;
            double* wb = m.WB.data() + b;
            scaled_exp(arg[0], nM, n, wm);
            scaled_exp(arg[1], nA, n, wa);
            scaled_exp(arg[2], nB, n, wb);
            for (int j = 0; j < n; ++j) mx = std::max(mx, wm[j] + wb[j] + wa[j]);
        }
        chunk_max[ci] = mx;
    });
    double mx = 0.0;
    for (double x : chunk_max) mx = std::max(mx, x);
    const double floor_ws = mx * 1e-6;
    m.for_each(m.chunks.size(), [] { return 0; }, [&](int&, std::size_t ci) {
        const std::int64_t lo = std::int64_t(ci) * chunk_points, hi = std::min(nJ, lo + chunk_points);
        for (std::int64_t i = lo; i < hi; ++i) {
            const std::size_t u = std::size_t(i);
            const double ws = m.WM[u] + m.WB[u] + m.WA[u] + floor_ws;
            if (!(ws > 0.0)) continue;  // every class underflowed: keep the zeros
            m.WM[u] /= ws;
            m.WB[u] /= ws;
            m.WA[u] /= ws;
        }
    });
}

}  // namespace spectralign_fast::reg

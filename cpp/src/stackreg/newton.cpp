#include "newton.hpp"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "core/simd_clones.hpp"
#include "spectralign_fast/fft/spectral.hpp"  // signed_bin

namespace spectralign_fast::stackreg_detail {

namespace {

constexpr double kTwoPi = 6.283185307179586476925;

}  // namespace

SPECTRALIGN_CLONES void newton_row(const float* p, const float* ex, const float* w, const float* w2, int n,
                                   float s[6]) {
    float s0r = 0, s0i = 0, s1r = 0, s1i = 0, s2r = 0, s2i = 0;
#pragma omp simd reduction(+ : s0r, s0i, s1r, s1i, s2r, s2i)
    for (int k = 0; k < n; ++k) {
        const float pr = p[2 * k], pi = p[2 * k + 1], er = ex[2 * k], ei = ex[2 * k + 1];
        const float qr = pr * er - pi * ei, qi = pr * ei + pi * er;
        s0r += qr;
        s0i += qi;
        s1r += w[k] * qr;
        s1i += w[k] * qi;
        s2r += w2[k] * qr;
        s2i += w2[k] * qi;
    }
    s[0] = s0r;
    s[1] = s0i;
    s[2] = s1r;
    s[3] = s1i;
    s[4] = s2r;
    s[5] = s2i;
}

PeakRefiner::PeakRefiner(const std::vector<int>& shape)
    : shape_(shape), rank_(static_cast<int>(shape.size())), half_(shape.back() / 2 + 1) {
    const int last = shape.back();
    // Last axis: bins 0..half-1 of the half spectrum stand for themselves
    // and (except 0 and the Nyquist bin) their conjugate partners.
    ex_.resize(2 * static_cast<std::size_t>(half_));
    omega_x_.resize(static_cast<std::size_t>(half_));
    omega_x2_.resize(static_cast<std::size_t>(half_));
    weight_x_.resize(static_cast<std::size_t>(half_));
    for (int k = 0; k < half_; ++k) {
        const double om = kTwoPi * k / last;
        omega_x_[k] = static_cast<float>(om);
        omega_x2_[k] = static_cast<float>(om * om);
        // The Nyquist bin has no continuous counterpart: left out.
        weight_x_[k] = k == 0 ? 1.0f : (last % 2 == 0 && k == last / 2) ? 0.0f : 2.0f;
    }
    for (int a = 0; a + 1 < rank_; ++a) {
        const int m = shape[a];
        std::vector<double> om(static_cast<std::size_t>(m));
        for (int k = 0; k < m; ++k)
            om[k] = (m % 2 == 0 && k == m / 2) ? std::nan("") : kTwoPi * spectral::signed_bin(k, m) / m;
        omega_outer_.push_back(std::move(om));
    }
    phase_outer_.resize(omega_outer_.size());
    for (std::size_t a = 0; a < omega_outer_.size(); ++a) phase_outer_[a].resize(omega_outer_[a].size());
}

float PeakRefiner::corr_at(const float* corr, const int idx[3]) const {
    std::size_t pos = 0;
    for (int a = 0; a < rank_; ++a) pos = pos * shape_[a] + static_cast<std::size_t>(idx[a]);
    return corr[pos];
}

void PeakRefiner::accumulate(const float* spec, double g[3], double H[3][3]) const {
    const int last = rank_ - 1;
    const std::size_t row_floats = 2 * static_cast<std::size_t>(half_);
    float s[6];
    auto add_row = [&](std::size_t row, std::complex<double> e, const double* om) {
        newton_row(spec + row * row_floats, ex_.data(), omega_x_.data(), omega_x2_.data(), half_, s);
        const std::complex<double> t0 = e * std::complex<double>(s[0], s[1]);
        const std::complex<double> t1 = e * std::complex<double>(s[2], s[3]);
        const std::complex<double> t2 = e * std::complex<double>(s[4], s[5]);
        g[last] -= t1.imag();
        H[last][last] -= t2.real();
        for (int a = 0; a < last; ++a) {
            g[a] -= om[a] * t0.imag();
            H[a][last] -= om[a] * t1.real();
            for (int b = 0; b <= a; ++b) H[a][b] -= om[a] * om[b] * t0.real();
        }
    };
    if (rank_ == 2) {
        for (int y = 0; y < shape_[0]; ++y) {
            if (std::isnan(omega_outer_[0][y])) continue;
            const double om[1] = {omega_outer_[0][y]};
            add_row(static_cast<std::size_t>(y), phase_outer_[0][y], om);
        }
    } else {
        for (int z = 0; z < shape_[0]; ++z) {
            if (std::isnan(omega_outer_[0][z])) continue;
            for (int y = 0; y < shape_[1]; ++y) {
                if (std::isnan(omega_outer_[1][y])) continue;
                const double om[2] = {omega_outer_[0][z], omega_outer_[1][y]};
                add_row(static_cast<std::size_t>(z) * shape_[1] + y, phase_outer_[0][z] * phase_outer_[1][y], om);
            }
        }
    }
}

void PeakRefiner::refine(const float* corr, const std::complex<float>* spec, const int peak[3], double r[3]) {
    const double base[3] = {r[0], r[1], r[2]};
    const float c0 = corr_at(corr, peak);
    for (int a = 0; a < rank_; ++a) {
        if (shape_[a] < 3) continue;
        int lo[3] = {peak[0], peak[1], peak[2]}, hi[3] = {peak[0], peak[1], peak[2]};
        lo[a] = (peak[a] + shape_[a] - 1) % shape_[a];
        hi[a] = (peak[a] + 1) % shape_[a];
        const double cm = corr_at(corr, lo), cp = corr_at(corr, hi);
        const double den = cm - 2.0 * c0 + cp;
        if (den < 0) r[a] += std::clamp(0.5 * (cm - cp) / den, -0.5, 0.5);
    }
    const int last = rank_ - 1;
    const float* p = reinterpret_cast<const float*>(spec);
    for (int it = 0; it < 3; ++it) {
        for (int k = 0; k < half_; ++k) {
            const double ph = static_cast<double>(omega_x_[k]) * r[last];
            ex_[2 * k] = weight_x_[k] * static_cast<float>(std::cos(ph));
            ex_[2 * k + 1] = weight_x_[k] * static_cast<float>(std::sin(ph));
        }
        for (int a = 0; a < last; ++a)
            for (std::size_t k = 0; k < omega_outer_[a].size(); ++k) {
                const double om = omega_outer_[a][k];
                phase_outer_[a][k] = std::isnan(om) ? 0.0 : std::polar(1.0, om * r[a]);
            }
        double g[3] = {0, 0, 0}, H[3][3] = {};
        accumulate(p, g, H);
        // Newton for a maximum: step = (-H)^-1 g. Axes too short to carry
        // a frequency keep their parabola estimate.
        double A[3][3] = {}, step[3] = {0, 0, 0};
        for (int a = 0; a < rank_; ++a)
            for (int b = 0; b < rank_; ++b) A[a][b] = -(a >= b ? H[a][b] : H[b][a]);
        for (int a = 0; a < rank_; ++a)
            if (shape_[a] < 3) {
                for (int b = 0; b < rank_; ++b) A[a][b] = A[b][a] = 0;
                A[a][a] = 1;
                g[a] = 0;
            }
        // A concave neighbourhood is required; elsewhere Newton would head
        // for a saddle or a minimum, so the estimate stays as it is.
        if (!solve_spd(A, g, rank_, step)) break;
        double biggest = 0;
        for (int a = 0; a < rank_; ++a) {
            const double st = std::clamp(step[a], -0.5, 0.5);
            r[a] = std::clamp(r[a] + st, base[a] - 1.0, base[a] + 1.0);
            biggest = std::max(biggest, std::fabs(st));
        }
        // Convergence is quadratic: after a step this small the next one
        // would move the peak by well under 0.001 px.
        if (biggest < 0.02) break;
    }
}

}  // namespace spectralign_fast::stackreg_detail

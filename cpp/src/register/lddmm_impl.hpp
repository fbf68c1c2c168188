// The state and work buffers of one LDDMM problem (lddmm.cpp: the energy
// and its gradients; lddmm_state.cpp: construction, the step and the
// mixture weights).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/parallel.hpp"
#include "core/team.hpp"
#include "lddmm_common.hpp"

namespace spectralign_fast::reg {

inline constexpr std::int64_t chunk_points = 4096;

struct LddmmChunk {
    std::vector<double> bb, bj;  // contrast normal equations
    double em = 0.0;
    double gAi[12] = {};                                  // dE/dA^-1, top d rows
    std::vector<double> sums;                             // weight-update reductions
    std::vector<std::int64_t> box_lo, box_hi, box_stride;  // nt x d: the velocity nodes this chunk splats onto
    std::vector<std::vector<double>> splat;               // per t, over the box, d values per node
};

struct LddmmProblem::Impl {
    int d = 2, cI = 1, cJ = 1, nt = 3, threads = 0;
    PhysGrid gI, gJ, gV;
    LddmmSettings s;
    std::vector<double> I, J, v, A, WM, WA, WB, muA, muB, pI, pJ;
    std::int64_t np = 0, nJ = 0, nV = 0;
    std::vector<double> X;  // positions, planar: X[(t * d + a) * nJ + i], t = 0 .. nt
    std::vector<double> AI, fAI, coeffs, grad_v, smooth_v;
    std::vector<double> GI;  // 2-D: the source's gradient at X_0, (cI, d, nJ), from forward(true)
    // 2-D with the AVX-512 kernels: each time step's velocity packed by cell
    // (pack_velocity_2d), sized and made by forward() before its threads start, read by both
    // passes; 64-byte aligned through packed_velocity().
    // (3-D: 24 values per node, pack_velocity_3d.)
    std::vector<double> vpack;
    int pack_per_node = 0;
    void size_velocity_pack(int per_node) {
        pack_per_node = per_node;
        const std::size_t need = std::size_t(nt) * std::size_t(nV) * std::size_t(per_node) + 8;
        if (vpack.size() < need) vpack.assign(need, 0.0);
    }
    double* packed_velocity(int t) {
        if (vpack.empty()) return nullptr;  // the gather kernels ignore it
        const std::uintptr_t p = (reinterpret_cast<std::uintptr_t>(vpack.data()) + 63) & ~std::uintptr_t(63);
        return reinterpret_cast<double*>(p) + std::size_t(t) * std::size_t(nV) * std::size_t(pack_per_node);
    }
    double grad_A[16] = {};
    bool fixed_coeffs = false;
    std::vector<LddmmChunk> chunks;
    // Half spectrum of the velocity grid: |L|^2 and the count of each bin
    // in the full spectrum (1 or 2).
    std::vector<double> LL, mult;
    std::vector<int> fshape;
    std::int64_t nhalf = 0;

    // The contrast-mapped source f_c(AI) at target point i (the residual pass's expression).
    double contrast_at(int c, std::int64_t i) const {
        double f = coeffs[std::size_t(c)];
        for (int k = 0; k < cI; ++k)
            f += coeffs[std::size_t((k + 1) * cJ + c)] * AI[std::size_t(k) * std::size_t(nJ) + std::size_t(i)];
        return f;
    }
    // During step() and update_weights(): one team of helper threads for all their passes
    // (starting threads for every pass cost a good part of a small image's iteration).
    std::unique_ptr<Team> team;
    // for_each(n, make_state, body): body(state, item) for every item, on the team when there is
    // one (one state per member, made when it takes its first item), else by parallel_for.
    template <class MakeState, class Body>
    void for_each(std::size_t n, MakeState make_state, Body body) {
        if (!team || team->size() == 1 || n < 2) {
            parallel_for(n, team ? 1 : threads, make_state, body);
            return;
        }
        std::vector<std::optional<decltype(make_state())>> states(std::size_t(team->size()));
        team->run(int(n), [&](int member, int item) {
            auto& st = states[std::size_t(member)];
            if (!st) st.emplace(make_state());
            body(*st, std::size_t(item));
        });
    }
    struct TeamScope;  // a team for one call (lddmm_state.cpp)
    void setup_spectrum();
    void fit_contrast();
    double regularization(bool want_gradient, double* grad);  // grad += dER/dv when asked
    double regularizer_scale() const;
    template <class Spectrum, class Back>
    void each_component_fft(const double* field, Spectrum spectrum, Back back);
    void smooth(const double* g, double* out);
    template <int D>
    void forward(bool bbox);
    template <int D>
    void residual(bool want_gradient);
    template <int D>
    double landmarks(bool want_gradient, double* gA);
    LddmmEnergy run(bool want_gradient);
};


}  // namespace spectralign_fast::reg

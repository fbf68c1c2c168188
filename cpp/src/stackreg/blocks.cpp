#include "spectralign_fast/stackreg/blocks.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/parallel.hpp"
#include "core/simd_clones.hpp"
#include "newton.hpp"
#include "taper.hpp"
#include "spectralign_fast/core/image_ops.hpp"  // has_contrast
#include "spectralign_fast/core/threads.hpp"
#include "spectralign_fast/fft/spectral.hpp"
#include "spectralign_fast/sample/warp.hpp"

namespace spectralign_fast {

namespace {

constexpr std::size_t kWhitenBlock = 1024;

SPECTRALIGN_CLONES double sum_squares(const float* x, std::size_t n) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (std::size_t k = 0; k < n; ++k) s += static_cast<double>(x[k]) * x[k];
    return s;
}

std::size_t product(const std::vector<int>& v) {
    std::size_t n = 1;
    for (int s : v) n *= static_cast<std::size_t>(s);
    return n;
}

// x * 0 is 0 for finite x and NaN for NaN or inf, so the sum is 0 exactly when
// every pixel is finite (the reduction order does not matter).
SPECTRALIGN_CLONES bool frame_finite(const float* x, std::size_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (std::size_t k = 0; k < n; ++k) acc += x[k] * 0.0f;
    return acc == 0.0f;
}

// Sum and sum of squares of one row (float products, double sums, as
// stackreg.cpp's moments).
SPECTRALIGN_CLONES void row_moments(const float* x, int n, double& s, double& ss) {
    double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (int k = 0; k < n; ++k) {
        const double v = x[k];
        a += v;
        b += v * v;
    }
    s += a;
    ss += b;
}

}  // namespace

// Per-thread buffers of the block fit.
class BlockWorkspace {
public:
    explicit BlockWorkspace(const BlockRegistrar& reg)
        : reg_(reg),
          rank_(static_cast<int>(reg.block_.size())),
          bx_(reg.block_.back()),
          half_(reg.block_.back() / 2 + 1),
          r2c_(&R2CPlan::get(reg.block_)),
          c2r_(&C2RPlan::get(reg.block_)),
          peak_(reg.block_) {
        const std::size_t n = product(reg.block_);
        const std::size_t ns = n / static_cast<std::size_t>(bx_) * static_cast<std::size_t>(half_);
        block_.resize(n);
        corr_.resize(n);
        spec_.resize(ns);
        work_.resize(ns);
        scratch_.resize(kWhitenBlock);
        for (int a = 0; a < rank_; ++a) {
            const int lim = a < static_cast<int>(reg.options_.max_shift.size()) ? reg.options_.max_shift[a] : -1;
            ranges_[a] = stackreg_detail::allowed_ranges(reg.block_[a], lim);
        }
        // Outer rows of the block (all axes but the last), and those of the peak search.
        const int outer = static_cast<int>(n / static_cast<std::size_t>(bx_));
        for (int r = 0; r < outer; ++r) {
            int idx[2] = {r, 0};
            if (rank_ == 3) idx[0] = r / reg.block_[1], idx[1] = r % reg.block_[1];
            bool inside = true;
            for (int a = 0; a + 1 < rank_; ++a) {
                bool any = false;
                for (auto [lo, hi] : ranges_[a]) any = any || (idx[a] >= lo && idx[a] < hi);
                inside = inside && any;
            }
            if (inside) search_rows_.push_back(r);
        }
    }

    // Registers block q of a frame; writes rank deltas and the quality.
    void fit(const float* frame, std::size_t q, const double* prior, double* delta, float* quality) {
        const double nan = std::numeric_limits<double>::quiet_NaN();
        for (int a = 0; a < rank_; ++a) delta[a] = nan;
        *quality = 0.0f;
        const ComplexBuffer& ref = reg_.refs_[q];
        if (ref.size() == 0) return;
        const std::vector<int>& shape = reg_.shape_;
        const std::vector<int>& blk = reg_.block_;
        // Grid index of block q (row-major), its corner and the window offset.
        int corner[3] = {0, 0, 0}, off[3] = {0, 0, 0};
        std::size_t rest = q;
        for (int a = rank_ - 1; a >= 0; --a) {
            const std::size_t na = reg_.starts_[a].size();
            corner[a] = reg_.starts_[a][rest % na];
            rest /= na;
        }
        for (int a = 0; a < rank_; ++a) {
            if (prior != nullptr && std::isfinite(prior[a]))
                off[a] = static_cast<int>(std::clamp(std::nearbyint(prior[a]), -1e9, 1e9));
            off[a] = std::clamp(off[a], -corner[a], shape[a] - blk[a] - corner[a]);
        }
        const int outer = static_cast<int>(block_.size() / static_cast<std::size_t>(bx_));
        auto window_row = [&](int r) {
            std::size_t pos;
            if (rank_ == 2) {
                pos = static_cast<std::size_t>(corner[0] + off[0] + r) * shape[1];
            } else {
                const int z = corner[0] + off[0] + r / blk[1], y = corner[1] + off[1] + r % blk[1];
                pos = (static_cast<std::size_t>(z) * shape[1] + y) * shape[2];
            }
            return frame + pos + (corner[rank_ - 1] + off[rank_ - 1]);
        };
        double s = 0, ss = 0;
        for (int r = 0; r < outer; ++r) row_moments(window_row(r), bx_, s, ss);
        const double count = static_cast<double>(block_.size());
        const double mean = s / count;
        const double spread = std::sqrt(std::max(0.0, ss / count - mean * mean));
        if (!has_contrast(mean, spread)) return;
        const float m = static_cast<float>(mean), sc = static_cast<float>(1.0 / spread);
        if (reg_.options_.taper_frames) {
            const float* tx = reg_.taper_[rank_ - 1].data();
            for (int r = 0; r < outer; ++r) {
                const float* row = window_row(r);
                float* out = block_.data() + static_cast<std::size_t>(r) * bx_;
                const float t =
                    (rank_ == 2 ? reg_.taper_[0][r] : reg_.taper_[0][r / blk[1]] * reg_.taper_[1][r % blk[1]]) * sc;
                for (int x = 0; x < bx_; ++x) out[x] = (row[x] - m) * t * tx[x];
            }
        } else {
            for (int r = 0; r < outer; ++r) {
                const float* row = window_row(r);
                float* out = block_.data() + static_cast<std::size_t>(r) * bx_;
                for (int x = 0; x < bx_; ++x) out[x] = (row[x] - m) * sc;
            }
        }
        r2c_->execute(block_.data(), spec_.data());
        const std::size_t ns = spec_.size();
        float* sp = reinterpret_cast<float*>(spec_.data());
        float* wp = reinterpret_cast<float*>(work_.data());
        const float* rp = reinterpret_cast<const float*>(ref.data());
        for (std::size_t k0 = 0; k0 < ns; k0 += kWhitenBlock) {
            const std::size_t len = std::min(kWhitenBlock, ns - k0);
            spectral::cross_power(sp + 2 * k0, rp + 2 * k0, sp + 2 * k0, wp + 2 * k0, 0.5f * reg_.options_.whiten, len,
                                  scratch_.data());
        }
        spec_[0] = work_[0] = 0.0f;
        c2r_->execute(work_.data(), corr_.data());

        int peak[3] = {0, 0, 0};
        const float best = find_peak(peak);
        const double rms = std::sqrt(sum_squares(corr_.data(), corr_.size()) / count);
        *quality = rms > 0 ? static_cast<float>(best / rms) : 0.0f;
        double r[3] = {0, 0, 0};
        for (int a = 0; a < rank_; ++a) r[a] = stackreg_detail::signed_index(peak[a], blk[a]);
        peak_.refine(corr_.data(), spec_.data(), peak, r);
        for (int a = 0; a < rank_; ++a) {
            const int lim = a < static_cast<int>(reg_.options_.max_shift.size()) ? reg_.options_.max_shift[a] : -1;
            if (lim >= 0) r[a] = std::clamp(r[a], -static_cast<double>(lim), static_cast<double>(lim));
            delta[a] = off[a] + r[a];
        }
    }

private:
    // Integer peak within the allowed displacements (first maximum in
    // row-major order).
    float find_peak(int peak[3]) const {
        float best = -std::numeric_limits<float>::infinity();
        std::size_t best_pos = 0;
        for (int row : search_rows_) {
            const float* rc = corr_.data() + static_cast<std::size_t>(row) * bx_;
            for (auto [lo, hi] : ranges_[rank_ - 1])
                for (int x = lo; x < hi; ++x)
                    if (rc[x] > best) {
                        best = rc[x];
                        best_pos = static_cast<std::size_t>(row) * bx_ + x;
                    }
        }
        std::size_t rest = best_pos;
        for (int a = rank_ - 1; a >= 0; --a) {
            peak[a] = static_cast<int>(rest % static_cast<std::size_t>(reg_.block_[a]));
            rest /= static_cast<std::size_t>(reg_.block_[a]);
        }
        return best;
    }

    const BlockRegistrar& reg_;
    int rank_, bx_, half_;
    const R2CPlan* r2c_;
    const C2RPlan* c2r_;
    RealBuffer block_, corr_;
    ComplexBuffer spec_, work_;
    std::vector<float> scratch_;
    stackreg_detail::PeakRefiner peak_;
    std::vector<std::pair<int, int>> ranges_[3];
    std::vector<int> search_rows_;
};

BlockRegistrar::BlockRegistrar(const float* reference, std::vector<int> shape, std::vector<std::vector<int>> starts,
                               std::vector<int> block, BlockRegOptions options)
    : shape_(std::move(shape)), block_(std::move(block)), starts_(std::move(starts)), options_(std::move(options)) {
    const std::size_t rank = shape_.size();
    if (rank != 2 && rank != 3)
        throw std::invalid_argument("frames must be 2-D images or 3-D volumes, got " + std::to_string(rank) +
                                    " dimensions");
    if (block_.size() != rank || starts_.size() != rank)
        throw std::invalid_argument("block and starts need one entry per frame axis");
    if (!options_.max_shift.empty() && options_.max_shift.size() != rank)
        throw std::invalid_argument("max_shift needs one value per frame axis");
    for (std::size_t a = 0; a < rank; ++a) {
        if (shape_[a] < 1) throw std::invalid_argument("frame shape must be positive");
        if (block_[a] < 1) throw std::invalid_argument("block size must be positive");
        if (block_[a] > shape_[a])
            throw std::invalid_argument("block size " + std::to_string(block_[a]) + " is larger than the frame (" +
                                        std::to_string(shape_[a]) + ") along axis " + std::to_string(a));
        if (starts_[a].empty()) throw std::invalid_argument("at least one block per axis is needed");
        for (int st : starts_[a])
            if (st < 0 || st + block_[a] > shape_[a])
                throw std::invalid_argument("a block lies outside the frame along axis " + std::to_string(a));
    }
    if (!std::isfinite(options_.whiten) || options_.whiten < -1.0f || options_.whiten > 0.0f)
        throw std::invalid_argument("whiten must be between -1 and 0");
    if (!(options_.taper >= 0.0 && options_.taper <= 0.5)) throw std::invalid_argument("taper must be in [0, 0.5]");
    frame_size_ = product(shape_);
    if (!frame_finite(reference, frame_size_)) throw std::invalid_argument("reference contains NaN or inf pixels");
    nblocks_ = 1;
    for (std::size_t a = 0; a < rank; ++a) {
        taper_.push_back(stackreg_detail::taper_window(block_[a], options_.taper));
        nblocks_ *= starts_[a].size();
    }
    const R2CPlan& r2c = R2CPlan::get(block_);
    C2RPlan::get(block_);  // plan now, not in the first worker
    const std::size_t n = product(block_);
    const int bx = block_.back();
    const std::size_t ns = n / static_cast<std::size_t>(bx) * static_cast<std::size_t>(bx / 2 + 1);
    const int outer = static_cast<int>(n / static_cast<std::size_t>(bx));
    RealBuffer buf(n);
    bool any = false;
    for (std::size_t q = 0; q < nblocks_; ++q) {
        int corner[3] = {0, 0, 0};
        std::size_t rest = q;
        for (int a = static_cast<int>(rank) - 1; a >= 0; --a) {
            corner[a] = starts_[a][rest % starts_[a].size()];
            rest /= starts_[a].size();
        }
        auto row_ptr = [&](int r) {
            std::size_t pos;
            if (rank == 2) {
                pos = static_cast<std::size_t>(corner[0] + r) * shape_[1];
            } else {
                pos = (static_cast<std::size_t>(corner[0] + r / block_[1]) * shape_[1] + corner[1] + r % block_[1]) *
                      shape_[2];
            }
            return reference + pos + corner[rank - 1];
        };
        double s = 0, ss = 0;
        for (int r = 0; r < outer; ++r) row_moments(row_ptr(r), bx, s, ss);
        const double mean = s / static_cast<double>(n);
        const double spread = std::sqrt(std::max(0.0, ss / static_cast<double>(n) - mean * mean));
        ComplexBuffer spec;
        if (has_contrast(mean, spread)) {
            const std::vector<float>& tx = taper_[rank - 1];
            for (int r = 0; r < outer; ++r) {
                const float* row = row_ptr(r);
                const double t = rank == 2 ? taper_[0][r] : static_cast<double>(taper_[0][r / block_[1]]) *
                                                                taper_[1][r % block_[1]];
                for (int x = 0; x < bx; ++x)
                    buf[static_cast<std::size_t>(r) * bx + x] =
                        static_cast<float>((row[x] - mean) / spread * t * tx[x]);
            }
            spec.resize(ns);
            r2c.execute(buf.data(), spec.data());
            for (std::size_t k = 0; k < ns; ++k) spec[k] = std::conj(spec[k]);
            any = true;
        }
        refs_.push_back(std::move(spec));
    }
    if (!any) throw std::invalid_argument("reference is constant in every block: it carries no position information");
}

void BlockRegistrar::fit(const float* frames, std::size_t n, const double* prior, int threads, double* deltas,
                         float* quality, std::int8_t* status) const {
    resolve_threads(threads);  // validates
    const std::size_t size = frame_size_, nb = nblocks_, rank = shape_.size();
    parallel_for(n, threads, [] { return 0; }, [&](int&, std::size_t k) {
        status[k] = frame_finite(frames + k * size, size) ? kFrameOk : kFrameNotFinite;
    });
    parallel_for(
        n * nb, threads, [&]() { return BlockWorkspace(*this); },
        [&](BlockWorkspace& ws, std::size_t item) {
            const std::size_t f = item / nb, q = item % nb;
            double* d = deltas + rank * item;
            if (status[f] != kFrameOk) {
                for (std::size_t a = 0; a < rank; ++a) d[a] = std::numeric_limits<double>::quiet_NaN();
                quality[item] = 0.0f;
                return;
            }
            ws.fit(frames + f * size, q, prior != nullptr ? prior + rank * f : nullptr, d, quality + item);
        });
}

namespace {

// Interpolation taps along one axis: for every pixel, `count` grid indices
// and weights.
struct AxisTaps {
    int count = 2;
    std::vector<int> index;
    std::vector<float> weight;
};

AxisTaps axis_taps(const std::vector<double>& centers, int n, FieldInterpolation up) {
    const int nb = static_cast<int>(centers.size());
    for (int i = 0; i < nb; ++i)
        if (!std::isfinite(centers[i]) || (i > 0 && !(centers[i] > centers[i - 1])))
            throw std::invalid_argument("block centres must be finite and increasing");
    AxisTaps t;
    t.count = up == FieldInterpolation::cubic ? 4 : 2;
    t.index.resize(static_cast<std::size_t>(n) * t.count);
    t.weight.resize(static_cast<std::size_t>(n) * t.count);
    int seg = 0;
    for (int p = 0; p < n; ++p) {
        double u;
        if (nb == 1 || p <= centers[0]) {
            u = 0;
        } else if (p >= centers[nb - 1]) {
            u = nb - 1;
        } else {
            while (seg + 1 < nb - 1 && p >= centers[seg + 1]) ++seg;
            u = seg + (p - centers[seg]) / (centers[seg + 1] - centers[seg]);
        }
        const int i0 = static_cast<int>(std::floor(u));
        const double f = u - i0;
        int* idx = t.index.data() + static_cast<std::size_t>(p) * t.count;
        float* w = t.weight.data() + static_cast<std::size_t>(p) * t.count;
        if (t.count == 2) {
            idx[0] = std::clamp(i0, 0, nb - 1);
            idx[1] = std::clamp(i0 + 1, 0, nb - 1);
            w[0] = static_cast<float>(1.0 - f);
            w[1] = static_cast<float>(f);
        } else {
            // Catmull-Rom (Keys a = -0.5).
            const double f2 = f * f, f3 = f2 * f;
            const double c[4] = {-0.5 * f3 + f2 - 0.5 * f, 1.5 * f3 - 2.5 * f2 + 1.0, -1.5 * f3 + 2.0 * f2 + 0.5 * f,
                                 0.5 * f3 - 0.5 * f2};
            for (int j = 0; j < 4; ++j) {
                idx[j] = std::clamp(i0 - 1 + j, 0, nb - 1);
                w[j] = static_cast<float>(c[j]);
            }
        }
    }
    return t;
}

// out (outer x taps-length x inner) = in (outer x nin x inner) interpolated
// along its middle axis.
void interp_axis(const float* in, std::size_t outer, int nin, std::size_t inner, const AxisTaps& t, int nout,
                 float* out) {
    for (std::size_t o = 0; o < outer; ++o) {
        const float* src = in + o * static_cast<std::size_t>(nin) * inner;
        float* dst = out + o * static_cast<std::size_t>(nout) * inner;
        for (int p = 0; p < nout; ++p) {
            const int* idx = t.index.data() + static_cast<std::size_t>(p) * t.count;
            const float* w = t.weight.data() + static_cast<std::size_t>(p) * t.count;
            float* d = dst + static_cast<std::size_t>(p) * inner;
            const float* r0 = src + static_cast<std::size_t>(idx[0]) * inner;
            const float w0 = w[0];
#pragma omp simd
            for (std::size_t k = 0; k < inner; ++k) d[k] = w0 * r0[k];
            for (int j = 1; j < t.count; ++j) {
                const float* rj = src + static_cast<std::size_t>(idx[j]) * inner;
                const float wj = w[j];
#pragma omp simd
                for (std::size_t k = 0; k < inner; ++k) d[k] += wj * rj[k];
            }
        }
    }
}

// The field upsampler of one frame shape: taps per axis and scratch sizes.
class FieldMaker {
public:
    FieldMaker(const std::vector<int>& grid_shape, const std::vector<std::vector<double>>& centers,
               const std::vector<int>& shape, FieldInterpolation up)
        : grid_(grid_shape), shape_(shape) {
        const std::size_t rank = shape.size();
        if (rank != 2 && rank != 3) throw std::invalid_argument("frames must be 2-D or 3-D");
        if (grid_shape.size() != rank || centers.size() != rank)
            throw std::invalid_argument("the block grid needs one axis per frame axis");
        for (std::size_t a = 0; a < rank; ++a) {
            if (grid_shape[a] < 1) throw std::invalid_argument("the block grid must have at least one block per axis");
            if (shape[a] < 1) throw std::invalid_argument("frame shape must be positive");
            if (static_cast<int>(centers[a].size()) != grid_shape[a])
                throw std::invalid_argument("one block centre per block row/column/plane is needed");
            taps_.push_back(axis_taps(centers[a], shape[a], up));
        }
    }

    std::size_t grid_values() const { return product(grid_) * shape_.size(); }
    std::size_t field_values() const { return product(shape_) * shape_.size(); }

    // grid (double) -> field (float); a, b: scratch of scratch_size() floats each.
    std::size_t scratch_size() const {
        std::vector<int> s = grid_;
        std::size_t most = product(s);
        for (int a = static_cast<int>(s.size()) - 1; a >= 0; --a) {
            s[a] = shape_[a];
            most = std::max(most, product(s));
        }
        return most * shape_.size();
    }

    void make(const double* grid, float* a, float* b, float* field) const {
        const int rank = static_cast<int>(shape_.size());
        std::vector<int> s = grid_;
        const std::size_t gn = grid_values();
        for (std::size_t k = 0; k < gn; ++k) a[k] = static_cast<float>(grid[k]);
        float* cur = a;
        float* nxt = b;
        // Last axis first, then the others; the final pass writes the field.
        for (int ax = rank - 1; ax >= 0; --ax) {
            std::size_t outer = 1, inner = static_cast<std::size_t>(rank);
            for (int k = 0; k < ax; ++k) outer *= static_cast<std::size_t>(s[k]);
            for (int k = ax + 1; k < rank; ++k) inner *= static_cast<std::size_t>(s[k]);
            float* dst = ax == 0 ? field : nxt;
            interp_axis(cur, outer, s[ax], inner, taps_[ax], shape_[ax], dst);
            s[ax] = shape_[ax];
            std::swap(cur, nxt);
        }
    }

private:
    std::vector<int> grid_, shape_;
    std::vector<AxisTaps> taps_;
};

}  // namespace

void block_field(const double* grid, const std::vector<int>& grid_shape,
                 const std::vector<std::vector<double>>& centers, const std::vector<int>& shape,
                 FieldInterpolation upsampling, float* field) {
    const FieldMaker maker(grid_shape, centers, shape, upsampling);
    for (std::size_t k = 0; k < maker.grid_values(); ++k)
        if (!std::isfinite(grid[k])) throw std::invalid_argument("the block displacements must be finite");
    std::vector<float> a(maker.scratch_size()), b(maker.scratch_size());
    maker.make(grid, a.data(), b.data(), field);
}

void warp_block_frames(const float* frames, std::size_t n, const std::vector<int>& shape, const double* grids,
                       const std::vector<int>& grid_shape, const std::vector<std::vector<double>>& centers,
                       FieldInterpolation upsampling, ShiftInterpolation interpolation, int threads, float* out) {
    const FieldMaker maker(grid_shape, centers, shape, upsampling);
    if (interpolation == ShiftInterpolation::fourier)
        throw std::invalid_argument("non-rigid fields are applied with linear or cubic interpolation");
    resolve_threads(threads);  // validates
    const std::size_t size = product(shape), gsize = maker.grid_values();
    sample::WarpOptions opt;
    opt.kernel = interpolation == ShiftInterpolation::cubic ? sample::Kernel::CatmullRom : sample::Kernel::Linear;
    opt.boundary = sample::Boundary::Nearest;
    opt.threads = 1;
    std::int64_t out_shape[3] = {0, 0, 0};
    for (std::size_t a = 0; a < shape.size(); ++a) out_shape[a] = shape[a];
    struct Buffers {
        std::vector<float> a, b, field;
    };
    parallel_for(
        n, threads,
        [&]() {
            return Buffers{std::vector<float>(maker.scratch_size()), std::vector<float>(maker.scratch_size()),
                           std::vector<float>(maker.field_values())};
        },
        [&](Buffers& buf, std::size_t k) {
            const double* g = grids + k * gsize;
            bool finite = true;
            for (std::size_t i = 0; i < gsize; ++i) finite = finite && std::isfinite(g[i]);
            if (!finite) {
                std::copy(frames + k * size, frames + (k + 1) * size, out + k * size);
                return;
            }
            maker.make(g, buf.a.data(), buf.b.data(), buf.field.data());
            sample::Grid in;
            in.data = frames + k * size;
            in.type = sample::Dtype::F32;
            in.ndim = static_cast<int>(shape.size());
            for (std::size_t a = 0; a < shape.size(); ++a) in.shape[a] = shape[a];
            sample::warp_field(in, buf.field.data(), out_shape, out + k * size, opt);
        });
}

}  // namespace spectralign_fast

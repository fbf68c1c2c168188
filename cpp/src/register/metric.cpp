// Mattes mutual information and Pearson correlation between a fixed image and
// a moving image seen through an affine map, with analytic gradients (see
// metric.hpp for the conventions). Two passes over the points: the first
// samples the moving image (vectorised batch kernels, metric_rows.cpp) and
// builds the joint histogram (or the moments), keeping each point's moving
// value and gradient; the second sums each point's d(value)/d(moving
// intensity) times that gradient times the point's coordinates.
#include "spectralign_fast/register/metric.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>

#include "core/parallel.hpp"
#include "metric_rows.hpp"

namespace spectralign_fast::reg {

namespace {

using metrickit::kPad;
// Points are cut into chunks whose number depends on the point count only, so
// sums never depend on the thread count: at most kChunks, at least
// kChunkPoints points each (every chunk zeroes and adds its own histograms,
// which would dominate on a small coarse level).
constexpr std::int64_t kChunks = 128;
constexpr std::int64_t kChunkPoints = 8192;
// Below this many points a pass takes less time than starting a worker thread
// (the coarse levels of a 2-D registration): it runs on the calling thread.
// Results do not depend on it (see kChunks).
constexpr std::int64_t kThreadedPoints = 1 << 17;
constexpr int kBatch = 128;            // points per vectorised batch (stays in L1)
constexpr float kOutside = std::numeric_limits<float>::quiet_NaN();

// SplitMix64, to spread the user's seed over 32 bits.
std::uint64_t mix(std::uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

std::int64_t voxel_count(const Volume& v) {
    std::int64_t n = 1;
    for (int a = 0; a < v.ndim; ++a) n *= v.shape[a];
    return n;
}

void check_volume(const Volume& v, const char* what, std::int64_t min_extent) {
    if (v.ndim != 2 && v.ndim != 3)
        throw std::invalid_argument(std::string(what) + " must be 2-D or 3-D");
    if (v.data == nullptr) throw std::invalid_argument(std::string(what) + " has no data");
    for (int a = 0; a < v.ndim; ++a)
        if (v.shape[a] < min_extent)
            throw std::invalid_argument(std::string(what) + " needs at least " +
                                        std::to_string(min_extent) + " voxels along every axis");
}

void check_setup(const MetricSetup& s) {
    check_volume(s.fixed, "fixed image", 1);
    check_volume(s.moving, "moving image", 2);
    if (s.fixed.ndim != s.moving.ndim)
        throw std::invalid_argument("fixed and moving images must have the same dimension");
    // The batch kernels index the moving image with 32-bit integers.
    if (voxel_count(s.moving) >= (std::int64_t(1) << 31) - 1)
        throw std::invalid_argument("the moving image must have fewer than 2^31 voxels");
    if (s.samples != nullptr) {
        const std::int64_t n = voxel_count(s.fixed);
        for (std::int64_t k = 0; k < s.sample_count; ++k) {
            if (s.samples[k] < 0 || s.samples[k] >= n)
                throw std::out_of_range("sample index outside the fixed image");
            if (k > 0 && s.samples[k] <= s.samples[k - 1])
                throw std::invalid_argument("sample indices must be strictly increasing");
        }
    }
    if (s.kind == MetricKind::MutualInformation) {
        if (s.nbins < 8 || s.nbins > 1024)
            throw std::invalid_argument("nbins must lie in [8, 1024]");
        if (!(s.fixed_max > s.fixed_min) || !(s.moving_max > s.moving_min) ||
            !std::isfinite(s.fixed_max - s.fixed_min) || !std::isfinite(s.moving_max - s.moving_min))
            throw std::invalid_argument("intensity ranges must be finite and non-empty");
    }
}

struct Bins {
    double fixed_offset, fixed_scale, moving_offset, moving_scale;
    int nbins;
    explicit Bins(const MetricSetup& s) : nbins(s.nbins) {
        fixed_scale = (nbins - 2 * kPad) / (s.fixed_max - s.fixed_min);
        moving_scale = (nbins - 2 * kPad) / (s.moving_max - s.moving_min);
        fixed_offset = kPad - s.fixed_min * fixed_scale;
        moving_offset = kPad - s.moving_min * moving_scale;
    }
    // The fixed image's bin: Mattes' zero-order (nearest-bin) window, as in
    // DIPY and ITK; only the moving side needs a differentiable window.
    int fixed_bin(double v) const {
        const double c = std::clamp(fixed_offset + v * fixed_scale, double(kPad), double(nbins - kPad));
        return std::min(static_cast<int>(c), nbins - kPad - 1);
    }
};

// Sums per-chunk vectors in chunk order: the reduction that makes results
// independent of the thread count.
template <class Fill>
std::vector<double> chunked_sum(std::int64_t chunks, std::size_t width, int threads, Fill fill) {
    std::vector<double> partial(static_cast<std::size_t>(chunks) * width, 0.0);
    parallel_for(static_cast<std::size_t>(chunks), threads, [] { return 0; },
                 [&](int&, std::size_t k) { fill(static_cast<std::int64_t>(k), &partial[k * width]); });
    std::vector<double> total(width, 0.0);
    for (std::int64_t k = 0; k < chunks; ++k)
        for (std::size_t i = 0; i < width; ++i) total[i] += partial[static_cast<std::size_t>(k) * width + i];
    return total;
}

// One batch of fixed points: flat indices, (jittered) coordinates, and the
// moving image's samples there.
struct Batch {
    std::int64_t first = 0;  // point index of entry 0
    int count = 0;
    std::uint64_t flat[kBatch];
    double x[3][kBatch];
    double value[kBatch];
    double grad[3][kBatch];
    double weight[kBatch];      // the point's edge weight (metric_rows.hpp), 0 = not taken
    std::int32_t cell[kBatch];  // MI: first joint-histogram cell of the window, -1 = not taken
    double w[4][kBatch];        // MI: the window's weights; gradient pass: w[0] = dv, w[1] = edge
};

// Joint histogram counts are spread over kCopies tables that consecutive
// points take in turn (a fixed rule, so sums stay deterministic): with one
// table every add would wait on the previous one's store to the same bins.
constexpr int kCopies = 4;

}  // namespace

struct MetricEngine::Impl {
    MetricSetup s;
    int d = 2;
    std::int64_t points = 0;  // dense: every fixed voxel; sampled: the samples
    std::int64_t units = 0;   // dense: rows of the last axis; sampled: samples
    std::int64_t chunks = 0;
    std::int64_t width = 1;   // dense row length
    std::int64_t fstride[3] = {1, 1, 1}, mstride[3] = {1, 1, 1};
    double fixed_hi[3] = {0, 0, 0};
    std::uint32_t seed32 = 0;
    std::vector<float> fixed;     // per point; NaN where the fixed mask is off
    std::vector<std::int16_t> fixed_bin;  // MI: per point, -1 where the fixed mask is off
    std::vector<float> value;     // scratch: moving value per point, NaN = not taken
    std::vector<float> gradient;  // scratch: d per point, axis-major
    metrickit::MovingView mv;
    std::mutex mutex;

    explicit Impl(const MetricSetup& setup, int threads) : s(setup), d(setup.fixed.ndim) {
        check_setup(s);
        const Volume& f = s.fixed;
        for (int a = d - 2; a >= 0; --a) fstride[a] = fstride[a + 1] * f.shape[a + 1];
        for (int a = d - 2; a >= 0; --a) mstride[a] = mstride[a + 1] * s.moving.shape[a + 1];
        for (int a = 0; a < d; ++a) fixed_hi[a] = double(f.shape[a] - 1);
        width = f.shape[d - 1];
        points = s.samples ? s.sample_count : voxel_count(f);
        units = s.samples ? s.sample_count : points / width;
        chunks = std::clamp<std::int64_t>(points / kChunkPoints, 1, std::min(units, kChunks));
        seed32 = static_cast<std::uint32_t>(mix(s.jitter_seed));
        mv.data = s.moving.data;
        for (int a = 0; a < d; ++a) mv.n[a] = static_cast<int>(s.moving.shape[a]);
        fixed.resize(static_cast<std::size_t>(points));
        parallel_for(static_cast<std::size_t>(chunks), threads, [] { return std::make_unique<Batch>(); },
                     [&](std::unique_ptr<Batch>& b, std::size_t chunk) {
                         for_batches(std::int64_t(chunk), *b, [&](Batch& bb) { fixed_batch(bb); });
                     });
        if (s.kind == MetricKind::MutualInformation) {
            const Bins bins(s);
            fixed_bin.resize(fixed.size());
            for (std::size_t p = 0; p < fixed.size(); ++p)
                fixed_bin[p] = fixed[p] == fixed[p] ? static_cast<std::int16_t>(bins.fixed_bin(fixed[p])) : -1;
            std::vector<float>().swap(fixed);
        }
    }

    // Calls body(batch) for the chunk's points, kBatch at a time, with their
    // (jittered) coordinates filled in.
    template <class Body>
    void for_batches(std::int64_t chunk, Batch& b, Body&& body) const {
        const std::int64_t begin = units * chunk / chunks, end = units * (chunk + 1) / chunks;
        const Volume& f = s.fixed;
        if (s.samples) {
            for (std::int64_t k = begin; k < end; k += kBatch) {
                b.first = k;
                b.count = static_cast<int>(std::min<std::int64_t>(kBatch, end - k));
                for (int j = 0; j < b.count; ++j) {
                    const std::int64_t flat = s.samples[k + j];
                    b.flat[j] = static_cast<std::uint64_t>(flat);
                    std::int64_t rest = flat;
                    for (int a = d - 1; a >= 0; --a) {
                        b.x[a][j] = double(rest % f.shape[a]);
                        rest /= f.shape[a];
                    }
                }
                finish_batch(b, body);
            }
            return;
        }
        for (std::int64_t row = begin; row < end; ++row) {
            double lead[2] = {0, 0};
            std::int64_t rest = row;
            for (int a = d - 2; a >= 0; --a) {
                lead[a] = double(rest % f.shape[a]);
                rest /= f.shape[a];
            }
            for (std::int64_t i0 = 0; i0 < width; i0 += kBatch) {
                b.first = row * width + i0;
                b.count = static_cast<int>(std::min<std::int64_t>(kBatch, width - i0));
                for (int j = 0; j < b.count; ++j) {
                    b.flat[j] = static_cast<std::uint64_t>(b.first + j);
                    for (int a = 0; a < d - 1; ++a) b.x[a][j] = lead[a];
                    b.x[d - 1][j] = double(i0 + j);
                }
                finish_batch(b, body);
            }
        }
    }

    template <class Body>
    void finish_batch(Batch& b, Body& body) const {
        if (s.jitter) {
            if (d == 2)
                metrickit::jitter_2d(b.flat, b.count, seed32, fixed_hi, b.x[0], b.x[1]);
            else
                metrickit::jitter_3d(b.flat, b.count, seed32, fixed_hi, b.x[0], b.x[1], b.x[2]);
        }
        body(b);
    }

    // The fixed image at the batch's (jittered) points, NaN where masked off.
    void fixed_batch(const Batch& b) {
        const Volume& f = s.fixed;
        for (int j = 0; j < b.count; ++j) {
            const std::int64_t flat = static_cast<std::int64_t>(b.flat[j]);
            float v;
            if (s.fixed_mask && !s.fixed_mask[flat]) {
                v = kOutside;
            } else if (!s.jitter) {
                v = f.data[flat];
            } else {
                // d-linear interpolation; an axis of one sample has no neighbour.
                std::int64_t lo[3], hi[3];
                double t[3];
                for (int a = 0; a < d; ++a) {
                    lo[a] = std::min<std::int64_t>(static_cast<std::int64_t>(b.x[a][j]), f.shape[a] - 1);
                    hi[a] = std::min<std::int64_t>(lo[a] + 1, f.shape[a] - 1);
                    t[a] = b.x[a][j] - double(lo[a]);
                }
                double acc = 0.0;
                for (int corner = 0; corner < (1 << d); ++corner) {
                    double w = 1.0;
                    std::int64_t at = 0;
                    for (int a = 0; a < d; ++a) {
                        const bool up = (corner >> (d - 1 - a)) & 1;
                        w *= up ? t[a] : 1.0 - t[a];
                        at += (up ? hi[a] : lo[a]) * fstride[a];
                    }
                    if (w != 0.0) acc += w * double(f.data[at]);
                }
                v = static_cast<float>(acc);
            }
            fixed[static_cast<std::size_t>(b.first + j)] = v;
        }
    }

    // The moving image at the batch's points and their edge weights; points
    // whose nearest moving voxel is masked off get weight 0.
    void sample(Batch& b) const {
        if (d == 2)
            metrickit::sample_2d(mv, b.x[0], b.x[1], b.count, b.value, b.grad[0], b.grad[1], b.weight);
        else
            metrickit::sample_3d(mv, b.x[0], b.x[1], b.x[2], b.count, b.value, b.grad[0], b.grad[1], b.grad[2],
                                 b.weight);
        if (!s.moving_mask) return;
        for (int j = 0; j < b.count; ++j) {
            if (!(b.weight[j] > 0.0)) continue;
            std::int64_t at = 0;
            for (int r = 0; r < d; ++r) {
                double y = mv.m[r][d];
                for (int c = 0; c < d; ++c) y += mv.m[r][c] * b.x[c][j];
                std::int64_t i = std::min<std::int64_t>(static_cast<std::int64_t>(y), mv.n[r] - 2);
                at += (i + (y - double(i) >= 0.5 ? 1 : 0)) * mstride[r];
            }
            if (!s.moving_mask[at]) b.weight[j] = 0.0;
        }
    }

    void set_matrix(const double* matrix) {
        for (int k = 0; k < (d + 1) * (d + 1); ++k)
            if (!std::isfinite(matrix[k])) throw std::invalid_argument("matrix must be finite");
        for (int r = 0; r < d; ++r)
            for (int c = 0; c <= d; ++c) mv.m[r][c] = matrix[r * (d + 1) + c];
    }

    // Keeps each point's moving value (NaN where not taken) and gradient for
    // the gradient pass.
    void keep(const Batch& b) {
        const double* grads[3] = {b.grad[0], b.grad[1], b.grad[2]};
        const std::int16_t* bins = fixed_bin.empty() ? nullptr : fixed_bin.data() + b.first;
        const float* fv = fixed.empty() ? nullptr : fixed.data() + b.first;
        metrickit::keep_samples(b.value, grads, d, b.weight, bins, fv, b.count, value.data() + b.first,
                                gradient.data() + b.first, points);
    }

    metrickit::BinMap bin_map() const {
        const Bins bins(s);
        metrickit::BinMap map;
        map.offset = bins.moving_offset;
        map.scale = bins.moving_scale;
        map.nbins = s.nbins;
        return map;
    }

    void prepare_scratch() {
        if (value.empty()) {
            value.resize(static_cast<std::size_t>(points));
            gradient.resize(static_cast<std::size_t>(points) * std::size_t(d));
        }
    }

    // Adds sum over taken points of (weight * dv * grad_r + edge * d(weight)/dy_r)
    // * (x_c, 1) to g (d x (d + 1)), where weights(batch) fills batch.w[0] with
    // dv and batch.w[1] with edge from the kept scratch.
    template <class Weights>
    void gradient_chunk(std::int64_t chunk, Batch& b, double* g, Weights weights) const {
        for_batches(chunk, b, [&](Batch& bb) {
            weights(bb);
            const float* grad0 = gradient.data() + bb.first;
            const std::size_t stride = static_cast<std::size_t>(points);
            if (d == 2)
                metrickit::gradient_terms_2d(mv, bb.x[0], bb.x[1], bb.count, bb.w[0], bb.w[1], grad0, grad0 + stride,
                                             g);
            else
                metrickit::gradient_terms_3d(mv, bb.x[0], bb.x[1], bb.x[2], bb.count, bb.w[0], bb.w[1], grad0,
                                             grad0 + stride, grad0 + 2 * stride, g);
        });
    }

    // Joint histogram weights (row = fixed bin) followed by their sum (the
    // weighted overlap).
    std::vector<double> histogram_counts(bool keep_samples, int threads) {
        const metrickit::BinMap bins = bin_map();
        const int nb = s.nbins;
        const std::size_t cells = std::size_t(nb) * std::size_t(nb);
        return chunked_sum(chunks, cells + 1, threads, [&](std::int64_t chunk, double* out) {
            std::vector<double> tables(cells * kCopies, 0.0);
            auto b = std::make_unique<Batch>();
            std::size_t turn = 0;
            double count = 0.0;
            for_batches(chunk, *b, [&](Batch& bb) {
                sample(bb);
                if (keep_samples) keep(bb);
                metrickit::mi_windows(bb.value, bb.weight, fixed_bin.data() + bb.first, bb.count, bins, bb.cell,
                                      bb.w[0], bb.w[1], bb.w[2], bb.w[3]);
                for (int j = 0; j < bb.count; ++j) {
                    if (bb.cell[j] < 0) continue;
                    double* row = tables.data() + cells * turn + bb.cell[j];
                    turn = (turn + 1) % kCopies;
                    row[0] += bb.w[0][j];
                    row[1] += bb.w[1][j];
                    row[2] += bb.w[2][j];
                    row[3] += bb.w[3][j];
                    count += bb.weight[j];
                }
            });
            for (int c = 0; c < kCopies; ++c)
                for (std::size_t i = 0; i < cells; ++i) out[i] += tables[cells * std::size_t(c) + i];
            out[cells] = count;
        });
    }

    MetricValue mutual_information(bool want_gradient, int threads) {
        const int nb = s.nbins;
        const std::size_t cells = std::size_t(nb) * std::size_t(nb);
        if (want_gradient) prepare_scratch();
        std::vector<double> joint = histogram_counts(want_gradient, threads);
        MetricValue out;
        const double n = joint[cells];
        out.overlap = static_cast<std::int64_t>(n);
        if (want_gradient) out.gradient.assign(std::size_t(d) * (d + 1), 0.0);
        if (n <= 0.0) return out;
        std::vector<double> pf(nb, 0.0), pm(nb, 0.0);
        for (int i = 0; i < nb; ++i)
            for (int j = 0; j < nb; ++j) {
                const double p = joint[std::size_t(i) * nb + j] / n;
                joint[std::size_t(i) * nb + j] = p;
                pf[i] += p;
                pm[j] += p;
            }
        // log(p_ij / (p_i p_j)): the derivative of MI with respect to p_ij, less
        // a constant that cancels (the moving window's derivatives sum to 0, and
        // for a point's weight the normalisation takes it out with MI).
        std::vector<double> log_ratio(cells, 0.0);
        double mi = 0.0;
        for (int i = 0; i < nb; ++i)
            for (int j = 0; j < nb; ++j) {
                const double p = joint[std::size_t(i) * nb + j];
                if (p <= 0.0 || pf[i] <= 0.0 || pm[j] <= 0.0) continue;
                const double l = std::log(p / (pf[i] * pm[j]));
                log_ratio[std::size_t(i) * nb + j] = l;
                mi += p * l;
            }
        out.value = mi;
        if (!want_gradient) return out;
        const metrickit::BinMap bins = bin_map();
        const auto weights = [&](Batch& b) {
            metrickit::mi_weights(value.data() + b.first, fixed_bin.data() + b.first, b.count, bins,
                                  log_ratio.data(), mi, b.w[0], b.w[1]);
        };
        out.gradient = chunked_sum(chunks, std::size_t(d) * (d + 1), threads, [&](std::int64_t chunk, double* g) {
            auto b = std::make_unique<Batch>();
            gradient_chunk(chunk, *b, g, weights);
        });
        const double scale = bins.scale / n;
        for (double& v : out.gradient) v *= scale;
        return out;
    }

    MetricValue correlation(bool want_gradient, int threads) {
        if (want_gradient) prepare_scratch();
        // n, sum f, sum m, sum f^2, sum m^2, sum f m
        const std::vector<double> mom = chunked_sum(chunks, 6, threads, [&](std::int64_t chunk, double* o) {
            auto b = std::make_unique<Batch>();
            for_batches(chunk, *b, [&](Batch& bb) {
                sample(bb);
                if (want_gradient) keep(bb);
                for (int j = 0; j < bb.count; ++j) {
                    const float fv = fixed[static_cast<std::size_t>(bb.first + j)];
                    const double w = bb.weight[j];
                    if (!(w > 0.0) || fv != fv) continue;
                    const double f = fv, m = bb.value[j];
                    o[0] += w;
                    o[1] += w * f;
                    o[2] += w * m;
                    o[3] += w * f * f;
                    o[4] += w * m * m;
                    o[5] += w * f * m;
                }
            });
        });
        MetricValue out;
        const double n = mom[0];
        out.overlap = static_cast<std::int64_t>(n);
        if (want_gradient) out.gradient.assign(std::size_t(d) * (d + 1), 0.0);
        if (n < 2.0) return out;
        const double mf = mom[1] / n, mm = mom[2] / n;
        const double vf = std::max(mom[3] / n - mf * mf, 0.0), vm = std::max(mom[4] / n - mm * mm, 0.0);
        const double cov = mom[5] / n - mf * mm;
        // A constant overlap carries no information: report 0 rather than NaN.
        if (!(vf > 0.0) || !(vm > 0.0)) return out;
        const double sf = std::sqrt(vf), sm = std::sqrt(vm);
        const double r = cov / (sf * sm);
        out.value = r;
        if (!want_gradient) return out;
        const double a = 1.0 / (n * sf * sm), bcoef = r / (n * vm);
        // A point's weight enters through Pearson's influence function:
        // dr/dw = (zf zm - r (zf^2 + zm^2) / 2) / n with standardised zf, zm.
        const auto weights = [&](Batch& b) {
            const float* fv = fixed.data() + b.first;
            const float* mvv = value.data() + b.first;
            for (int j = 0; j < b.count; ++j) {
                const bool ok = mvv[j] == mvv[j];
                const double zf = ok ? (double(fv[j]) - mf) / sf : 0.0, zm = ok ? (double(mvv[j]) - mm) / sm : 0.0;
                b.w[0][j] = ok ? a * (double(fv[j]) - mf) - bcoef * (double(mvv[j]) - mm) : 0.0;
                b.w[1][j] = ok ? (zf * zm - 0.5 * r * (zf * zf + zm * zm)) / n : 0.0;
            }
        };
        out.gradient = chunked_sum(chunks, std::size_t(d) * (d + 1), threads, [&](std::int64_t chunk, double* g) {
            auto b = std::make_unique<Batch>();
            gradient_chunk(chunk, *b, g, weights);
        });
        return out;
    }
};

MetricEngine::MetricEngine(const MetricSetup& setup, int threads) : impl_(std::make_unique<Impl>(setup, threads)) {}

MetricEngine::~MetricEngine() = default;

int MetricEngine::ndim() const { return impl_->d; }

int MetricEngine::nbins() const { return impl_->s.nbins; }

MetricValue MetricEngine::evaluate(const double* matrix, bool want_gradient, int threads) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->points < kThreadedPoints) threads = 1;
    impl_->set_matrix(matrix);
    if (impl_->s.kind == MetricKind::Correlation) return impl_->correlation(want_gradient, threads);
    return impl_->mutual_information(want_gradient, threads);
}

std::vector<double> MetricEngine::joint_histogram(const double* matrix, int threads) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->s.kind != MetricKind::MutualInformation)
        throw std::invalid_argument("the joint histogram belongs to the mutual-information metric");
    impl_->set_matrix(matrix);
    std::vector<double> h = impl_->histogram_counts(false, threads);
    const double n = h.back();
    h.pop_back();
    if (n > 0.0)
        for (double& v : h) v /= n;
    return h;
}

}  // namespace spectralign_fast::reg

// Mattes mutual information and Pearson correlation between a fixed image and
// a moving image seen through an affine map, with analytic gradients (see
// metric.hpp for the conventions). Two passes over the voxels: the first
// builds the joint histogram (or the moments), the second sums each voxel's
// d(value)/d(moving intensity) times the moving image's gradient there.
#include "spectralign_fast/register/metric.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/parallel.hpp"

namespace spectralign_fast::reg {

namespace {

constexpr int kPad = 2;           // bins kept free at each end for the cubic window
constexpr std::int64_t kChunks = 128;  // fixed, so sums never depend on the thread count

// SplitMix64: a well-mixed 64-bit hash, so jitter offsets are reproducible
// from the voxel index alone (no state shared between threads).
inline std::uint64_t mix(std::uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// The jittered position of fixed voxel `flat` at index x: x + u, u in
// [-0.5, 0.5) per axis, kept inside [0, n - 1].
inline void jittered(std::int64_t flat, std::uint64_t seed, int d, const std::int64_t* shape,
                     const double* x, double* out) {
    std::uint64_t h = mix(static_cast<std::uint64_t>(flat) ^ mix(seed));
    for (int a = 0; a < d; ++a) {
        h = mix(h + static_cast<std::uint64_t>(a));
        const double u = double(h >> 11) * 0x1.0p-53 - 0.5;
        out[a] = std::clamp(x[a] + u, 0.0, double(shape[a] - 1));
    }
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

void check_setup(const MetricSetup& s, const double* matrix) {
    check_volume(s.fixed, "fixed image", 1);
    check_volume(s.moving, "moving image", 2);
    if (s.fixed.ndim != s.moving.ndim)
        throw std::invalid_argument("fixed and moving images must have the same dimension");
    const int d = s.fixed.ndim;
    for (int k = 0; k < (d + 1) * (d + 1); ++k)
        if (!std::isfinite(matrix[k])) throw std::invalid_argument("matrix must be finite");
    if (s.samples != nullptr) {
        const std::int64_t n = voxel_count(s.fixed);
        for (std::int64_t k = 0; k < s.sample_count; ++k) {
            if (s.samples[k] < 0 || s.samples[k] >= n)
                throw std::out_of_range("sample index outside the fixed image");
            if (k > 0 && s.samples[k] <= s.samples[k - 1])
                throw std::invalid_argument("sample indices must be strictly increasing");
        }
    }
    if (s.jitter && s.fixed_values == nullptr)
        throw std::invalid_argument("jitter needs the fixed image's jittered values");
    if (s.kind == MetricKind::MutualInformation) {
        if (s.nbins < 8 || s.nbins > 1024)
            throw std::invalid_argument("nbins must lie in [8, 1024]");
        if (!(s.fixed_max > s.fixed_min) || !(s.moving_max > s.moving_min) ||
            !std::isfinite(s.fixed_max - s.fixed_min) || !std::isfinite(s.moving_max - s.moving_min))
            throw std::invalid_argument("intensity ranges must be finite and non-empty");
    }
}

// Cubic B-spline Parzen window: weights of bins first..first+3 for a value at
// continuous bin coordinate c, and their derivatives with respect to c.
struct Window {
    int first;
    double w[4];
    double dw[4];
};

inline Window parzen(double c, int nbins) {
    c = std::clamp(c, double(kPad), double(nbins - kPad));
    int j0 = static_cast<int>(c);
    j0 = std::min(j0, nbins - kPad - 1);
    const double t = c - j0, t2 = t * t, t3 = t2 * t, u = 1.0 - t;
    Window win;
    win.first = j0 - 1;
    win.w[0] = u * u * u / 6.0;
    win.w[1] = (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0;
    win.w[2] = (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0;
    win.w[3] = t3 / 6.0;
    win.dw[0] = -0.5 * u * u;
    win.dw[1] = 1.5 * t2 - 2.0 * t;
    win.dw[2] = -1.5 * t2 + t + 0.5;
    win.dw[3] = 0.5 * t2;
    return win;
}

// The moving image at one point: value and gradient (per array axis) of the
// d-linear interpolant.
struct Sample {
    double value;
    double grad[3];
};

// Walks the chosen fixed voxels of one chunk and calls visit(flat, index,
// fixed value, moving sample) for each voxel inside the overlap and masks.
class Walker {
public:
    Walker(const MetricSetup& s, const double* matrix) : s_(s), d_(s.fixed.ndim) {
        for (int r = 0; r < d_; ++r)
            for (int c = 0; c <= d_; ++c) m_[r][c] = matrix[r * (d_ + 1) + c];
        units_ = s.samples ? s.sample_count : voxel_count(s.fixed) / s.fixed.shape[d_ - 1];
        chunks_ = std::min<std::int64_t>(units_, kChunks);
        const Volume& mv = s.moving;
        for (int a = 0; a < d_; ++a) {
            mshape_[a] = mv.shape[a];
            mstride_[a] = 1;
        }
        for (int a = d_ - 2; a >= 0; --a) mstride_[a] = mstride_[a + 1] * mv.shape[a + 1];
    }

    std::int64_t chunks() const { return chunks_; }
    int ndim() const { return d_; }

    template <class Visit>
    void walk(std::int64_t chunk, Visit&& visit) const {
        const std::int64_t begin = units_ * chunk / chunks_, end = units_ * (chunk + 1) / chunks_;
        const Volume& f = s_.fixed;
        const std::int64_t width = f.shape[d_ - 1];
        double x[3] = {0, 0, 0};
        if (s_.samples) {
            for (std::int64_t k = begin; k < end; ++k) {
                std::int64_t flat = s_.samples[k], rest = flat;
                for (int a = d_ - 1; a >= 0; --a) {
                    x[a] = double(rest % f.shape[a]);
                    rest /= f.shape[a];
                }
                visit_direct(flat, x, visit);
            }
            return;
        }
        for (std::int64_t row = begin; row < end; ++row) {
            std::int64_t rest = row;
            for (int a = d_ - 2; a >= 0; --a) {
                x[a] = double(rest % f.shape[a]);
                rest /= f.shape[a];
            }
            double base[3], step[3];
            for (int r = 0; r < d_; ++r) {
                double acc = m_[r][d_];
                for (int c = 0; c < d_ - 1; ++c) acc += m_[r][c] * x[c];
                base[r] = acc;
                step[r] = m_[r][d_ - 1];
            }
            const std::int64_t flat0 = row * width;
            if (s_.jitter) {
                for (std::int64_t i = 0; i < width; ++i) {
                    x[d_ - 1] = double(i);
                    visit_direct(flat0 + i, x, visit);
                }
                continue;
            }
            for (std::int64_t i = 0; i < width; ++i) {
                double y[3];
                for (int r = 0; r < d_; ++r) y[r] = base[r] + step[r] * double(i);
                x[d_ - 1] = double(i);
                visit_point(flat0 + i, x, y, visit);
            }
        }
    }

private:
    // The map applied to the (jittered) point itself, not stepped along a row.
    template <class Visit>
    void visit_direct(std::int64_t flat, const double* x, Visit& visit) const {
        double xj[3];
        if (s_.jitter)
            jittered(flat, s_.jitter_seed, d_, s_.fixed.shape, x, xj);
        else
            for (int a = 0; a < d_; ++a) xj[a] = x[a];
        double y[3];
        for (int r = 0; r < d_; ++r) {
            double acc = m_[r][d_];
            for (int c = 0; c < d_; ++c) acc += m_[r][c] * xj[c];
            y[r] = acc;
        }
        visit_point(flat, xj, y, visit);
    }

    template <class Visit>
    void visit_point(std::int64_t flat, const double* x, const double* y, Visit& visit) const {
        if (s_.fixed_mask && !s_.fixed_mask[flat]) return;
        std::int64_t cell[3];
        double frac[3];
        for (int a = 0; a < d_; ++a) {
            // Written so that NaN fails too.
            if (!(y[a] >= 0.0 && y[a] <= double(mshape_[a] - 1))) return;
            std::int64_t i = static_cast<std::int64_t>(y[a]);
            if (i > mshape_[a] - 2) i = mshape_[a] - 2;
            cell[a] = i;
            frac[a] = y[a] - double(i);
        }
        if (s_.moving_mask) {
            std::int64_t at = 0;
            for (int a = 0; a < d_; ++a)
                at += (cell[a] + (frac[a] >= 0.5 ? 1 : 0)) * mstride_[a];
            if (!s_.moving_mask[at]) return;
        }
        const float* p = s_.moving.data;
        Sample m;
        if (d_ == 2) {
            const float* r0 = p + cell[0] * mstride_[0] + cell[1];
            const float* r1 = r0 + mstride_[0];
            const double a = r0[0], b = r0[1], c = r1[0], e = r1[1];
            const double fy = frac[0], fx = frac[1];
            const double top = a + fx * (b - a), bottom = c + fx * (e - c);
            m.value = top + fy * (bottom - top);
            m.grad[0] = bottom - top;
            m.grad[1] = (1.0 - fy) * (b - a) + fy * (e - c);
        } else {
            const float* q = p + cell[0] * mstride_[0] + cell[1] * mstride_[1] + cell[2];
            const std::int64_t sy = mstride_[1], sz = mstride_[0];
            const double v000 = q[0], v001 = q[1], v010 = q[sy], v011 = q[sy + 1];
            const double v100 = q[sz], v101 = q[sz + 1], v110 = q[sz + sy], v111 = q[sz + sy + 1];
            const double fz = frac[0], fy = frac[1], fx = frac[2];
            const double a00 = v000 + fx * (v001 - v000), a01 = v010 + fx * (v011 - v010);
            const double a10 = v100 + fx * (v101 - v100), a11 = v110 + fx * (v111 - v110);
            const double b0 = a00 + fy * (a01 - a00), b1 = a10 + fy * (a11 - a10);
            m.value = b0 + fz * (b1 - b0);
            m.grad[0] = b1 - b0;
            m.grad[1] = (1.0 - fz) * (a01 - a00) + fz * (a11 - a10);
            const double dx00 = v001 - v000, dx01 = v011 - v010, dx10 = v101 - v100, dx11 = v111 - v110;
            const double c0 = dx00 + fy * (dx01 - dx00), c1 = dx10 + fy * (dx11 - dx10);
            m.grad[2] = c0 + fz * (c1 - c0);
        }
        visit(flat, x, double(s_.fixed_values ? s_.fixed_values[flat] : s_.fixed.data[flat]), m);
    }

    const MetricSetup& s_;
    int d_;
    double m_[3][4] = {};
    std::int64_t units_ = 0, chunks_ = 0;
    std::int64_t mshape_[3] = {0, 0, 0}, mstride_[3] = {0, 0, 0};
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

struct Bins {
    double fixed_offset, fixed_scale, moving_offset, moving_scale;
    int nbins;
    explicit Bins(const MetricSetup& s) : nbins(s.nbins) {
        fixed_scale = (nbins - 2 * kPad) / (s.fixed_max - s.fixed_min);
        moving_scale = (nbins - 2 * kPad) / (s.moving_max - s.moving_min);
        fixed_offset = kPad - s.fixed_min * fixed_scale;
        moving_offset = kPad - s.moving_min * moving_scale;
    }
    double fixed_coord(double v) const { return fixed_offset + v * fixed_scale; }
    double moving_coord(double v) const { return moving_offset + v * moving_scale; }
};

// Joint histogram counts (row = fixed bin), followed by the overlap count.
// Consecutive voxels usually fall in the same bins, so one table would chain
// every add on the previous one's store; voxels take turns over kCopies
// tables instead (a fixed rule, so the sums stay deterministic), added up at
// the chunk's end.
constexpr int kCopies = 4;

std::vector<double> histogram_counts(const MetricSetup& s, const Walker& walker, int threads) {
    const Bins bins(s);
    const int nb = s.nbins;
    const std::size_t cells = std::size_t(nb) * std::size_t(nb);
    return chunked_sum(walker.chunks(), cells + 1, threads, [&](std::int64_t chunk, double* out) {
        std::vector<double> tables(cells * kCopies, 0.0);
        std::size_t turn = 0;
        double count = 0.0;
        walker.walk(chunk, [&](std::int64_t, const double*, double fixed, const Sample& m) {
            const Window wf = parzen(bins.fixed_coord(fixed), nb);
            const Window wm = parzen(bins.moving_coord(m.value), nb);
            double* table = tables.data() + cells * turn;
            turn = (turn + 1) % kCopies;
            for (int a = 0; a < 4; ++a) {
                double* row = table + std::size_t(wf.first + a) * nb + wm.first;
                for (int b = 0; b < 4; ++b) row[b] += wf.w[a] * wm.w[b];
            }
            count += 1.0;
        });
        for (int c = 0; c < kCopies; ++c)
            for (std::size_t i = 0; i < cells; ++i) out[i] += tables[cells * std::size_t(c) + i];
        out[cells] = count;
    });
}

MetricValue mutual_information(const MetricSetup& s, const Walker& walker, bool want_gradient,
                               int threads) {
    const int nb = s.nbins, d = walker.ndim();
    const std::size_t cells = std::size_t(nb) * std::size_t(nb);
    std::vector<double> joint = histogram_counts(s, walker, threads);
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
    // a constant that cancels because the moving window's derivatives sum to 0.
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
    const Bins bins(s);
    const std::size_t width = std::size_t(d) * (d + 1);
    out.gradient = chunked_sum(walker.chunks(), width, threads, [&](std::int64_t chunk, double* g) {
        walker.walk(chunk, [&](std::int64_t, const double* x, double fixed, const Sample& m) {
            const Window wf = parzen(bins.fixed_coord(fixed), nb);
            const Window wm = parzen(bins.moving_coord(m.value), nb);
            double dv = 0.0;
            for (int a = 0; a < 4; ++a) {
                const double* row = &log_ratio[std::size_t(wf.first + a) * nb + wm.first];
                double acc = 0.0;
                for (int b = 0; b < 4; ++b) acc += wm.dw[b] * row[b];
                dv += wf.w[a] * acc;
            }
            if (dv == 0.0) return;
            for (int r = 0; r < d; ++r) {
                const double gr = dv * m.grad[r];
                double* gout = g + r * (d + 1);
                for (int c = 0; c < d; ++c) gout[c] += gr * x[c];
                gout[d] += gr;
            }
        });
    });
    const double scale = bins.moving_scale / n;
    for (double& v : out.gradient) v *= scale;
    return out;
}

MetricValue correlation(const MetricSetup& s, const Walker& walker, bool want_gradient, int threads) {
    const int d = walker.ndim();
    // n, sum f, sum m, sum f^2, sum m^2, sum f m
    const std::vector<double> mom = chunked_sum(walker.chunks(), 6, threads, [&](std::int64_t chunk, double* o) {
        walker.walk(chunk, [&](std::int64_t, const double*, double f, const Sample& m) {
            o[0] += 1.0;
            o[1] += f;
            o[2] += m.value;
            o[3] += f * f;
            o[4] += m.value * m.value;
            o[5] += f * m.value;
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
    const double a = 1.0 / (n * sf * sm), b = r / (n * vm);
    const std::size_t width = std::size_t(d) * (d + 1);
    out.gradient = chunked_sum(walker.chunks(), width, threads, [&](std::int64_t chunk, double* g) {
        walker.walk(chunk, [&](std::int64_t, const double* x, double f, const Sample& m) {
            const double dv = a * (f - mf) - b * (m.value - mm);
            for (int rr = 0; rr < d; ++rr) {
                const double gr = dv * m.grad[rr];
                double* gout = g + rr * (d + 1);
                for (int c = 0; c < d; ++c) gout[c] += gr * x[c];
                gout[d] += gr;
            }
        });
    });
    return out;
}

}  // namespace

MetricValue evaluate_metric(const MetricSetup& setup, const double* matrix, bool want_gradient,
                            int threads) {
    check_setup(setup, matrix);
    const Walker walker(setup, matrix);
    if (setup.kind == MetricKind::Correlation) return correlation(setup, walker, want_gradient, threads);
    return mutual_information(setup, walker, want_gradient, threads);
}

std::vector<float> jittered_fixed_values(const MetricSetup& setup, int threads) {
    check_volume(setup.fixed, "fixed image", 1);
    const Volume& f = setup.fixed;
    const int d = f.ndim;
    const std::int64_t total = voxel_count(f);
    std::int64_t stride[3] = {1, 1, 1};
    for (int a = d - 2; a >= 0; --a) stride[a] = stride[a + 1] * f.shape[a + 1];
    std::vector<float> out(static_cast<std::size_t>(total));
    const std::int64_t rows = total / f.shape[d - 1];
    parallel_for(static_cast<std::size_t>(rows), threads, [] { return 0; }, [&](int&, std::size_t row) {
        double x[3] = {0, 0, 0}, xj[3];
        std::int64_t rest = std::int64_t(row);
        for (int a = d - 2; a >= 0; --a) {
            x[a] = double(rest % f.shape[a]);
            rest /= f.shape[a];
        }
        for (std::int64_t i = 0; i < f.shape[d - 1]; ++i) {
            x[d - 1] = double(i);
            const std::int64_t flat = std::int64_t(row) * f.shape[d - 1] + i;
            jittered(flat, setup.jitter_seed, d, f.shape, x, xj);
            // d-linear interpolation; an axis of one sample has no neighbour.
            std::int64_t lo[3], hi[3];
            double t[3];
            for (int a = 0; a < d; ++a) {
                lo[a] = std::min<std::int64_t>(static_cast<std::int64_t>(xj[a]), f.shape[a] - 1);
                hi[a] = std::min<std::int64_t>(lo[a] + 1, f.shape[a] - 1);
                t[a] = xj[a] - double(lo[a]);
            }
            double acc = 0.0;
            for (int corner = 0; corner < (1 << d); ++corner) {
                double w = 1.0;
                std::int64_t at = 0;
                for (int a = 0; a < d; ++a) {
                    const bool up = (corner >> (d - 1 - a)) & 1;
                    w *= up ? t[a] : 1.0 - t[a];
                    at += (up ? hi[a] : lo[a]) * stride[a];
                }
                if (w != 0.0) acc += w * double(f.data[at]);
            }
            out[static_cast<std::size_t>(flat)] = static_cast<float>(acc);
        }
    });
    return out;
}

std::vector<double> joint_histogram(const MetricSetup& setup, const double* matrix, int threads) {
    MetricSetup s = setup;
    s.kind = MetricKind::MutualInformation;
    check_setup(s, matrix);
    const Walker walker(s, matrix);
    std::vector<double> h = histogram_counts(s, walker, threads);
    const double n = h.back();
    h.pop_back();
    if (n > 0.0)
        for (double& v : h) v /= n;
    return h;
}

}  // namespace spectralign_fast::reg

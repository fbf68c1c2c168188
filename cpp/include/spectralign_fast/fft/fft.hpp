// FFTW single-precision plans and SIMD-aligned buffers.
//
// FFTW's planner is not thread-safe, its executor is: plans are created once
// per (shape, kind) under a mutex (any rank from 1 to 3), cached for the life of the process,
// and executed with the new-array functions (fftwf_execute_dft_r2c/c2r/dft) on
// per-thread buffers aligned to a cache line (more than the SIMD alignment
// FFTW asks of new arrays), so every buffer has the alignment the plan was
// made for.
#pragma once

#include <complex>
#include <cstdlib>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <fftw3.h>

namespace spectralign_fast {

constexpr std::size_t buffer_alignment = 64;

// Owning array of T (float or std::complex<float>), aligned to
// buffer_alignment bytes.
template <typename T>
class AlignedBuffer {
public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(std::size_t count) { resize(count); }

    void resize(std::size_t count);
    T* data() noexcept { return data_.get(); }
    const T* data() const noexcept { return data_.get(); }
    std::size_t size() const noexcept { return size_; }
    T& operator[](std::size_t i) noexcept { return data_[i]; }
    const T& operator[](std::size_t i) const noexcept { return data_[i]; }

private:
    struct Free {
        void operator()(T* p) const noexcept { std::free(p); }
    };
    std::unique_ptr<T[], Free> data_;
    std::size_t size_ = 0;
};

using RealBuffer = AlignedBuffer<float>;
using ComplexBuffer = AlignedBuffer<std::complex<float>>;

enum class PlanRigor { estimate, measure, patient };

// Sets how hard FFTW searches for fast plans that are created from now on.
// Plans already cached keep their rigor.
void set_plan_rigor(PlanRigor rigor);
PlanRigor plan_rigor();

// Forward real-to-complex 2-D transform of a rows x cols real array into
// rows x (cols/2+1) complex values; unnormalized (FFTW convention).
class R2CPlan {
public:
    static const R2CPlan& get(int rows, int cols);
    // Any rank 1..3, row-major: shape[0] x ... x shape[r-1] real values into
    // shape[0] x ... x (shape[r-1]/2+1) complex values.
    static const R2CPlan& get(const std::vector<int>& shape);
    void execute(float* in, std::complex<float>* out) const noexcept;

private:
    explicit R2CPlan(fftwf_plan plan) : plan_(plan) {}
    fftwf_plan plan_;
    friend class PlanCache;
};

// Inverse complex-to-real 2-D transform; destroys its input (FFTW c2r
// semantics), unnormalized: c2r(r2c(x)) == rows*cols*x.
class C2RPlan {
public:
    static const C2RPlan& get(int rows, int cols);
    static const C2RPlan& get(const std::vector<int>& shape);
    void execute(std::complex<float>* in, float* out) const noexcept;

private:
    explicit C2RPlan(fftwf_plan plan) : plan_(plan) {}
    fftwf_plan plan_;
    friend class PlanCache;
};

// Complex-to-complex transforms, unnormalized. get(): forward, in place, any
// rank (the matcher's small windows: two real windows packed as real and
// imaginary parts are transformed together, cheaper than two r2c).
class C2CPlan {
public:
    static const C2CPlan& get(int rows, int cols);
    static const C2CPlan& get(const std::vector<int>& shape);
    // `howmany` 1-D transforms of n points, out of place, input preserved:
    // sequence b at in + b * dist into out + b * dist (for rows or transposed
    // columns of a window). sign: FFTW_FORWARD or FFTW_BACKWARD. Run with
    // execute(in, out).
    static const C2CPlan& get_many(int n, int howmany, int dist, int sign);
    void execute(std::complex<float>* data) const noexcept;
    void execute(std::complex<float>* in, std::complex<float>* out) const noexcept;

private:
    explicit C2CPlan(fftwf_plan plan) : plan_(plan) {}
    fftwf_plan plan_;
    friend class PlanCache;
};

// FFTW wisdom: the algorithm choices its planner has measured, as text, so
// that later processes skip the measuring (planning a window size with
// FFTW_MEASURE costs far more than transforming it). Importing merges with
// what is known; returns false for text FFTW does not accept. Forgetting
// makes plans created afterwards depend on the planning rigor alone.
std::string export_wisdom();
bool import_wisdom(const std::string& text);
void forget_wisdom();

#ifdef SPECTRALIGN_DEV_TOOLS
// Benchmark support (_core.dev builds only): the FFT work of one swim iteration, timed on its own.
enum class FloorKind {
    two_r2c_c2r,     // the textbook floor: both windows r2c, the product c2r
    one_r2c_c2r,     // one frame of stack registration
    packed_c2c_c2r,  // the matcher's 2-D path (small windows): both windows as one in-place c2c, then c2r
};

// Seconds per repetition of `kind` on rows x cols, timing only the
// transforms. With threads > 1 as many threads repeat it concurrently (each
// on its own buffers) and the result is their mean time per repetition, so
// threads * floor(1) / floor(threads) is how well the FFTs themselves scale.
double fft_floor_seconds(int rows, int cols, int repeats, FloorKind kind, int threads);
#endif  // SPECTRALIGN_DEV_TOOLS

// Number of plans in the cache (for tests and diagnostics).
std::size_t cached_plan_count();

// FFTW's own version string, e.g. "fftw-3.3.10-sse2-avx".
std::string fftw_version();

}  // namespace spectralign_fast

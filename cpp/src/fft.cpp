#include "spectralign_fast/fft.hpp"

#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <tuple>

namespace spectralign_fast {

template <typename T>
void AlignedBuffer<T>::resize(std::size_t count) {
    if (count == size_) return;
    data_.reset();
    size_ = 0;
    if (count == 0) return;
    void* raw = fftwf_malloc(count * sizeof(T));
    if (raw == nullptr) throw std::bad_alloc();
    data_.reset(static_cast<T*>(raw));
    size_ = count;
}

template class AlignedBuffer<float>;
template class AlignedBuffer<std::complex<float>>;

namespace {

enum class Kind { r2c, c2r };

std::mutex& planner_mutex() {
    static std::mutex m;
    return m;
}

PlanRigor g_rigor = PlanRigor::measure;  // guarded by planner_mutex()

unsigned rigor_flag(PlanRigor rigor) {
    switch (rigor) {
        case PlanRigor::estimate: return FFTW_ESTIMATE;
        case PlanRigor::patient: return FFTW_PATIENT;
        case PlanRigor::measure: break;
    }
    return FFTW_MEASURE;
}

void check_shape(int rows, int cols) {
    if (rows < 1 || cols < 1) throw std::invalid_argument("FFT shape must be positive");
}

}  // namespace

// Plans live until the process exits: destroying them at static destruction
// time could race with FFTW's own teardown and buys nothing.
class PlanCache {
public:
    static PlanCache& instance() {
        static PlanCache* cache = new PlanCache();
        return *cache;
    }

    const R2CPlan& r2c(int rows, int cols) {
        std::lock_guard<std::mutex> lock(planner_mutex());
        auto key = std::make_tuple(rows, cols, Kind::r2c);
        auto it = r2c_.find(key);
        if (it != r2c_.end()) return *it->second;
        RealBuffer in(static_cast<std::size_t>(rows) * cols);
        ComplexBuffer out(static_cast<std::size_t>(rows) * (cols / 2 + 1));
        fftwf_plan p = fftwf_plan_dft_r2c_2d(rows, cols, in.data(),
                                             reinterpret_cast<fftwf_complex*>(out.data()),
                                             rigor_flag(g_rigor));
        if (p == nullptr) throw std::runtime_error("FFTW could not create an r2c plan");
        auto& slot = r2c_[key];
        slot.reset(new R2CPlan(p));
        return *slot;
    }

    const C2RPlan& c2r(int rows, int cols) {
        std::lock_guard<std::mutex> lock(planner_mutex());
        auto key = std::make_tuple(rows, cols, Kind::c2r);
        auto it = c2r_.find(key);
        if (it != c2r_.end()) return *it->second;
        ComplexBuffer in(static_cast<std::size_t>(rows) * (cols / 2 + 1));
        RealBuffer out(static_cast<std::size_t>(rows) * cols);
        fftwf_plan p = fftwf_plan_dft_c2r_2d(rows, cols, reinterpret_cast<fftwf_complex*>(in.data()),
                                             out.data(), rigor_flag(g_rigor));
        if (p == nullptr) throw std::runtime_error("FFTW could not create a c2r plan");
        auto& slot = c2r_[key];
        slot.reset(new C2RPlan(p));
        return *slot;
    }

    std::size_t size() {
        std::lock_guard<std::mutex> lock(planner_mutex());
        return r2c_.size() + c2r_.size();
    }

private:
    using Key = std::tuple<int, int, Kind>;
    std::map<Key, std::unique_ptr<R2CPlan>> r2c_;
    std::map<Key, std::unique_ptr<C2RPlan>> c2r_;
};

void set_plan_rigor(PlanRigor rigor) {
    std::lock_guard<std::mutex> lock(planner_mutex());
    g_rigor = rigor;
}

PlanRigor plan_rigor() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    return g_rigor;
}

const R2CPlan& R2CPlan::get(int rows, int cols) {
    check_shape(rows, cols);
    return PlanCache::instance().r2c(rows, cols);
}

void R2CPlan::execute(float* in, std::complex<float>* out) const noexcept {
    fftwf_execute_dft_r2c(plan_, in, reinterpret_cast<fftwf_complex*>(out));
}

const C2RPlan& C2RPlan::get(int rows, int cols) {
    check_shape(rows, cols);
    return PlanCache::instance().c2r(rows, cols);
}

void C2RPlan::execute(std::complex<float>* in, float* out) const noexcept {
    fftwf_execute_dft_c2r(plan_, reinterpret_cast<fftwf_complex*>(in), out);
}

std::size_t cached_plan_count() { return PlanCache::instance().size(); }

std::string fftw_version() { return std::string(fftwf_version); }

}  // namespace spectralign_fast

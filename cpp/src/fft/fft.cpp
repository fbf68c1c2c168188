#include "spectralign_fast/fft/fft.hpp"

#include <map>
#include <string>
#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

namespace spectralign_fast {

template <typename T>
void AlignedBuffer<T>::resize(std::size_t count) {
    if (count == size_) return;
    data_.reset();
    size_ = 0;
    if (count == 0) return;
    // Cache-line aligned (more than any SIMD width FFTW needs), so that
    // threads writing neighbouring 64-byte pieces of one buffer never share
    // a line.
    const std::size_t bytes = (count * sizeof(T) + buffer_alignment - 1) / buffer_alignment * buffer_alignment;
    void* raw = std::aligned_alloc(buffer_alignment, bytes);
    if (raw == nullptr) throw std::bad_alloc();
    data_.reset(static_cast<T*>(raw));
    size_ = count;
}

template class AlignedBuffer<float>;
template class AlignedBuffer<std::complex<float>>;

namespace {

enum class Kind { r2c, c2r, c2c_forward_in_place, c2c_many_out_of_place };

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

void check_shape(const std::vector<int>& shape) {
    if (shape.empty() || shape.size() > 3)
        throw std::invalid_argument("FFT rank must be 1, 2 or 3");
    for (int n : shape)
        if (n < 1) throw std::invalid_argument("FFT shape must be positive");
}

// Real and half-spectrum element counts of a row-major shape.
std::pair<std::size_t, std::size_t> plan_sizes(const std::vector<int>& shape) {
    std::size_t real = 1, spectrum = 1;
    for (std::size_t a = 0; a < shape.size(); ++a) {
        real *= static_cast<std::size_t>(shape[a]);
        spectrum *= static_cast<std::size_t>(a + 1 == shape.size() ? shape[a] / 2 + 1 : shape[a]);
    }
    return {real, spectrum};
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

    const R2CPlan& r2c(const std::vector<int>& shape) {
        return cached<R2CPlan>(r2c_, {shape, Kind::r2c}, "an r2c plan", [&] {
            const auto [real, spectrum] = plan_sizes(shape);
            RealBuffer in(real);
            ComplexBuffer out(spectrum);
            return fftwf_plan_dft_r2c(static_cast<int>(shape.size()), shape.data(), in.data(),
                                      reinterpret_cast<fftwf_complex*>(out.data()), rigor_flag(g_rigor));
        });
    }

    const C2RPlan& c2r(const std::vector<int>& shape) {
        return cached<C2RPlan>(c2r_, {shape, Kind::c2r}, "a c2r plan", [&] {
            const auto [real, spectrum] = plan_sizes(shape);
            ComplexBuffer in(spectrum);
            RealBuffer out(real);
            return fftwf_plan_dft_c2r(static_cast<int>(shape.size()), shape.data(),
                                      reinterpret_cast<fftwf_complex*>(in.data()), out.data(),
                                      rigor_flag(g_rigor));
        });
    }

    const C2CPlan& c2c(const std::vector<int>& shape) {
        return cached<C2CPlan>(c2c_, {shape, Kind::c2c_forward_in_place}, "a c2c plan", [&] {
            std::size_t count = 1;
            for (int n : shape) count *= static_cast<std::size_t>(n);
            ComplexBuffer data(count);
            fftwf_complex* p = reinterpret_cast<fftwf_complex*>(data.data());
            return fftwf_plan_dft(static_cast<int>(shape.size()), shape.data(), p, p, FFTW_FORWARD,
                                  rigor_flag(g_rigor));
        });
    }

    const C2CPlan& c2c_many(int n, int howmany, int dist, int sign) {
        return cached<C2CPlan>(c2c_, {{n, howmany, dist, sign}, Kind::c2c_many_out_of_place}, "a c2c plan", [&] {
            const std::size_t count = static_cast<std::size_t>(howmany - 1) * dist + n;
            ComplexBuffer in(count), out(count);
            fftwf_complex* i = reinterpret_cast<fftwf_complex*>(in.data());
            fftwf_complex* o = reinterpret_cast<fftwf_complex*>(out.data());
            // The matcher reads some columns again after transforming them.
            return fftwf_plan_many_dft(1, &n, howmany, i, nullptr, 1, dist, o, nullptr, 1, dist, sign,
                                       rigor_flag(g_rigor) | FFTW_PRESERVE_INPUT);
        });
    }

    std::size_t size() {
        std::lock_guard<std::mutex> lock(planner_mutex());
        return r2c_.size() + c2r_.size() + c2c_.size();
    }

private:
    // The shape (any rank) is part of the key: a 2-D 64 x 64 plan and a
    // 3-D 1 x 64 x 64 plan are different plans.
    using Key = std::pair<std::vector<int>, Kind>;
    std::map<Key, std::unique_ptr<R2CPlan>> r2c_;
    std::map<Key, std::unique_ptr<C2RPlan>> c2r_;
    std::map<Key, std::unique_ptr<C2CPlan>> c2c_;

    // The plan for key, made under the planner mutex by make() (which
    // returns an fftwf_plan) the first time it is asked for.
    template <class Plan, class Map, class Make>
    const Plan& cached(Map& map, const Key& key, const char* what, Make make) {
        std::lock_guard<std::mutex> lock(planner_mutex());
        auto it = map.find(key);
        if (it != map.end()) return *it->second;
        fftwf_plan p = make();
        if (p == nullptr) throw std::runtime_error(std::string("FFTW could not create ") + what);
        auto& slot = map[key];
        slot.reset(new Plan(p));
        return *slot;
    }
};

void set_plan_rigor(PlanRigor rigor) {
    std::lock_guard<std::mutex> lock(planner_mutex());
    g_rigor = rigor;
}

PlanRigor plan_rigor() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    return g_rigor;
}

std::string export_wisdom() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    char* text = fftwf_export_wisdom_to_string();
    if (text == nullptr) return std::string();
    std::string out(text);
    std::free(text);  // FFTW allocates it with malloc
    return out;
}

bool import_wisdom(const std::string& text) {
    std::lock_guard<std::mutex> lock(planner_mutex());
    return fftwf_import_wisdom_from_string(text.c_str()) != 0;
}

void forget_wisdom() {
    std::lock_guard<std::mutex> lock(planner_mutex());
    fftwf_forget_wisdom();
}

const R2CPlan& R2CPlan::get(int rows, int cols) { return get(std::vector<int>{rows, cols}); }

const R2CPlan& R2CPlan::get(const std::vector<int>& shape) {
    check_shape(shape);
    return PlanCache::instance().r2c(shape);
}

void R2CPlan::execute(float* in, std::complex<float>* out) const noexcept {
    fftwf_execute_dft_r2c(plan_, in, reinterpret_cast<fftwf_complex*>(out));
}

const C2RPlan& C2RPlan::get(int rows, int cols) { return get(std::vector<int>{rows, cols}); }

const C2RPlan& C2RPlan::get(const std::vector<int>& shape) {
    check_shape(shape);
    return PlanCache::instance().c2r(shape);
}

void C2RPlan::execute(std::complex<float>* in, float* out) const noexcept {
    fftwf_execute_dft_c2r(plan_, reinterpret_cast<fftwf_complex*>(in), out);
}

const C2CPlan& C2CPlan::get(int rows, int cols) { return get(std::vector<int>{rows, cols}); }

const C2CPlan& C2CPlan::get(const std::vector<int>& shape) {
    check_shape(shape);
    return PlanCache::instance().c2c(shape);
}

const C2CPlan& C2CPlan::get_many(int n, int howmany, int dist, int sign) {
    check_shape({n, howmany});
    if (howmany > 1 && dist < n) throw std::invalid_argument("c2c sequences must not overlap (dist >= n)");
    if (sign != FFTW_FORWARD && sign != FFTW_BACKWARD)
        throw std::invalid_argument("c2c sign must be FFTW_FORWARD or FFTW_BACKWARD");
    return PlanCache::instance().c2c_many(n, howmany, dist, sign);
}

void C2CPlan::execute(std::complex<float>* data) const noexcept {
    fftwf_complex* p = reinterpret_cast<fftwf_complex*>(data);
    fftwf_execute_dft(plan_, p, p);
}

void C2CPlan::execute(std::complex<float>* in, std::complex<float>* out) const noexcept {
    fftwf_execute_dft(plan_, reinterpret_cast<fftwf_complex*>(in), reinterpret_cast<fftwf_complex*>(out));
}

std::size_t cached_plan_count() { return PlanCache::instance().size(); }

std::string fftw_version() { return std::string(fftwf_version); }

}  // namespace spectralign_fast

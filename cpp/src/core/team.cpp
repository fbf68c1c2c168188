#include "core/team.hpp"

#include <chrono>

#include "spectralign_fast/core/interrupt.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace spectralign_fast {

namespace {

// Waiting members spin briefly (a run's tasks are a fraction of a
// millisecond apart), then yield the core.
void pause_briefly(int& spins) {
    if (++spins < 2000) {
#if defined(__x86_64__) || defined(_M_X64)
        _mm_pause();
#endif
    } else {
        std::this_thread::yield();
    }
}

}  // namespace

Team::Team(int size) {
    for (int member = 1; member < size; ++member) {
        try {
            helpers_.emplace_back([this, member] { helper_loop(member); });
        } catch (...) {
            break;  // a smaller team still does all the work
        }
    }
}

Team::~Team() {
    stop_.store(true, std::memory_order_release);
    for (auto& t : helpers_) t.join();
}

void Team::work(int member) {
    for (int item = next_.fetch_add(1, std::memory_order_relaxed); item < items_;
         item = next_.fetch_add(1, std::memory_order_relaxed)) {
        try {
            if (member == 0) check_interrupt();  // the calling thread (see interrupt.hpp)
            (*task_)(member, item);
        } catch (...) {
            std::lock_guard<std::mutex> lock(failure_mutex_);
            if (!failure_) failure_ = std::current_exception();
            next_.store(items_, std::memory_order_relaxed);  // skip the rest
        }
    }
}

void Team::helper_loop(int member) {
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        unsigned generation;
        while ((generation = generation_.load(std::memory_order_acquire)) == seen) {
            if (stop_.load(std::memory_order_acquire)) return;
            pause_briefly(spins);
        }
        seen = generation;
        work(member);
        busy_.fetch_sub(1, std::memory_order_release);
    }
}

double Team::run(int items, const std::function<void(int, int)>& task) {
    if (items <= 0) return 0.0;
    if (helpers_.empty()) {
        for (int item = 0; item < items; ++item) {
            check_interrupt();
            task(0, item);
        }
        return 0.0;
    }
    task_ = &task;
    items_ = items;
    next_.store(0, std::memory_order_relaxed);
    busy_.store(static_cast<int>(helpers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);  // publishes the task
    work(0);
    double waited = 0.0;
    if (busy_.load(std::memory_order_acquire) != 0) {
        const auto start = std::chrono::steady_clock::now();
        int spins = 0;
        while (busy_.load(std::memory_order_acquire) != 0) pause_briefly(spins);
        waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        waited_ += waited;
    }
    task_ = nullptr;
    if (failure_) {
        std::exception_ptr failure = failure_;
        failure_ = nullptr;
        std::rethrow_exception(failure);
    }
    return waited;
}

void Team::run_each(const std::function<void(int)>& task) {
    const int members = size();
    run(members, [&](int member, int item) {
        (void)item;
        task(member);
    });
}

}  // namespace spectralign_fast

// A work-sharing loop over [0, n): each of `threads` workers (0 = all cores;
// the calling thread is one of them) makes its own state once, then takes the
// next index (parallel_for) or a short run of them (parallel_for_runs) from a
// shared counter until none are left. The first exception
// stops the others and is rethrown after every worker has finished. The
// helpers come from one process-wide pool of threads started on first need
// and kept (parallel.cpp): starting threads for every call cost about 40 us,
// and at SyN's 256^2 level a second thread then gained nothing. A loop never waits
// for a helper to become free: the caller works through the items itself and
// waits only for helpers that took a share, so loops may nest and run from
// several threads at once. Shared by matching, registration, stack
// registration and rendering. Every worker calls check_interrupt() between
// items (the calling thread polls for Ctrl-C, see core/interrupt.hpp); bodies
// may call it inside long items too. A failure sets the loop's stop flag, so
// the others stop at their next check.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>

#include "spectralign_fast/core/interrupt.hpp"
#include "spectralign_fast/core/threads.hpp"

namespace spectralign_fast {

namespace pool {

// One loop offered to the pool's helpers. `slots` and `retired` are guarded
// by the pool's mutex; `active` (helpers inside run) is changed under it and
// read without it by the waiting caller.
struct Job {
    void (*run)(void* context) = nullptr;  // a helper's share of the loop
    void* context = nullptr;
    int slots = 0;                         // helpers still wanted
    bool retired = false;
    std::atomic<int> active{0};
};

// Offers `job` to up to job.slots helpers (starting threads as needed) and
// returns at once; a helper that takes a slot calls job.run(job.context).
void offer(Job& job);

// Withdraws the offer and returns once no helper is inside job.run.
void retire(Job& job);

template <class Worker>
void run_helper(void* worker) {
    (*static_cast<Worker*>(worker))(false);
}

}  // namespace pool

namespace detail {

// The loop of parallel_for / parallel_for_runs: a worker takes remaining /
// (4 threads) consecutive items at a time, at least one and at most max_run.
template <class MakeState, class Body>
void parallel_loop(std::size_t n, int threads, std::size_t max_run, MakeState& make_state, Body& body) {
    if (n == 0) return;
    const int nthreads = static_cast<int>(std::min<std::size_t>(resolve_threads(threads), n));
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stop{false};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto grab = [&](std::size_t& begin, std::size_t& end) {
        std::size_t cur = next.load(std::memory_order_relaxed);
        while (cur < n) {
            const std::size_t guided = std::max<std::size_t>(1, (n - cur) / (4 * std::size_t(nthreads)));
            const std::size_t take = std::min(max_run, guided);
            if (next.compare_exchange_weak(cur, cur + take, std::memory_order_relaxed)) {
                begin = cur;
                end = cur + take;
                return true;
            }
        }
        return false;
    };
    auto worker = [&](bool caller) {
        InterruptScope scope(&stop, !caller);
        try {
            auto state = make_state();
            std::size_t begin = 0, end = 0;
            while (grab(begin, end)) {
                for (std::size_t k = begin; k < end; ++k) {
                    check_interrupt();
                    body(state, k);
                }
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(failure_mutex);
            if (!failure) failure = std::current_exception();
            next = n;  // stop the other workers early
            stop.store(true, std::memory_order_relaxed);  // also inside their items (check_interrupt)
        }
    };
    if (nthreads > 1) {
        pool::Job job;
        job.run = &pool::run_helper<decltype(worker)>;
        job.context = &worker;
        job.slots = nthreads - 1;
        pool::offer(job);
        worker(true);
        pool::retire(job);
    } else {
        worker(true);
    }
    if (failure) std::rethrow_exception(failure);
}

}  // namespace detail

// One item per take: for items of a millisecond or more (tile pairs, frames,
// bands), where a thread the machine pauses holds back only the item it has.
template <class MakeState, class Body>
void parallel_for(std::size_t n, int threads, MakeState make_state, Body body) {
    detail::parallel_loop(n, threads, 1, make_state, body);
}

// Runs of consecutive items per take, remaining / (4 threads) long: for fine
// items such as the rows of an image or a field. Taken one at a time, two
// threads alternated along memory: the counter's cache line moved between the
// cores on every row and each thread's prefetcher saw a strided stream (a 2 mm
// field's step normalisation ran no faster on two threads than on one: 2.8 /
// 2.2 ms with runs of at most 32 rows, 1.3-1.45 ms with these).
template <class MakeState, class Body>
void parallel_for_runs(std::size_t n, int threads, MakeState make_state, Body body) {
    detail::parallel_loop(n, threads, n, make_state, body);
}

}  // namespace spectralign_fast

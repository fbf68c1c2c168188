// A work-sharing loop over [0, n): each of `threads` workers (0 = all cores;
// the calling thread is one of them) makes its own state once, then takes the
// next index from a shared counter until none are left. The first exception
// stops the others and is rethrown after every worker has joined. If threads
// cannot be started, the ones running (at least the caller) do all the work.
// Shared by matching, stack registration and rendering. Every worker calls
// check_interrupt() between items (the calling thread polls for Ctrl-C, see
// core/interrupt.hpp); bodies may call it inside long items too. A failure
// sets the loop's stop flag, so the others stop at their next check.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "spectralign_fast/core/interrupt.hpp"
#include "spectralign_fast/core/threads.hpp"

namespace spectralign_fast {

template <class MakeState, class Body>
void parallel_for(std::size_t n, int threads, MakeState make_state, Body body) {
    if (n == 0) return;
    const int nthreads = static_cast<int>(std::min<std::size_t>(resolve_threads(threads), n));
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stop{false};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto worker = [&](bool caller) {
        InterruptScope scope(&stop, !caller);
        try {
            auto state = make_state();
            for (std::size_t k = next++; k < n; k = next++) {
                check_interrupt();
                body(state, k);
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(failure_mutex);
            if (!failure) failure = std::current_exception();
            next = n;  // stop the other workers early
            stop.store(true, std::memory_order_relaxed);  // also inside their items (check_interrupt)
        }
    };
    std::vector<std::thread> pool;
    if (nthreads > 1) {
        pool.reserve(static_cast<std::size_t>(nthreads - 1));
        try {
            for (int t = 1; t < nthreads; ++t) pool.emplace_back(worker, false);
        } catch (...) {
            // Could not start every thread: the running ones finish the work.
        }
    }
    worker(true);
    for (auto& t : pool) t.join();
    if (failure) std::rethrow_exception(failure);
}

}  // namespace spectralign_fast

// The helper threads behind parallel_for (parallel.hpp): started on first
// need, kept for the life of the process, asleep when there is no work.
#include "core/parallel.hpp"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <thread>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace spectralign_fast::pool {

namespace {

// A process-wide cap, whatever `threads` callers ask for.
constexpr int kMaxHelpers = 1024;
// How long an idle helper keeps looking for the next loop before it sleeps,
// and how long a caller spins for the last helpers before it sleeps: SyN's
// loops follow each other within tens of microseconds, and a futex wake-up
// costs about as much.
constexpr auto kSpin = std::chrono::microseconds(200);

void relax(int& spins) {
    if (++spins % 64 != 0) {
#if defined(__x86_64__) || defined(_M_X64)
        _mm_pause();
#endif
    } else {
        std::this_thread::yield();
    }
}

class Pool {
public:
    Pool* parent = nullptr;  // the parent process's pool, in a forked child

    void offer(Job& job) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            queue_.push_back(&job);
            open_ += job.slots;
            // Enough idle helpers for every open slot (of this loop and of others offered at once).
            int missing = open_ - idle_;
            if (missing > 0) {
                // Helpers block every signal (Ctrl-C is for the threads that called in) and
                // inherit that mask from here.
                sigset_t all, old;
                sigfillset(&all);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                while (missing-- > 0 && helpers_ < kMaxHelpers) {
                    try {
                        std::thread([this] { helper_loop(); }).detach();
                    } catch (...) {
                        break;  // fewer helpers: the caller does their share
                    }
                    ++helpers_;
                    ++idle_;
                }
                pthread_sigmask(SIG_SETMASK, &old, nullptr);
            }
            posted_.fetch_add(1, std::memory_order_release);
        }
        work_.notify_all();
    }

    void retire(Job& job) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job.retired = true;
            open_ -= job.slots;
            job.slots = 0;
            for (auto it = queue_.begin(); it != queue_.end(); ++it)
                if (*it == &job) {
                    queue_.erase(it);
                    break;
                }
        }
        const auto until = std::chrono::steady_clock::now() + kSpin;
        int spins = 0;
        while (job.active.load(std::memory_order_acquire) != 0) {
            if (std::chrono::steady_clock::now() > until) {
                std::unique_lock<std::mutex> lock(mutex_);
                done_.wait(lock, [&] { return job.active.load(std::memory_order_acquire) == 0; });
                break;
            }
            relax(spins);
        }
    }

private:
    // Takes a slot of the first loop that has one (the mutex held).
    Job* take() {
        while (!queue_.empty()) {
            Job* job = queue_.front();
            if (job->slots > 0) {
                --open_;
                if (--job->slots == 0) queue_.pop_front();
                job->active.fetch_add(1, std::memory_order_relaxed);
                return job;
            }
            queue_.pop_front();
        }
        return nullptr;
    }

    void helper_loop() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            if (Job* job = take()) {
                --idle_;
                lock.unlock();
                job->run(job->context);
                lock.lock();
                ++idle_;
                // The job is not touched after `active` falls: its caller may return at once.
                const bool retired = job->retired;
                if (job->active.fetch_sub(1, std::memory_order_acq_rel) == 1 && retired) done_.notify_all();
                continue;
            }
            const unsigned seen = posted_.load(std::memory_order_acquire);
            lock.unlock();
            const auto until = std::chrono::steady_clock::now() + kSpin;
            int spins = 0;
            while (posted_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until)
                relax(spins);
            lock.lock();
            work_.wait(lock, [&] { return posted_.load(std::memory_order_acquire) != seen; });
        }
    }

    std::mutex mutex_;
    std::condition_variable work_;  // helpers wait here for a loop
    std::condition_variable done_;  // callers wait here for their last helpers
    std::deque<Job*> queue_;        // loops with slots still open
    int helpers_ = 0, idle_ = 0;
    int open_ = 0;                  // slots still open over the queue
    std::atomic<unsigned> posted_{0};
};

// Never destroyed: detached helpers may still be asleep in it at exit. A
// forked child has none of the parent's threads, so it starts a pool of its own.
Pool* g_pool = nullptr;
std::once_flag g_once;

Pool& the_pool() {
    std::call_once(g_once, [] {
        g_pool = new Pool;
        pthread_atfork(nullptr, nullptr, [] {
            Pool* fresh = new Pool;
            fresh->parent = g_pool;  // still reachable: leak checkers see no lost block
            g_pool = fresh;
        });
    });
    return *g_pool;
}

}  // namespace

void offer(Job& job) { the_pool().offer(job); }

void retire(Job& job) { the_pool().retire(job); }

}  // namespace spectralign_fast::pool

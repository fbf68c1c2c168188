#include "spectralign_fast/core/interrupt.hpp"

#include <atomic>
#include <chrono>

namespace spectralign_fast {

namespace {
std::atomic<InterruptPoll> g_poll{nullptr};
thread_local const InterruptScope* t_scope = nullptr;
thread_local bool t_worker = false;
}  // namespace

InterruptScope::InterruptScope(const std::atomic<bool>* stop, bool worker)
    : stop_(stop), parent_(t_scope), was_worker_(t_worker) {
    t_scope = this;
    t_worker = t_worker || worker;
}

InterruptScope::~InterruptScope() {
    t_scope = parent_;
    t_worker = was_worker_;
}

void set_interrupt_poll(InterruptPoll poll) { g_poll.store(poll, std::memory_order_release); }

void check_interrupt() {
    for (const InterruptScope* s = t_scope; s != nullptr; s = s->parent_)
        if (s->stop_->load(std::memory_order_relaxed)) throw Interrupted();
    if (t_worker) return;
    const InterruptPoll poll = g_poll.load(std::memory_order_acquire);
    if (poll == nullptr) return;
    using Clock = std::chrono::steady_clock;
    thread_local Clock::time_point last{};
    const Clock::time_point now = Clock::now();
    if (std::chrono::duration<double>(now - last).count() < kInterruptInterval) return;
    last = now;
    if (poll()) throw Interrupted();
}

}  // namespace spectralign_fast

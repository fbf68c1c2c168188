// Interrupting long calls (Ctrl-C from Python) without the core knowing Python.
//
// The bindings install one poll function at import. Long loops call
// check_interrupt() between work items. On the thread that entered the core
// it asks the poll at most every kInterruptInterval and throws Interrupted
// when the poll says so; on parallel_for's worker threads it only reads the
// stop flag of their loop (one atomic load), which the loop sets on any
// failure, an interrupt included. So a call stops within one small work item
// of every thread, joins its threads and rethrows: nothing is left running.
#pragma once

#include <atomic>
#include <stdexcept>

namespace spectralign_fast {

struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("interrupted") {}
};

// Returns true when the current call is to stop (e.g. Ctrl-C was pressed).
// Must be cheap to call when nothing is pending and safe from any thread.
using InterruptPoll = bool (*)();

void set_interrupt_poll(InterruptPoll poll);

// Time-gated: asks the poll when at least kInterruptInterval has passed
// since this thread last asked; throws Interrupted if it says so.
void check_interrupt();

constexpr double kInterruptInterval = 0.05;  // seconds

// For parallel_for: while alive, check_interrupt() on this thread also throws
// once `stop` is set (or that of an enclosing scope); `worker` marks a thread
// that must not poll (only the entering thread does).
class InterruptScope {
public:
    InterruptScope(const std::atomic<bool>* stop, bool worker);
    ~InterruptScope();
    InterruptScope(const InterruptScope&) = delete;
    InterruptScope& operator=(const InterruptScope&) = delete;

private:
    const std::atomic<bool>* stop_;
    const InterruptScope* parent_;
    bool was_worker_;
    friend void check_interrupt();
};

}  // namespace spectralign_fast

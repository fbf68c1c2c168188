// A team of threads that work together on one task at a time: the calling
// thread (member 0) and size - 1 helpers started once. Each run() hands out
// the items of a task to whichever member is free (a member the machine
// slows down just takes fewer) and returns when every item is done and every
// helper is idle again, so the next run may reuse any buffer. For work too
// large for one thread's share of the cache (the matcher's largest windows),
// where two threads on one task beat two tasks side by side.
#pragma once

#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace spectralign_fast {

class Team {
public:
    // size >= 1; a team of one runs every task on the calling thread. If a
    // helper thread cannot be started, the team is smaller.
    explicit Team(int size);
    ~Team();
    Team(const Team&) = delete;
    Team& operator=(const Team&) = delete;

    int size() const noexcept { return 1 + static_cast<int>(helpers_.size()); }

    // Runs task(member, item) for every item in [0, items), member in
    // [0, size()). The first exception is rethrown here after all members
    // have stopped; the remaining items are then skipped. Returns the seconds
    // the calling thread waited for the others once no item was left (a
    // helper the machine had paused while it held an item).
    double run(int items, const std::function<void(int, int)>& task);

    // Runs task(member) once on every member at the same time (a member
    // that is late may find task already run by another: task(0) twice).
    void run_each(const std::function<void(int)>& task);

    // Seconds the calling thread has waited in run() since the last reset.
    double waited() const noexcept { return waited_; }
    void reset_waited() noexcept { waited_ = 0.0; }

private:
    void helper_loop(int member);
    void work(int member);

    std::vector<std::thread> helpers_;
    const std::function<void(int, int)>* task_ = nullptr;  // published by generation_
    int items_ = 0;
    std::atomic<int> next_{0};
    std::atomic<int> busy_{0};                // helpers still in the current run
    std::atomic<unsigned> generation_{0};     // bumped to start a run
    std::atomic<bool> stop_{false};
    double waited_ = 0.0;
    std::mutex failure_mutex_;
    std::exception_ptr failure_;
};

}  // namespace spectralign_fast

#include <chrono>
#include <complex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "spectralign_fast/fft/fft.hpp"

namespace spectralign_fast {

namespace {

using Clock = std::chrono::steady_clock;

double floor_on_this_thread(int rows, int cols, int repeats, FloorKind kind) {
    const R2CPlan& forward = R2CPlan::get(rows, cols);
    const C2RPlan& inverse = C2RPlan::get(rows, cols);
    const C2CPlan* packed = kind == FloorKind::packed_c2c_c2r ? &C2CPlan::get(rows, cols) : nullptr;
    const std::size_t n = static_cast<std::size_t>(rows) * cols;
    const std::size_t ns = static_cast<std::size_t>(rows) * (cols / 2 + 1);
    RealBuffer x(n), y(n), z(n);
    ComplexBuffer fx(ns), fy(ns), xy(packed ? n : 0);
    for (std::size_t k = 0; k < n; ++k) {
        x[k] = static_cast<float>((k * 7919) % 1000) * 1e-3f;
        y[k] = static_cast<float>((k * 104729) % 1000) * 1e-3f;
    }
    Clock::duration spent{0};
    for (int r = 0; r < repeats; ++r) {
        if (packed) {
            // Fresh input each time (the transform is in place, as the
            // matcher packs fresh windows); only the transforms are timed.
            for (std::size_t k = 0; k < n; ++k) xy[k] = std::complex<float>(x[k], y[k]);
            const auto t0 = Clock::now();
            packed->execute(xy.data());
            spent += Clock::now() - t0;
            for (std::size_t k = 0; k < ns; ++k) fx[k] = xy[k];
            const auto t1 = Clock::now();
            inverse.execute(fx.data(), z.data());
            spent += Clock::now() - t1;
        } else {
            const auto t0 = Clock::now();
            forward.execute(x.data(), fx.data());
            if (kind == FloorKind::two_r2c_c2r) forward.execute(y.data(), fy.data());
            inverse.execute(fx.data(), z.data());
            spent += Clock::now() - t0;
        }
    }
    return std::chrono::duration<double>(spent).count() / repeats;
}

}  // namespace

double fft_floor_seconds(int rows, int cols, int repeats, FloorKind kind, int threads) {
    if (rows < 1 || cols < 1 || repeats < 1 || threads < 1)
        throw std::invalid_argument("rows, cols, repeats and threads must be positive");
    // Plans first, so no thread waits on the planner while others run.
    R2CPlan::get(rows, cols);
    C2RPlan::get(rows, cols);
    if (kind == FloorKind::packed_c2c_c2r) C2CPlan::get(rows, cols);
    if (threads == 1) return floor_on_this_thread(rows, cols, repeats, kind);
    std::vector<double> seconds(static_cast<std::size_t>(threads));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] { seconds[static_cast<std::size_t>(t)] = floor_on_this_thread(rows, cols, repeats, kind); });
    for (auto& t : pool) t.join();
    double total = 0;
    for (double s : seconds) total += s;
    return total / threads;
}

}  // namespace spectralign_fast

#include "spectralign_fast/core/threads.hpp"

#include <stdexcept>
#include <thread>

namespace spectralign_fast {

int resolve_threads(int threads) {
    if (threads < 0) throw std::invalid_argument("threads must be >= 0 (0 means all cores)");
    if (threads > 0) return threads;
    const unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(hc);
}

}  // namespace spectralign_fast

// Thread counts: one rule for every area of the core.
#pragma once

namespace spectralign_fast {

// Number of threads that `threads` resolves to: 0 means all cores (at least
// one); negative values throw std::invalid_argument.
int resolve_threads(int threads);

}  // namespace spectralign_fast

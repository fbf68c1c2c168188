// SPECTRALIGN_CLONES marks a hot row kernel for AVX-512 and AVX2+FMA clones
// chosen at load time (x86-64 Linux with GCC); elsewhere it expands to
// nothing. The default build stays baseline x86-64, so wheels remain
// portable.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && \
    !defined(SPECTRALIGN_NO_CLONES)
#define SPECTRALIGN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define SPECTRALIGN_HAVE_CLONES 1
#else
#define SPECTRALIGN_CLONES
#define SPECTRALIGN_HAVE_CLONES 0
#endif

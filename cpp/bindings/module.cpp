#include "pybind.hpp"

// One submodule per area of the core. def_submodule also enters each one in
// sys.modules as "spectralign_fast._core.<area>", so `import` and stubtest
// find it although _core is not a package.
PYBIND11_MODULE(_core, m) {
    namespace b = spectralign_fast::bindings;
    m.doc() = "C++ core of spectralign_fast (private; use the spectralign_fast package).";
    b::install_interrupts();
    b::bind_config(m.def_submodule("config", "Build facts, threads, FFT planning and FFTW wisdom."));
    b::bind_image(m.def_submodule("image", "Window extraction, apodization, affine warps, finiteness checks."));
    b::bind_matcher(m.def_submodule("match", "The matcher (SWiFT-IR's swim): MatcherCore and its results."));
    py::module_ place = m.def_submodule("place", "Sparse least-squares placement of tiles, and the elastic "
                                                 "mesh of serial sections.");
    b::bind_placement(place);
    b::bind_mesh(place);
    b::bind_render(m.def_submodule("render", "Rendering tiles into a canvas."));
    py::module_ stackreg = m.def_submodule("stackreg", "Stack registration: StackRegCore, frame shifting, "
                                                       "block-wise (non-rigid) fits, and z positions against "
                                                       "a reference z-stack.");
    b::bind_stackreg(stackreg);
    b::bind_blocks(stackreg);
    b::bind_zstack(stackreg);
    b::bind_sample(m.def_submodule("sample", "N-D resampling core (scipy.ndimage conventions); see "
                                             "spectralign_fast.warp."));
    b::bind_register(m.def_submodule("register", "Intensity metrics with analytic gradients and Gaussian "
                                                 "smoothing for affine registration."));
#ifdef SPECTRALIGN_DEV_TOOLS
    // Built with -DSPECTRALIGN_DEV_TOOLS=ON only: benchmark helpers and test
    // hooks, here because they must reach this module's own FFTW plan cache
    // and matcher thresholds.
    b::bind_dev(m.def_submodule("dev", "Benchmark helpers and test hooks (SPECTRALIGN_DEV_TOOLS builds only)."));
#endif
}

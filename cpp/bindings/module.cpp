#include "pybind.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "C++ core of spectralign_fast (private; use the spectralign_fast package).";
    spectralign_fast::bindings::bind_config(m);
    spectralign_fast::bindings::bind_image(m);
    spectralign_fast::bindings::bind_matcher(m);
    spectralign_fast::bindings::bind_placement(m);
    spectralign_fast::bindings::bind_render(m);
    spectralign_fast::bindings::bind_sample(m);
    spectralign_fast::bindings::bind_stackreg(m);
}

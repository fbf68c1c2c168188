// _core.dev: compiled only with -DSPECTRALIGN_DEV_TOOLS=ON (the Makefile's
// builds), so a plain `pip install .` ships none of it. These live in _core
// itself, not in a module of their own, because they must act on this
// module's FFTW plan cache and planning rigor and on its matcher thresholds.
#include "pybind.hpp"
#include "spectralign_fast/fft/fft.hpp"
#include "spectralign_fast/match/swim.hpp"

namespace spectralign_fast::bindings {

void bind_dev(py::module_ m) {
    m.def("fft_floor",
          [](int rows, int cols, int repeats, int r2c, bool packed, int threads) {
              if (r2c != 1 && r2c != 2) throw std::invalid_argument("r2c must be 1 or 2");
              if (packed && r2c != 2) throw std::invalid_argument("packed=True times both windows: r2c must be 2");
              const FloorKind kind = packed ? FloorKind::packed_c2c_c2r
                                            : (r2c == 2 ? FloorKind::two_r2c_c2r : FloorKind::one_r2c_c2r);
              py::gil_scoped_release release;
              return fft_floor_seconds(rows, cols, repeats, kind, threads);
          },
          py::arg("rows"), py::arg("cols"), py::arg("repeats"), py::arg("r2c") = 2, py::arg("packed") = false,
          py::arg("threads") = 1,
          "Seconds per repetition of one swim iteration's FFTs (benchmarks): two r2c and one c2r, "
          "one r2c (r2c=1, a stack-registration frame), or packed=True: one in-place c2c and one c2r, "
          "as the matcher's 2-D path (windows under 192 x 192 px) runs them. threads > 1 runs that "
          "many copies concurrently and returns their mean.");
    m.def("set_fused_min_pixels", &set_fused_min_pixels, py::arg("pixels"),
          "Benchmarks and tests: windows of at least `pixels` (width * height) take the matcher's fused "
          "path in matchers made from now on (default 192 * 192; 0: always, a huge value: never). "
          "Returns the previous value.");
    m.def("set_team_min_pixels", &set_team_min_pixels, py::arg("pixels"),
          "Benchmarks and tests: refine_many with threads >= 2 matches windows of at least `pixels` "
          "(width * height, fused path only) with teams of two threads per pair (default 640 * 640; "
          "0: always, a huge value: never). Returns the previous value.");
    m.def("set_team_wait_limit", &set_team_wait_limit, py::arg("fraction"),
          "Tests: a team splits up (its threads then take pairs one each) when its leader waited "
          "for the helper more than this share of a pair's time, two pairs in a row (default 0.2; "
          "negative: after two pairs). Returns the previous value.");
}

}  // namespace spectralign_fast::bindings

#include <chrono>

#include <Eigen/Core>

#include "pybind.hpp"
#include "spectralign_fast/fft.hpp"
#include "spectralign_fast/placement.hpp"
#include "spectralign_fast/swim.hpp"

#ifndef SPECTRALIGN_FFTW_SOURCE
#define SPECTRALIGN_FFTW_SOURCE "unknown"
#endif

namespace spectralign_fast::bindings {

namespace {

PlanRigor parse_rigor(const std::string& name) {
    if (name == "estimate") return PlanRigor::estimate;
    if (name == "measure") return PlanRigor::measure;
    if (name == "patient") return PlanRigor::patient;
    throw std::invalid_argument("FFT planning must be 'estimate', 'measure' or 'patient', got '" +
                                name + "'");
}

const char* rigor_name(PlanRigor r) {
    switch (r) {
        case PlanRigor::estimate: return "estimate";
        case PlanRigor::patient: return "patient";
        case PlanRigor::measure: break;
    }
    return "measure";
}

std::string compiler() {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}

}  // namespace

void bind_config(py::module_& m) {
    m.def("fftw_version", &fftw_version, "FFTW's version string (includes its SIMD flavours).");
    m.attr("fftw_source") = SPECTRALIGN_FFTW_SOURCE;
    m.attr("eigen_version") = std::to_string(EIGEN_WORLD_VERSION) + "." +
                              std::to_string(EIGEN_MAJOR_VERSION) + "." +
                              std::to_string(EIGEN_MINOR_VERSION);
    m.attr("compiler") = compiler();
    m.attr("has_cholmod") = placement_has_cholmod();
    m.def("default_threads", []() { return resolve_threads(0); },
          "Threads used for threads=0 (all cores).");
    m.def("set_fft_planning", [](const std::string& name) { set_plan_rigor(parse_rigor(name)); },
          py::arg("rigor"));
    m.def("fft_planning", []() { return std::string(rigor_name(plan_rigor())); });
    m.def("cached_plan_count", &cached_plan_count);
    m.def("export_fft_wisdom", []() {
        std::string text;
        {
            py::gil_scoped_release release;
            text = export_wisdom();
        }
        return text;
    }, "FFTW's accumulated wisdom as text.");
    m.def("import_fft_wisdom", [](const std::string& text) {
        py::gil_scoped_release release;
        return import_wisdom(text);
    }, py::arg("text"), "Merge FFTW wisdom text; False when FFTW rejects it.");
    m.def("forget_fft_wisdom", []() {
        py::gil_scoped_release release;
        forget_wisdom();
    }, "Drop all FFTW wisdom (plans already made are kept).");
    m.def("fft_floor",
          [](int rows, int cols, int repeats, int r2c, bool packed) {
              // The FFT work of one swim iteration, for benchmarks: two r2c
              // and one c2r (the textbook floor; one r2c for a
              // stack-registration frame), or with packed=True what the
              // matcher runs: one in-place c2c of both windows packed as
              // real and imaginary parts, and one c2r. Returns seconds per
              // repetition.
              if (rows < 1 || cols < 1 || repeats < 1)
                  throw std::invalid_argument("rows, cols and repeats must be positive");
              if (r2c != 1 && r2c != 2) throw std::invalid_argument("r2c must be 1 or 2");
              const R2CPlan& f = R2CPlan::get(rows, cols);
              const C2RPlan& b = C2RPlan::get(rows, cols);
              const C2CPlan* c = packed ? &C2CPlan::get(rows, cols) : nullptr;
              const std::size_t n = static_cast<std::size_t>(rows) * cols;
              const std::size_t ns = static_cast<std::size_t>(rows) * (cols / 2 + 1);
              RealBuffer x(n), y(n), z(n);
              ComplexBuffer fx(ns), fy(ns), xy(packed ? n : 0);
              for (std::size_t k = 0; k < n; ++k) {
                  x[k] = static_cast<float>((k * 7919) % 1000) * 1e-3f;
                  y[k] = static_cast<float>((k * 104729) % 1000) * 1e-3f;
              }
              py::gil_scoped_release release;
              using clock = std::chrono::steady_clock;
              clock::duration spent{0};
              for (int r = 0; r < repeats; ++r) {
                  if (c) {
                      // Fresh input each time (the transform is in place);
                      // only the transforms are timed.
                      for (std::size_t k = 0; k < n; ++k) xy[k] = std::complex<float>(x[k], y[k]);
                      const auto t0 = clock::now();
                      c->execute(xy.data());
                      spent += clock::now() - t0;
                      for (std::size_t k = 0; k < ns; ++k) fx[k] = xy[k];
                      const auto t1 = clock::now();
                      b.execute(fx.data(), z.data());
                      spent += clock::now() - t1;
                  } else {
                      const auto t0 = clock::now();
                      f.execute(x.data(), fx.data());
                      if (r2c == 2) f.execute(y.data(), fy.data());
                      b.execute(fx.data(), z.data());
                      spent += clock::now() - t0;
                  }
              }
              return std::chrono::duration<double>(spent).count() / repeats;
          },
          py::arg("rows"), py::arg("cols"), py::arg("repeats"), py::arg("r2c") = 2, py::arg("packed") = false);
}

}  // namespace spectralign_fast::bindings

#include <Eigen/Core>

#include "pybind.hpp"
#include "spectralign_fast/fft/fft.hpp"
#include "spectralign_fast/place/placement.hpp"
#include "spectralign_fast/match/swim.hpp"

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

void bind_config(py::module_ m) {
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
          py::arg("rigor"), "Planning rigor for FFT plans made from now on: 'estimate', 'measure' or 'patient'.");
    m.def("fft_planning", []() { return std::string(rigor_name(plan_rigor())); },
          "The current FFT planning rigor.");
    m.def("cached_plan_count", &cached_plan_count, "Number of FFT plans in the cache.");
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
}

}  // namespace spectralign_fast::bindings

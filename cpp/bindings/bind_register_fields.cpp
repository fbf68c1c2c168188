// _core.register (continued): displacement fields and the SyN metrics'
// steps. Arrays cross as float32 / float64, C order (one forcecast copy at
// most); arrays written in place (out=, normalize_step) must already be
// float32, C-contiguous and writeable, or a TypeError says so. Every call
// releases the GIL around the core.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pybind.hpp"
#include "spectralign_fast/register/fields.hpp"

namespace spectralign_fast::bindings {

namespace {

using reg::FieldShape;
using Int32Array = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>;

// A field of shape grid + (d,) with d = grid dimension (2 or 3).
FieldShape field_shape(const py::array& f, const char* what) {
    check_aligned(f, what);
    if (f.ndim() != 3 && f.ndim() != 4)
        throw std::invalid_argument(std::string(what) + " must have shape (rows, cols, 2) or (slices, rows, cols, 3)");
    FieldShape s;
    s.ndim = static_cast<int>(f.ndim()) - 1;
    if (f.shape(s.ndim) != s.ndim)
        throw std::invalid_argument(std::string(what) + " must have " + std::to_string(s.ndim) +
                                    " components on its last axis for a " + std::to_string(s.ndim) + "-D grid");
    for (int a = 0; a < s.ndim; ++a) s.shape[a] = f.shape(a);
    return s;
}

FieldShape image_shape(const py::array& img, const char* what) {
    check_aligned(img, what);
    if (img.ndim() != 2 && img.ndim() != 3)
        throw std::invalid_argument(std::string(what) + " must be 2-D or 3-D");
    FieldShape s;
    s.ndim = static_cast<int>(img.ndim());
    for (int a = 0; a < s.ndim; ++a) s.shape[a] = img.shape(a);
    return s;
}

FieldShape shape_of(const std::vector<std::int64_t>& v, const char* what) {
    if (v.size() != 2 && v.size() != 3) throw std::invalid_argument(std::string(what) + " must have 2 or 3 entries");
    FieldShape s;
    s.ndim = static_cast<int>(v.size());
    for (int a = 0; a < s.ndim; ++a) {
        if (v[std::size_t(a)] < 1 || v[std::size_t(a)] > INT32_MAX)
            throw std::invalid_argument(std::string(what) + " entries must be in [1, 2^31 - 1]");
        s.shape[a] = v[std::size_t(a)];
    }
    return s;
}

py::array_t<float> new_field(const FieldShape& s) {
    std::vector<py::ssize_t> dims(s.shape, s.shape + s.ndim);
    dims.push_back(s.ndim);
    return py::array_t<float>(dims);
}

const double* matrix(const DoubleArray& m, int d, const char* what) {
    if (m.ndim() != 2 || m.shape(0) != d + 1 || m.shape(1) != d + 1)
        throw std::invalid_argument(std::string(what) + " must be a (" + std::to_string(d + 1) + ", " +
                                    std::to_string(d + 1) + ") matrix");
    return m.data();
}

const double* vector_of(const DoubleArray& v, int n, const char* what) {
    if (v.size() != n) throw std::invalid_argument(std::string(what) + " must have " + std::to_string(n) + " entries");
    return v.data();
}

std::vector<double> direction_of(const DoubleArray& m, int d) {
    if (m.ndim() != 2 || m.shape(0) < d || m.shape(1) < d)
        throw std::invalid_argument("direction must be at least (" + std::to_string(d) + ", " + std::to_string(d) +
                                    ")");
    std::vector<double> out(std::size_t(d * d));
    for (int r = 0; r < d; ++r)
        for (int c = 0; c < d; ++c) out[std::size_t(r * d + c)] = *m.data(r, c);
    return out;
}

// An array the core writes into: float32, C-contiguous, writeable.
py::array_t<float> writable_field(const py::object& obj, const char* what) {
    if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(what) + " must be a numpy array");
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (!a.dtype().equal(py::dtype::of<float>()) || !(a.flags() & py::array::c_style) || !a.writeable())
        throw py::type_error(std::string(what) + " must be a writeable, C-contiguous float32 array");
    check_aligned(a, what);
    return py::reinterpret_borrow<py::array_t<float>>(obj);
}

bool same_shape(const FieldShape& a, const FieldShape& b) {
    if (a.ndim != b.ndim) return false;
    for (int k = 0; k < a.ndim; ++k)
        if (a.shape[k] != b.shape[k]) return false;
    return true;
}

py::tuple compose(const FloatImage& d1, const FloatImage& d2, const DoubleArray& premult_index,
                  const DoubleArray& premult_disp, double t, const py::object& out, bool stats, int threads) {
    const FieldShape s1 = field_shape(d1, "d1"), s2 = field_shape(d2, "d2");
    if (s1.ndim != s2.ndim) throw std::invalid_argument("d1 and d2 must have the same dimension");
    const double* A = matrix(premult_index, s1.ndim, "premult_index");
    const double* B = matrix(premult_disp, s1.ndim, "premult_disp");
    py::array_t<float> comp;
    if (out.is_none()) {
        comp = new_field(s1);
    } else {
        comp = writable_field(out, "out");
        if (!same_shape(field_shape(comp, "out"), s1)) throw std::invalid_argument("out must have d1's shape");
        if (comp.data() == d2.data()) throw std::invalid_argument("out cannot be d2 (it is read while written)");
    }
    reg::CompositionStats st;
    {
        py::gil_scoped_release release;
        st = reg::compose_fields(d1.data(), s1, d2.data(), s2, A, B, t, comp.mutable_data(), threads, stats);
    }
    if (!stats) return py::make_tuple(comp, py::none());
    py::array_t<double> values(3);
    values.mutable_data()[0] = st.max_norm;
    values.mutable_data()[1] = st.mean_norm;
    values.mutable_data()[2] = st.std_norm;
    return py::make_tuple(comp, values);
}

py::array_t<float> invert(const FloatImage& d, const DoubleArray& world2grid, const DoubleArray& spacing, int max_iter,
                          double tolerance, std::optional<FloatImage> start, const py::object& out,
                          const py::object& work, int threads) {
    const FieldShape s = field_shape(d, "field");
    const double* W = matrix(world2grid, s.ndim, "world2grid");
    const double* sp = vector_of(spacing, s.ndim, "spacing");
    py::array_t<float> p;
    if (!out.is_none()) {
        // In place: `out` holds the start on entry and the inverse on return.
        if (start) throw std::invalid_argument("give start or out, not both (out is its own start)");
        p = writable_field(out, "out");
        if (!same_shape(field_shape(p, "out"), s)) throw std::invalid_argument("out must have the field's shape");
        if (p.data() == d.data()) throw std::invalid_argument("out cannot be the field being inverted");
    } else {
        p = new_field(s);
        if (start) {
            if (!same_shape(field_shape(*start, "start"), s))
                throw std::invalid_argument("start must have the field's shape");
            std::copy(start->data(), start->data() + start->size(), p.mutable_data());
        } else {
            std::fill(p.mutable_data(), p.mutable_data() + p.size(), 0.0f);
        }
    }
    float* scratch = nullptr;
    py::array_t<float> work_arr;
    if (!work.is_none()) {
        work_arr = writable_field(work, "work");
        if (!same_shape(field_shape(work_arr, "work"), s)) throw std::invalid_argument("work must have the field's shape");
        if (work_arr.data() == d.data() || work_arr.data() == p.data())
            throw std::invalid_argument("work must be a buffer of its own, not the field or the inverse");
        scratch = work_arr.mutable_data();
    }
    {
        py::gil_scoped_release release;
        reg::invert_field(d.data(), s, W, sp, max_iter, tolerance, p.mutable_data(), nullptr, threads, scratch);
    }
    return p;
}

// An `out` of the expected shape (written in place) or a new field.
py::array_t<float> field_out(const py::object& out, const FieldShape& expected, const char* what) {
    if (out.is_none()) return new_field(expected);
    py::array_t<float> o = writable_field(out, "out");
    if (!same_shape(field_shape(o, "out"), expected))
        throw std::invalid_argument(std::string("out must have the ") + what + " shape");
    return o;
}

py::array_t<float> restrict_step(const FloatImage& field, int factor, double sigma, const py::object& out,
                                 int threads) {
    const FieldShape s = field_shape(field, "field");
    FieldShape cs = s;
    for (int a = 0; a < s.ndim; ++a) cs.shape[a] = reg::coarse_extent(s.shape[a], factor);
    py::array_t<float> o = field_out(out, cs, "coarse grid's");
    if (o.data() == field.data()) throw std::invalid_argument("out cannot be the field itself");
    py::gil_scoped_release release;
    reg::restrict_field(field.data(), s, factor, sigma, o.mutable_data(), threads);
    return o;
}

py::array_t<float> upsample(const FloatImage& field, int factor, const std::vector<std::int64_t>& shape,
                            const py::object& out, int threads) {
    const FieldShape cs = field_shape(field, "field");
    const FieldShape os = shape_of(shape, "shape");
    if (os.ndim != cs.ndim) throw std::invalid_argument("shape must have the field's dimension");
    py::array_t<float> o = field_out(out, os, "image grid's");
    if (o.data() == field.data()) throw std::invalid_argument("out cannot be the field itself");
    py::gil_scoped_release release;
    reg::upsample_field(field.data(), cs, factor, os, o.mutable_data(), threads);
    return o;
}

py::array_t<float> resample(const FloatImage& field, const DoubleArray& factors, const std::vector<std::int64_t>& shape,
                            int threads) {
    const FieldShape s = field_shape(field, "field");
    const FieldShape os = shape_of(shape, "shape");
    if (os.ndim != s.ndim) throw std::invalid_argument("shape must have the field's dimension");
    const double* f = vector_of(factors, s.ndim, "factors");
    py::array_t<float> out = new_field(os);
    py::gil_scoped_release release;
    reg::resample_field(field.data(), s, f, os, out.mutable_data(), threads);
    return out;
}

py::array_t<double> interpolate(const FloatImage& field, const DoubleArray& points, int threads) {
    const FieldShape s = field_shape(field, "field");
    if (points.ndim() != 2 || points.shape(1) != s.ndim)
        throw std::invalid_argument("points must have shape (n, " + std::to_string(s.ndim) + ")");
    const std::int64_t n = points.shape(0);
    py::array_t<double> out({py::ssize_t(n), py::ssize_t(s.ndim)});
    py::gil_scoped_release release;
    reg::interpolate_field(field.data(), s, points.data(), n, out.mutable_data(), threads);
    return out;
}

double normalize(const py::object& step_obj, const DoubleArray& spacing, int threads) {
    py::array_t<float> step = writable_field(step_obj, "step");
    const FieldShape s = field_shape(step, "step");
    const double* sp = vector_of(spacing, s.ndim, "spacing");
    float* data = step.mutable_data();
    py::gil_scoped_release release;
    return reg::normalize_step(data, s, sp, threads);
}

py::array_t<float> jacobian(const FloatImage& field, const DoubleArray& grid2world, int threads) {
    const FieldShape s = field_shape(field, "field");
    const double* G = matrix(grid2world, s.ndim, "grid2world");
    py::array_t<float> out(std::vector<py::ssize_t>(s.shape, s.shape + s.ndim));
    py::gil_scoped_release release;
    reg::jacobian_determinant(field.data(), s, G, out.mutable_data(), threads);
    return out;
}

py::array warp(const py::array& image, const FloatImage& field, const DoubleArray& idx_in, const DoubleArray& idx_out,
               const DoubleArray& disp, const std::vector<std::int64_t>& out_shape, const std::string& interpolation,
               const py::object& out_obj, int threads) {
    reg::FieldInterp interp;
    if (interpolation == "linear")
        interp = reg::FieldInterp::Linear;
    else if (interpolation == "nearest")
        interp = reg::FieldInterp::Nearest;
    else
        throw std::invalid_argument("interpolation must be 'linear' or 'nearest', got '" + interpolation + "'");
    reg::FieldDtype type = reg::FieldDtype::F32;
    py::array img;
    const py::dtype dt = image.dtype();
    if (interp == reg::FieldInterp::Linear || dt.equal(py::dtype::of<float>())) {
        img = contiguous<float>(image);
    } else if (dt.equal(py::dtype::of<std::uint8_t>())) {
        img = contiguous<std::uint8_t>(image);
        type = reg::FieldDtype::U8;
    } else if (dt.equal(py::dtype::of<std::uint16_t>())) {
        img = contiguous<std::uint16_t>(image);
        type = reg::FieldDtype::U16;
    } else if (dt.equal(py::dtype::of<std::int32_t>())) {
        img = contiguous<std::int32_t>(image);
        type = reg::FieldDtype::I32;
    } else {
        throw py::type_error("nearest-neighbour warping keeps uint8, uint16, int32 or float32 images, got " +
                             std::string(py::str(dt)));
    }
    const FieldShape is = image_shape(img, "image");
    const FieldShape fs = field_shape(field, "field");
    const FieldShape os = shape_of(out_shape, "out_shape");
    if (fs.ndim != is.ndim || os.ndim != is.ndim)
        throw std::invalid_argument("the image, the field and out_shape must have one dimension");
    const double* A = matrix(idx_in, is.ndim, "affine_idx_in");
    const double* B = matrix(idx_out, is.ndim, "affine_idx_out");
    const double* W = matrix(disp, is.ndim, "affine_disp");
    py::array out;
    if (out_obj.is_none()) {
        out = py::array(img.dtype(), std::vector<py::ssize_t>(os.shape, os.shape + os.ndim));
    } else {
        if (!py::isinstance<py::array>(out_obj)) throw py::type_error("out must be a numpy array");
        out = py::reinterpret_borrow<py::array>(out_obj);
        bool ok = out.dtype().equal(img.dtype()) && (out.flags() & py::array::c_style) && out.writeable() &&
                  out.ndim() == os.ndim;
        for (int a = 0; ok && a < os.ndim; ++a) ok = out.shape(a) == os.shape[a];
        if (!ok) throw py::type_error("out must be a writeable, C-contiguous array of out_shape and the image's dtype");
        check_aligned(out, "out");
        if (out.data() == img.data()) throw std::invalid_argument("out cannot be the image being warped");
    }
    const void* src = img.data();
    void* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
        reg::warp_with_field(src, type, is, field.data(), fs, A, B, W, os, interp, dst, threads);
    }
    return out;
}

// Both steps of one SyN iteration and their energies.
struct Steps {
    py::array_t<float> forward, backward;
    double forward_energy = 0.0, backward_energy = 0.0;
};

// The steps' arrays: the caller's buffers when given (reused across iterations), else new ones.
Steps step_buffers(const FieldShape& shape, const py::object& forward, const py::object& backward) {
    Steps out;
    out.forward = forward.is_none() ? new_field(shape) : writable_field(forward, "forward_out");
    out.backward = backward.is_none() ? new_field(shape) : writable_field(backward, "backward_out");
    if (!same_shape(field_shape(out.forward, "forward_out"), shape) ||
        !same_shape(field_shape(out.backward, "backward_out"), shape))
        throw std::invalid_argument("forward_out and backward_out must have shape grid + (d,)");
    if (out.forward.data() == out.backward.data())
        throw std::invalid_argument("forward_out and backward_out must be different arrays");
    return out;
}

struct Pair {
    FieldShape shape;
    std::vector<double> direction;
    const double* spacing = nullptr;
};

Pair pair_of(const FloatImage& a, const FloatImage& b, const DoubleArray& spacing, const DoubleArray& direction) {
    Pair p;
    p.shape = image_shape(a, "static");
    if (!same_shape(image_shape(b, "moving"), p.shape))
        throw std::invalid_argument("static and moving must share one grid (the same shape)");
    p.spacing = vector_of(spacing, p.shape.ndim, "spacing");
    p.direction = direction_of(direction, p.shape.ndim);
    return p;
}

// The steps into the caller's buffers (or new ones), computed by `run(forward, backward)`
// with the GIL released.
template <class Run>
Steps run_steps(const FieldShape& shape, const py::object& forward_out, const py::object& backward_out, Run run) {
    Steps out = step_buffers(shape, forward_out, backward_out);
    float* f = out.forward.mutable_data();
    float* b = out.backward.mutable_data();
    reg::StepResult r;
    {
        py::gil_scoped_release release;
        r = run(f, b);
    }
    out.forward_energy = r.forward_energy;
    out.backward_energy = r.backward_energy;
    return out;
}

Steps cc(const FloatImage& s, const FloatImage& m, int radius, const DoubleArray& spacing,
         const DoubleArray& direction, double sigma_diff, const py::object& forward_out,
         const py::object& backward_out, int threads) {
    const Pair p = pair_of(s, m, spacing, direction);
    return run_steps(p.shape, forward_out, backward_out, [&](float* f, float* b) {
        return reg::cc_steps(s.data(), m.data(), p.shape, radius, p.spacing, p.direction.data(), sigma_diff, f, b,
                             threads);
    });
}

void check_step_type(const std::string& step_type) {
    if (step_type != "demons" && step_type != "gauss_newton")
        throw std::invalid_argument("step_type must be 'demons' or 'gauss_newton', got '" + step_type + "'");
}

Steps ssd(const FloatImage& s, const FloatImage& m, const DoubleArray& spacing, const DoubleArray& direction,
          double smooth, int inner_iter, const std::string& step_type, int levels_below,
          const py::object& forward_out, const py::object& backward_out, int threads) {
    check_step_type(step_type);
    const Pair p = pair_of(s, m, spacing, direction);
    return run_steps(p.shape, forward_out, backward_out, [&](float* f, float* b) {
        if (step_type == "demons")
            return reg::ssd_demons_steps(s.data(), m.data(), p.shape, p.spacing, p.direction.data(), smooth, f, b,
                                         threads);
        return reg::ssd_gauss_newton_steps(s.data(), m.data(), p.shape, p.spacing, p.direction.data(), smooth,
                                           inner_iter, levels_below, f, b, threads);
    });
}

const std::int32_t* mask_of(const std::optional<Int32Array>& mask, const FieldShape& s, const char* what) {
    if (!mask) return nullptr;
    if (!same_shape(image_shape(*mask, what), s)) throw std::invalid_argument(std::string(what) + " must have the images' shape");
    return mask->data();
}

Steps em(const FloatImage& s, const FloatImage& m, const std::optional<Int32Array>& smask,
         const std::optional<Int32Array>& mmask, const DoubleArray& spacing, const DoubleArray& direction,
         int q_levels, double smooth, int inner_iter, bool double_gradient, const std::string& step_type,
         int levels_below, const py::object& forward_out, const py::object& backward_out, int threads) {
    check_step_type(step_type);
    const Pair p = pair_of(s, m, spacing, direction);
    const std::int32_t* sm = mask_of(smask, p.shape, "static_mask");
    const std::int32_t* mm = mask_of(mmask, p.shape, "moving_mask");
    return run_steps(p.shape, forward_out, backward_out, [&](float* f, float* b) {
        return reg::em_steps(s.data(), m.data(), sm, mm, p.shape, p.spacing, p.direction.data(), q_levels, smooth,
                             double_gradient, step_type == "gauss_newton", inner_iter, levels_below, f, b, threads);
    });
}

Steps mi(const FloatImage& s, const FloatImage& m, int nbins, const DoubleArray& spacing,
         const DoubleArray& direction, double sigma_diff, const py::object& forward_out,
         const py::object& backward_out, int threads) {
    const Pair p = pair_of(s, m, spacing, direction);
    return run_steps(p.shape, forward_out, backward_out, [&](float* f, float* b) {
        return reg::mi_steps(s.data(), m.data(), p.shape, nbins, p.spacing, p.direction.data(), sigma_diff, f, b,
                             threads);
    });
}

}  // namespace

void bind_register_fields(py::module_ m) {
    py::class_<Steps>(m, "SynSteps", "Both steps of one SyN iteration (float32 fields in world units) and energies.")
        .def_readonly("forward", &Steps::forward)
        .def_readonly("backward", &Steps::backward)
        .def_readonly("forward_energy", &Steps::forward_energy)
        .def_readonly("backward_energy", &Steps::backward_energy);
    m.def("compose_fields", &compose, py::arg("d1"), py::arg("d2"), py::arg("premult_index"),
          py::arg("premult_disp"), py::arg("time_scaling"), py::kw_only(), py::arg("out") = py::none(),
          py::arg("stats") = true, py::arg("threads") = 0,
          "(comp, stats): comp[i] = d1[i] + t * d2(A (i, 1) + B (d1[i], 0)) where d2 is inside, else 0; "
          "stats = (max, rms, DIPY's std) of the norms, or None with stats=False (not computed, which "
          "saves about a sixth of the pass). out may be d1 (in place).");
    m.def("invert_field", &invert, py::arg("field"), py::arg("world2grid"), py::arg("spacing"), py::arg("max_iter"),
          py::arg("tolerance"), py::kw_only(), py::arg("start") = py::none(), py::arg("out") = py::none(),
          py::arg("work") = py::none(), py::arg("threads") = 0,
          "DIPY's fixed-point inverse of a displacement field: a new array from `start` (zeros by "
          "default), or in place in `out` (which holds the start).");
    m.def("resample_field", &resample, py::arg("field"), py::arg("factors"), py::arg("shape"), py::kw_only(),
          py::arg("threads") = 0, "out[i] = field(diag(factors) i) on a grid of `shape`.");
    m.def("restrict_field", &restrict_step, py::arg("field"), py::arg("factor"), py::arg("sigma"), py::kw_only(),
          py::arg("out") = py::none(), py::arg("threads") = 0,
          "A step on an image grid brought to every factor-th voxel (ceil((n - 1) / factor) + 1 "
          "nodes per axis): tent average, then the rest of a Gaussian of sigma voxels there.");
    m.def("upsample_field", &upsample, py::arg("field"), py::arg("factor"), py::arg("shape"), py::kw_only(),
          py::arg("out") = py::none(), py::arg("threads") = 0,
          "A field on every factor-th voxel brought to the image grid `shape` (d-linear, float32).");
    m.def("interpolate_field", &interpolate, py::arg("field"), py::arg("points"), py::kw_only(),
          py::arg("threads") = 0, "The field at (n, d) grid coordinates (zero-padded d-linear), float64.");
    m.def("normalize_step", &normalize, py::arg("step"), py::arg("spacing"), py::kw_only(), py::arg("threads") = 0,
          "In place: zero the boundary, divide by max |step / spacing|; returns that maximum.");
    m.def("jacobian_determinant", &jacobian, py::arg("field"), py::arg("grid2world"), py::kw_only(),
          py::arg("threads") = 0, "det(I + du/dx) per voxel (central differences), float32.");
    m.def("warp_image", &warp, py::arg("image"), py::arg("field"), py::arg("affine_idx_in"),
          py::arg("affine_idx_out"), py::arg("affine_disp"), py::arg("out_shape"), py::kw_only(),
          py::arg("interpolation") = "linear", py::arg("out") = py::none(), py::arg("threads") = 0,
          "DIPY's warp: out[i] = image(W field(A (i, 1)) + B (i, 1)); linear (float32) or nearest (keeps dtype).");
    m.def("cc_steps", &cc, py::arg("static"), py::arg("moving"), py::arg("radius"), py::arg("spacing"),
          py::arg("direction"), py::arg("sigma_diff"), py::kw_only(), py::arg("forward_out") = py::none(),
          py::arg("backward_out") = py::none(), py::arg("threads") = 0,
          "DIPY's CCMetric forward and backward steps (box sums, smoothed); written into "
          "forward_out / backward_out when given.");
    m.def("ssd_steps", &ssd, py::arg("static"), py::arg("moving"), py::arg("spacing"), py::arg("direction"),
          py::arg("smooth"), py::arg("inner_iter"), py::arg("step_type"), py::kw_only(), py::arg("levels_below") = 0,
          py::arg("forward_out") = py::none(), py::arg("backward_out") = py::none(), py::arg("threads") = 0,
          "DIPY's SSDMetric steps ('demons' or 'gauss_newton').");
    m.def("em_steps", &em, py::arg("static"), py::arg("moving"), py::arg("static_mask"), py::arg("moving_mask"),
          py::arg("spacing"), py::arg("direction"), py::arg("q_levels"), py::arg("smooth"), py::arg("inner_iter"),
          py::arg("double_gradient"), py::arg("step_type"), py::kw_only(), py::arg("levels_below") = 0,
          py::arg("forward_out") = py::none(), py::arg("backward_out") = py::none(), py::arg("threads") = 0,
          "DIPY's EMMetric steps ('demons' or 'gauss_newton').");
    m.def("mi_steps", &mi, py::arg("static"), py::arg("moving"), py::arg("nbins"), py::arg("spacing"),
          py::arg("direction"), py::arg("sigma_diff"), py::kw_only(), py::arg("forward_out") = py::none(),
          py::arg("backward_out") = py::none(), py::arg("threads") = 0,
          "Parzen-window mutual-information steps (energy: -MI in nats).");
}

}  // namespace spectralign_fast::bindings

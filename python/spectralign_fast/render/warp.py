"""spectralign_fast.warp: N-D affine / displacement-field resampling."""
from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

from .. import _core
from .._validate import as_core_array, as_float, as_int
from ..transforms.nd import DisplacementField

_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
_KERNELS = {0: "nearest", 1: "linear", 3: "bspline3", "catmull-rom": "catmull-rom"}
_MODES = ("constant", "nearest")
_MAX_AXIS = 2**31 - 1


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _as_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be 2-D or 3-D, got {image.ndim} dimension(s)")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    native = image.dtype.newbyteorder("=")
    if native not in _DTYPES:
        raise TypeError(
            f"image has dtype {image.dtype}; warp takes float32, uint8 or uint16 "
            f"(convert first, e.g. image.astype(np.float32))")
    if any(s > _MAX_AXIS for s in image.shape):
        raise ValueError("image has more than 2**31 - 1 samples along an axis")
    return as_core_array(image, native)  # the one copy at the boundary, only when needed


def _as_matrix(transform: Any, d: int) -> np.ndarray:
    obj = transform.matrix if hasattr(transform, "matrix") else transform
    try:
        m = np.array(obj, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("transform must be a matrix, an object with a .matrix attribute, "
                        "or a displacement field") from None
    if m.shape == (d, d + 1):
        m = np.vstack([m, np.eye(1, d + 1, d)])
    if m.shape != (d + 1, d + 1):
        raise ValueError(
            f"a {d}-D image needs a ({d + 1}, {d + 1}) homogeneous matrix (or ({d}, {d + 1})), "
            f"got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("transform matrix has a NaN or infinite entry")
    if not np.array_equal(m[d], np.eye(1, d + 1, d)[0]):
        raise ValueError(f"transform matrix's last row must be [0, ..., 0, 1], got {m[d].tolist()}")
    lin = m[:d, :d]
    s = np.linalg.svd(lin, compute_uv=False)
    if not s[-1] > 1e-12 * max(s[0], 1.0):
        raise ValueError("transform matrix's linear part is singular (it maps the output onto "
                         "a lower-dimensional set of input positions)")
    return m


def _as_field(field: np.ndarray, d: int) -> np.ndarray:
    if field.dtype.kind != "f":
        raise TypeError(f"displacement field must be float32 (or float64), got {field.dtype}")
    if field.ndim != d + 1 or field.shape[-1] != d:
        raise ValueError(
            f"a displacement field for a {d}-D image has shape output_shape + ({d},), "
            f"got {field.shape}")
    if any(s == 0 for s in field.shape):
        raise ValueError(f"displacement field is empty (shape {field.shape})")
    f = as_core_array(field, np.float32)
    if not np.all(np.isfinite(f)):
        raise ValueError("displacement field has a NaN or infinite entry (or a value beyond float32)")
    return f


def _as_shape(output_shape: Any, d: int, itemsize: int) -> tuple[int, ...]:
    if np.ndim(output_shape) != 1:
        raise TypeError(f"output_shape must be a sequence of {d} integers, got {output_shape!r}")
    values = list(output_shape)
    if len(values) != d:
        raise ValueError(f"output_shape must have {d} entries for a {d}-D image, got {len(values)}")
    shape = tuple(as_int(v, "output_shape entry", minimum=1, maximum=None) for v in values)
    if any(s > _MAX_AXIS for s in shape):
        raise ValueError(f"output_shape {shape} is absurd: more than 2**31 - 1 samples along an axis")
    nbytes = int(np.prod(shape, dtype=object)) * itemsize
    mem = _memory_bytes()
    if mem is not None and nbytes > mem:
        raise ValueError(f"output_shape {shape} needs {nbytes / 2**30:.1f} GiB, more than this "
                         f"machine's memory ({mem / 2**30:.1f} GiB)")
    return shape


def warp(image: Any, transform: Any, *, output_shape: Any = None, order: int | str = 1,
         mode: str = "constant", cval: float = 0.0, threads: int = 0) -> np.ndarray:
    """Resample a 2-D or 3-D image through an affine map or a displacement field.

    The convention is `scipy.ndimage.affine_transform`'s: coordinates are array
    indices in array axis order ((row, column) or (plane, row, column)), and
    the transform maps OUTPUT indices to INPUT indices ("pull" resampling):
    ``out[o] = image[M @ (o, 1)]``. ``warp(img, M, order=1)`` equals
    ``scipy.ndimage.affine_transform(img, M, order=1, prefilter=False)`` to
    float32 rounding, and ``order=3`` equals scipy's default cubic
    (``prefilter=True``).

    Parameters
    ----------
    image : numpy.ndarray
        2-D or 3-D, float32, uint8 or uint16 (convert other dtypes first;
        float64 is refused rather than silently rounded). An array that is
        not C-contiguous, aligned and in native byte order (a view with
        negative, zero or odd strides, a big-endian or an unaligned buffer)
        is copied once into a contiguous native array; otherwise no copy is
        made. The caller's arrays are never modified.
    transform : array_like or object
        One of
        * a homogeneous ``(d + 1, d + 1)`` matrix (or ``(d, d + 1)``, the
          last row ``[0, ..., 0, 1]`` implied) mapping output indices to
          input indices; it must be finite with a non-singular linear part;
        * an object with a ``.matrix`` attribute holding such a matrix;
        * a ``DisplacementField``, or a displacement field array of shape
          ``output_shape + (d,)``: input index
          = output index + ``field[..., k]`` along axis k (float32; float64
          is converted). ``output_shape`` then defaults to its leading shape.
    output_shape : sequence of int, optional
        Shape of the result; default the image's shape (or the field's).
    order : {0, 1, 3, "catmull-rom"}
        0: nearest neighbour (a coordinate exactly halfway between two
        samples takes the upper one, like scipy). 1: linear. 3: cubic
        B-spline as scipy.ndimage (prefilter=True): the image is first turned
        into spline coefficients (in double per line, stored as float32), so
        the result interpolates the samples and can overshoot.
        "catmull-rom": the interpolating Keys cubic (a = -0.5) without
        prefilter, the Renderer's and stack registration's "cubic".
    mode : {"constant", "nearest"}
        Edge rule, as scipy.ndimage. "constant": an output pixel whose input
        coordinate lies outside ``[0, n - 1]`` along any axis gets `cval`
        (no blending towards cval, unlike scipy's "grid-constant"); inside,
        interpolation taps beyond the edge are mirrored. "nearest": the
        image is extended by its edge values.
    cval : float
        Value outside the image for mode "constant" (rounded and clamped for
        integer images).
    threads : int
        Worker threads; 0 (default) uses every core. The result is
        bit-identical for every thread count.

    Returns
    -------
    numpy.ndarray
        Same dtype as the image (float32 in, float32 out; integer results are
        rounded half up and clamped to the type's range).

    Notes
    -----
    Arithmetic is float32 with coordinates computed in double (per block of
    16 output pixels, from the pixel's own index, never accumulated across
    rows), so results match scipy's float64 to about 1e-6 of the image range.
    Unlike OpenCV's warpAffine, which quantises coordinates to 1/32 pixel
    and weights to 1/1024, the interpolation is exact float bilinear.
    NaN pixels in the image propagate to every output pixel whose
    interpolation footprint contains them (for the cubic B-spline, whose
    coefficients depend on whole lines, to the lines through them).
    The GIL is released while the C++ core runs.
    """
    img = _as_image(image)
    d = img.ndim
    if isinstance(order, (bool, np.bool_)) or not (
            isinstance(order, (numbers.Integral, str)) and order in _KERNELS):
        raise ValueError(f"order must be 0, 1, 3 or 'catmull-rom', got {order!r}")
    kernel = _KERNELS[order]
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"mode must be 'constant' or 'nearest', got {mode!r}")
    cval_f = as_float(cval, "cval")
    if img.dtype == np.float32 and abs(cval_f) > float(np.finfo(np.float32).max):
        raise ValueError(f"cval {cval_f} does not fit in float32")
    nthreads = as_int(threads, "threads", minimum=0)

    field = None
    if isinstance(transform, DisplacementField):
        transform = transform.field
    if not hasattr(transform, "matrix"):
        arr = np.asarray(transform)
        if arr.ndim == d + 1:
            field = _as_field(arr, d)
    if field is not None:
        shape = tuple(int(s) for s in field.shape[:d])
        if output_shape is not None and _as_shape(output_shape, d, img.itemsize) != shape:
            raise ValueError(f"output_shape {tuple(output_shape)} does not match the displacement "
                             f"field's shape {field.shape[:d]}")
        _as_shape(shape, d, img.itemsize)
        return _core.sample.warp_field(img, field, kernel, mode, cval_f, nthreads)
    matrix = _as_matrix(transform, d)
    shape = _as_shape(img.shape if output_shape is None else output_shape, d, img.itemsize)
    return _core.sample.warp_affine(img, matrix, list(shape), kernel, mode, cval_f, nthreads)

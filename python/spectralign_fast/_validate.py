"""Plain-language argument checks shared by the public classes.

Every check raises TypeError (wrong kind of thing) or ValueError (right kind,
bad value) with a message that says what to pass instead.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Literal

import numpy as np

from . import _core


# Integers go to C++ as 32-bit ints unless a check says otherwise.
INT_MAX = 2**31 - 1
# Window sides beyond this would need tens of GiB per window.
MAX_WINDOW = 2**16
# Refinement iterations: each runs the whole matcher; far beyond this is a typo.
MAX_ITERS = 10_000


def as_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = INT_MAX) -> int:
    """An integer (or integral float) argument, bounded below and above (default: what a C int
    holds, so nothing reaches C++ that it cannot take)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got a boolean")
    if isinstance(value, numbers.Integral):
        result = int(value)
    elif isinstance(value, numbers.Real):
        f = float(value)  # np.isfinite() refused e.g. a Fraction with a TypeError
        if not math.isfinite(f) or f != int(f):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        result = int(f)
    else:
        try:
            result = operator.index(value)
        except TypeError:
            raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if minimum is not None and result < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {result}")
    if maximum is not None and result > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {result}")
    return result


def resolve_threads(threads: Any, name: str = "threads") -> int:
    """``threads`` checked (an integer >= 0), with 0 meaning all cores (the core's own count)."""
    n = as_int(threads, name, minimum=0)
    return n if n > 0 else int(_core.config.default_threads())


def as_float(value: Any, name: str) -> float:
    """A finite real argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    result = float(value)
    if not np.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}")
    return result


def as_size(size: Any, name: str = "size") -> tuple[int, int]:
    """A window size: one integer (square) or a (width, height) pair."""
    if np.ndim(size) == 0:
        side = as_int(size, name, minimum=1, maximum=MAX_WINDOW)
        return side, side
    values = list(np.asarray(size, dtype=object).ravel())
    if len(values) != 2:
        raise ValueError(f"{name} must be one integer or a (width, height) pair, got {size!r}")
    return (as_int(values[0], f"{name} width", minimum=1, maximum=MAX_WINDOW),
            as_int(values[1], f"{name} height", minimum=1, maximum=MAX_WINDOW))


def real_array(value: Any, name: str, *, order: Literal["K", "A", "C", "F"] = "K") -> np.ndarray:
    """``value`` as a fresh float64 array; complex numbers are refused (NumPy would drop their
    imaginary parts with only a warning), as is anything that is not numbers."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numbers, got {type(value).__name__}") from None
    if raw.dtype.kind == "c":
        raise TypeError(f"{name} is complex; give real numbers (e.g. numpy.real(...) if the imaginary "
                        f"parts are zero)")
    if raw.dtype.kind not in "biuf":
        try:
            return np.array(value, dtype=np.float64, order=order)  # e.g. lists of numbers as objects
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be numbers, got dtype {raw.dtype}") from None
    return np.array(raw, dtype=np.float64, order=order)  # copies: callers' arrays stay untouched


def as_point(p: Any, name: str) -> np.ndarray:
    """An (x, y) point as a fresh float64 array of shape (2,)."""
    arr = real_array(p, name)
    if arr.shape != (2,):
        raise ValueError(f"{name} must be an (x, y) pair, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def as_points(P: Any, name: str) -> np.ndarray:
    """An (N, 2) array of (x, y) points as a fresh C-ordered float64 array."""
    arr = real_array(P, name, order="C")
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2) with (x, y) rows, got shape {arr.shape}")
    bad = ~np.all(np.isfinite(arr), axis=1)
    if bad.any():
        raise ValueError(f"{name} has non-finite values in rows {np.flatnonzero(bad)[:10].tolist()}")
    return arr


def as_native(arr: np.ndarray) -> np.ndarray:
    """``arr`` in the machine's byte order: byte order is a detail of the file or buffer the
    pixels came from (big-endian TIFFs through ``tifffile.memmap``, say), converted once here
    at the boundary so that every later dtype check sees plain uint8/uint16/float32."""
    if arr.dtype.isnative or arr.dtype.byteorder == "|":
        return arr
    return arr.astype(arr.dtype.newbyteorder("="))


def rows_are_contiguous(arr: np.ndarray) -> bool:
    """True when a 2-D array's pixels lie in rows of adjacent items, each row starting at
    least a whole row after the previous one: the layout the core reads with a row stride.
    Broadcast (stride 0), overlapping (``sliding_window_view``) and reversed rows are not."""
    item = arr.dtype.itemsize
    if arr.ndim != 2:
        return False
    if arr.shape[1] > 1 and arr.strides[1] != item:
        return False
    return arr.shape[0] == 1 or (arr.strides[0] >= arr.shape[1] * item and arr.strides[0] % item == 0)


def as_core_array(arr: Any, dtype: Any) -> np.ndarray:
    """``arr`` as the core reads it: ``dtype``, C order, native byte order and aligned in memory
    (an array at an odd address, e.g. from ``np.frombuffer(..., offset=1)`` or a Dask buffer, is
    copied once here; the core refuses it otherwise)."""
    return np.require(as_native(np.asarray(arr)), dtype=dtype, requirements=["C", "A"])

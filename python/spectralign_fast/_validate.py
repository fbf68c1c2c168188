"""Plain-language argument checks shared by the public classes.

Every check raises TypeError (wrong kind of thing) or ValueError (right kind,
bad value) with a message that says what to pass instead.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np


def as_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """An integer (or integral float) argument, optionally bounded below."""
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
    return result


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
        side = as_int(size, name, minimum=1)
        return side, side
    values = list(np.asarray(size, dtype=object).ravel())
    if len(values) != 2:
        raise ValueError(f"{name} must be one integer or a (width, height) pair, got {size!r}")
    return (as_int(values[0], f"{name} width", minimum=1),
            as_int(values[1], f"{name} height", minimum=1))


def as_point(p: Any, name: str) -> np.ndarray:
    """An (x, y) point as a fresh float64 array of shape (2,)."""
    try:
        arr = np.array(p, dtype=np.float64)  # copies: callers' points stay untouched
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an (x, y) pair of numbers, got {p!r}") from None
    if arr.shape != (2,):
        raise ValueError(f"{name} must be an (x, y) pair, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def as_points(P: Any, name: str) -> np.ndarray:
    """An (N, 2) array of (x, y) points as a fresh C-ordered float64 array."""
    try:
        arr = np.array(P, dtype=np.float64, order="C")
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an (N, 2) array of numbers") from None
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2) with (x, y) rows, got shape {arr.shape}")
    bad = ~np.all(np.isfinite(arr), axis=1)
    if bad.any():
        raise ValueError(f"{name} has non-finite values in rows {np.flatnonzero(bad)[:10].tolist()}")
    return arr

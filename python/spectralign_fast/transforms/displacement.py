"""thunder-registration's transformations: ``Displacement`` (a whole frame) and
``LocalDisplacement`` (each plane of a volume), applied by the core's shift kernels.

Conventions (thunder-registration's): displacements in array axis order,
``(dy, dx)`` for images and ``(dz, dy, dx)`` for volumes, positive when the
frame's content lies further along the axis than the reference's; applying
one samples the frame at ``x + delta`` (shifts it by ``-delta``), edges
filled with the nearest edge pixel.
"""
from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

import numpy as np

from .. import _core
from .._validate import as_core_array, as_int

INTERPOLATIONS = ("linear", "cubic", "fourier")


class Displacement:
    """A shift of a whole frame (thunder-registration's ``Displacement``).

    Parameters
    ----------
    delta : sequence of float
        Displacement of the frame relative to the reference, one value per
        frame axis in array order: ``(dy, dx)`` = (row, column) for images,
        ``(dz, dy, dx)`` for volumes. Positive when the frame's content lies
        further along the axis than the reference's.
    """

    def __init__(self, delta: Sequence[float]) -> None:
        arr = np.asarray(delta, dtype=np.float64)
        if arr.ndim != 1 or arr.size not in (2, 3):
            raise ValueError(f"delta must hold 2 values (images) or 3 (volumes), got shape {arr.shape}")
        self.delta = arr.tolist()

    def toarray(self) -> np.ndarray:
        """The displacement as a float64 array of shape (ndim,)."""
        return np.asarray(self.delta, dtype=np.float64)

    def apply(self, image: Any, *, interpolation: str = "linear") -> np.ndarray:
        """The image shifted by ``-delta`` (registered), same shape and dtype.

        Pixels entering at the edges take the nearest edge pixel. Integer
        images are rounded to nearest and clamped to their dtype's range.
        A NaN displacement returns a copy of the image unshifted, with a
        RuntimeWarning.
        """
        img = as_frame(image, "image", len(self.delta))
        out = shift_frames(img[None], self.toarray()[None], None, check_interpolation(interpolation), 1)
        warn_unshifted(np.flatnonzero(~np.all(np.isfinite(self.toarray()[None]), axis=1)))
        return out[0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Displacement) and np.array_equal(self.toarray(), other.toarray(), equal_nan=True)

    def __repr__(self) -> str:
        return f"Displacement(delta={fmt_delta(self.delta)})"


class LocalDisplacement:
    """Separate 2-D shifts for each plane of a volume along one axis
    (thunder-registration's ``LocalDisplacement``).

    Parameters
    ----------
    delta : array_like, shape (planes, 2)
        For each plane along ``axis``, its displacement in the order of the
        two remaining axes (array order; see ``Displacement``).
    axis : int
        The volume axis (0, 1 or 2 of a (Z, Y, X) volume) whose planes move
        separately.
    """

    def __init__(self, delta: Any, axis: int) -> None:
        arr = np.asarray(delta, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"delta must have shape (planes, 2), got {arr.shape}")
        self.delta = arr.tolist()
        self.axis = check_axis(axis)

    def toarray(self) -> np.ndarray:
        """The displacements as a float64 array of shape (planes, 2)."""
        return np.asarray(self.delta, dtype=np.float64).reshape(-1, 2)

    def apply(self, image: Any, *, interpolation: str = "linear") -> np.ndarray:
        """The volume with each plane along ``axis`` shifted by its ``-delta``."""
        img = as_frame(image, "image", 3)
        if img.shape[self.axis] != len(self.delta):
            raise ValueError(f"the volume has {img.shape[self.axis]} planes along axis {self.axis}, "
                             f"but this LocalDisplacement has {len(self.delta)}")
        d = self.toarray()
        out = shift_frames(img[None], d[None], self.axis, check_interpolation(interpolation), 1)
        warn_unshifted(np.flatnonzero(~np.all(np.isfinite(d), axis=1)), what="plane")
        return out[0]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LocalDisplacement) and self.axis == other.axis
                and np.array_equal(self.toarray(), other.toarray(), equal_nan=True))

    def __repr__(self) -> str:
        return f"LocalDisplacement(delta={fmt_delta(self.delta)}, axis={self.axis})"


def check_dtype(dtype: Any, name: str) -> None:
    dt = np.dtype(dtype)
    if dt == np.bool_ or not (np.issubdtype(dt, np.integer) or np.issubdtype(dt, np.floating)):
        raise TypeError(f"{name} must hold integer or floating-point pixels, got dtype {dt}")


def check_axis(axis: Any) -> int:
    a = as_int(axis, "axis")
    if not -3 <= a <= 2:
        raise ValueError(f"axis must be a volume axis 0, 1 or 2 (Z, Y, X), got {a}")
    return a % 3


def check_interpolation(interpolation: Any) -> str:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    return interpolation


def as_frame(image: Any, name: str, rank: int) -> np.ndarray:
    arr = np.asarray(image)
    check_dtype(arr.dtype, name)
    if arr.ndim != rank:
        raise ValueError(f"{name} must have {rank} dimensions to match the displacement, got {arr.ndim}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def core_frames(block: np.ndarray, axis: Optional[int]) -> np.ndarray:
    """Frames as the core takes them: float32, C order; planes flattened with axis."""
    if axis is not None:
        block = np.moveaxis(block, 1 + axis, 1)
        block = block.reshape((-1,) + block.shape[2:])
    return as_core_array(block, np.float32)


def _cast(result: np.ndarray, dtype: np.dtype, *, clip: bool = True,
          out: Optional[np.ndarray] = None) -> np.ndarray:
    """result (float32, modified) in dtype: integers rounded to nearest and clamped (clip=False
    when the interpolation cannot leave the input's range, as linear); written to out if given."""
    if np.issubdtype(dtype, np.integer):
        np.rint(result, out=result)
        if clip:
            info = np.iinfo(dtype)
            np.clip(result, info.min, info.max, out=result)
    if out is not None:
        np.copyto(out, result, casting="unsafe")
        return out
    return result if dtype == np.float32 else result.astype(dtype)


def shift_frames(block: np.ndarray, deltas: np.ndarray, axis: Optional[int], interpolation: str,
                  threads: int, out: Optional[np.ndarray] = None, *, as_float: bool = False) -> np.ndarray:
    """block shifted by -deltas, in block's dtype (float32 with ``as_float``: a reference
    estimated from the frames must not be rounded to an integer input's steps); written to
    out when given."""
    frames = core_frames(block, axis)
    d = as_core_array(deltas.reshape(len(frames), -1), np.float64)
    if (out is not None and axis is None and out.dtype == np.float32
            and out.flags.c_contiguous and out.flags.writeable):
        _core.stackreg.shift_frames(frames, d, interpolation, threads, out)
        return out
    result = _core.stackreg.shift_frames(frames, d, interpolation, threads)
    if axis is not None:
        moved = (len(block), block.shape[1 + axis]) + tuple(s for i, s in enumerate(block.shape[1:]) if i != axis)
        result = np.moveaxis(result.reshape(moved), 1, 1 + axis)
    if not as_float:
        # Linear interpolation stays within the input's range: no clamping needed.
        return _cast(result, block.dtype, clip=interpolation != "linear", out=out)
    if out is not None:
        out[...] = result
        return out
    return result


def warn_unshifted(bad: np.ndarray, what: str = "frame") -> None:
    if bad.size:
        warnings.warn(f"{bad.size} {what}(s) with NaN displacements ({what}s {list_indices(bad)}) are "
                      f"returned unshifted", RuntimeWarning, stacklevel=3)


def list_indices(idx: np.ndarray, limit: int = 10) -> str:
    s = ", ".join(str(int(i)) for i in idx[:limit])
    return s + (", ..." if idx.size > limit else "")


def fmt_delta(delta: Any) -> str:
    return repr((np.round(np.asarray(delta, dtype=np.float64), 4) + 0.0).tolist())  # no -0.0

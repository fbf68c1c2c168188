"""Argument checks shared by the affine registration modules (plain-language errors)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import as_core_array, real_array


def volume(image: Any, name: str, *, allow_constant: bool = False) -> np.ndarray:
    """A 2-D or 3-D real image as a C-contiguous float32 array; NaN/inf and (unless allowed)
    constant images refused. The caller's array is never modified (at most one copy)."""
    raw = np.asarray(image)
    if raw.dtype.kind == "c":
        raise TypeError(f"{name} is complex; give real intensities")
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of numbers, got dtype {raw.dtype}")
    if raw.ndim not in (2, 3):
        raise ValueError(f"{name} must be a 2-D image or a 3-D volume, got {raw.ndim} dimensions "
                         f"(shape {raw.shape})")
    if min(raw.shape) < 2:
        raise ValueError(f"{name} needs at least 2 samples along every axis, got shape {raw.shape}")
    arr = as_core_array(raw, np.float32)
    if raw.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} has {bad} NaN or infinite voxels; fill or mask them first "
                         f"(e.g. numpy.nan_to_num) and pass a mask")
    if raw.dtype.kind == "f" and not np.isfinite(np.asarray(raw, dtype=np.float64)).all():
        raise ValueError(f"{name} has values beyond float32's range")
    if not allow_constant and float(arr.max()) == float(arr.min()):
        raise ValueError(f"{name} is constant (every voxel {float(arr.min())}); registration needs "
                         f"intensity structure")
    return arr


def volume_pair(static: Any, moving: Any, transform: Any = None, *,
                allow_constant: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``static`` and ``moving`` as ``volume`` gives them, of one dimension; with a
    ``transform`` (a register ``Transform``), of its dimension too."""
    s = volume(static, "static", allow_constant=allow_constant)
    m = volume(moving, "moving", allow_constant=allow_constant)
    if s.ndim != m.ndim:
        raise ValueError(f"static is {s.ndim}-D but moving is {m.ndim}-D")
    if transform is not None and transform.dim != s.ndim:
        raise ValueError(f"{type(transform).__name__} is {transform.dim}-D but the images are {s.ndim}-D")
    return s, m


def grid2world(matrix: Any, dim: int, name: str) -> np.ndarray:
    """A finite, invertible homogeneous ``(dim + 1, dim + 1)`` grid-to-world matrix (identity
    when None)."""
    if matrix is None:
        return np.eye(dim + 1)
    m = real_array(matrix, name)
    if m.shape != (dim + 1, dim + 1):
        raise ValueError(f"{name} must be a ({dim + 1}, {dim + 1}) matrix for {dim}-D images, "
                         f"got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name} must be finite")
    if not np.allclose(m[dim], np.eye(dim + 1)[dim]):
        raise ValueError(f"{name}'s last row must be [0, ..., 0, 1], got {m[dim].tolist()}")
    lin = m[:dim, :dim]
    if np.linalg.cond(lin) > 1e12:
        raise ValueError(f"{name} is singular (its linear part cannot be inverted)")
    return m


def affine(matrix: Any, dim: int, name: str) -> np.ndarray:
    """A finite, invertible ``(dim + 1, dim + 1)`` affine (a ``(dim, dim + 1)`` top is completed)."""
    m = real_array(matrix, name)
    if m.shape == (dim, dim + 1):
        m = np.vstack([m, np.eye(dim + 1)[dim]])
    return grid2world(m, dim, name)


def mask(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    """A mask of ``shape`` as uint8 (nonzero = use); None stays None; an empty mask is refused."""
    if value is None:
        return None
    raw = np.asarray(value)
    if raw.shape != shape:
        raise ValueError(f"{name} must have its image's shape {shape}, got {raw.shape}")
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numbers or booleans, got dtype {raw.dtype}")
    out = np.ascontiguousarray(raw != 0, dtype=np.uint8)
    if not out.any():
        raise ValueError(f"{name} selects no voxel; pass None to use the whole image")
    return out

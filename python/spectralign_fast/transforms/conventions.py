"""The one rule for converting between spectralign's (x, y) and array axis order.

spectralign's points are ``(x, y) = (column, row)`` and its ``Affine`` is a
2x3 matrix ``[[a, b, tx], [c, d, ty]]`` acting on column vectors ``(x, y, 1)``.
Everything N-D (``AffineTransform``, ``DisplacementField``, ``warp``, and the
thunder/DIPY/STalign compatibility layers) uses array axis order:
``(row, col)`` in 2-D and ``(plane, row, col)`` in 3-D.

In 2-D the two orders differ by swapping the two coordinates, so with the
permutation ``P = [[0, 1], [1, 0]]`` a map ``M`` in (x, y) is ``P M P`` in
array order: ``[[a, b, tx], [c, d, ty]]`` becomes ``[[d, c, ty], [b, a, tx]]``.
The maps themselves do not change direction here; which way a matrix maps
(tile to model, or output to input) is said where it is used.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def points_xy_to_array(points: Any) -> np.ndarray:
    """(N, 2) points (x, y) as (row, col); float64 copy."""
    p = np.array(points, dtype=np.float64, copy=True)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2) of (x, y) pairs, got {p.shape}")
    return p[:, ::-1].copy()


def points_array_to_xy(points: Any) -> np.ndarray:
    """(N, 2) points (row, col) as (x, y); float64 copy."""
    p = np.array(points, dtype=np.float64, copy=True)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2) of (row, col) pairs, got {p.shape}")
    return p[:, ::-1].copy()


def affine_xy_to_array(matrix: Any) -> np.ndarray:
    """A 2x3 (or 3x3 homogeneous) map in (x, y) as the same map in array order, 3x3 homogeneous."""
    m = _as_2d_affine(matrix, "matrix")
    out = np.eye(3)
    out[0, 0], out[0, 1], out[0, 2] = m[1, 1], m[1, 0], m[1, 2]
    out[1, 0], out[1, 1], out[1, 2] = m[0, 1], m[0, 0], m[0, 2]
    return out


def affine_array_to_xy(matrix: Any) -> np.ndarray:
    """A 3x3 homogeneous (or 2x3) map in array order as the same map in (x, y), 2x3."""
    m = _as_2d_affine(matrix, "matrix")
    return np.array([[m[1, 1], m[1, 0], m[1, 2]], [m[0, 1], m[0, 0], m[0, 2]]])


def _as_2d_affine(matrix: Any, name: str) -> np.ndarray:
    m = np.asarray(matrix)
    if m.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {m.dtype}")
    m = m.astype(np.float64)
    if m.shape == (3, 3):
        if not np.array_equal(m[2], [0.0, 0.0, 1.0]):
            raise ValueError(f"{name} is 3x3 but its last row is {m[2].tolist()}, not [0, 0, 1]: "
                             f"only affine maps convert")
        m = m[:2]
    if m.shape != (2, 3):
        raise ValueError(f"{name} must be 2x3 or 3x3 homogeneous, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} contains NaN or inf")
    return m

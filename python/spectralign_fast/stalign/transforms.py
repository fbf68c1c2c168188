"""STalign's transform helpers: affine matrices from landmarks, building and applying the
LDDMM map to images and points, interpolation, and the target registration error.

Conventions (STalign's): points and coordinates in ``(row, col)`` order (``(slice, row, col)``
in 3-D); images channels first; ``xv`` the velocity grid's coordinate vectors and ``v`` its
velocity ``(nt, *grid, d)``; ``A`` the homogeneous source-to-target affine. Images are sampled
d-linearly with the edge repeated ("border"), velocities with zeros outside their grid, as
STalign's ``grid_sample`` calls do.
"""
from __future__ import annotations

from typing import Any, Sequence, Tuple

import numpy as np

from .._core import register as _reg
from ..register.lddmm_map import _numpy, grid_of, image_of, points_of
from ..transforms.points import affine_from_points


def _matrix(A: Any, name: str = "A") -> np.ndarray:
    m = np.array(_numpy(A), dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] not in (3, 4):
        raise ValueError(f"{name} must be a homogeneous 3x3 (2-D) or 4x4 (3-D) matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name} must be finite")
    if abs(np.linalg.det(m)) < 1e-300:
        raise ValueError(f"{name} is singular")
    return m


def _velocity(xv: Any, v: Any, d: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    vel = np.ascontiguousarray(_numpy(v), dtype=np.float64)
    o, s, shape = grid_of(xv, "xv")
    if vel.ndim != len(shape) + 2 or vel.shape[1:-1] != shape or vel.shape[-1] != len(shape):
        raise ValueError(f"v has shape {vel.shape}; with xv it must be (nt, {', '.join(map(str, shape))}, "
                         f"{len(shape)})")
    if len(shape) != d:
        raise ValueError(f"v is {len(shape)}-D but A is {d}-D")
    if not np.isfinite(vel).all():
        raise ValueError("v has NaN or infinite values")
    return vel, o, s


def to_A(L: Any, T: Any) -> np.ndarray:
    """The homogeneous matrix ``[[L, T], [0, 1]]`` from a linear part and a translation."""
    Lm = np.asarray(_numpy(L), dtype=np.float64)
    Tv = np.asarray(_numpy(T), dtype=np.float64).ravel()
    d = Tv.size
    if Lm.shape != (d, d):
        raise ValueError(f"L must be ({d}, {d}) for a translation of {d} entries, got {Lm.shape}")
    A = np.eye(d + 1)
    A[:d, :d] = Lm
    A[:d, d] = Tv
    return A


def to_A_3D(L: Any, T: Any) -> np.ndarray:
    """``to_A`` for 3-D (the same function; kept for STalign's name)."""
    return to_A(L, T)


def extent_from_x(xJ: Sequence[Any]) -> Tuple[float, float, float, float]:
    """``(xmin, xmax, ymax, ymin)`` for ``imshow(extent=...)`` from ``[rows, cols]`` pixel
    coordinates: pixel edges, half a pixel beyond the centres."""
    r = np.asarray(_numpy(xJ[0]), dtype=np.float64).ravel()
    c = np.asarray(_numpy(xJ[1]), dtype=np.float64).ravel()
    if r.size < 2 or c.size < 2:
        raise ValueError("extent_from_x needs at least 2 coordinates per axis")
    dr, dc = r[1] - r[0], c[1] - c[0]
    return (float(c[0] - dc / 2), float(c[-1] + dc / 2), float(r[-1] + dr / 2), float(r[0] - dr / 2))


def L_T_from_points(pointsI: Any, pointsJ: Any) -> Tuple[np.ndarray, np.ndarray]:
    """The affine ``(L, T)`` taking ``pointsI`` to ``pointsJ`` by least squares (``(n, 2)``, row
    col order); fewer than 3 pairs give a translation only."""
    if pointsI is None or pointsJ is None:
        raise ValueError("Points are set to None")
    pI = np.asarray(_numpy(pointsI), dtype=np.float64)
    pJ = np.asarray(_numpy(pointsJ), dtype=np.float64)
    if pI.ndim != 2 or pJ.ndim != 2:
        raise ValueError(f"points must be (n, 2) arrays, got shapes {pI.shape} and {pJ.shape}")
    if pI.shape[0] != pJ.shape[0]:
        raise ValueError(f"Number of pointsI ({pI.shape[0]}) is not equal to number of pointsJ ({pJ.shape[0]})")
    if pI.shape[1] != 2 or pJ.shape[1] != 2:
        raise ValueError(f"points need 2 components (row, col), got {pI.shape[1]} and {pJ.shape[1]}")
    if pI.shape[0] == 0:
        raise ValueError("no points given")
    if not (np.isfinite(pI).all() and np.isfinite(pJ).all()):
        raise ValueError("points must be finite")
    if pI.shape[0] < 3:
        return np.eye(2), pJ.mean(0) - pI.mean(0)
    A = affine_from_points(pI, pJ)  # least squares; refuses collinear points
    return A[:2, :2].copy(), A[:2, -1].copy()


def interp(x: Sequence[Any], I: Any, phii: Any, padding_mode: str = "zeros", **kwargs: Any) -> np.ndarray:
    """``I`` (channels first, on the grid ``x``) sampled d-linearly at the points ``phii``
    (components first: ``(d, *shape)``); ``padding_mode`` "zeros" or "border" as
    ``grid_sample``. Returns ``(channels, *shape)``."""
    mode = kwargs.pop("mode", "bilinear")
    if kwargs.pop("align_corners", True) is not True or mode not in ("bilinear", "linear") or kwargs:
        raise ValueError("only grid_sample's bilinear mode with align_corners=True is supported")
    if padding_mode not in ("zeros", "border"):
        raise ValueError("padding_mode must be 'zeros' or 'border'")
    img = image_of(I, x, "I")
    ph = np.asarray(_numpy(phii), dtype=np.float64)
    d = img.ndim - 1
    if ph.shape[0] != d:
        raise ValueError(f"phii must have {d} components on its first axis, got shape {ph.shape}")
    o, s, _ = grid_of(x, "x")
    pts = np.ascontiguousarray(np.moveaxis(ph, 0, -1).reshape(-1, d))
    out = _reg.lddmm_sample(img, o, s, pts, padding=padding_mode)
    return out.reshape((img.shape[0],) + ph.shape[1:])


interp3D = interp


def v_to_phii(xv: Sequence[Any], v: Any) -> np.ndarray:
    """The inverse map on the velocity grid, ``(d, *grid)``, by STalign's semi-Lagrangian
    integration (``phii <- phii(X - v_t dt)``, t = 0 .. nt-1)."""
    d = len(xv)
    vel, o, s = _velocity(xv, v, d)
    grid = np.stack(np.meshgrid(*[np.asarray(_numpy(a), dtype=np.float64) for a in xv], indexing="ij"))
    XV = np.ascontiguousarray(np.moveaxis(grid, 0, -1).reshape(-1, d))
    phii = XV.copy()
    nt = vel.shape[0]
    for t in range(nt):
        Xs = XV - vel[t].reshape(-1, d) / nt
        disp = np.ascontiguousarray((phii - XV).T.reshape((d,) + grid.shape[1:]))
        phii = _reg.lddmm_sample(disp, o, s, Xs, padding="zeros").T + Xs
    return np.moveaxis(phii.reshape(grid.shape[1:] + (d,)), -1, 0)


v_to_phii_3D = v_to_phii


def _target_grid(XJ: Any, xv: Any) -> np.ndarray:
    """Sample points ``(*shape, d)`` from XJ given as coordinate vectors, meshgrids or an
    array with components last; the velocity grid when None."""
    if XJ is None:
        XJ = [np.asarray(_numpy(a), dtype=np.float64) for a in xv]
    if isinstance(XJ, (list, tuple)):
        parts = [np.asarray(_numpy(a), dtype=np.float64) for a in XJ]
        if all(p.ndim == 1 for p in parts):
            return np.stack(np.meshgrid(*parts, indexing="ij"), -1)
        if all(p.shape == parts[0].shape and p.ndim == len(parts) for p in parts):
            return np.stack(parts, -1)
        raise ValueError("Could not understand variable XJ type: give 1-D coordinate vectors, "
                         "meshgrid arrays, or one array with components last")
    arr = np.asarray(_numpy(XJ), dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] != arr.ndim - 1:
        raise ValueError(f"XJ as an array must be (*grid, d) with d = grid dimension, got {arr.shape}")
    return arr


def build_transform(xv: Any, v: Any, A: Any, direction: str = "b", XJ: Any = None) -> np.ndarray:
    """Sample points of the map, ``(*grid, d)`` (components last). ``direction='b'``: for each
    point y of ``XJ`` (target space), ``phi^-1(A^-1 y)`` — where a source image is read to
    transform it; ``'f'``: ``A phi(x)`` for each source point x — to transform points. ``v``
    may be None (the affine alone)."""
    Am = _matrix(A)
    d = Am.shape[0] - 1
    if direction not in ("b", "f"):
        raise ValueError(f'Direction must be "f" or "b" but you input {direction}')
    if XJ is None and xv is None:
        raise ValueError("give XJ (the points to build the map on) when xv is None")
    grid = _target_grid(XJ, xv)
    if grid.shape[-1] != d:
        raise ValueError(f"XJ is {grid.shape[-1]}-D but A is {d}-D")
    pts = np.ascontiguousarray(grid.reshape(-1, d))
    if v is None:
        M = np.linalg.inv(Am) if direction == "b" else Am
        out = pts @ M[:d, :d].T + M[:d, d]
    else:
        vel, o, s = _velocity(xv, v, d)
        if direction == "b":
            out = _reg.lddmm_flow_points(vel, o, s, pts, matrix=np.linalg.inv(Am), forward=False)
        else:
            out = _reg.lddmm_flow_points(vel, o, s, pts, matrix=Am, forward=True)
    return out.reshape(grid.shape)


build_transform3D = build_transform


def transform_image_source_to_target(xv: Any, v: Any, A: Any, xI: Sequence[Any], I: Any,
                                     XJ: Any = None) -> np.ndarray:
    """The source image ``I`` (channels first on ``xI``) resampled at the target points XJ."""
    phii = build_transform(xv, v, A, direction="b", XJ=XJ)
    return interp(xI, I, np.moveaxis(phii, -1, 0), padding_mode="border")


def transform_image_target_to_source(xv: Any, v: Any, A: Any, xJ: Sequence[Any], J: Any,
                                     XI: Any = None) -> np.ndarray:
    """The target image ``J`` resampled at the source points XI (through ``A phi``)."""
    phi = build_transform(xv, v, A, direction="f", XJ=XI)
    return interp(xJ, J, np.moveaxis(phi, -1, 0), padding_mode="border")


def transform_image_source_with_A(A: Any, XI: Sequence[Any], I: Any, XJ: Any) -> np.ndarray:
    """The source image moved by the affine ``A`` alone onto the target points XJ."""
    return transform_image_source_to_target(None, None, A, XI, I, XJ=XJ)


def transform_points_source_to_target(xv: Any, v: Any, A: Any, pointsI: Any) -> np.ndarray:
    """Source points ``(n, d)`` (row col order) mapped to the target: ``A phi(x)``."""
    Am = _matrix(A)
    d = Am.shape[0] - 1
    p = points_of(pointsI, d, "pointsI")
    vel, o, s = _velocity(xv, v, d)
    return _reg.lddmm_flow_points(vel, o, s, p, matrix=Am, forward=True)


def transform_points_target_to_source(xv: Any, v: Any, A: Any, pointsI: Any) -> np.ndarray:
    """Target points ``(n, d)`` mapped back to the source: ``phi^-1(A^-1 y)``."""
    Am = _matrix(A)
    d = Am.shape[0] - 1
    p = points_of(pointsI, d, "points")
    vel, o, s = _velocity(xv, v, d)
    return _reg.lddmm_flow_points(vel, o, s, p, matrix=np.linalg.inv(Am), forward=False)


def calculate_tre(pointsI: Any, pointsJ: Any) -> Tuple[float, float]:
    """Mean and standard deviation of the distances between corresponding points."""
    a = np.asarray(_numpy(pointsI), dtype=np.float64)
    b = np.asarray(_numpy(pointsJ), dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"calculate_tre needs two non-empty (n, d) arrays of one shape, got {a.shape} and {b.shape}")
    tre = np.sqrt(np.sum((a - b) ** 2, axis=1))
    return float(np.mean(tre)), float(np.std(tre))


def clip(I: Any) -> np.ndarray:
    """A copy of ``I`` with values clipped to [0, 1] (for display)."""
    return np.clip(np.asarray(_numpy(I), dtype=np.float64), 0.0, 1.0)



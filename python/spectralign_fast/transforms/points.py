"""Affine maps fitted to corresponding points (landmarks): least squares, weighted.

Conventions: the returned ``(d+1) x (d+1)`` homogeneous matrix maps FIXED
points to MOVING points and acts on coordinates in the order the points are
given. For a registration's ``starting_affine`` give world points (array
index order for a 2-D image without ``grid2world``, RAS+ millimetres for
NIfTI): the result then maps static world points to moving world points,
DIPY's direction, where resampling moving onto the static grid samples moving
at index ``inv(moving_grid2world) @ affine @ static_grid2world @ static_index``.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .._validate import real_array

__all__ = ["affine_from_points"]

MODELS = ("affine", "rigid", "similarity", "translation")
# Relative singular value below which a point set counts as degenerate
# (collinear, coplanar, or repeated points).
RANK_TOLERANCE = 1e-10


def affine_from_points(fixed_points: Any, moving_points: Any, *, model: str = "affine",
                       weights: Optional[Any] = None) -> np.ndarray:
    """The affine map taking ``fixed_points`` to ``moving_points`` in the least-squares sense.

    Parameters
    ----------
    fixed_points, moving_points : (n, d) arrays, d = 2 or 3
        Corresponding points, row ``i`` of one matching row ``i`` of the
        other, in any coordinate order as long as both use the same one (the
        matrix acts on that order): array index order ``(row, col[, ...])``,
        ``(x, y[, z])``, or world coordinates. Never modified.
    model : {"affine", "rigid", "similarity", "translation"}
        ``"affine"``: general linear part plus translation (needs ``d+1``
        points that are not collinear/coplanar). ``"rigid"``: a proper
        rotation (determinant +1, never a reflection) plus translation;
        ``"similarity"``: rigid with one isotropic scale (both by the
        weighted Umeyama/Kabsch solution; they need 2 distinct points in 2-D,
        3 non-collinear points in 3-D). ``"translation"``: a shift only.
    weights : (n,) array, optional
        Non-negative weight of each pair (default all 1); the fit minimises
        ``sum_i weights[i] * |affine @ fixed[i] - moving[i]|^2``. Points with
        zero weight are ignored (also when counting points).

    Returns
    -------
    (d+1, d+1) float64 array
        Homogeneous matrix with ``moving ~= (M @ [fixed, 1])[:d]``. Given
        world points of a static (fixed) and a moving image, it maps static
        world points to moving world points: DIPY's direction, usable as
        ``starting_affine``; resampling moving onto the static grid samples
        moving at index ``inv(moving_grid2world) @ M @ static_grid2world @
        static_index``.

    Raises
    ------
    ValueError
        Shapes that differ or are not (n, 2)/(n, 3); NaN or inf; negative,
        non-finite or all-zero weights; too few points or a degenerate
        (collinear, coplanar, repeated) configuration for the model.
    TypeError
        Complex or non-numeric input.
    """
    if not isinstance(model, str) or model.lower() not in MODELS:
        raise ValueError(f"model must be one of {', '.join(map(repr, MODELS))}, got {model!r}")
    model = model.lower()
    X, Y, w = _check(fixed_points, moving_points, weights)
    keep = w > 0
    X, Y, w = X[keep], Y[keep], w[keep]
    n, d = X.shape
    need = {"affine": d + 1, "translation": 1}.get(model, d)
    if n < need:
        raise ValueError(f"a {d}-D {model} fit needs at least {need} points with positive weight, "
                         f"got {n}")
    W = w.sum()
    mx = (w[:, None] * X).sum(axis=0) / W
    my = (w[:, None] * Y).sum(axis=0) / W
    Xc, Yc = X - mx, Y - my
    out = np.eye(d + 1)
    if model == "translation":
        out[:d, d] = my - mx
        return out
    sw = np.sqrt(w)[:, None]
    if model == "affine":
        _require_rank(sw * Xc, d, "fixed_points", "affine", "collinear" if d == 2 else "coplanar")
        L = np.linalg.lstsq(sw * Xc, sw * Yc, rcond=None)[0].T
    else:
        L = _umeyama(sw * Xc, sw * Yc, model == "similarity", d)
    out[:d, :d] = L
    out[:d, d] = my - L @ mx
    return out


def _check(fixed_points: Any, moving_points: Any,
           weights: Optional[Any]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = real_array(fixed_points, "fixed_points")
    Y = real_array(moving_points, "moving_points")
    for arr, name in ((X, "fixed_points"), (Y, "moving_points")):
        if arr.ndim != 2 or arr.shape[1] not in (2, 3):
            raise ValueError(f"{name} must have shape (n, 2) or (n, 3), got {arr.shape}")
        bad = ~np.all(np.isfinite(arr), axis=1)
        if bad.any():
            raise ValueError(f"{name} has NaN or inf in rows {np.flatnonzero(bad)[:10].tolist()}")
    if X.shape != Y.shape:
        raise ValueError(f"fixed_points and moving_points must have the same shape, got {X.shape} "
                         f"and {Y.shape}")
    if weights is None:
        w = np.ones(X.shape[0])
    else:
        w = real_array(weights, "weights")
        if w.shape != (X.shape[0],):
            raise ValueError(f"weights must have shape ({X.shape[0]},), one per point, got {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("weights contain NaN or inf")
        if np.any(w < 0):
            raise ValueError(f"weights must be >= 0; negative at {np.flatnonzero(w < 0)[:10].tolist()}")
        if not np.any(w > 0):
            raise ValueError("all weights are zero")
    return X, Y, w


def _require_rank(A: np.ndarray, rank: int, name: str, model: str, shape: str) -> None:
    s = np.linalg.svd(A, compute_uv=False)
    if s.size < rank or s[0] == 0 or s[rank - 1] <= RANK_TOLERANCE * s[0]:
        raise ValueError(f"{name} are degenerate for a {model} fit ({shape} or repeated points): "
                         f"the map is not determined; add points that span all {A.shape[1]} axes")


def _umeyama(Xc: np.ndarray, Yc: np.ndarray, scale: bool, d: int) -> np.ndarray:
    """Weighted Kabsch/Umeyama on weight-scaled centred points: R (det +1), times s when
    ``scale``."""
    model = "similarity" if scale else "rigid"
    shape = "identical points" if d == 2 else "collinear"
    _require_rank(Xc, d - 1, "fixed_points", model, shape)
    _require_rank(Yc, d - 1, "moving_points", model, shape)
    S = Yc.T @ Xc
    U, sv, Vt = np.linalg.svd(S)
    D = np.ones(d)
    D[-1] = np.sign(np.linalg.det(U @ Vt)) or 1.0
    R = U @ np.diag(D) @ Vt
    if not scale:
        return R
    var = float((Xc * Xc).sum())
    return float((sv * D).sum()) / var * R

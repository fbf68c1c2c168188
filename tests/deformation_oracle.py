"""NumPy/SciPy oracles for deformable registration tests: known smooth diffeomorphisms, their
inverses and warps, written independently of the C++ core.

Fields are in index units here (world = array index), shape ``shape + (d,)``, component ``k``
along array axis ``k``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def bump_field(shape, *, max_displacement, bumps=6, width=None, seed=0, border=0.15):
    """A smooth displacement field: a sum of Gaussian bumps with random centres (inside the
    central ``1 - 2 border`` of the grid) and directions, scaled so its longest vector is
    ``max_displacement``. Small enough relative to ``width`` to stay invertible."""
    rng = np.random.default_rng(seed)
    d = len(shape)
    width = width if width is not None else 0.12 * min(shape)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    field = np.zeros(tuple(shape) + (d,))
    for _ in range(bumps):
        centre = [rng.uniform(border * n, (1 - border) * n) for n in shape]
        direction = rng.normal(size=d)
        direction /= np.linalg.norm(direction)
        r2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
        field += np.exp(-r2 / (2 * width ** 2))[..., None] * direction
    field *= max_displacement / np.sqrt((field ** 2).sum(-1)).max()
    return field


def sample_field(field, points):
    """``field`` d-linearly interpolated at index ``points`` (``(d, ...)``), nearest at the edges."""
    d = field.shape[-1]
    return np.stack([ndimage.map_coordinates(field[..., k], points, order=1, mode="nearest")
                     for k in range(d)], axis=-1)


def identity_points(shape):
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))


def invert(field, *, iterations=200, tol=1e-6):
    """The field ``w`` with ``x + w(x) + field(x + w(x)) = x`` by fixed-point iteration."""
    shape = field.shape[:-1]
    ident = identity_points(shape)
    w = -field.copy()
    for _ in range(iterations):
        pts = ident + np.moveaxis(w, -1, 0)
        new = -sample_field(field, pts)
        if np.abs(new - w).max() < tol:
            w = new
            break
        w = new
    return w


def warp(image, field, order=1):
    """``image`` sampled at ``x + field(x)`` (scipy, mode nearest)."""
    pts = identity_points(image.shape) + np.moveaxis(field, -1, 0)
    return ndimage.map_coordinates(np.asarray(image, dtype=np.float64), pts, order=order,
                                   mode="nearest").astype(np.float32)


def deformed_pair(image, *, max_displacement, bumps=6, width=None, seed=0):
    """``(moving, truth)``: moving is ``image`` deformed so that the static->moving map is
    ``x -> x + truth(x)`` (moving(x + truth(x)) = image(x))."""
    truth = bump_field(image.shape, max_displacement=max_displacement, bumps=bumps, width=width, seed=seed)
    inverse = invert(truth)
    return warp(image, inverse), truth


def interior(shape, fraction=0.1):
    """Index slices excluding ``fraction`` of each axis at both ends."""
    return tuple(slice(int(round(fraction * n)), n - int(round(fraction * n))) for n in shape)


def rms(a, b, region):
    diff = (a - b)[region]
    return float(np.sqrt((diff ** 2).sum(-1).mean()))


def jacobian_det(field):
    """det(I + grad field) by np.gradient (index units)."""
    d = field.shape[-1]
    J = np.empty(field.shape[:-1] + (d, d))
    for k in range(d):
        grads = np.gradient(field[..., k])
        for j in range(d):
            J[..., k, j] = grads[j] + (1.0 if j == k else 0.0)
    return np.linalg.det(J)

"""Gaussian scale space for multi-resolution registration (DIPY's ``IsotropicScaleSpace``).

A level with shrink factor ``f`` and smoothing ``sigma`` (voxels of the full-resolution grid,
the same on every axis, as DIPY) is the image smoothed in the C++ core
(``scipy.ndimage.gaussian_filter``'s kernel and edge rule) and sampled at every ``f``-th voxel
along each axis, ``floor(n / f)`` samples per axis; its ``grid2world`` is
``grid2world @ diag(f, ..., f, 1)``. For anisotropic voxels the factor along each axis is
chosen, as DIPY does, to bring the coarse spacing closest to that of the finest axis.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core import register as _register_core
from .._validate import as_float, as_int

__all__ = ["Level", "shrink_factors", "smooth", "level"]


@dataclass(frozen=True)
class Level:
    """One resolution level of an image: its samples and their grid-to-world matrix."""
    image: np.ndarray
    grid2world: np.ndarray
    factors: tuple[int, ...]
    sigma: float


def spacing(grid2world: np.ndarray) -> np.ndarray:
    """Voxel size along each array axis: the lengths of the linear part's columns."""
    d = grid2world.shape[0] - 1
    return np.sqrt((grid2world[:d, :d] ** 2).sum(axis=0))


def shrink_factors(factor: int, voxel_spacing: np.ndarray) -> tuple[int, ...]:
    """DIPY's per-axis shrink factors for a nominal ``factor``: the finest axis shrinks by
    ``factor``; each other axis by the factor in 1..factor that brings its new spacing
    closest to the finest axis's new spacing."""
    finest = int(np.argmin(voxel_spacing))
    target = voxel_spacing[finest] * factor
    out = []
    for j, sp in enumerate(voxel_spacing):
        if j == finest:
            out.append(factor)
            continue
        best, best_diff = factor, abs(sp * factor - target)
        for f in range(1, factor):
            diff = abs(sp * f - target)
            if diff < best_diff:
                best, best_diff = f, diff
        out.append(best)
    return tuple(out)


def smooth(image: np.ndarray, sigma: Any, *, threads: int = 0) -> np.ndarray:
    """Gaussian smoothing (float32, C order in and out) with ``sigma`` voxels per axis (a
    scalar applies to every axis); the caller's array is not modified."""
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (image.ndim,)).copy()
    if not np.all(sig == 0):
        return np.asarray(_register_core.gaussian_smooth(image, sig, threads=threads))
    return image


def level(image: np.ndarray, grid2world: np.ndarray, factor: Any, sigma: Any, *,
          threads: int = 0) -> Level:
    """The level of ``image`` (float32, C order) with nominal shrink ``factor`` and smoothing
    ``sigma``; a level coarser than 2 samples along an axis keeps 2 there (shrinking less)."""
    f = as_int(factor, "factor", minimum=1, maximum=1024)
    s = as_float(sigma, "sigma")
    if s < 0:
        raise ValueError(f"sigmas must be non-negative, got {s}")
    factors = tuple(max(1, min(fa, n // 2)) for fa, n in zip(shrink_factors(f, spacing(grid2world)),
                                                             image.shape))
    smoothed = smooth(image, s, threads=threads)
    index = tuple(slice(0, (n // fa) * fa, fa) for n, fa in zip(image.shape, factors))
    coarse = np.ascontiguousarray(smoothed[index])
    g2w = grid2world @ np.diag(np.array(factors + (1,), dtype=np.float64))
    return Level(coarse, g2w, factors, s)

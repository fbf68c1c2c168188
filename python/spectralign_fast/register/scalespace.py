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

__all__ = ["Level", "ScaleSpace", "shrink_factors", "smooth", "level"]


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


class ScaleSpace:
    """DIPY's ``ScaleSpace`` for diffeomorphic registration: full-resolution images smoothed
    more at each coarser level, sampled later on coarser grids.

    Level ``L`` has spacing ``2**L * min(spacing)`` on every axis (so anisotropic voxels are
    smoothed less along their long axes), a domain grid of ``round(shape * spacing /
    level_spacing)`` samples with ``grid2world @ diag(scaling, 1)``, and the image smoothed with
    ``sigma_factor * (level_spacing / spacing - 1)`` voxels per axis and rescaled to [0, 1]
    (level 0: rescaled only). With ``mask0``, voxels that are zero in the input stay zero.

    Parameters
    ----------
    image : ndarray, float32, C order
        The image (array axis order), already validated.
    num_levels : int
        Levels; 0 is the finest.
    image_grid2world : ndarray, optional
        Its grid-to-world matrix (None: identity).
    input_spacing : ndarray, optional
        Voxel sizes (default: from ``image_grid2world``, else ones).
    sigma_factor : float
        Smoothing factor (DIPY's ``ss_sigma_factor``, default 0.2).
    mask0 : bool
        Keep the input's zero voxels at zero.
    threads : int
        Threads for the smoothing (0: all cores).
    """

    def __init__(self, image: np.ndarray, num_levels: int, image_grid2world: Any = None,
                 input_spacing: Any = None, sigma_factor: float = 0.2, mask0: bool = False, *,
                 threads: int = 0) -> None:
        self.dim = image.ndim
        self.num_levels = as_int(num_levels, "num_levels", minimum=1, maximum=32)
        size = np.array(image.shape, dtype=np.float64)
        if input_spacing is None:
            input_spacing = (spacing(np.asarray(image_grid2world, dtype=np.float64))
                             if image_grid2world is not None else np.ones(self.dim))
        in_spacing = np.asarray(input_spacing, dtype=np.float64)
        mask = image > 0 if mask0 else None
        self.images: list[np.ndarray] = []
        self.domain_shapes: list[tuple[int, ...]] = []
        self.spacings: list[np.ndarray] = []
        self.scalings: list[np.ndarray] = []
        self.affines: list[Any] = []
        self.affine_invs: list[Any] = []
        self.sigmas: list[np.ndarray] = []
        base = None if image_grid2world is None else np.asarray(image_grid2world, dtype=np.float64)
        for lev in range(self.num_levels):
            if lev == 0:
                scaling = np.ones(self.dim)
                sigmas = np.zeros(self.dim)
                shape = tuple(int(n) for n in image.shape)
                smoothed = image
            else:
                scaling = 2.0 ** lev * in_spacing.min() / in_spacing
                sigmas = sigma_factor * (scaling - 1.0)
                shape = tuple(int(v) for v in (size / scaling + 0.5).astype(np.int64))
                smoothed = smooth(image, sigmas, threads=threads)
            lo, hi = smoothed.min(), smoothed.max()  # float32 scalars, as DIPY computes
            scaled = ((smoothed - lo) / (hi - lo)).astype(np.float32)
            if mask is not None:
                scaled *= mask
            affine = base
            if lev > 0:
                affine = np.diag(np.append(scaling, 1.0)) if base is None else base @ np.diag(np.append(scaling, 1.0))
            self.images.append(np.ascontiguousarray(scaled))
            self.domain_shapes.append(shape)
            self.spacings.append(in_spacing * scaling)
            self.scalings.append(scaling)
            self.affines.append(affine)
            self.affine_invs.append(None if affine is None else np.linalg.inv(affine))
            self.sigmas.append(sigmas)

    def _at(self, values: list[Any], level: int) -> Any:
        if not 0 <= level < self.num_levels:
            raise ValueError(f"Invalid pyramid level: {level} (levels 0..{self.num_levels - 1})")
        return values[level]

    def get_expand_factors(self, from_level: int, to_level: int) -> np.ndarray:
        """Voxel size at ``to_level`` over that at ``from_level``, per axis."""
        return np.asarray(self._at(self.spacings, to_level)) / np.asarray(self._at(self.spacings, from_level))

    def get_image(self, level: int) -> np.ndarray:
        """The smoothed, [0, 1]-scaled full-resolution image of ``level``."""
        return self._at(self.images, level)

    def get_domain_shape(self, level: int) -> tuple[int, ...]:
        """The sampling grid shape of ``level``."""
        return self._at(self.domain_shapes, level)

    def get_spacing(self, level: int) -> np.ndarray:
        """Voxel sizes of ``level``'s grid."""
        return self._at(self.spacings, level)

    def get_scaling(self, level: int) -> np.ndarray:
        """``level``'s spacing over the input spacing, per axis."""
        return self._at(self.scalings, level)

    def get_affine(self, level: int) -> Any:
        """``level``'s grid-to-world matrix (None at level 0 for an image without one)."""
        return self._at(self.affines, level)

    def get_affine_inv(self, level: int) -> Any:
        """Its inverse."""
        return self._at(self.affine_invs, level)

    def get_sigmas(self, level: int) -> np.ndarray:
        """The smoothing of ``level`` in input voxels, per axis."""
        return self._at(self.sigmas, level)

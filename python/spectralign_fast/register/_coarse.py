"""Coarse working grids and candidate scoring for the global initialiser (``register.initialise``).

Both images are resampled onto axis-aligned world grids of one common, isotropic spacing ``h``
(so different pixel sizes and grid2world orientations are taken care of once, here), their
intensities normalised to [0, 1]. A candidate is a map ``T`` from coarse static indices to coarse
moving indices; it is scored by normalised mutual information over a coarse joint histogram.

A candidate's pull and joint histogram run in one pass in the C++ core
(``_core.register.coarse_nmi``): on a coarse grid (about 128 x 128 pixels or 40**3 voxels) the
numpy version it replaced spent more time on array bookkeeping than on the arithmetic, and the
initialiser scores a few hundred candidates. ``tests/test_initialise.py`` keeps that numpy
version as its oracle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import _core
from .._validate import as_core_array
from ..render.warp import warp

# Value outside an image's field of view after resampling (intensities are in [0, 1]): the warp
# core gives exactly cval there, so "outside" is "< 0".
_OUTSIDE = -1.0
_NBINS = 24
_MIN_OVERLAP = 0.25


@dataclass(frozen=True)
class Coarse:
    """One image on its coarse isotropic grid."""

    image: np.ndarray            # float32, [0, 1] inside the field of view, _OUTSIDE beyond it
    valid: np.ndarray            # bool: inside the field of view (and the caller's mask, if any)
    to_world: np.ndarray         # (d+1, d+1): coarse index -> world
    weights: np.ndarray          # float64 foreground weights |I - background| (0 where not valid)

    @property
    def ndim(self) -> int:
        return int(self.image.ndim)


def world_box(shape: tuple[int, ...], grid2world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World bounding box (lo, hi) of the array's sample positions."""
    d = len(shape)
    corners = np.array(np.meshgrid(*[[0.0, n - 1.0] for n in shape], indexing="ij")).reshape(d, -1)
    world = grid2world[:d, :d] @ corners + grid2world[:d, d:d + 1]
    return world.min(axis=1), world.max(axis=1)


def spacing(grid2world: np.ndarray) -> np.ndarray:
    """World length of one step along each array axis."""
    d = grid2world.shape[0] - 1
    return np.sqrt((grid2world[:d, :d] ** 2).sum(axis=0))


def _block_mean(image: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Mean over blocks of ``factors`` samples (edges replicated up to a whole block)."""
    if all(f == 1 for f in factors):
        return image
    pad = [(0, (-n) % f) for n, f in zip(image.shape, factors)]
    img = np.pad(image, pad, mode="edge")
    shape: list[int] = []
    for n, f in zip(img.shape, factors):
        shape += [n // f, f]
    return img.reshape(shape).mean(axis=tuple(range(1, 2 * img.ndim, 2)))


def _normalise(image: np.ndarray, name: str) -> np.ndarray:
    """Intensities mapped to [0, 1] between robust percentiles (min/max when those coincide)."""
    lo, hi = np.percentile(image, [0.5, 99.5])
    if not hi > lo:
        lo, hi = float(image.min()), float(image.max())
    if not hi > lo:
        raise ValueError(f"{name} is constant (no contrast to align)")
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0)


def to_coarse(image: np.ndarray, grid2world: np.ndarray, mask: Optional[np.ndarray], h: float,
              origin: np.ndarray, shape: tuple[int, ...], name: str, threads: int) -> Coarse:
    """Resample ``image`` (array axis order, grid2world) onto the grid ``origin + h * index``."""
    d = image.ndim
    step = spacing(grid2world)
    factors = tuple(max(1, int(np.floor(h / s + 1e-9))) for s in step)
    img = _normalise(_block_mean(image, factors), name)
    g = grid2world.copy()
    g[:d, d] = grid2world[:d, :d] @ ((np.array(factors) - 1.0) / 2.0) + grid2world[:d, d]
    g[:d, :d] = grid2world[:d, :d] * np.array(factors, dtype=np.float64)[None, :]
    to_world = np.eye(d + 1)
    to_world[:d, :d] *= h
    to_world[:d, d] = origin
    pull = np.linalg.solve(g, to_world)  # coarse index -> blocked array index
    out = warp(as_core_array(img, np.float32), pull, output_shape=shape, order=1, mode="constant",
               cval=_OUTSIDE, threads=threads)
    valid = out >= 0
    if mask is not None:
        m = _block_mean(mask.astype(np.float32), factors)
        mw = warp(as_core_array(m, np.float32), pull, output_shape=shape, order=1, mode="constant",
                  cval=0.0, threads=threads)
        valid &= mw >= 0.5
        if not valid.any():
            raise ValueError(f"{name}'s mask leaves nothing at the coarse resolution")
    if not valid.any():
        raise ValueError(f"{name} has no samples on its coarse grid")
    background = _background(out, valid)
    weights = np.where(valid, np.abs(out.astype(np.float64) - background), 0.0)
    if not weights.sum() > 0:
        weights = valid.astype(np.float64)
    return Coarse(out, valid, to_world, weights)


def _background(image: np.ndarray, valid: np.ndarray) -> float:
    """Median intensity of the valid samples on the border of the field of view."""
    inner = valid.copy()
    for axis in range(image.ndim):
        inner &= np.roll(valid, 1, axis) & np.roll(valid, -1, axis)
        sl = [slice(None)] * image.ndim
        sl[axis] = slice(0, 1)
        inner[tuple(sl)] = False
        sl[axis] = slice(-1, None)
        inner[tuple(sl)] = False
    border = valid & ~inner
    values = image[border] if border.any() else image[valid]
    return float(np.median(values))


def moments(c: Coarse) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass and second-moment (covariance) matrix of the foreground weights."""
    w = c.weights
    total = w.sum()
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in w.shape], indexing="ij")
    centre = np.array([(g * w).sum() / total for g in grids])
    d = c.ndim
    cov = np.empty((d, d))
    for i in range(d):
        for j in range(i, d):
            cov[i, j] = cov[j, i] = ((grids[i] - centre[i]) * (grids[j] - centre[j]) * w).sum() / total
    return centre, cov


class Scorer:
    """Normalised mutual information (Studholme's (H(A) + H(B)) / H(A, B), minus 1) of the static
    coarse image and the moving one pulled through a candidate map, over their overlap; scaled
    down when the overlap covers less than half of the static field of view, and 0 below a
    quarter (a small overlap can have a large, meaningless NMI)."""

    def __init__(self, static: Coarse, moving: Coarse, moving_mask_coarse: Optional[np.ndarray]) -> None:
        self.static = static
        self.moving = moving
        self._moving_mask = (None if moving_mask_coarse is None
                              else np.ascontiguousarray(moving_mask_coarse, dtype=np.float32))
        self._moving = np.ascontiguousarray(moving.image, dtype=np.float32)
        bins = np.minimum((static.image * _NBINS).astype(np.int64), _NBINS - 1)
        self._bins = np.where(static.valid, bins, -1).astype(np.int16)
        self._nvalid = int(static.valid.sum())
        self.evaluations = 0

    def __call__(self, T: np.ndarray) -> float:
        self.evaluations += 1
        T = np.ascontiguousarray(T, dtype=np.float64)
        if T.shape != (self.static.ndim + 1,) * 2 or not np.isfinite(T).all():
            raise ValueError(f"a candidate map must be a finite {(self.static.ndim + 1,) * 2} matrix")
        nmi, n = _core.register.coarse_nmi(self._bins, self._moving, self._moving_mask, T, _NBINS)
        frac = n / self._nvalid
        if frac < _MIN_OVERLAP:
            return 0.0
        return float(nmi * min(1.0, frac / 0.5))

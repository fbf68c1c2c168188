"""LDDMM with an affine part and a contrast model (STalign's energy), on the C++ core.

Conventions (STalign's, kept here so that its parameters mean the same): coordinates are
physical and in array axis order, ``(row, col)`` in 2-D and ``(slice, row, col)`` in 3-D; a
grid is given as a list of 1-D coordinate vectors ``x = [x0, x1(, x2)]`` (uniformly spaced, the
coordinates of the pixel centres); images are channels first, ``(C, *grid)``; affine matrices
are homogeneous ``(d+1, d+1)`` in array order. The map found takes the source to the target:
``y = A phi(x)``, where ``phi`` is the flow of the time-varying velocity ``v`` (shape
``(nt, *grid_v, d)`` on the grid ``xv``), integrated with ``nt`` Euler steps. Images move the
other way: the source is sampled at ``phi^-1(A^-1 y)`` for every target point ``y``.

The energy (STalign's ``LDDMM``)::

    E = 1/(2 sigmaM^2) sum WM |f(I o phi^-1 o A^-1) - J|^2
      + 1/(2 sigmaR^2) sum_t |(I - a^2 Laplacian)^p v_t|^2 dV
      + 1/(2 sigmaP^2) sum |A phi(points_I) - points_J|^2

``f`` maps the source channels to each target channel by an affine function fitted by weighted
least squares every iteration; ``WM``/``WA``/``WB`` are the Gaussian-mixture weights of
matched, artifact and background pixels. Everything per pixel (flows, sampling, the contrast
fit, the gradients, the FFT smoothing of the velocity gradient) runs in the core, in float64,
multithreaded, with the GIL released and identical bits for any thread count; Python runs the
iteration loop (one core call per iteration).

This module holds the pieces both front ends share: grids, validation, the map and result
classes, and ``run_schedule``, STalign's own loop (fixed step sizes, its schedule of weight
updates). ``register.lddmm.LDDMM`` is this package's front end; ``spectralign_fast.stalign``
is STalign's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from scipy.fft import next_fast_len

from .._core import register as _reg
from ..transforms.nd import DisplacementField

__all__ = ["LddmmResult", "LddmmTransform", "velocity_grid", "grid_of", "run_schedule"]


def grid_of(x: Sequence[Any], name: str) -> Tuple[np.ndarray, np.ndarray, Tuple[int, ...]]:
    """``(origin, spacing, shape)`` of a grid given as coordinate vectors; each vector must be
    uniformly spaced and increasing (a single point gets spacing 1)."""
    vecs = [np.asarray(_numpy(v), dtype=np.float64).ravel() for v in x]
    if len(vecs) not in (2, 3):
        raise ValueError(f"{name} must have 2 or 3 coordinate vectors (one per axis), got {len(vecs)}")
    origin, spacing, shape = [], [], []
    for k, v in enumerate(vecs):
        if v.size == 0:
            raise ValueError(f"{name}[{k}] is empty")
        if not np.isfinite(v).all():
            raise ValueError(f"{name}[{k}] has NaN or infinite coordinates")
        step = 1.0 if v.size == 1 else (v[-1] - v[0]) / (v.size - 1)
        if v.size > 1:
            if not step > 0:
                raise ValueError(f"{name}[{k}] must increase")
            if np.max(np.abs(np.diff(v) - step)) > 1e-6 * abs(step) + 1e-9 * np.max(np.abs(v)):
                raise ValueError(f"{name}[{k}] must be uniformly spaced")
        origin.append(float(v[0]))
        spacing.append(float(step))
        shape.append(int(v.size))
    return np.array(origin), np.array(spacing), tuple(shape)


def _numpy(a: Any) -> Any:
    """A torch tensor as a NumPy array (never imports torch); anything else unchanged."""
    if hasattr(a, "detach") and hasattr(a, "cpu") and hasattr(a, "numpy"):
        return a.detach().cpu().numpy()
    return a


def velocity_grid(xI: Sequence[Any], a: float, expand: float, *, fast_sizes: bool = False) -> List[np.ndarray]:
    """STalign's velocity grid: the source's extent widened ``expand`` times about its centre,
    sampled every ``a / 2``. ``fast_sizes``: each axis then grows by whole nodes on both ends to the next length with small prime factors only (``scipy.fft.next_fast_len``;
    the regulariser's FFTs on a 41 x 51 x 43 grid took longer than the flow); STalign's own layer keeps its
    sizes."""
    lo = np.array([float(np.asarray(_numpy(x), dtype=np.float64).ravel()[0]) for x in xI])
    hi = np.array([float(np.asarray(_numpy(x), dtype=np.float64).ravel()[-1]) for x in xI])
    mid, half = (lo + hi) * 0.5, 0.5 * (hi - lo) * expand
    step = a * 0.5
    xv = [np.arange(m - h, m + h, step) for m, h in zip(mid, half)]
    for k, v in enumerate(xv):
        if v.size < 2:
            raise ValueError(f"the velocity grid has {v.size} point(s) along axis {k}: a={a} is too "
                             f"large for the image (its extent times expand is {2 * half[k]:.4g}); "
                             f"use a smaller a or a larger expand")
        if fast_sizes:
            extra = next_fast_len(v.size) - v.size
            before = extra // 2
            xv[k] = v[0] + step * np.arange(-before, v.size + extra - before)
    return xv


def image_of(image: Any, x: Sequence[Any], name: str) -> np.ndarray:
    """A channels-first image matching the grid ``x`` as float64 C-contiguous (one copy at
    most; the caller's array is never modified); NaN/inf refused."""
    arr = _numpy(image)
    raw = np.asarray(arr)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {raw.dtype}")
    shape = tuple(np.asarray(_numpy(v)).size for v in x)
    if raw.ndim == len(shape):
        raise ValueError(f"{name} has shape {raw.shape} but needs a channel axis first "
                         f"(STalign's convention): pass {name}[None] for one channel")
    if raw.ndim != len(shape) + 1 or raw.shape[1:] != shape:
        raise ValueError(f"{name} has shape {raw.shape} but its coordinate vectors give the grid "
                         f"{shape}; expected (channels, {', '.join(map(str, shape))})")
    if raw.shape[0] < 1:
        raise ValueError(f"{name} has no channels")
    out = np.ascontiguousarray(raw, dtype=np.float64)
    if not np.isfinite(out).all():
        bad = int(np.count_nonzero(~np.isfinite(out)))
        raise ValueError(f"{name} has {bad} NaN or infinite values; fill them first "
                         f"(e.g. numpy.nan_to_num)")
    return out


def points_of(points: Any, d: int, name: str) -> np.ndarray:
    """Points as a finite float64 ``(n, d)`` array (a copy)."""
    p = np.array(_numpy(points), dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != d:
        raise ValueError(f"{name} must have shape (n, {d}) (points in array axis order), got {p.shape}")
    if p.shape[0] == 0:
        raise ValueError(f"{name} is empty; give at least one point, or None for no points")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} has NaN or infinite coordinates")
    return p


@dataclass(frozen=True)
class LddmmTransform:
    """The source-to-target map ``y = A phi(x)`` (``forward=True``) or its inverse.

    Points and coordinates in array axis order; ``x_from`` / ``x_to`` are the coordinate
    vectors of the grids that ``transform`` reads and writes (for the forward map: the source
    grid and the target grid)."""

    A: np.ndarray
    v: np.ndarray
    xv: List[np.ndarray]
    x_from: List[np.ndarray]
    x_to: List[np.ndarray]
    forward: bool = True
    threads: int = 0

    @property
    def ndim(self) -> int:
        return self.A.shape[0] - 1

    def transform_points(self, points: Any) -> np.ndarray:
        """Points ``(n, d)`` of the ``x_from`` space mapped into the ``x_to`` space."""
        p = points_of(points, self.ndim, "points")
        o, s, _ = grid_of(self.xv, "xv")
        if self.forward:
            return _reg.lddmm_flow_points(self.v, o, s, p, matrix=self.A, forward=True,
                                          threads=self.threads)
        return _reg.lddmm_flow_points(self.v, o, s, p, matrix=np.linalg.inv(self.A), forward=False,
                                      threads=self.threads)

    def sample_points(self) -> np.ndarray:
        """For every point of the ``x_to`` grid, the ``x_from`` point it reads: ``(*grid, d)``."""
        grid = np.stack(np.meshgrid(*self.x_to, indexing="ij"), -1)
        flat = grid.reshape(-1, self.ndim)
        inv = LddmmTransform(self.A, self.v, self.xv, self.x_to, self.x_from, not self.forward,
                             self.threads)
        return inv.transform_points(flat).reshape(grid.shape)

    def transform(self, image: Any, *, padding: str = "border") -> np.ndarray:
        """``image`` (channels first, on the ``x_from`` grid) resampled onto the ``x_to`` grid
        (d-linear; ``padding`` "border" repeats the edge, "zeros" fills with 0)."""
        img = image_of(image, self.x_from, "image")
        pts = self.sample_points()
        o, s, _ = grid_of(self.x_from, "x_from")
        out = _reg.lddmm_sample(img, o, s, pts.reshape(-1, self.ndim), padding=padding,
                                threads=self.threads)
        return out.reshape((img.shape[0],) + pts.shape[:-1])

    def displacement_field(self) -> DisplacementField:
        """This map in the package's N-D convention: a ``DisplacementField`` over the ``x_to``
        grid in array indices (output index ``o`` reads the ``x_from`` image at index
        ``o + field[o]``), so that ``spectralign_fast.warp(image, field)`` resamples a channel
        like ``transform`` does (and the field composes with the other N-D transforms)."""
        pts = self.sample_points()
        o, s, _ = grid_of(self.x_from, "x_from")
        index_to = np.stack(np.meshgrid(*[np.arange(len(x), dtype=np.float64) for x in self.x_to],
                                        indexing="ij"), -1)
        return DisplacementField((pts - o) / s - index_to)

    def inverse(self) -> "LddmmTransform":
        """The inverse map (target to source), exact up to the Euler steps' discretisation."""
        return LddmmTransform(self.A, self.v, self.xv, self.x_to, self.x_from, not self.forward,
                              self.threads)


@dataclass(frozen=True)
class LddmmResult:
    """An LDDMM registration: the map, the mixture weights and the energy history.

    ``energies`` has one row per iteration: total, matching, regularization, points (the
    energy before that iteration's step), the resolution levels' rows one after another
    (``level_iterations`` of them each, coarse to fine; the energy's scale changes between
    levels with the pixel count)."""

    map: LddmmTransform
    WM: np.ndarray
    WA: np.ndarray
    WB: np.ndarray
    energies: np.ndarray
    iterations: int
    converged: bool
    contrast: np.ndarray = field(repr=False)
    level_iterations: Tuple[int, ...] = ()

    @property
    def A(self) -> np.ndarray:
        return self.map.A

    @property
    def v(self) -> np.ndarray:
        return self.map.v

    @property
    def xv(self) -> List[np.ndarray]:
        return self.map.xv

    def transform(self, image: Any, *, padding: str = "border") -> np.ndarray:
        """A source-space image (channels first) resampled onto the target grid."""
        return self.map.transform(image, padding=padding)

    def transform_points(self, points: Any) -> np.ndarray:
        """Source points ``(n, d)`` (array order) mapped to the target."""
        return self.map.transform_points(points)

    def inverse(self) -> LddmmTransform:
        """The target-to-source map."""
        return self.map.inverse()

    def displacement_field(self) -> DisplacementField:
        """The map as a ``DisplacementField`` over the target grid (see
        ``LddmmTransform.displacement_field``)."""
        return self.map.displacement_field()


def class_mean(mu: Any, channels: int, name: str) -> Optional[np.ndarray]:
    """A fixed artifact / background mean: one finite value per target channel (None: none)."""
    if mu is None:
        return None
    m = np.array(_numpy(mu), dtype=np.float64).ravel()
    if m.size != channels:
        raise ValueError(f"{name} must have one value per target channel ({channels}), got {m.size}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name} must be finite")
    return m


def make_problem(xI: Sequence[Any], I: np.ndarray, xJ: Sequence[Any], J: np.ndarray,
                 xv: Sequence[np.ndarray], *, nt: int, a: float, p: float, sigmaM: float,
                 sigmaB: float, sigmaA: float, sigmaR: float, sigmaP: float,
                 points_I: Optional[np.ndarray], points_J: Optional[np.ndarray],
                 threads: int) -> Any:
    """The core's ``LddmmProblem`` for validated inputs."""
    oI, sI, _ = grid_of(xI, "xI")
    oJ, sJ, _ = grid_of(xJ, "xJ")
    oV, sV, shV = grid_of(xv, "xv")
    if min(I.shape[1:]) < 2:
        raise ValueError(f"the source needs at least 2 pixels along every axis, got {I.shape[1:]}")
    for name, val in (("a", a), ("p", p), ("sigmaM", sigmaM), ("sigmaB", sigmaB),
                      ("sigmaA", sigmaA), ("sigmaR", sigmaR), ("sigmaP", sigmaP)):
        if not (np.isfinite(val) and val > 0):
            raise ValueError(f"{name} must be positive and finite, got {val}")
    if int(nt) < 1:
        raise ValueError(f"nt must be at least 1, got {nt}")
    return _reg.LddmmProblem(I, oI, sI, J, oJ, sJ, list(shV), oV, sV, nt=int(nt), a=float(a),
                             p=float(p), sigmaM=float(sigmaM), sigmaB=float(sigmaB),
                             sigmaA=float(sigmaA), sigmaR=float(sigmaR), sigmaP=float(sigmaP),
                             points_I=points_I, points_J=points_J, threads=threads)


def run_schedule(problem: Any, *, niter: int, diffeo_start: int, epL: float, epT: float,
                 epV: float, estimate_muA: bool, estimate_muB: bool) -> Tuple[np.ndarray, np.ndarray]:
    """STalign's loop: ``niter`` steps of fixed size (affine steps divided by 10 once the
    deformation starts at ``diffeo_start``), the mixture means every 5 iterations and the
    weights too from iteration 50 on. Returns the energies ``(niter, 4)`` and the affine the
    last iteration started from (what STalign returns as ``A``: the last affine update is not
    in it, while the last velocity update is in ``v``)."""
    energies = np.empty((niter, 4))
    last_A = problem.affine
    for it in range(niter):
        diffeo = it >= diffeo_start
        scale = 10.0 if diffeo else 1.0
        if it == niter - 1:
            last_A = problem.affine
        e = problem.step(epL / scale, epT / scale, epV if diffeo else 0.0)
        energies[it] = (e.total, e.matching, e.regularization, e.points)
        if it % 5 == 0:
            problem.update_weights(estimate_muA, estimate_muB, it >= 50)
    return energies, last_A

"""Symmetric diffeomorphic registration (SyN), DIPY's ``SymmetricDiffeomorphicRegistration``.

Avants' greedy symmetric algorithm as DIPY implements it: the static and the moving image are
each mapped towards a common reference (midway) by their own diffeomorphism, both updated every
iteration by a metric's forward and backward steps (normalised to ``step_length`` world units
at their longest and composed into the current fields), and kept invertible by re-inverting
each field (fixed-point iteration) after every update; a Gaussian scale space runs coarse to
fine. The result maps the static grid to the moving image, with the affine pre-alignment.

Conventions (DIPY's): images in array axis order; ``grid2world`` maps an array index to world
coordinates (None: identity); ``prealign`` maps STATIC world points to MOVING world points (an
affine registration's result, e.g. ``AffineMap.affine``); fields are in world units on the
static image's grid. Every per-iteration operation (warps, metric steps, step normalisation,
composition, inversion, up-sampling) runs in the C++ core, multithreaded with the GIL released;
the loop itself stays in Python (a few calls per iteration). Results are bit-identical for any
``threads``.
"""
from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from .._core import register as _core
from .._validate import as_float, as_int
from . import _checks
from .diffeomorphic_map import DiffeomorphicMap, get_direction_and_spacings
from .scalespace import ScaleSpace
from .syn_metrics import SimilarityMetric, coarse_grid_shape

__all__ = ["SymmetricDiffeomorphicRegistration", "RegistrationStages", "SynLevelReport"]

log = logging.getLogger("spectralign_fast.register")

# DIPY fits a quadratic to the last 12 energies to estimate the energy's slope.
ENERGY_WINDOW = 12


class RegistrationStages(enum.IntEnum):
    """When the optimiser calls ``callback(registration, stage)`` (DIPY's stages)."""
    INIT_START = 0
    INIT_END = 1
    OPT_START = 2
    OPT_END = 3
    SCALE_START = 4
    SCALE_END = 5
    ITER_START = 6
    ITER_END = 7


@dataclass(frozen=True)
class SynLevelReport:
    """What one level of ``optimize`` did."""
    level: int                   # 0 = finest
    shape: tuple[int, ...]       # the level's image grid
    iterations: int
    seconds: float
    energy: float                # forward + backward energy after the last iteration
    converged: bool              # stopped on opt_tol before level_iters ran out


def _energy_slope(energies: list[float]) -> float:
    """DIPY's estimate of d(energy)/d(iteration) over the last window (normalised energies)."""
    y = np.asarray(energies[-ENERGY_WINDOW:], dtype=np.float64)
    ss = float(y.sum())
    if ss != 0:
        y = y / (-ss if ss > 0 else ss)
    x = np.arange(ENERGY_WINDOW, dtype=np.float64)
    X = np.vstack((x ** 2, x, np.ones_like(x)))
    beta = np.linalg.solve(X @ X.T, X @ y)
    x0 = 0.5 * ENERGY_WINDOW
    return float(2.0 * beta[0] * x0 + beta[1])


class SymmetricDiffeomorphicRegistration:
    """Symmetric diffeomorphic registration (DIPY's class, arguments and defaults).

    Parameters
    ----------
    metric : SimilarityMetric
        ``CCMetric``, ``SSDMetric``, ``EMMetric`` or ``ParzenMIMetric`` of the images' dimension.
    level_iters : sequence of int, optional
        Iterations per level, coarsest first (default ``[100, 100, 25]``); its length is the
        number of levels.
    step_length : float
        Length (world units) of the longest vector of each update (default 0.25).
    ss_sigma_factor : float
        Scale-space smoothing factor (default 0.2).
    opt_tol : float
        A level ends when the energy's estimated slope falls below this (default 1e-5).
    inv_iter : int
        Fixed-point iterations of each field inversion (default 20).
    inv_tol : float
        The inversion stops when its error falls below this (default 1e-3).
    callback : callable, optional
        ``callback(self, stage)`` at each ``RegistrationStages`` point.
    threads : int
        Threads for the core (0: all cores).
    field_spacing : int
        Keep the two half maps' fields on every ``field_spacing``-th voxel of each level's grid
        (default 1: on the grid itself, DIPY's algorithm). A metric whose steps are smoothed by
        a Gaussian of ``sigma_diff`` voxels (``CCMetric``, ``ParzenMIMetric``) adds nothing to
        the fields finer than a few ``sigma_diff``, so with ``sigma_diff >= 4`` a spacing of 2
        loses little (``register_syn``'s default) while the composition, the four inversions
        and the step normalisation of every iteration work on an eighth of the voxels (3-D):
        the step is restricted to the coarse grid and smoothed there
        (``SimilarityMetric.set_field_grid``), each warp up-samples its field row by row as it
        reads it, and after the finest level both maps come back to the static grid (the
        backward fields re-inverted there), so the result has the same layout as with 1.

    Notes
    -----
    After ``optimize``: ``static_to_ref`` and ``moving_to_ref`` (the half maps),
    ``full_energy_profile``, and ``levels_report`` (seconds and iterations per level).
    """

    def __init__(self, metric: SimilarityMetric, level_iters: Any = None, step_length: float = 0.25,
                 ss_sigma_factor: float = 0.2, opt_tol: float = 1e-5, inv_iter: int = 20,
                 inv_tol: float = 1e-3, callback: Optional[Callable[..., Any]] = None, *,
                 threads: int = 0, field_spacing: int = 1) -> None:
        if not isinstance(metric, SimilarityMetric):
            raise TypeError(f"metric must be CCMetric, SSDMetric, EMMetric or ParzenMIMetric, got "
                            f"{type(metric).__name__}")
        self.metric = metric
        self.set_level_iters([100, 100, 25] if level_iters is None else level_iters)
        self.step_length = as_float(step_length, "step_length")
        if not self.step_length > 0:
            raise ValueError(f"step_length must be > 0, got {step_length}")
        self.ss_sigma_factor = as_float(ss_sigma_factor, "ss_sigma_factor")
        if self.ss_sigma_factor < 0:
            raise ValueError(f"ss_sigma_factor must be >= 0, got {ss_sigma_factor}")
        self.opt_tol = as_float(opt_tol, "opt_tol")
        self.inv_iter = as_int(inv_iter, "inv_iter", minimum=0, maximum=1 << 20)
        self.inv_tol = as_float(inv_tol, "inv_tol")
        if self.inv_tol < 0:
            raise ValueError(f"inv_tol must be >= 0, got {inv_tol}")
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable or None")
        self.callback = callback
        self.threads = as_int(threads, "threads", minimum=0, maximum=4096)
        self.field_spacing = as_int(field_spacing, "field_spacing", minimum=1, maximum=4)
        if self.field_spacing > 1 and not metric.smoothed_steps:
            raise ValueError(f"field_spacing={self.field_spacing} needs a metric with smoothed steps "
                             f"(CCMetric or ParzenMIMetric), not {type(metric).__name__}; use field_spacing=1")
        self.energy_window = ENERGY_WINDOW
        self.energy_list: list[float] = []
        self.full_energy_profile: list[float] = []
        self.levels_report: list[SynLevelReport] = []
        self.dim = metric.dim
        self.verbosity = 1
        self._warped: Optional[tuple[np.ndarray, np.ndarray]] = None
        self._inv_work: Optional[np.ndarray] = None  # the inversions' residual, reused

    def set_level_iters(self, level_iters: Any) -> None:
        """Iterations per level, coarsest first; the list's length sets the number of levels."""
        try:
            values = list(level_iters)
        except TypeError:
            raise TypeError(f"level_iters must be a sequence of integers, got {level_iters!r}") from None
        if not values:
            raise ValueError("level_iters cannot be empty: give one iteration count per level, "
                             "coarsest first (e.g. [100, 100, 25])")
        self.level_iters = [as_int(v, "level_iters", minimum=0, maximum=1 << 30) for v in values]
        self.levels = len(self.level_iters)

    # ------------------------------------------------------------------ optimisation
    def _stage(self, stage: RegistrationStages) -> None:
        if self.callback is not None:
            self.callback(self, stage)

    def _init_optimizer(self, static: np.ndarray, moving: np.ndarray, static_grid2world: Any,
                        moving_grid2world: Any, prealign: Any) -> None:
        d = self.dim
        static_direction, static_spacing = get_direction_and_spacings(static_grid2world, d)
        _, moving_spacing = get_direction_and_spacings(moving_grid2world, d)
        self.static_direction = np.eye(d + 1)
        self.static_direction[:d, :d] = static_direction
        mask0 = bool(getattr(self.metric, "mask0", False))
        self.moving_ss = ScaleSpace(moving, self.levels, moving_grid2world, moving_spacing,
                                    self.ss_sigma_factor, mask0, threads=self.threads)
        self.static_ss = ScaleSpace(static, self.levels, static_grid2world, static_spacing,
                                    self.ss_sigma_factor, mask0, threads=self.threads)
        coarsest = self.static_ss.get_domain_shape(self.levels - 1)
        if min(coarsest) < 2:
            raise ValueError(f"{self.levels} levels shrink the static image {static.shape} to "
                             f"{coarsest} at the coarsest level; use fewer levels (shorter level_iters)")
        disp_shape, disp_g2w = self._field_grid(self.levels - 1)
        self.static_to_ref = DiffeomorphicMap(d, disp_shape, disp_g2w, static.shape, static_grid2world,
                                              static.shape, static_grid2world, None)
        self.static_to_ref.allocate()
        prealign_inv = None if prealign is None else np.linalg.inv(prealign)
        self.moving_to_ref = DiffeomorphicMap(d, disp_shape, disp_g2w, moving.shape, moving_grid2world,
                                              static.shape, static_grid2world, prealign_inv)
        self.moving_to_ref.allocate()
        for m in (self.static_to_ref, self.moving_to_ref):
            m.threads = self.threads
            # Their images are the scale spaces' levels, checked once on the way in (no NaN/inf).
            m._trusted_inputs = True
        self.metric.threads = self.threads
        self.metric.set_field_grid(self.field_spacing)

    def _level_grid(self, level: int) -> tuple[tuple[int, ...], np.ndarray]:
        """(shape, grid2world) of the static image's grid at ``level``."""
        shape = tuple(int(n) for n in self.static_ss.get_domain_shape(level))
        g2w = self.static_ss.get_affine(level)
        return shape, np.eye(self.dim + 1) if g2w is None else np.asarray(g2w, dtype=np.float64)

    def _field_grid(self, level: int) -> tuple[tuple[int, ...], np.ndarray]:
        """(shape, grid2world) of the fields at ``level``: every ``field_spacing``-th voxel."""
        shape, g2w = self._level_grid(level)
        f = self.field_spacing
        if f == 1:
            return shape, g2w
        return coarse_grid_shape(shape, f), g2w @ np.diag([float(f)] * self.dim + [1.0])

    def _field_world2grid(self, level: int) -> np.ndarray:
        """The fields' world-to-grid at ``level`` (the scale space's own inverse on the grid)."""
        if self.field_spacing == 1:
            w2g = self.static_ss.get_affine_inv(level)
            return np.eye(self.dim + 1) if w2g is None else w2g
        return np.linalg.inv(self._field_grid(level)[1])

    def _to_static_grid(self) -> None:
        """Coarse fields (``field_spacing`` > 1) back on the finest level's grid: the forward
        fields up-sampled, each backward field its inverse (warm-started from its own
        up-sampled self)."""
        if self.field_spacing == 1:
            return
        shape, g2w = self._level_grid(0)
        w2g = np.linalg.inv(g2w)
        sp = np.ascontiguousarray(self.static_ss.get_spacing(0), dtype=np.float64)
        f = self.field_spacing
        for m in (self.static_to_ref, self.moving_to_ref):
            forward = _core.upsample_field(m._field("forward"), f, list(shape), threads=self.threads)
            backward = _core.upsample_field(m._field("backward"), f, list(shape), threads=self.threads)
            _core.invert_field(forward, w2g, sp, self.inv_iter, self.inv_tol, out=backward, threads=self.threads)
            m.forward, m.backward = forward, backward
            m.disp_shape, m.disp_grid2world, m.disp_world2grid = shape, g2w, w2g

    def _update(self, model: DiffeomorphicMap, step: np.ndarray, spacing: np.ndarray,
                world2grid: np.ndarray) -> None:
        step = np.ascontiguousarray(step, dtype=np.float32)
        if not step.flags.writeable or not step.flags.owndata:
            step = step.copy()
        _core.normalize_step(step, np.ascontiguousarray(spacing, dtype=np.float64), threads=self.threads)
        assert model.forward is not None
        # DIPY's update reads no statistics of the composition: not made (a sixth of the pass).
        _core.compose_fields(model.forward, step, np.eye(self.dim + 1), world2grid, self.step_length,
                             out=model.forward, stats=False, threads=self.threads)

    def _inversion_work(self, field: np.ndarray) -> np.ndarray:
        """The inversions' residual buffer, kept while the field grid stays the same."""
        if self._inv_work is None or self._inv_work.shape != field.shape:
            self._inv_work = np.empty(field.shape, np.float32)
        return self._inv_work

    def _invert(self, model: DiffeomorphicMap, world2grid: np.ndarray, spacing: np.ndarray) -> None:
        """backward <- inverse of forward, in place (the current backward is the start)."""
        sp = np.ascontiguousarray(spacing, dtype=np.float64)
        forward = model._field("forward")
        _core.invert_field(forward, world2grid, sp, self.inv_iter, self.inv_tol, out=model._field("backward"),
                           work=self._inversion_work(forward), threads=self.threads)

    def _invert_back(self, model: DiffeomorphicMap, world2grid: np.ndarray, spacing: np.ndarray) -> None:
        """forward <- inverse of backward, in place."""
        sp = np.ascontiguousarray(spacing, dtype=np.float64)
        backward = model._field("backward")
        _core.invert_field(backward, world2grid, sp, self.inv_iter, self.inv_tol, out=model._field("forward"),
                           work=self._inversion_work(backward), threads=self.threads)

    def _iterate(self) -> float:
        lev = self.current_level
        shape = self.static_ss.get_domain_shape(lev)
        g2w = self.static_ss.get_affine(lev)
        w2g = self._field_world2grid(lev)
        # Step lengths and inversion residuals are measured in voxels of the level's grid.
        spacing = self.static_ss.get_spacing(lev)
        current_static = self.static_ss.get_image(lev)
        current_moving = self.moving_ss.get_image(lev)
        # The two warped images go into buffers kept for the level (no new arrays per iteration).
        if self._warped is None or self._warped[0].shape != tuple(shape):
            self._warped = (np.empty(tuple(shape), np.float32), np.empty(tuple(shape), np.float32))
        # With coarse fields (field_spacing > 1) the core's warp up-samples each field row as it
        # goes (upsample_field's values, no full-grid field in memory).
        wstatic = self.static_to_ref.transform_inverse(current_static, "linear", None, shape, g2w,
                                                       out=self._warped[0])
        wmoving = self.moving_to_ref.transform_inverse(current_moving, "linear", None, shape, g2w,
                                                       out=self._warped[1])
        metric = self.metric
        metric.set_moving_image(wmoving, g2w, spacing, self.static_direction)
        metric.use_moving_image_dynamics(current_moving, self.moving_to_ref.inverse())
        metric.set_static_image(wstatic, g2w, spacing, self.static_direction)
        metric.use_static_image_dynamics(current_static, self.static_to_ref.inverse())
        metric.initialize_iteration()
        self._stage(RegistrationStages.ITER_START)
        self._update(self.static_to_ref, metric.compute_forward(), spacing, w2g)
        fw_energy = metric.get_energy()
        self._update(self.moving_to_ref, metric.compute_backward(), spacing, w2g)
        bw_energy = metric.get_energy()
        der = _energy_slope(self.energy_list) if len(self.energy_list) >= self.energy_window else np.inf
        self.energy_list.append(fw_energy + bw_energy)
        for model in (self.static_to_ref, self.moving_to_ref):
            self._invert(model, w2g, spacing)
        for model in (self.static_to_ref, self.moving_to_ref):
            self._invert_back(model, w2g, spacing)
        self._stage(RegistrationStages.ITER_END)
        metric.free_iteration()
        return der

    def _optimize(self) -> None:
        self.full_energy_profile = []
        self.levels_report = []
        self._stage(RegistrationStages.OPT_START)
        for level in range(self.levels - 1, -1, -1):
            t0 = time.perf_counter()
            self.current_level = level
            self.metric.set_levels_below(self.levels - level)
            self.metric.set_levels_above(level)
            if level < self.levels - 1:
                # Both levels' fields sit on every field_spacing-th voxel: the levels' ratio.
                factors = self.static_ss.get_expand_factors(level + 1, level)
                new_shape, _ = self._field_grid(level)
                self.static_to_ref.expand_fields(factors, new_shape)
                self.moving_to_ref.expand_fields(factors, new_shape)
            self.niter = 0
            self.energy_list = []
            derivative = np.inf
            self._stage(RegistrationStages.SCALE_START)
            limit = self.level_iters[self.levels - 1 - level]
            while self.niter < limit and self.opt_tol < derivative:
                derivative = self._iterate()
                self.niter += 1
            self.full_energy_profile.extend(self.energy_list)
            report = SynLevelReport(level, tuple(self.static_ss.get_domain_shape(level)), self.niter,
                                    time.perf_counter() - t0,
                                    self.energy_list[-1] if self.energy_list else float("nan"),
                                    self.niter < limit)
            self.levels_report.append(report)
            if self.verbosity >= 1:
                log.info("SyN level %d %s: %d iterations, %.3f s, energy %.6g", level, report.shape,
                         report.iterations, report.seconds, report.energy)
            self._stage(RegistrationStages.SCALE_END)
        # The loop's buffers go before the fields come back to the full grid (peak memory).
        self._warped = self._inv_work = None
        self.metric._buffers = self.metric._coarse_buffers = None
        self._to_static_grid()
        self.static_to_moving = self.moving_to_ref.warp_endomorphism(self.static_to_ref.inverse()).inverse()
        for m in (self.static_to_moving, self.static_to_ref, self.moving_to_ref):
            m._trusted_inputs = False  # the user's images are checked again
        self._stage(RegistrationStages.OPT_END)

    def optimize(self, static: Any, moving: Any, static_grid2world: Any = None, moving_grid2world: Any = None,
                 prealign: Any = None) -> DiffeomorphicMap:
        """Register ``moving`` to ``static``.

        Parameters
        ----------
        static, moving : array_like, 2-D or 3-D, of the metric's dimension
            The images (array axis order); the fields live on ``static``'s grid. NaN/inf and
            constant images are refused; the caller's arrays are not modified.
        static_grid2world, moving_grid2world : array_like, optional
            Their ``(d + 1, d + 1)`` grid-to-world matrices (None: identity).
        prealign : array_like, optional
            Affine from static world to moving world applied first (e.g. ``AffineMap.affine``
            of an affine registration).

        Returns
        -------
        DiffeomorphicMap
            ``transform(moving)`` resamples moving onto the static grid;
            ``transform_inverse(static)`` static onto the moving grid.
        """
        s, m = _checks.volume_pair(static, moving)
        if s.ndim != self.dim:
            raise ValueError(f"the metric is {self.dim}-D but the images are {s.ndim}-D; make the metric "
                             f"with dim={s.ndim}")
        sg = None if static_grid2world is None else _checks.grid2world(static_grid2world, self.dim,
                                                                       "static_grid2world")
        mg = None if moving_grid2world is None else _checks.grid2world(moving_grid2world, self.dim,
                                                                       "moving_grid2world")
        pre = None if prealign is None else _checks.affine(prealign, self.dim, "prealign")
        self._stage(RegistrationStages.INIT_START)
        self._init_optimizer(s, m, sg, mg, pre)
        self._stage(RegistrationStages.INIT_END)
        self._warped = None
        self.metric._reuse_buffers = True
        try:
            self._optimize()
        finally:
            self.metric._reuse_buffers = False
            self.metric._buffers = None
            self.metric.set_field_grid(1)
            self._warped = self._inv_work = None
            del self.moving_ss
            del self.static_ss
        return self.static_to_moving

    def get_map(self) -> DiffeomorphicMap:
        """The map from the last ``optimize``."""
        if not hasattr(self, "static_to_moving"):
            raise ValueError("no map yet: call optimize() first")
        return self.static_to_moving

    def get_intermediate_maps(self) -> tuple[DiffeomorphicMap, DiffeomorphicMap]:
        """``(static_to_ref, moving_to_ref)``: the two half maps to the midway reference."""
        if not hasattr(self, "static_to_ref"):
            raise ValueError("no maps yet: call optimize() first")
        return self.static_to_ref, self.moving_to_ref

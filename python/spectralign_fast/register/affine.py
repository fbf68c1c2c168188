"""Intensity-based affine registration in 2-D and 3-D: DIPY's ``AffineRegistration``.

Conventions (DIPY's): images in array axis order; ``grid2world`` maps a homogeneous array index
to world (identity when None: world = array index); the resulting affine maps STATIC world
points to MOVING world points, and ``AffineMap.transform(moving)`` resamples the moving image
onto the static grid.

How it runs: a Gaussian scale space per image (levels coarse to fine, DIPY's ``factors`` and
``sigmas``); at each level both images are smoothed and subsampled (DIPY keeps the moving image
at full resolution; a subsampled one gives the same optimum at a coarse level, which only has
to bring the next level into its basin, and stays in cache), and scipy's L-BFGS-B minimises the metric's distance over the
transform's parameters. The metric and its analytic gradient run in the C++ core; the
optimiser's own work per iteration is a few small matrix products in Python.

Two things differ from DIPY inside the optimiser and neither changes what parameters mean:
the transform is applied about the centre of the static image (mapped by the current
``starting_affine``) and each parameter is scaled so that a unit step moves the image by about
one voxel of the current level. The result is converted back to DIPY's parameters about the
world origin. This is what lets rotations, scales and shears converge as reliably as shifts.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy import optimize as _optimize

from .._validate import as_float, as_int, real_array
from . import _checks
from .affine_map import AffineMap, transform_centers_of_mass, transform_geometric_centers, transform_origins
from .metrics import Metric, MutualInformationMetric
from .parametric import Transform
from .scalespace import Level
from .scalespace import level as _level
from .scalespace import spacing as _spacing

__all__ = ["AffineRegistration", "LevelReport", "VerbosityLevels"]

log = logging.getLogger("spectralign_fast.register")

_METHODS = ("L-BFGS-B", "CG", "BFGS", "Powell", "Nelder-Mead", "TNC", "SLSQP")


class VerbosityLevels:
    """DIPY's verbosity levels: messages go to the ``spectralign_fast.register`` logger."""
    NONE, STATUS, DIAGNOSE, DEBUG = 0, 1, 2, 3


@dataclass(frozen=True)
class LevelReport:
    """What one resolution level of one ``optimize`` call did."""
    level: int                 # 0 = finest
    factors: tuple[int, ...]   # shrink factor per axis of the static image
    sigma: float               # smoothing, voxels of the full-resolution grid
    static_shape: tuple[int, ...]
    evaluations: int           # metric evaluations (value and gradient together)
    iterations: int            # optimiser iterations
    seconds: float             # wall time of the level
    metric_seconds: float      # of which inside the metric (C++)
    distance: float            # the metric's distance at the level's end
    message: str               # the optimiser's termination message


def _sequence(values: Any, name: str, kind: Callable[[Any, str], Any]) -> list[Any]:
    seq = list(np.asarray(values, dtype=object).ravel())
    if not seq:
        raise ValueError(f"{name} cannot be empty")
    return [kind(v, f"{name}[{i}]") for i, v in enumerate(seq)]


def _translation_slots(transform: Transform) -> list[int]:
    return [k for k, kind in enumerate(transform.parameter_kinds) if kind == "translation"]


class _LevelObjective:
    """The metric's distance as a function of scaled, centred parameters ``z`` (see module doc)."""

    def __init__(self, metric: Metric, transform: Transform, start: np.ndarray, centre: np.ndarray,
                 unit: np.ndarray) -> None:
        self.metric, self.transform, self.start, self.unit = metric, transform, start, unit
        d = transform.dim
        self.slots = _translation_slots(transform)
        if not self.slots:  # a family without translation cannot be centred (rotation about 0)
            centre = np.zeros(d)
        self.c = np.eye(d + 1)
        self.c[:d, d] = centre
        self.c_inv = np.eye(d + 1)
        self.c_inv[:d, d] = -centre
        self.evaluations = 0
        self.metric_seconds = 0.0

    def world(self, z: np.ndarray) -> np.ndarray:
        return self.c @ self.transform.param_to_matrix(z * self.unit) @ self.c_inv @ self.start

    def __call__(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        q = z * self.unit
        affine = self.c @ self.transform.param_to_matrix(q) @ self.c_inv @ self.start
        jac = self.c @ self.transform.matrix_jacobian(q) @ self.c_inv @ self.start
        t0 = time.perf_counter()
        value, grad = self.metric.evaluate_affine(affine, jac)
        self.metric_seconds += time.perf_counter() - t0
        self.evaluations += 1
        assert grad is not None
        return value, grad * self.unit

    def to_centred(self, params: np.ndarray) -> np.ndarray:
        """Origin-frame parameters (about world 0) to centre-frame ones, same matrix."""
        return self._move(params, -1.0)

    def to_origin(self, q: np.ndarray) -> np.ndarray:
        return self._move(q, 1.0)

    def _move(self, params: np.ndarray, sign: float) -> np.ndarray:
        if not self.slots:
            return params.copy()
        d = self.transform.dim
        lin = self.transform.param_to_matrix(params)[:d, :d]
        c = self.c[:d, d]
        out = params.copy()
        # C T C^-1: translation t' + c - L c; its inverse: t - c + L c.
        out[self.slots] = params[self.slots] + sign * (c - lin @ c)
        return out


class AffineRegistration:
    """Multi-resolution intensity-based affine registration (DIPY's ``AffineRegistration``).

    Parameters
    ----------
    metric : Metric, optional
        ``MutualInformationMetric()`` (32 bins, dense) when None; ``CorrelationMetric()`` for
        images of the same modality.
    level_iters : sequence of int, optional
        Most metric evaluations per level, coarsest first (DIPY's ``[10000, 1000, 100]``).
    sigmas : sequence of float, optional
        Gaussian smoothing per level in voxels of the full grid, coarsest first (``[3, 1, 0]``).
    factors : sequence of int, optional
        Shrink factor per level, coarsest first (``[4, 2, 1]``).
    method : str
        ``scipy.optimize.minimize`` method; "L-BFGS-B" (default) or another gradient method.
    ss_sigma_factor : float, optional
        DIPY's anisotropic scale space: when given, level ``i`` (0 = finest) is smoothed with
        ``ss_sigma_factor * 2**i`` voxels and shrunk by ``2**i``, ignoring sigmas/factors.
    options : dict, optional
        Extra options for the optimiser (default ``{"gtol": 1e-4}``, DIPY's).
    verbosity : int
        0 silent; 1 and above log each level to the ``spectralign_fast.register`` logger.
    threads : int
        Worker threads of the metric; 0 (default) uses every core. Results are bit-identical
        for every thread count and run.

    Attributes
    ----------
    levels_report : list of LevelReport
        Filled by each ``optimize`` call: evaluations, iterations and times per level.
    """

    def __init__(self, metric: Metric | None = None, level_iters: Sequence[int] | None = None,
                 sigmas: Sequence[float] | None = None, factors: Sequence[int] | None = None,
                 method: str = "L-BFGS-B", ss_sigma_factor: float | None = None,
                 options: dict[str, Any] | None = None, verbosity: int = VerbosityLevels.STATUS,
                 *, threads: int = 0) -> None:
        if metric is None:
            metric = MutualInformationMetric()
        if not isinstance(metric, Metric):
            raise TypeError(f"metric must be MutualInformationMetric or CorrelationMetric, got "
                            f"{type(metric).__name__}")
        self.metric = metric
        iters = _sequence([10000, 1000, 100] if level_iters is None else level_iters, "level_iters",
                          lambda v, n: as_int(v, n, minimum=0, maximum=10**7))
        self.level_iters = iters
        self.levels = len(iters)
        if ss_sigma_factor is not None:
            sf = as_float(ss_sigma_factor, "ss_sigma_factor")
            if sf < 0:
                raise ValueError(f"ss_sigma_factor must be non-negative, got {sf}")
            self.factors = [2 ** i for i in range(self.levels - 1, -1, -1)]
            self.sigmas = [sf * 2 ** i if i else 0.0 for i in range(self.levels - 1, -1, -1)]
        else:
            self.factors = _sequence([4, 2, 1] if factors is None else factors, "factors",
                                     lambda v, n: as_int(v, n, minimum=1, maximum=1024))
            self.sigmas = _sequence([3, 1, 0] if sigmas is None else sigmas, "sigmas",
                                    lambda v, n: as_float(v, n))
            if any(s < 0 for s in self.sigmas):
                raise ValueError(f"sigmas must be non-negative, got {self.sigmas}")
        if not len(self.factors) == len(self.sigmas) == self.levels:
            raise ValueError(f"level_iters, sigmas and factors must have the same length, got "
                             f"{self.levels}, {len(self.sigmas)} and {len(self.factors)}")
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        self.method = method
        self.options = dict(options) if options is not None else None
        self.verbosity = as_int(verbosity, "verbosity", minimum=0, maximum=3)
        self.threads = as_int(threads, "threads", minimum=0)
        self.levels_report: list[LevelReport] = []
        # Set by register_affine around its chain, whose stages share one pair of images:
        # each (image, factor, sigma) level is then smoothed once, not once per stage.
        self._level_cache: dict[tuple[str, int, float], Level] | None = None
        # Levels this registration leaves out below its finest (register_affine's intermediate
        # stages): reports then number levels as the full chain does (0 = full resolution).
        self._levels_below = 0

    def _level(self, which: str, image: np.ndarray, g2w: np.ndarray, factor: int, sigma: float) -> Level:
        if self._level_cache is None:
            return _level(image, g2w, factor, sigma, threads=self.threads)
        key = (which, factor, sigma)
        if key not in self._level_cache:
            self._level_cache[key] = _level(image, g2w, factor, sigma, threads=self.threads)
        return self._level_cache[key]

    def _starting_affine(self, starting_affine: Any, static: np.ndarray, gs: np.ndarray,
                         moving: np.ndarray, gm: np.ndarray, smask: np.ndarray | None,
                         mmask: np.ndarray | None) -> np.ndarray:
        d = static.ndim
        if starting_affine is None:
            return np.eye(d + 1)
        if isinstance(starting_affine, str):
            if starting_affine == "mass":
                s = static if smask is None else static * smask
                m = moving if mmask is None else moving * mmask
                return transform_centers_of_mass(s, gs, m, gm).get_affine()
            if starting_affine == "centers":
                return transform_geometric_centers(static, gs, moving, gm).get_affine()
            if starting_affine == "voxel-origin":
                return transform_origins(static, gs, moving, gm).get_affine()
            raise ValueError(f"starting_affine must be 'mass', 'centers', 'voxel-origin', a matrix "
                             f"or None, got {starting_affine!r}")
        return _checks.affine(starting_affine, d, "starting_affine")

    def optimize(self, static: Any, moving: Any, transform: Transform, params0: Any,
                 static_grid2world: Any = None, moving_grid2world: Any = None,
                 starting_affine: Any = None, ret_metric: bool = False, static_mask: Any = None,
                 moving_mask: Any = None, *, callback: Callable[[int, int], None] | None = None
                 ) -> Any:
        """Register ``moving`` to ``static``.

        Parameters
        ----------
        static, moving : numpy.ndarray
            2-D images or 3-D volumes (array axis order), any real dtype, shapes may differ.
            Copied once to float32; the caller's arrays are never modified.
        transform : Transform
            The family to search (e.g. ``AffineTransform3D()``).
        params0 : array_like or None
            Starting parameters in DIPY's order (None: identity), applied after
            ``starting_affine``.
        static_grid2world, moving_grid2world : array_like, optional
            ``(d + 1, d + 1)`` grid-to-world matrices (identity when None).
        starting_affine : array_like or {"mass", "centers", "voxel-origin"}, optional
            Pre-alignment from static world to moving world.
        ret_metric : bool
            Also return the final level's optimal parameters (DIPY's order, about the world
            origin, relative to the starting affine of that level) and distance.
        static_mask, moving_mask : array_like, optional
            Nonzero where the voxels count.
        callback : callable, optional
            ``callback(level, evaluations)`` after every metric evaluation (progress bars).

        Returns
        -------
        AffineMap, or (AffineMap, xopt, fopt) when ``ret_metric``.
        """
        if not isinstance(transform, Transform):
            raise TypeError(f"transform must be one of the transforms in spectralign_fast.register, "
                            f"got {type(transform).__name__}")
        s, m = _checks.volume_pair(static, moving, transform)
        d = s.ndim
        gs = _checks.grid2world(static_grid2world, d, "static_grid2world")
        gm = _checks.grid2world(moving_grid2world, d, "moving_grid2world")
        smask = _checks.mask(static_mask, s.shape, "static_mask")
        mmask = _checks.mask(moving_mask, m.shape, "moving_mask")
        start = self._starting_affine(starting_affine, s, gs, m, gm, smask, mmask)
        if params0 is None:
            params = transform.get_identity_parameters()
        else:
            params = real_array(params0, "params0")
            if params.shape != (transform.number_of_parameters,):
                raise ValueError(f"params0 must hold {transform.number_of_parameters} values for "
                                 f"{type(transform).__name__}, got shape {params.shape}")
            if not np.isfinite(params).all():
                raise ValueError("params0 must be finite")
        self.levels_report = []
        xopt, fopt = params, float("nan")
        for li in range(self.levels):
            level_index = self.levels - 1 - li + self._levels_below
            start, xopt, fopt = self._optimize_level(
                li, level_index, s, m, gs, gm, smask, mmask, transform, params, start, callback)
            params = transform.get_identity_parameters()
        result = AffineMap(start, s.shape, gs, m.shape, gm)
        if ret_metric:
            return result, xopt, fopt
        return result

    def _optimize_level(self, li: int, level_index: int, s: np.ndarray, m: np.ndarray,
                        gs: np.ndarray, gm: np.ndarray, smask: np.ndarray | None,
                        mmask: np.ndarray | None, transform: Transform, params: np.ndarray,
                        start: np.ndarray, callback: Callable[[int, int], None] | None
                        ) -> tuple[np.ndarray, np.ndarray, float]:
        t0 = time.perf_counter()
        d = s.ndim
        factor, sigma, max_iter = self.factors[li], self.sigmas[li], self.level_iters[li]
        lev = self._level("static", s, gs, factor, sigma)
        mlev = self._level("moving", m, gm, factor, sigma)
        lmask = None
        if smask is not None:
            index = tuple(slice(0, (n // f) * f, f) for n, f in zip(s.shape, lev.factors))
            lmask = np.ascontiguousarray(smask[index])
            if not lmask.any():
                lmask = None
        mlmask = None
        if mmask is not None:
            index = tuple(slice(0, (n // f) * f, f) for n, f in zip(m.shape, mlev.factors))
            mlmask = np.ascontiguousarray(mmask[index])
            if not mlmask.any():
                mlmask = None
        self.metric.setup(transform, lev.image, mlev.image, lev.grid2world, mlev.grid2world, None, lmask,
                          mlmask, threads=self.threads)
        # Centre: the static grid's centre, carried into moving world by the start; units: one
        # voxel of this level for translations, one voxel at the image's radius otherwise.
        centre_index = (np.array(s.shape, dtype=np.float64) - 1.0) / 2.0
        centre = (start @ gs @ np.append(centre_index, 1.0))[:d]
        step = float(np.mean(_spacing(lev.grid2world)))
        corners = np.array(np.meshgrid(*[[0.0, n - 1.0] for n in s.shape], indexing="ij")).reshape(d, -1).T
        radius = float(np.max(np.linalg.norm(
            (np.c_[corners, np.ones(len(corners))] @ gs.T)[:, :d] - (gs @ np.append(centre_index, 1))[:d],
            axis=1)))
        unit = np.array([step if k == "translation" else step / max(radius, step)
                         for k in transform.parameter_kinds])
        objective = _LevelObjective(self.metric, transform, start, centre, unit)
        z0 = objective.to_centred(params) / unit
        # The start itself (params relative to identity in the centred frame) is exact.
        z0 = np.where(np.isfinite(z0), z0, 0.0)

        def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
            out = objective(z)
            if callback is not None:
                callback(level_index, objective.evaluations)
            return out

        options = {"gtol": 1e-4, "ftol": 1e-6} if self.options is None else dict(self.options)
        if self.method == "L-BFGS-B":
            options["maxfun"] = max(max_iter, 1)
        else:
            options["maxiter"] = max(max_iter, 1)
        if max_iter == 0:
            z, fval, nit, message = z0, fun(z0)[0], 0, "no iterations requested"
        else:
            res = _optimize.minimize(fun, z0, jac=True, method=self.method, options=options)
            z, fval, nit, message = res.x, float(res.fun), int(getattr(res, "nit", 0)), str(res.message)
        new_start = objective.world(z)
        xopt = objective.to_origin(z * unit)
        report = LevelReport(level_index, lev.factors, sigma, lev.image.shape, objective.evaluations, nit,
                             time.perf_counter() - t0, objective.metric_seconds, fval, message)
        self.levels_report.append(report)
        if self.verbosity >= VerbosityLevels.STATUS:
            log.info("level %d (shrink %s, sigma %g): %d evaluations, %.3f s, distance %.6f",
                     level_index, lev.factors, sigma, report.evaluations, report.seconds, fval)
        return new_start, xopt, fval

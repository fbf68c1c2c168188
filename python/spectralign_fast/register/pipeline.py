"""``register_affine``: the usual chain in one call (start, translation, rigid, then the model).

Conventions (DIPY's): images in array axis order; ``grid2world`` maps a homogeneous array index
to world (identity when None); the resulting affine maps STATIC world points to MOVING world
points, and ``result.transform(moving)`` resamples the moving image onto the static grid.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from .._validate import as_int
from . import _checks
from .affine import AffineRegistration, LevelReport
from .affine_map import AffineMap, transform_centers_of_mass, transform_geometric_centers
from .initialise import initial_affine
from .metrics import CorrelationMetric, Metric, MutualInformationMetric
from .parametric import transform_for

__all__ = ["register_affine", "AffineResult", "StageReport", "MODELS", "METRICS"]

MODELS = ("translation", "rigid", "similarity", "rigid_scaling", "affine")
METRICS = ("mi", "cc")
_CHAIN = {"translation": ("translation",), "rigid": ("translation", "rigid"),
          "similarity": ("translation", "rigid", "similarity"),
          "rigid_scaling": ("translation", "rigid", "rigid_scaling"),
          "affine": ("translation", "rigid", "affine")}


@dataclass(frozen=True)
class StageReport:
    """One stage of the chain: the model it fitted and its levels."""
    model: str
    levels: tuple[LevelReport, ...]
    seconds: float

    @property
    def evaluations(self) -> int:
        """Metric evaluations over all levels."""
        return sum(lv.evaluations for lv in self.levels)


@dataclass(frozen=True)
class AffineResult:
    """The outcome of ``register_affine``.

    ``affine`` maps static world points to moving world points; ``affine_map`` carries the
    grids, so ``transform(moving)`` resamples the moving image onto the static grid.
    """
    affine_map: AffineMap
    initial: np.ndarray        # the starting affine the chain began from
    initial_method: str        # how it was found
    distance: float            # final metric distance (-MI or -correlation)
    stages: tuple[StageReport, ...]
    seconds: float

    @property
    def affine(self) -> np.ndarray:
        """The ``(d + 1, d + 1)`` static-world-to-moving-world matrix (a copy)."""
        return self.affine_map.get_affine()

    @property
    def evaluations(self) -> int:
        """Metric evaluations over the whole chain."""
        return sum(s.evaluations for s in self.stages)

    def transform(self, moving: Any, interpolation: str = "linear", *, threads: int = 0) -> np.ndarray:
        """``moving`` resampled onto the static grid (float32 for linear interpolation)."""
        return self.affine_map.transform(moving, interpolation, threads=threads)


def _metric(metric: Any, nbins: int, sampling_proportion: float | None) -> Metric:
    if isinstance(metric, Metric):
        return metric
    if metric == "mi":
        return MutualInformationMetric(nbins, sampling_proportion)
    if metric == "cc":
        return CorrelationMetric(sampling_proportion)
    raise ValueError(f"metric must be one of {METRICS} or a metric object, got {metric!r}")


def _initial(initial: Any, model: str, static: np.ndarray, gs: np.ndarray, moving: np.ndarray,
             gm: np.ndarray, smask: np.ndarray | None, mmask: np.ndarray | None,
             threads: int) -> tuple[np.ndarray, str]:
    d = static.ndim
    if isinstance(initial, str):
        if initial == "auto":
            found = initial_affine(static, moving, static_grid2world=gs, moving_grid2world=gm,
                                   model="affine" if model == "rigid_scaling" else model,
                                   static_mask=smask, moving_mask=mmask, threads=threads)
            return np.array(found.affine), f"initial_affine: {found.method}"
        if initial == "mass":
            s = static if smask is None else static * smask
            m = moving if mmask is None else moving * mmask
            return transform_centers_of_mass(s, gs, m, gm).get_affine(), "centres of mass"
        if initial == "centers":
            return transform_geometric_centers(static, gs, moving, gm).get_affine(), "grid centres"
        if initial == "none":
            return np.eye(d + 1), "identity"
        raise ValueError(f"initial must be 'auto', 'mass', 'centers', 'none' or a matrix, got {initial!r}")
    return _checks.affine(initial, d, "initial"), "given"


def register_affine(static: Any, moving: Any, *, model: str = "affine", metric: Any = "mi",
                    static_grid2world: Any = None, moving_grid2world: Any = None,
                    static_mask: Any = None, moving_mask: Any = None, initial: Any = "auto",
                    level_iters: Sequence[int] | None = None, sigmas: Sequence[float] | None = None,
                    factors: Sequence[int] | None = None, nbins: int = 32,
                    sampling_proportion: float | None = None, stage_levels: str = "coarse",
                    threads: int = 0, progress: bool = False) -> AffineResult:
    """Register ``moving`` to ``static`` with an affine (or simpler) map, in one call.

    Runs DIPY's usual chain: a starting alignment, then translation, rigid and finally
    ``model``, each stage starting from the previous one, each multi-resolution. By default
    the intermediate stages stop one level short of full resolution, where the final stage
    refines every parameter they have (``stage_levels``).

    Parameters
    ----------
    static, moving : numpy.ndarray
        2-D images or 3-D volumes (array axis order), any real dtype; shapes may differ.
        The caller's arrays are never modified.
    model : {"translation", "rigid", "similarity", "rigid_scaling", "affine"}
        The final transform family.
    metric : {"mi", "cc"} or Metric
        Mutual information (any modality; default) or correlation (same modality).
    static_grid2world, moving_grid2world : array_like, optional
        ``(d + 1, d + 1)`` grid-to-world matrices (NIfTI affines; identity when None).
    static_mask, moving_mask : array_like, optional
        Nonzero where voxels count.
    initial : {"auto", "mass", "centers", "none"} or array_like
        The starting affine. "auto" (default): the global initialiser ``initial_affine``
        (Fourier-Mellin, principal axes and an angle sweep scored by mutual information on
        coarse copies), which finds large rotations (90 and 180 degrees included), scale and
        translation without ``params0``. "mass": DIPY's centres of mass; "centers": the grid
        centres; "none": the identity; a matrix is used as given.
    level_iters, sigmas, factors : sequence, optional
        Multi-resolution settings, coarsest first (DIPY's defaults ``[10000, 1000, 100]``,
        ``[3, 1, 0]``, ``[4, 2, 1]``).
    nbins, sampling_proportion : optional
        Mutual information's settings.
    stage_levels : {"coarse", "all"}
        "coarse" (default): the intermediate stages (translation, rigid) run every level but
        the finest; the final ``model`` runs them all. With one level, every stage runs it.
        Their finest-level work is repeated by the final stage, which starts from them and
        frees every parameter they fitted: on the benchmark's photographs and 2 mm brain this
        halves the full-resolution evaluations at the same accuracy (``bench/RESULTS.md``).
        "all": every stage runs every level, as DIPY's tutorial does.
    threads : int
        Worker threads (0 = every core). The result is bit-identical for any count.
    progress : bool
        Show a progress bar per stage (tqdm) with the evaluations per level.

    Returns
    -------
    AffineResult
    """
    t0 = time.perf_counter()
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    threads = as_int(threads, "threads", minimum=0)
    met = _metric(metric, nbins, sampling_proportion)
    s, m = _checks.volume_pair(static, moving)
    d = s.ndim
    gs = _checks.grid2world(static_grid2world, d, "static_grid2world")
    gm = _checks.grid2world(moving_grid2world, d, "moving_grid2world")
    smask = _checks.mask(static_mask, s.shape, "static_mask")
    mmask = _checks.mask(moving_mask, m.shape, "moving_mask")
    start, method = _initial(initial, model, s, gs, m, gm, smask, mmask, threads)
    initial_affine = start.copy()
    if stage_levels not in ("coarse", "all"):
        raise ValueError(f"stage_levels must be 'coarse' or 'all', got {stage_levels!r}")
    final = AffineRegistration(met, level_iters, sigmas, factors, verbosity=0, threads=threads)
    intermediate = final
    if stage_levels == "coarse" and final.levels > 1:
        intermediate = AffineRegistration(met, final.level_iters[:-1], final.sigmas[:-1],
                                          final.factors[:-1], verbosity=0, threads=threads)
        intermediate._levels_below = 1
    stages = []
    distance = float("nan")
    chain = _CHAIN[model]
    final._level_cache = intermediate._level_cache = {}
    try:
        for k, stage in enumerate(chain):
            ts = time.perf_counter()
            registration = final if k == len(chain) - 1 else intermediate
            callback, close = _progress_bar(progress, stage, registration.levels)
            try:
                amap, _, distance = registration.optimize(s, m, transform_for(stage, d), None, gs, gm, start,
                                                          True, smask, mmask, callback=callback)
            finally:
                close()
            start = amap.get_affine()
            stages.append(StageReport(stage, tuple(registration.levels_report), time.perf_counter() - ts))
    finally:
        final._level_cache = intermediate._level_cache = None
    result = AffineMap(start, s.shape, gs, m.shape, gm)
    return AffineResult(result, initial_affine, method, float(distance), tuple(stages),
                        time.perf_counter() - t0)


def _progress_bar(enabled: bool, stage: str, levels: int) -> tuple[Any, Any]:
    if not enabled:
        return None, lambda: None
    bar = tqdm(total=levels, desc=f"{stage}", unit="level", leave=True)
    state: dict[str, int | None] = {"level": None}

    def callback(level: int, evaluations: int) -> None:
        if state["level"] is not None and level != state["level"]:
            bar.update(1)
        state["level"] = level
        bar.set_postfix_str(f"level {level}: {evaluations} evaluations")

    def close() -> None:
        if state["level"] is not None:
            bar.update(1)
        bar.close()
    return callback, close

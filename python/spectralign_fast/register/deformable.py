"""``register_syn``: affine registration followed by symmetric diffeomorphic registration, in one call.

Conventions (DIPY's): images in array axis order; ``grid2world`` maps a homogeneous array index
to world (identity when None). The result maps STATIC world points to MOVING world points: a
static point ``x`` goes to ``A @ (x + b(x))``, ``A`` the affine (static to moving world) and ``b``
the displacement field on the static grid (world units, ``result.mapping.get_forward_field()``);
``result.transform(moving)`` resamples the moving image onto the static grid.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
from tqdm.auto import tqdm

from .._validate import as_int
from . import _checks
from .diffeomorphic_map import DiffeomorphicMap
from .pipeline import AffineResult, register_affine
from .syn import RegistrationStages, SymmetricDiffeomorphicRegistration, SynLevelReport
from .syn_metrics import CCMetric, EMMetric, ParzenMIMetric, SimilarityMetric, SSDMetric

__all__ = ["register_syn", "SynResult", "SYN_METRICS"]

SYN_METRICS = ("cc", "mi", "ssd", "em")
# The named metrics whose steps a Gaussian of sigma_diff smooths.
SMOOTHED_STEP_METRICS: dict[str, Union[type[CCMetric], type[ParzenMIMetric]]] = {"cc": CCMetric,
                                                                                   "mi": ParzenMIMetric}

# register_syn's defaults where DIPY's class keeps DIPY's (scale space 0.2, step 0.25, step
# smoothing 2 voxels): measured on photographs and the MNI template with known deformations
# (bench/RESULTS.md, SyN; register_syn's docstring).
SYN_SCALE_SPACE_FACTOR = 0.5
SYN_STEP_LENGTH = 0.15
SYN_SIGMA_DIFF = 5.0
# field_spacing="auto": CC's fields on every second voxel where its steps are smoothed by at
# least this many voxels (a Gaussian of 4 voxels leaves nothing a grid of 2 cannot hold).
SYN_COARSE_FIELD_SIGMA = 4.0


def auto_field_spacing(metric: SimilarityMetric) -> int:
    """``register_syn``'s ``field_spacing="auto"``: 2 for ``CCMetric`` with ``sigma_diff >= 4``
    voxels, else 1. Mutual information keeps 1: on the 2 mm MNI template (bench case, 5-voxel
    bumps) its error went from 0.107 to 0.136 voxel with 2, where CC's went from 0.079 to 0.083
    (and on the 1 mm template from 0.088 down to 0.071)."""
    sigma = float(getattr(metric, "sigma_diff", 0.0))
    return 2 if isinstance(metric, CCMetric) and sigma >= SYN_COARSE_FIELD_SIGMA else 1


@dataclass(frozen=True)
class SynResult:
    """The outcome of ``register_syn``.

    ``mapping`` is the diffeomorphic map (with the affine as its pre-alignment); ``affine`` the
    static-to-moving world affine it starts from; ``affine_result`` the affine stage's report
    (None when the affine was given or skipped).
    """
    mapping: DiffeomorphicMap
    affine: np.ndarray
    affine_result: Optional[AffineResult]
    levels: tuple[SynLevelReport, ...]
    seconds: float
    syn_seconds: float

    def transform(self, moving: Any, interpolation: str = "linear", *, threads: int = 0) -> np.ndarray:
        """``moving`` resampled onto the static grid."""
        return self.mapping.transform(moving, interpolation, threads=threads)

    def transform_inverse(self, static: Any, interpolation: str = "linear", *, threads: int = 0) -> np.ndarray:
        """``static`` resampled onto the moving grid."""
        return self.mapping.transform_inverse(static, interpolation, threads=threads)


def syn_metric(name: Any, dim: int, sigma_diff: Optional[float] = None) -> SimilarityMetric:
    """The SyN metric for a name (``cc``, ``mi``, ``ssd``, ``em``) or a metric object as given.

    ``sigma_diff`` (voxels) smooths the steps of a ``cc`` or ``mi`` metric made here (None: the
    metric class's own default, 2); it cannot be combined with a metric object, ``ssd`` or ``em``.
    """
    if isinstance(name, SimilarityMetric):
        if sigma_diff is not None:
            raise ValueError("sigma_diff applies to a metric given by name; set it on the metric object instead")
        if name.dim != dim:
            raise ValueError(f"the metric is {name.dim}-D but the images are {dim}-D")
        return name
    makers = {"cc": CCMetric, "mi": ParzenMIMetric, "ssd": SSDMetric, "em": EMMetric}
    if name not in makers:
        raise ValueError(f"metric must be one of {SYN_METRICS} or a SimilarityMetric, got {name!r}")
    if sigma_diff is None:
        return makers[name](dim)
    if name not in SMOOTHED_STEP_METRICS:
        raise ValueError(f"sigma_diff applies to the 'cc' and 'mi' metrics, not {name!r} (its smoothing is "
                         f"set on {makers[name].__name__})")
    return SMOOTHED_STEP_METRICS[name](dim, sigma_diff=sigma_diff)


def register_syn(static: Any, moving: Any, *, metric: Any = "cc", static_grid2world: Any = None,
                 moving_grid2world: Any = None, prealign: Any = "affine", affine_metric: str = "mi",
                 level_iters: Any = None, step_length: float = SYN_STEP_LENGTH,
                 ss_sigma_factor: float = SYN_SCALE_SPACE_FACTOR, sigma_diff: Any = "auto",
                 field_spacing: Any = "auto", threads: int = 0, progress: bool = False) -> SynResult:
    """Register ``moving`` to ``static``: an affine first, then SyN.

    Parameters
    ----------
    static, moving : array_like, 2-D or 3-D
        The images, array axis order (any modality pair with ``metric="mi"``).
    metric : {"cc", "mi", "ssd", "em"} or SimilarityMetric
        SyN's metric: local cross-correlation (default; ANTs' and DIPY's usual choice),
        Parzen mutual information (different modalities), SSD, or EM.
    static_grid2world, moving_grid2world : array_like, optional
        Grid-to-world matrices (None: identity).
    prealign : "affine", None or array_like
        ``"affine"`` (default): run ``register_affine`` (model affine, ``affine_metric``) first;
        None: no pre-alignment; a ``(d + 1, d + 1)`` static-to-moving world affine: use it.
    affine_metric : {"mi", "cc"}
        The affine stage's metric.
    level_iters : sequence of int, optional
        SyN iterations per level, coarsest first (default ``[100, 100, 25]``).
    step_length : float
        SyN's step: the longest update vector of an iteration, in voxels of the level's grid
        (default 0.15; DIPY's class defaults to 0.25).
    ss_sigma_factor : float
        SyN's scale-space smoothing: level ``i`` is blurred by ``ss_sigma_factor * (2**i - 1)``
        voxels (default 0.5; DIPY's class defaults to 0.2). The coarse levels then see the
        image's shapes rather than its finest detail: on 18 photograph cases with known
        deformations (6 scikit-image pictures x 3 bump fields of 4-8 px) the median RMS error
        went from 0.48 px at 0.2 to 0.35 px at 0.5 (mean 0.61 to 0.41), and on the 2 mm MNI
        template from 0.185 to 0.177 voxel (``bench/RESULTS.md``, SyN).
    sigma_diff : float, "auto" or None
        Standard deviation (voxels) of the Gaussian that smooths each step of a ``"cc"`` or
        ``"mi"`` metric given by name. ``"auto"`` (default): 5 for those two and the metric's own
        setting for ``"ssd"`` / ``"em"`` / a metric object; None: the metric class's default (2,
        as DIPY). With 5 and a step of 0.15 (against 2 and 0.25, both at the factor 0.5) on 36
        photograph cases with known deformations (bumps 5-60 px wide, 1-8 px long), the median
        RMS error fell from 0.35 to 0.09 px (wide bumps) and from 0.06 to 0.04 px (narrow ones),
        the 2 mm MNI template from 0.177 to 0.079 voxel and the 1 mm one from 0.227 to 0.088, in
        less time (2 mm, two threads: 3.7 -> 2.5 s; the stopping rule ends the finest level
        sooner). A larger value smooths more: it suits smooth deformations (brains, tissue
        sections) and loses detail finer than a few sigma.
    field_spacing : int or "auto"
        Keep SyN's fields on every ``field_spacing``-th voxel of each level
        (``SymmetricDiffeomorphicRegistration``'s option; the result is on the static grid
        either way). ``"auto"`` (default): 2 for local cross-correlation whose steps are smoothed
        by ``sigma_diff >= 4`` voxels (the default ``"cc"``), else 1 (for ``"mi"`` the 2 mm
        template's error rose from 0.107 to 0.136 voxel with 2). With 2, on the bench's cases
        (``bench/RESULTS.md``, SyN): the 2 mm MNI template 0.079 -> 0.083 voxel in 2.1x less
        time, the 1 mm one 0.088 -> 0.071 in 2.3x less, the slide 0.045 -> 0.042 px in 1.6x
        less; over the 36 photograph cases the median 0.092 -> 0.073 px (wide bumps) and 0.041
        either way (narrow ones).
    threads : int
        Threads (0: all cores).
    progress : bool
        Progress bars (affine stages, then one SyN bar per level).

    Returns
    -------
    SynResult
    """
    t0 = time.perf_counter()
    s, m = _checks.volume_pair(static, moving)
    dim = s.ndim
    threads = as_int(threads, "threads", minimum=0, maximum=4096)
    if isinstance(sigma_diff, str):
        if sigma_diff != "auto":
            raise ValueError(f"sigma_diff must be a number, 'auto' or None, got {sigma_diff!r}")
        sigma_diff = SYN_SIGMA_DIFF if isinstance(metric, str) and metric in SMOOTHED_STEP_METRICS else None
    syn_metric_obj = syn_metric(metric, dim, sigma_diff)
    if isinstance(field_spacing, str):
        if field_spacing != "auto":
            raise ValueError(f"field_spacing must be a whole number or 'auto', got {field_spacing!r}")
        field_spacing = auto_field_spacing(syn_metric_obj)
    syn = SymmetricDiffeomorphicRegistration(syn_metric_obj, level_iters, step_length, ss_sigma_factor,
                                             threads=threads, field_spacing=field_spacing)
    affine_result: Optional[AffineResult] = None
    if isinstance(prealign, str):
        if prealign != "affine":
            raise ValueError(f"prealign must be 'affine', None or a matrix, got {prealign!r}")
        affine_result = register_affine(s, m, model="affine", metric=affine_metric,
                                        static_grid2world=static_grid2world,
                                        moving_grid2world=moving_grid2world, threads=threads,
                                        progress=progress)
        affine = affine_result.affine
    elif prealign is None:
        affine = np.eye(dim + 1)
    else:
        affine = _checks.affine(prealign, dim, "prealign")
    bar: Any = None

    def report(reg: SymmetricDiffeomorphicRegistration, stage: RegistrationStages) -> None:
        nonlocal bar
        if stage == RegistrationStages.SCALE_START:
            total = reg.level_iters[reg.levels - 1 - reg.current_level]
            bar = tqdm(total=total, desc=f"SyN level {reg.current_level}", unit="it", leave=False)
        elif stage == RegistrationStages.ITER_END and bar is not None:
            bar.update(1)
        elif stage == RegistrationStages.SCALE_END and bar is not None:
            bar.close()
            bar = None

    if progress:
        syn.callback = report
    t1 = time.perf_counter()
    try:
        mapping = syn.optimize(s, m, static_grid2world, moving_grid2world, affine)
    finally:
        if bar is not None:
            bar.close()
    now = time.perf_counter()
    return SynResult(mapping, affine, affine_result, tuple(syn.levels_report), now - t0, now - t1)

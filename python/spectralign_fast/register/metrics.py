"""Similarity metrics for affine registration: Mattes mutual information and correlation.

Both are computed in the C++ core (``_core.register.MetricCore``), multithreaded with the GIL
released, deterministic to the last bit for any thread count. The gradient is analytic: the
exact derivative of the d-linear interpolant of the moving image, chained through the
transform's parameters, so it agrees with central finite differences.

Conventions (DIPY's): images in array axis order; ``grid2world`` maps a homogeneous array index
to world; the transform's matrix maps STATIC world points to MOVING world points, applied after
``starting_affine`` (current affine = ``transform.param_to_matrix(params) @ starting_affine``).
``distance`` is the quantity minimised: ``-MI`` (nats) or ``-correlation``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._core import register as _register_core
from .._validate import as_float, as_int
from . import _checks
from .parametric import Transform

__all__ = ["MutualInformationMetric", "CorrelationMetric", "Metric"]

# Below this share of the sampled static voxels the overlap is treated as lost: the metric
# returns its worst value (0) instead of a statistic of a handful of voxels.
_MIN_OVERLAP = 0.05


class Metric:
    """Common machinery of the metrics: ``setup`` once per resolution level, then
    ``distance``/``gradient``/``distance_and_gradient`` at parameter vectors (DIPY's interface)."""

    kind = ""

    def __init__(self, sampling_proportion: float | None = None, *, jitter: bool = True,
                 seed: int = 0) -> None:
        if sampling_proportion is not None:
            sampling_proportion = as_float(sampling_proportion, "sampling_proportion")
            if not 0.0 < sampling_proportion <= 1.0:
                raise ValueError(f"sampling_proportion must lie in (0, 1], got {sampling_proportion}")
            if sampling_proportion == 1.0:
                sampling_proportion = None
        self.sampling_proportion = sampling_proportion
        self.seed = as_int(seed, "seed", minimum=0)
        self.jitter = bool(jitter)
        self._core: Any = None
        self.threads = 0

    def _core_kwargs(self, static: np.ndarray, moving: np.ndarray, smask: np.ndarray | None,
                     mmask: np.ndarray | None) -> dict[str, Any]:
        return {}

    def setup(self, transform: Transform, static: Any, moving: Any, static_grid2world: Any = None,
              moving_grid2world: Any = None, starting_affine: Any = None, static_mask: Any = None,
              moving_mask: Any = None, *, threads: int = 0) -> None:
        """Prepare the metric for ``static`` and ``moving`` (arrays of the same dimension, any
        shapes), their grid-to-world matrices and an optional pre-aligning ``starting_affine``
        (static world to moving world). Masks (nonzero = use) have their image's shape. The
        arrays are copied once to float32; the caller's are never modified."""
        if not isinstance(transform, Transform):
            raise TypeError(f"transform must be one of the transforms in "
                            f"spectralign_fast.register, got {type(transform).__name__}")
        s, m = _checks.volume_pair(static, moving, transform)
        d = s.ndim
        self.transform = transform
        self.dim = d
        self.static_grid2world = _checks.grid2world(static_grid2world, d, "static_grid2world")
        self.moving_grid2world = _checks.grid2world(moving_grid2world, d, "moving_grid2world")
        self.moving_world2grid = np.linalg.inv(self.moving_grid2world)
        self.starting_affine = (np.eye(d + 1) if starting_affine is None
                                else _checks.affine(starting_affine, d, "starting_affine"))
        smask = _checks.mask(static_mask, s.shape, "static_mask")
        mmask = _checks.mask(moving_mask, m.shape, "moving_mask")
        samples = None
        count = int(smask.sum()) if smask is not None else s.size
        if self.sampling_proportion is not None:
            rng = np.random.default_rng(self.seed)
            pool = np.flatnonzero(smask) if smask is not None else s.size
            size = max(1, int(np.ceil(self.sampling_proportion * count)))
            samples = np.sort(rng.choice(pool, size=size, replace=False)).astype(np.int64)
            count = size
        self._sample_count = count
        self.threads = as_int(threads, "threads", minimum=0)
        self._core = _register_core.MetricCore(self.kind, s, m, fixed_mask=smask, moving_mask=mmask,
                                               samples=samples, jitter=self.jitter, jitter_seed=self.seed,
                                               **self._core_kwargs(s, m, smask, mmask))

    def _require_setup(self) -> None:
        if self._core is None:
            raise RuntimeError("call setup(...) before evaluating the metric")

    def evaluate_affine(self, affine: np.ndarray, jacobian: np.ndarray | None = None
                        ) -> tuple[float, np.ndarray | None]:
        """``(distance, d distance / d theta)`` at the full static-world-to-moving-world
        ``affine``; ``jacobian`` is d(affine)/d(theta), shape ``(n, d + 1, d + 1)`` (None: no
        gradient). A lost overlap gives distance 0 (the worst) and a zero gradient."""
        self._require_setup()
        index_map = self.moving_world2grid @ affine @ self.static_grid2world
        value, grad, overlap = self._core.evaluate(index_map, gradient=jacobian is not None,
                                                   threads=self.threads)
        if overlap < _MIN_OVERLAP * self._sample_count:
            return 0.0, (None if jacobian is None else np.zeros(len(jacobian)))
        if jacobian is None:
            return -float(value), None
        d = self.dim
        # d(index map)/d(theta_k) = world2grid @ d(affine)/d(theta_k) @ grid2world
        dmaps = self.moving_world2grid @ jacobian @ self.static_grid2world
        return -float(value), -np.einsum("ij,kij->k", grad, dmaps[:, :d, :])

    def _affine_and_jacobian(self, params: Any) -> tuple[np.ndarray, np.ndarray]:
        self._require_setup()
        t = self.transform.param_to_matrix(params)
        jac = self.transform.matrix_jacobian(params) @ self.starting_affine
        return t @ self.starting_affine, jac

    def distance(self, params: Any) -> float:
        """The distance (negative similarity) at ``params``."""
        self._require_setup()
        return self.evaluate_affine(self.transform.param_to_matrix(params) @ self.starting_affine)[0]

    def gradient(self, params: Any) -> np.ndarray:
        """d distance / d params (analytic)."""
        return self.distance_and_gradient(params)[1]

    def distance_and_gradient(self, params: Any) -> tuple[float, np.ndarray]:
        """``(distance, gradient)`` at ``params`` in one pass pair."""
        affine, jac = self._affine_and_jacobian(params)
        value, grad = self.evaluate_affine(affine, jac)
        assert grad is not None
        return value, grad


class MutualInformationMetric(Metric):
    """Mattes mutual information (DIPY's ``MutualInformationMetric``).

    The joint histogram has ``nbins`` x ``nbins`` bins spanning each image's intensity range
    (within its mask) and two bins of padding at each end. Mattes' windows, as DIPY and ITK:
    the static intensity counts in its nearest bin, the moving intensity is spread by a cubic
    B-spline Parzen window. ``distance`` is ``-MI`` in nats.

    The overlap has a soft edge: a static point whose mapped position lies within one moving
    voxel of the moving image's edge counts with a weight that falls smoothly (smoothstep of
    its distance to the edge, per axis) to 0 at the edge. With a hard in/out rule the value
    would jump each time a point crosses the edge, and line searches stall on the jumps;
    the analytic gradient includes the weights' derivatives.

    Parameters
    ----------
    nbins : int
        Bins per axis of the joint histogram (8 to 1024; DIPY's default 32).
    sampling_proportion : float in (0, 1], optional
        None (default) uses every static voxel (dense). A value below 1 uses that share of
        them, chosen once per resolution level by a seeded generator (deterministic; masks
        still apply, unlike DIPY).
    jitter : bool
        True (default): each static sample point is moved off the grid by a reproducible
        pseudo-random offset in [-0.5, 0.5) voxel per axis and the static image interpolated
        there. On the grid, linear interpolation smooths the moving image's noise by an amount
        that depends on the map's sub-voxel part, which pulls noisy images towards half-voxel
        offsets (up to 0.5 voxel measured on a noisy fundus photograph); jitter removes that
        dependence. False samples the static grid itself, as DIPY does.
    seed : int
        Seed of the sample choice and of the jitter.
    """

    kind = "mi"

    def __init__(self, nbins: int = 32, sampling_proportion: float | None = None, *,
                 jitter: bool = True, seed: int = 0) -> None:
        super().__init__(sampling_proportion, jitter=jitter, seed=seed)
        self.nbins = as_int(nbins, "nbins", minimum=8, maximum=1024)

    def _core_kwargs(self, static: np.ndarray, moving: np.ndarray, smask: np.ndarray | None,
                     mmask: np.ndarray | None) -> dict[str, Any]:
        def span(img: np.ndarray, msk: np.ndarray | None, name: str) -> tuple[float, float]:
            vals = img if msk is None else img[msk != 0]
            lo, hi = float(vals.min()), float(vals.max())
            if hi <= lo:
                raise ValueError(f"{name} is constant inside its mask; registration needs "
                                 f"intensity structure")
            return lo, hi
        return {"nbins": self.nbins, "fixed_range": span(static, smask, "static"),
                "moving_range": span(moving, mmask, "moving")}

    def joint_histogram(self, params: Any) -> np.ndarray:
        """The joint probability table (static bins along rows) at ``params``."""
        self._require_setup()
        affine = self.transform.param_to_matrix(params) @ self.starting_affine
        return np.asarray(self._core.joint_histogram(
            self.moving_world2grid @ affine @ self.static_grid2world, threads=self.threads))

    def __repr__(self) -> str:
        return f"MutualInformationMetric(nbins={self.nbins}, sampling_proportion={self.sampling_proportion})"


class CorrelationMetric(Metric):
    """Pearson correlation of static and resampled moving intensities over their overlap,
    for images of the same modality; cheaper than mutual information and free of binning.
    ``distance`` is ``-correlation``. Points near the moving image's edge are weighted as for
    ``MutualInformationMetric`` (a continuous value and exact gradient as they cross it).

    Parameters
    ----------
    sampling_proportion : float in (0, 1], optional
        As for ``MutualInformationMetric``.
    jitter : bool
        As for ``MutualInformationMetric`` (default True).
    seed : int
        Seed of the sample choice and of the jitter.
    """

    kind = "cc"

    def __repr__(self) -> str:
        return f"CorrelationMetric(sampling_proportion={self.sampling_proportion})"

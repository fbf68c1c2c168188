"""Similarity metrics for symmetric diffeomorphic registration (DIPY's ``dipy.align.metrics``).

Each metric turns the static and the moving image, both warped onto the common reference grid,
into a forward step (a displacement field that moves the moving image towards the static one),
a backward step (the other way) and an energy. The steps are fields of shape
``image.shape + (dim,)``, float32, component ``k`` along world axis ``k`` in world units
(image gradients divided by the spacing and turned by the grid's direction, as DIPY does). Every
step is computed in the C++ core (multithreaded, GIL released, the same bits for any thread
count); both steps come from one call per iteration, made in ``initialize_iteration``.

``CCMetric``, ``SSDMetric`` and ``EMMetric`` keep DIPY's names, arguments and meanings;
``ParzenMIMetric`` (global mutual information with cubic B-spline Parzen windows) is a
cross-modality choice DIPY lacks.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._core import register as _core
from .._validate import as_float, as_int

__all__ = ["SimilarityMetric", "CCMetric", "SSDMetric", "EMMetric", "ParzenMIMetric"]


def coarse_grid_shape(shape: Any, factor: int) -> tuple[int, ...]:
    """The grid of every ``factor``-th voxel of ``shape``: ``ceil((n - 1) / factor) + 1`` nodes
    per axis (the core's ``coarse_extent``; the last node at or past the last voxel)."""
    return tuple((int(n) - 1 + factor - 1) // factor + 1 for n in shape)


def _dim(dim: Any) -> int:
    if isinstance(dim, bool) or dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    return int(dim)


class SimilarityMetric:
    """Base class (DIPY's ``SimilarityMetric``): holds the two images of the current iteration.

    Parameters
    ----------
    dim : {2, 3}
        The images' dimension.
    """

    #: Whether the optimiser should keep the input's zero voxels at zero in its scale space.
    mask0 = False
    #: Whether the steps are smoothed by a Gaussian of ``sigma_diff`` voxels (CC and MI); only
    #: those can be given on a coarser field grid (``set_field_grid``).
    smoothed_steps = False

    def __init__(self, dim: int) -> None:
        self.dim = _dim(dim)
        self.levels_above: Optional[int] = None
        self.levels_below: Optional[int] = None
        self.static_image: Optional[np.ndarray] = None
        self.static_affine: Optional[np.ndarray] = None
        self.static_spacing: Optional[np.ndarray] = None
        self.static_direction: Optional[np.ndarray] = None
        self.moving_image: Optional[np.ndarray] = None
        self.moving_affine: Optional[np.ndarray] = None
        self.moving_spacing: Optional[np.ndarray] = None
        self.moving_direction: Optional[np.ndarray] = None
        self.energy = np.inf
        self.threads = 0
        self._forward: Optional[np.ndarray] = None
        self._backward: Optional[np.ndarray] = None
        self._forward_energy = np.inf
        self._backward_energy = np.inf
        # Set by the optimiser while it runs: the steps are then written into two buffers reused
        # from one iteration to the next (it consumes each step within its iteration).
        self._reuse_buffers = False
        self._buffers: Optional[tuple[np.ndarray, np.ndarray]] = None
        self._coarse_buffers: Optional[tuple[np.ndarray, np.ndarray]] = None
        self.field_factor = 1

    def set_field_grid(self, factor: int) -> None:
        """Give the steps on every ``factor``-th voxel of the reference grid (SyN's
        ``field_spacing``; 1, the default, is the grid itself).

        The raw step is restricted to the coarse grid (a tent average over ``2 factor - 1``
        voxels per axis), and the rest of the ``sigma_diff`` Gaussian is applied there: within
        about 1 % (RMS, away from the edges) of smoothing at full resolution and taking every
        ``factor``-th voxel, at a fraction of the cost. Only metrics with smoothed steps (CC, MI).
        """
        factor = as_int(factor, "factor", minimum=1, maximum=16)
        if factor > 1 and not self.smoothed_steps:
            raise ValueError(f"{type(self).__name__} does not smooth its steps with sigma_diff, so its "
                             f"steps cannot be given on a coarser grid; use field_spacing=1")
        self.field_factor = factor
        self._coarse_buffers = None

    def set_levels_below(self, levels: int) -> None:
        """Number of scale-space levels below the current one (DIPY's hook)."""
        self.levels_below = levels

    def set_levels_above(self, levels: int) -> None:
        """Number of scale-space levels above the current one (DIPY's hook)."""
        self.levels_above = levels

    def set_static_image(self, static_image: np.ndarray, static_affine: Any, static_spacing: Any,
                         static_direction: Any) -> None:
        """The static image warped to the reference grid, with that grid's geometry."""
        self.static_image = static_image
        self.static_affine = static_affine
        self.static_spacing = static_spacing
        self.static_direction = static_direction

    def set_moving_image(self, moving_image: np.ndarray, moving_affine: Any, moving_spacing: Any,
                         moving_direction: Any) -> None:
        """The moving image warped to the reference grid, with that grid's geometry."""
        self.moving_image = moving_image
        self.moving_affine = moving_affine
        self.moving_spacing = moving_spacing
        self.moving_direction = moving_direction

    def use_static_image_dynamics(self, original_static_image: np.ndarray, transformation: Any) -> None:
        """Hook for metrics that need the static image before warping (EM); no-op here."""

    def use_moving_image_dynamics(self, original_moving_image: np.ndarray, transformation: Any) -> None:
        """Hook for metrics that need the moving image before warping (EM); no-op here."""

    def _images(self) -> tuple[np.ndarray, np.ndarray]:
        if self.static_image is None or self.moving_image is None:
            raise ValueError("set_static_image and set_moving_image must come before initialize_iteration")
        return self.static_image, self.moving_image

    def _geometry(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.static_image is None or self.moving_image is None:
            raise ValueError("set_static_image and set_moving_image must come before initialize_iteration")
        if self.static_image.shape != self.moving_image.shape:
            raise ValueError(f"the warped static {self.static_image.shape} and moving "
                             f"{self.moving_image.shape} images must share one grid")
        d = self.dim

        def geo(spacing: Any, direction: Any) -> tuple[np.ndarray, np.ndarray]:
            sp = np.ones(d) if spacing is None else np.asarray(spacing, dtype=np.float64).ravel()
            di = np.eye(d) if direction is None else np.asarray(direction, dtype=np.float64)[:d, :d]
            return np.ascontiguousarray(sp), np.ascontiguousarray(di)

        ss, sd = geo(self.static_spacing, self.static_direction)
        ms, md = geo(self.moving_spacing, self.moving_direction)
        return ss, sd, ms, md

    def initialize_iteration(self) -> None:
        """Compute both steps and the energy for the current pair (one core call)."""
        raise NotImplementedError

    def free_iteration(self) -> None:
        """Drop the current iteration's steps."""
        self._forward = None
        self._backward = None

    def _out(self) -> dict[str, Any]:
        """forward_out / backward_out for the core: the reused buffers, or none (new arrays)."""
        if not self._reuse_buffers or self.static_image is None:
            self._buffers = None
            return {}
        shape = self.static_image.shape + (self.dim,)
        if self._buffers is None or self._buffers[0].shape != shape:
            self._buffers = (np.empty(shape, np.float32), np.empty(shape, np.float32))
        return {"forward_out": self._buffers[0], "backward_out": self._buffers[1]}

    def _step_sigma(self) -> float:
        """The core's smoothing: none when the steps go to a coarser grid (``_restrict`` does it)."""
        return 0.0 if self.field_factor > 1 else float(getattr(self, "sigma_diff", 0.0))

    def _restrict(self) -> None:
        """Bring both steps to the coarse field grid, smoothed there (``set_field_grid``)."""
        if self.field_factor == 1 or self._forward is None or self._backward is None:
            return
        f = self.field_factor
        shape = coarse_grid_shape(self._forward.shape[:-1], f) + (self.dim,)
        if not self._reuse_buffers:
            self._coarse_buffers = None
        elif self._coarse_buffers is None or self._coarse_buffers[0].shape != shape:
            self._coarse_buffers = (np.empty(shape, np.float32), np.empty(shape, np.float32))
        outs = self._coarse_buffers or (None, None)
        sigma = float(getattr(self, "sigma_diff", 0.0))
        self._forward = _core.restrict_field(self._forward, f, sigma, out=outs[0], threads=self.threads)
        self._backward = _core.restrict_field(self._backward, f, sigma, out=outs[1], threads=self.threads)

    def _levels_below(self) -> int:
        # DIPY's V-cycle depth: the number of levels at and below the current one.
        return 0 if self.levels_below is None else max(0, min(int(self.levels_below), 30))

    def _step(self, which: str) -> np.ndarray:
        step = self._forward if which == "forward" else self._backward
        if step is None:
            raise ValueError("call initialize_iteration() first")
        return step

    def _take(self, res: Any) -> None:
        self._forward, self._backward = res.forward, res.backward
        self._forward_energy, self._backward_energy = res.forward_energy, res.backward_energy
        self.energy = res.forward_energy

    def compute_forward(self) -> np.ndarray:
        """The step for the static image's map (``get_energy`` then gives the forward energy)."""
        step = self._step("forward")
        self.energy = self._forward_energy
        return step

    def compute_backward(self) -> np.ndarray:
        """The step for the moving image's map (``get_energy`` then gives the backward energy)."""
        step = self._step("backward")
        self.energy = self._backward_energy
        return step

    def get_energy(self) -> float:
        """The energy of the last step computed, as DIPY's metrics report it (lower is better)."""
        return float(self.energy)


class CCMetric(SimilarityMetric):
    """Local normalised cross-correlation (DIPY's ``CCMetric``; ANTs' ``CC``).

    Parameters
    ----------
    dim : {2, 3}
        The images' dimension.
    sigma_diff : float
        Standard deviation (voxels) of the Gaussian that smooths each step (default 2).
    radius : int
        Half-width of the ``(2 radius + 1)^dim`` window (default 4). The core uses running box
        sums, so the cost does not depend on the radius.
    """

    smoothed_steps = True

    def __init__(self, dim: int, sigma_diff: float = 2.0, radius: int = 4) -> None:
        super().__init__(dim)
        self.sigma_diff = as_float(sigma_diff, "sigma_diff")
        if self.sigma_diff < 0:
            raise ValueError(f"sigma_diff must be >= 0, got {sigma_diff}")
        self.radius = as_int(radius, "radius", minimum=1, maximum=1 << 20)

    def initialize_iteration(self) -> None:
        ss, sd, ms, md = self._geometry()
        assert self.static_image is not None and self.moving_image is not None
        need = 2 * self.radius + 1
        if min(self.static_image.shape) < need:
            raise ValueError(f"Each image dimension should be larger than 2 * radius + 1 ({need}); the "
                             f"grid at this level is {self.static_image.shape}. Decrease CCMetric's "
                             f"radius ({self.radius}), use fewer levels, or give larger images.")
        res = _core.cc_steps(self.static_image, self.moving_image, self.radius, ss, sd,
                             self._step_sigma(), threads=self.threads, **self._out())
        self._take(res)
        self._restrict()

    def __repr__(self) -> str:
        return f"CCMetric(dim={self.dim}, sigma_diff={self.sigma_diff}, radius={self.radius})"


class SSDMetric(SimilarityMetric):
    """Sum of squared differences (DIPY's ``SSDMetric``) for images of one modality and contrast.

    Parameters
    ----------
    dim : {2, 3}
        The images' dimension.
    smooth : float
        DIPY's regularisation of the step (default 4).
    inner_iter : int
        Iterations of the Gauss-Newton solver (``step_type="gauss_newton"``; default 10).
    step_type : {"demons", "gauss_newton"}
        How a step is computed (default ``"demons"``).
    """

    def __init__(self, dim: int, smooth: float = 4, inner_iter: int = 10, step_type: str = "demons") -> None:
        super().__init__(dim)
        self.smooth = as_float(smooth, "smooth")
        if self.smooth <= 0:
            raise ValueError(f"smooth must be > 0, got {smooth}")
        self.inner_iter = as_int(inner_iter, "inner_iter", minimum=1, maximum=1 << 20)
        if step_type not in ("demons", "gauss_newton"):
            raise ValueError(f"step_type must be 'demons' or 'gauss_newton', got {step_type!r}")
        self.step_type = step_type

    def initialize_iteration(self) -> None:
        ss, sd, ms, md = self._geometry()
        static, moving = self._images()
        res = _core.ssd_steps(static, moving, ss, sd, self.smooth, self.inner_iter,
                              self.step_type, levels_below=self._levels_below(), threads=self.threads,
                              **self._out())
        self._take(res)

    def __repr__(self) -> str:
        return f"SSDMetric(dim={self.dim}, smooth={self.smooth}, step_type={self.step_type!r})"


class EMMetric(SimilarityMetric):
    """Expectation-maximisation metric (DIPY's ``EMMetric``): each image is quantised into
    ``q_levels`` classes and compared with the other's class means, so a monotone change of
    contrast does not matter.

    Parameters
    ----------
    dim : {2, 3}
        The images' dimension.
    smooth : float
        Regularisation of the step (default 1).
    inner_iter : int
        Gauss-Newton solver iterations (default 5).
    q_levels : int
        Quantisation levels (default 256).
    double_gradient : bool
        Use the gradients of both images in each step (default True).
    step_type : {"gauss_newton", "demons"}
        How a step is computed (DIPY's default ``"gauss_newton"``).
    """

    mask0 = True

    def __init__(self, dim: int, smooth: float = 1.0, inner_iter: int = 5, q_levels: int = 256,
                 double_gradient: bool = True, step_type: str = "gauss_newton") -> None:
        super().__init__(dim)
        self.smooth = as_float(smooth, "smooth")
        if self.smooth <= 0:
            raise ValueError(f"smooth must be > 0, got {smooth}")
        self.inner_iter = as_int(inner_iter, "inner_iter", minimum=1, maximum=1 << 20)
        self.q_levels = as_int(q_levels, "q_levels", minimum=2, maximum=1 << 16)
        self.use_double_gradient = bool(double_gradient)
        if step_type not in ("demons", "gauss_newton"):
            raise ValueError(f"step_type must be 'demons' or 'gauss_newton', got {step_type!r}")
        self.step_type = step_type
        self.static_image_mask: Optional[np.ndarray] = None
        self.moving_image_mask: Optional[np.ndarray] = None

    def _dynamics(self, original: np.ndarray, transformation: Any, like: Optional[np.ndarray],
                  affine: Any) -> np.ndarray:
        mask = (np.asarray(original) > 0).astype(np.int32)
        if transformation is None or like is None:
            return mask
        out = transformation.transform(mask, interpolation="nearest", out_shape=like.shape,
                                       out_grid2world=affine)
        return np.ascontiguousarray(out, dtype=np.int32)

    def use_static_image_dynamics(self, original_static_image: np.ndarray, transformation: Any) -> None:
        self.static_image_mask = self._dynamics(original_static_image, transformation, self.static_image,
                                                self.static_affine)

    def use_moving_image_dynamics(self, original_moving_image: np.ndarray, transformation: Any) -> None:
        self.moving_image_mask = self._dynamics(original_moving_image, transformation, self.moving_image,
                                                self.moving_affine)

    def initialize_iteration(self) -> None:
        ss, sd, ms, md = self._geometry()
        static, moving = self._images()
        res = _core.em_steps(static, moving, self.static_image_mask,
                             self.moving_image_mask, ss, sd, self.q_levels, self.smooth, self.inner_iter,
                             self.use_double_gradient, self.step_type, levels_below=self._levels_below(),
                             threads=self.threads, **self._out())
        self._take(res)

    def __repr__(self) -> str:
        return f"EMMetric(dim={self.dim}, q_levels={self.q_levels}, step_type={self.step_type!r})"


class ParzenMIMetric(SimilarityMetric):
    """Global mutual information with cubic B-spline Parzen windows, for images of different
    modalities (not in DIPY; ANTs' ``MI`` for SyN).

    The joint histogram of the two warped images is taken over the reference grid; each voxel's
    step is the derivative of the mutual information with respect to the warped image's value
    there, times that image's gradient, smoothed like CC's. The energy is minus the mutual
    information (nats).

    Parameters
    ----------
    dim : {2, 3}
        The images' dimension.
    nbins : int
        Histogram bins per image (default 32).
    sigma_diff : float
        Gaussian smoothing of each step in voxels (default 2).
    """

    smoothed_steps = True

    def __init__(self, dim: int, nbins: int = 32, sigma_diff: float = 2.0) -> None:
        super().__init__(dim)
        self.nbins = as_int(nbins, "nbins", minimum=8, maximum=1024)
        self.sigma_diff = as_float(sigma_diff, "sigma_diff")
        if self.sigma_diff < 0:
            raise ValueError(f"sigma_diff must be >= 0, got {sigma_diff}")

    def initialize_iteration(self) -> None:
        ss, sd, ms, md = self._geometry()
        static, moving = self._images()
        res = _core.mi_steps(static, moving, self.nbins, ss, sd, self._step_sigma(),
                             threads=self.threads, **self._out())
        self._take(res)
        self._restrict()

    def __repr__(self) -> str:
        return f"ParzenMIMetric(dim={self.dim}, nbins={self.nbins}, sigma_diff={self.sigma_diff})"

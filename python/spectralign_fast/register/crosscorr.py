"""Stack registration: thunder-registration's ``CrossCorr`` on the FFT core.

Every frame of an image stack ``(T, Y, X)`` or of a series of volumes
``(T, Z, Y, X)`` is registered to one reference by FFT cross-correlation::

    model = CrossCorr().fit(images)            # reference: the mean frame
    registered = model.transform(images)       # same shape and dtype
    model.toarray()                            # (T, ndim) displacements

Conventions (thunder-registration's, kept on purpose)
----------------------------------------------------
A displacement ``delta`` is given in the array's axis order: ``(d_row,
d_col)`` = ``(dy, dx)`` for 2-D frames, ``(dz, dy, dx)`` for volumes -- not
the ``(x, y)`` order of ``Matcher``. ``delta`` is the displacement of the
frame relative to the reference: a frame whose content lies ``+d`` pixels
further along an axis than the reference's (``frame[i] == reference[i - d]``)
gets ``delta == +d``. ``transform`` undoes it by shifting each frame by
``-delta`` (it samples the frame at ``x + delta``), filling the pixels that
enter at the edges with the nearest edge pixel, as thunder-registration's
``scipy.ndimage.shift(image, -delta, mode='nearest')``.

Differences from thunder-registration: subpixel displacements by default
(``subpixel=False`` gives its integer peaks), a whitened cross-power spectrum
by default (``whiten=0`` is its plain cross-correlation), linear
interpolation by default where it used cubic splines, and ``reference=None``
means the mean frame (thunder required a reference). thunder took the peak
of |correlation|; here it is the largest (positive) correlation, which is the
same peak on real images (tested) but never an anti-correlation.
"""
from __future__ import annotations

import numbers
import sys
import warnings
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .._validate import as_core_array, as_float, as_int
from ..transforms.displacement import (Displacement, LocalDisplacement, check_axis, check_dtype,
                                       check_interpolation, list_indices, shift_frames, warn_unshifted)
# _fit_block and _transform_block are the Dask per-block functions (kept importable from here).
from ._crosscorr_core import (_CoreParams, _dask_fit, _dask_mean, _dask_transform, _fit_block, _fit_frames,  # noqa: F401
                              _make_core, _plane_shape, _refine_frames, _transform_block)
from ._motion_stack import (_BATCH_BYTES, _Stack, _block_threads, _check_batch, _check_max_shift,  # noqa: F401
                            _finite_mask, _is_dask, _numpy_transform, _plain_mean, _reference, _registered_mean,
                            _seed_indices)
from .motion_refine import STATUS_REFINE_KEPT, check_refine, reference_box

# Means taken of the registered frames by default (see CrossCorr.fit and motion_reference).
# ... and the taper of whitened correlation (see CrossCorr's taper).
_DEFAULT_MEAN_ITERATIONS = 1
_DEFAULT_TAPER = 0.1

# ---------------------------------------------------------------------------------------
# Model


class RegistrationModel:
    """Per-frame transformations from ``CrossCorr.fit`` (thunder-registration's).

    Parameters
    ----------
    transformations : dict
        ``{(i,): Displacement or LocalDisplacement}`` for frames i = 0..n-1.
    algorithm : str, optional
        Name of the algorithm that made it.

    Attributes
    ----------
    transformations : dict
        As given; ``model[(i,)]`` or ``model[i]`` returns one.
    """

    def __init__(self, transformations: Dict[Tuple[int], Any], algorithm: Optional[str] = None, *,
                 threads: int = 0) -> None:
        if not isinstance(transformations, dict):
            raise TypeError("transformations must be a dict {(i,): Displacement}")
        self.transformations = transformations
        self.algorithm = algorithm
        self.threads = as_int(threads, "threads", minimum=0)
        self._deltas: Optional[np.ndarray] = None
        self._axis: Optional[int] = None

    @classmethod
    def _from_arrays(cls, deltas: np.ndarray, axis: Optional[int], algorithm: str,
                     threads: int) -> "RegistrationModel":
        trans: Dict[Tuple[int], Displacement | LocalDisplacement]
        if axis is None:
            trans = {(i,): Displacement(d) for i, d in enumerate(deltas)}
        else:
            trans = {(i,): LocalDisplacement(d, axis) for i, d in enumerate(deltas)}
        model = cls(trans, algorithm, threads=threads)
        model._deltas, model._axis = deltas, axis
        return model

    def __getitem__(self, entry: Any) -> Any:
        if isinstance(entry, numbers.Integral):
            entry = (int(entry),)
        return self.transformations[entry]

    def __len__(self) -> int:
        return len(self.transformations)

    def toarray(self) -> np.ndarray:
        """Displacements of all frames in key order: shape (n, ndim), or
        (n, planes, 2) for per-plane (``axis``) models. Array axis order,
        thunder-registration's sign (see the module docstring)."""
        return self._arrays()[0].copy()

    def _arrays(self) -> Tuple[np.ndarray, Optional[int]]:
        if self._deltas is not None:
            return self._deltas, self._axis
        items = sorted(self.transformations.items())
        if not items:
            raise ValueError("the model holds no transformations")
        keys = [k for k, _ in items]
        if keys != [(i,) for i in range(len(keys))]:
            raise ValueError("transformation keys must be (0,), (1,), ... (n-1,)")
        kinds = {type(v) for _, v in items}
        if kinds == {Displacement}:
            deltas = np.array([v.toarray() for _, v in items])
            if deltas.ndim != 2:
                raise ValueError("all Displacements must have the same number of axes")
            return deltas, None
        if kinds == {LocalDisplacement}:
            axes = {v.axis for _, v in items}
            if len(axes) != 1:
                raise ValueError("all LocalDisplacements must use the same axis")
            deltas = np.array([v.toarray() for _, v in items])
            if deltas.ndim != 3:
                raise ValueError("all LocalDisplacements must have the same number of planes")
            return deltas, axes.pop()
        raise TypeError("transformations must all be Displacement or all LocalDisplacement")

    def transform(self, images: Any, *, interpolation: str = "linear", threads: Optional[int] = None,
                  batch: Optional[int] = None, out: Optional[np.ndarray] = None) -> Any:
        """Register ``images``: frame i shifted by ``-delta_i``.

        Parameters
        ----------
        images : array_like, numpy.memmap or dask.array.Array
            (T, Y, X) or (T, Z, Y, X), one frame per transformation. Never
            modified. NumPy arrays (memmaps too) are processed in batches of
            frames; Dask arrays per block, lazily.
        interpolation : {"linear", "cubic", "fourier"}
            Separable linear, cubic convolution (Catmull-Rom, as the
            Renderer), or a Fourier shift (band-limited, no blur: the frame
            is edge-replicated by 8 or more pixels, the fractional part is a
            phase ramp, the integer part clamped indexing; about 15x slower
            than linear). Integer displacements copy pixels exactly in every
            mode.
        threads : int, optional
            Threads (0: all cores); default: the model's.
        batch : int, optional
            Frames per batch (default: about 64 MiB of float32).
        out : numpy.ndarray, optional
            Where to write the result (same shape and dtype as ``images``,
            e.g. a ``tifffile.memmap`` for stacks larger than memory); must
            not overlap ``images``. NumPy input only.

        Returns
        -------
        numpy.ndarray or dask.array.Array
            Same shape and dtype as ``images``: pixels entering at the edges
            take the nearest edge pixel; integer dtypes are rounded to
            nearest and clamped to their range (cubic can overshoot). The
            arithmetic is float32. Frames whose displacement is NaN (see
            ``CrossCorr.fit``) are returned unshifted, with a RuntimeWarning.
        """
        deltas, axis = self._arrays()
        interp = check_interpolation(interpolation)
        nthreads = self.threads if threads is None else as_int(threads, "threads", minimum=0)
        stack = _Stack(images)
        stack.check_deltas(deltas, axis)
        bad = np.flatnonzero(~np.all(np.isfinite(deltas.reshape(len(deltas), -1)), axis=1))
        warn_unshifted(bad)
        if stack.dask is not None:
            if out is not None:
                raise ValueError("out is for NumPy input; store the returned Dask array instead "
                                 "(e.g. result.to_zarr(...))")
            return _dask_transform(stack.dask, deltas, axis, interp, _block_threads(threads, self.threads))
        return _numpy_transform(stack, deltas, axis, interp, nthreads, batch, out)

    def __repr__(self) -> str:
        try:
            deltas, axis = self._arrays()
        except (ValueError, TypeError):
            return f"RegistrationModel(length={len(self)}, algorithm={self.algorithm!r})"
        flat = deltas.reshape(len(deltas), -1, deltas.shape[-1])
        finite = np.all(np.isfinite(flat), axis=2)
        mag = np.linalg.norm(np.where(finite[..., None], flat, 0), axis=2)[finite]
        kind = "Displacement" if axis is None else f"LocalDisplacement(axis={axis})"
        lines = [f"RegistrationModel(algorithm={self.algorithm!r})",
                 f"  length: {len(deltas)} frames of {kind}, toarray() shape {deltas.shape}"]
        if mag.size:
            lines.append(f"  |delta|: mean {mag.mean():.3f}, max {mag.max():.3f} px")
        nbad = int((~finite).any(axis=1).sum())
        if nbad:
            lines.append(f"  {nbad} frame(s) with NaN displacements")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Algorithm


class CrossCorr:
    """Registration by FFT cross-correlation (thunder-registration's ``CrossCorr``).

    Parameters
    ----------
    axis : int, optional
        For volumes (T, Z, Y, X): register each plane along this volume axis
        (0 = Z, 1 = Y, 2 = X) separately with a 2-D shift, as
        thunder-registration's ``axis``. Default: one shift per frame.
    subpixel : bool
        Refine the correlation peak below a pixel (default). False gives
        integer displacements, thunder-registration's.
    whiten : float
        Exponent in [-1, 0] applied to the cross-power spectrum's magnitude:
        0 is plain cross-correlation (thunder-registration's), -1 phase
        correlation, -0.65 (default) the Matcher's whitening, which is more
        accurate on real images.
    max_shift : int or sequence of int, optional
        Largest displacement searched, in pixels: one value for all axes or
        one per axis (per plane axis with ``axis``). Default: unlimited
        (the whole cyclic range).
    taper : float, optional
        Fraction of each axis, at both ends, over which frames and reference
        fall to zero (a raised cosine) before their FFT; the intensity
        refinement sees the frames as they are. A frame's edges sit at the
        same place in every frame, and without a taper the transform's jump
        there correlates at zero lag, which whitened correlation can let win
        over the content: frames then lock onto the reference's position
        (up to 1.6 px off on 160 x 160 frames of smooth content in
        tests/test_motion_reference.py). Default: 0.1 with whitening, 0
        with ``whiten=0`` (plain cross-correlation, thunder-registration's,
        which the content dominates).
    refine : {"intensity", None}
        "intensity" (default): after the FFT peak, a few Gauss-Newton steps
        on the intensity difference with the reference (cubic-spline
        model, gain and offset solved for; the FFT estimate is kept when
        they do not lower the residual). About 7x more accurate on
        interpolated or pixel-integrated frames (0.005 against 0.033-0.038
        px mean absolute error with the true reference in
        ``bench/bench_stack.py --accuracy``) for about 1.45x the time of a
        pass. None: the FFT estimate alone (faster). With a mean reference
        the refinement runs once, from the estimates the final mean was
        built from (``spectralign_fast.register.motion_reference``; none
        with ``iterations=0``: the plain mean of a drifting movie is
        blurred); ``subpixel=False`` never refines. See
        ``spectralign_fast.register.motion_refine``.
    threads : int
        Threads for fitting and transforming (0: all cores).

    Notes
    -----
    Displacements are in array axis order and positive when a frame's
    content lies further along an axis than the reference's; ``transform``
    shifts by ``-delta`` with nearest-edge filling (thunder-registration's
    convention; see the module docstring). The reference spectrum is
    computed once; frames are processed in parallel in C++ with the GIL
    released. Frames and reference are mean-subtracted and scaled before
    correlating (which moves no peak). The subpixel peak is a parabola
    through the integer peak's neighbours, refined by Newton steps on the
    band-limited interpolant of the correlation evaluated exactly from the
    spectrum (the limit of an upsampled DFT).
    """

    def __init__(self, axis: Optional[int] = None, *, subpixel: bool = True, whiten: float = -0.65,
                 max_shift: Any = None, taper: Optional[float] = None, refine: Optional[str] = "intensity",
                 threads: int = 0) -> None:
        self.axis = None if axis is None else check_axis(axis)
        if not isinstance(subpixel, (bool, np.bool_)):
            raise TypeError("subpixel must be True or False")
        self.subpixel = bool(subpixel)
        self.whiten = as_float(whiten, "whiten")
        if not -1.0 <= self.whiten <= 0.0:
            raise ValueError(f"whiten must be between -1 (phase correlation) and 0 (plain "
                             f"cross-correlation), got {self.whiten}")
        self.max_shift = _check_max_shift(max_shift)
        if taper is None:
            taper = _DEFAULT_TAPER if self.whiten != 0.0 else 0.0
        self.taper = as_float(taper, "taper")
        if not 0.0 <= self.taper <= 0.5:
            raise ValueError(f"taper must be between 0 (none) and 0.5 (the whole axis), got {self.taper}")
        self.refine = check_refine(refine)
        self.threads = as_int(threads, "threads", minimum=0)

    def fit(self, images: Any, reference: Any = None, *, iterations: Optional[int] = None,
            batch: Optional[int] = None) -> RegistrationModel:
        """Estimate each frame's displacement relative to ``reference``.

        Parameters
        ----------
        images : array_like, numpy.memmap or dask.array.Array
            (T, Y, X) image stack or (T, Z, Y, X) volumes; never modified.
            NumPy arrays (memmaps too) are read in batches of frames; Dask
            arrays are processed per block.
        reference : array_like, optional
            One frame-shaped reference. Default: the mean of the registered
            frames (``iterations`` >= 1, the default; see
            ``spectralign_fast.register.motion_reference``), or the plain mean
            of the frames with ``iterations=0`` (thunder-registration's
            reference), frames with NaN or inf pixels left out either way. Each
            frame's own share of a mean reference is left out of its FFT
            correlation (otherwise its own noise, whitened, would pull its
            peak towards zero).
        iterations : int, optional
            How many times the reference is taken as the mean of the frames
            registered to the previous one, before the final estimates: the
            first registration is to ``reference`` or, without one, to the
            mean of the frames that look most alike. Default: 1 when
            ``reference`` is None, 0 when one is given. 0 without a
            reference: every frame against the plain mean of the frames, with
            no intensity refinement; the mean of a drifting movie is blurred
            (6.3 px RMS error on a movie drifting by 10 px,
            examples/motion_correction.py, against 0.02 px by default).
        batch : int, optional
            Frames per batch for NumPy input (default: about 64 MiB).

        Returns
        -------
        RegistrationModel
            ``transformations[(i,)]`` is a ``Displacement`` (or a
            ``LocalDisplacement`` with ``axis``). A frame containing NaN or
            inf pixels gets a NaN displacement and a RuntimeWarning; a
            constant frame gets zero (any shift leaves it unchanged).
        """
        stack = _Stack(images)
        self._check_stack(stack)
        if iterations is None:
            iterations = _DEFAULT_MEAN_ITERATIONS if reference is None else 0
        iterations = as_int(iterations, "iterations", minimum=0)
        batch = _check_batch(batch)
        if reference is None and iterations == 0:
            deltas, status = self._fit_plain_mean(stack, batch)
        else:
            given = None if reference is None else _reference(stack, reference)[0]
            deltas, status = self._fit_registered_mean(stack, given, iterations, batch)
        if deltas is None:
            return self._own_mean_model(stack)
        bad = np.flatnonzero(np.any(status.reshape(len(status), -1) == 1, axis=1))
        if bad.size:
            warnings.warn(f"{bad.size} frame(s) contain NaN or inf pixels (frames "
                          f"{list_indices(bad)}): their displacement is NaN; transform() returns them "
                          f"unshifted", RuntimeWarning, stacklevel=2)
        return RegistrationModel._from_arrays(deltas, self.axis, type(self).__name__, self.threads)

    def _fit_plain_mean(self, stack: "_Stack", batch: Optional[int]) -> Tuple[Any, Any]:
        """Every frame against the plain mean of the frames (thunder's reference), FFT only:
        the mean of a drifting movie is blurred, and a frame's own share of it would be its
        sharpest match. (None, None) when one frame alone is finite."""
        ref, count = _reference(stack, None)
        if count == 1:
            return None, None
        return self._fit_once(stack, ref, batch, 1.0 / count, None, False, [])

    def _fit_registered_mean(self, stack: "_Stack", given: Optional[np.ndarray], iterations: int,
                             batch: Optional[int]) -> Tuple[Any, Any]:
        """Every frame against the mean of the registered frames (``motion_reference``), or
        against ``given`` alone with ``iterations=0``. (None, None) when no reference was
        given and one frame alone is finite (its displacement is zero by definition)."""
        if given is not None and iterations == 0:
            return self._fit_once(stack, given, batch, 0.0, None, True, [])
        good = np.flatnonzero(_finite_mask(stack))
        if given is None and good.size == 0:
            raise ValueError("every frame contains NaN or inf pixels: there is nothing to build a "
                             "reference from; clean the frames (e.g. numpy.nan_to_num) or pass one")
        if given is None and good.size == 1:
            return None, None
        if given is not None and good.size == 0:  # nothing to average: NaN for every frame
            return self._fit_once(stack, given, batch, 0.0, None, True, [])
        weights: "float | np.ndarray" = 0.0
        if given is None:
            seeds = _seed_indices(stack, good, batch)
            given = _plain_mean(stack, seeds)
            weights = np.zeros(len(stack))
            weights[seeds] = 1.0 / len(seeds)  # each seed's (unshifted) share is left out
        deltas, _ = self._fit_once(stack, given, batch, weights, None, False, [])
        ref, count = _registered_mean(stack, deltas, self.axis, self.threads, batch)
        for _ in range(iterations - 1):
            deltas, _ = self._fit_once(stack, ref, batch, 1.0 / count, deltas, False, [])
            ref, count = _registered_mean(stack, deltas, self.axis, self.threads, batch)
        if not (self.subpixel and self.refine == "intensity"):
            return self._fit_once(stack, ref, batch, 1.0 / count, deltas, False, [])
        plane_shape = ref.shape if self.axis is None else _plane_shape(ref, self.axis)
        box = reference_box(deltas, plane_shape, self.axis)
        refined, status = self._refine_once(stack, ref, batch, deltas, box)
        # A refinement that kept its start: the frame again in full, FFT peak then refinement.
        again = np.flatnonzero(np.any(status.reshape(len(status), -1) == STATUS_REFINE_KEPT, axis=1))
        if again.size:  # read batch by batch: thin volumes keep every start
            core = _make_core(ref, **self._params(stack, True, box))
            step = stack.batch_size(batch)
            for first in range(0, again.size, step):
                rows = again[first:first + step]
                d, s = _fit_frames(core, stack.take(rows), self.axis, self.threads, 1.0 / count, deltas[rows])
                refined[rows], status[rows] = d, s
        status[status == STATUS_REFINE_KEPT] = 0  # a valid displacement
        return refined, status

    def _own_mean_model(self, stack: "_Stack") -> RegistrationModel:
        """The model of a stack whose mean reference is its one finite frame: zero for that
        frame, NaN (with a warning) for the frames with NaN or inf pixels."""
        finite = _finite_mask(stack)
        if self.axis is None:
            deltas = np.zeros((stack.shape[0], len(stack.shape) - 1))
        else:
            deltas = np.zeros((stack.shape[0], stack.shape[1 + self.axis], 2))
        deltas[~finite] = np.nan
        bad = np.flatnonzero(~finite)
        if bad.size:
            warnings.warn(f"{bad.size} frame(s) contain NaN or inf pixels (frames {list_indices(bad)}): their "
                          f"displacement is NaN; transform() returns them unshifted", RuntimeWarning, stacklevel=3)
        return RegistrationModel._from_arrays(deltas, self.axis, type(self).__name__, self.threads)

    def fit_and_transform(self, images: Any, reference: Any = None, *, iterations: Optional[int] = None,
                          interpolation: str = "linear", batch: Optional[int] = None,
                          out: Optional[np.ndarray] = None) -> Any:
        """``fit(images, reference)`` then ``transform(images)``: the registered
        stack, same shape and dtype (see ``RegistrationModel.transform``)."""
        model = self.fit(images, reference, iterations=iterations, batch=batch)
        with warnings.catch_warnings():
            # fit has already warned about NaN frames.
            warnings.filterwarnings("ignore", message=".*returned unshifted", category=RuntimeWarning)
            return model.transform(images, interpolation=interpolation, batch=batch, out=out)

    def __repr__(self) -> str:
        return (f"CrossCorr(axis={self.axis}, subpixel={self.subpixel}, whiten={self.whiten}, "
                f"max_shift={self.max_shift}, taper={self.taper}, refine={self.refine!r}, threads={self.threads})")

    def _check_stack(self, stack: "_Stack") -> None:
        if self.axis is not None and stack.ndim != 4:
            raise ValueError(f"axis={self.axis} registers the planes of volumes: images must be "
                             f"(T, Z, Y, X), got {stack.ndim} dimensions")
        if self.max_shift is not None and len(self.max_shift) > 1:
            want = 2 if self.axis is not None else stack.ndim - 1
            if len(self.max_shift) != want:
                raise ValueError(f"max_shift needs one value per {'plane ' if self.axis is not None else ''}"
                                 f"axis ({want}), got {len(self.max_shift)}")

    def _core_max_shift(self, rank: int) -> List[int]:
        if self.max_shift is None:
            return []
        return list(self.max_shift) * rank if len(self.max_shift) == 1 else list(self.max_shift)

    def _params(self, stack: "_Stack", refine: bool, box: List[int]) -> _CoreParams:
        return _CoreParams(whiten=self.whiten, subpixel=self.subpixel, axis=self.axis,
                           max_shift=self._core_max_shift(2 if self.axis is not None else stack.ndim - 1),
                           refine=refine, reference_box=box if refine else [], taper=self.taper)

    def _fit_once(self, stack: "_Stack", ref: np.ndarray, batch: Optional[int], self_weight: "float | np.ndarray",
                  self_deltas: Optional[np.ndarray], final: bool, box: List[int]) -> Tuple[np.ndarray, np.ndarray]:
        params = self._params(stack, final and self.subpixel and self.refine == "intensity", box)
        if stack.dask is not None:
            return _dask_fit(stack.dask, ref, params, _block_threads(None, self.threads), self_weight,
                             self_deltas)
        core = _make_core(ref, **params)
        deltas, status = [], []
        for start, block in stack.batches(batch):
            sd = None if self_deltas is None else self_deltas[start:start + len(block)]
            sw = self_weight[start:start + len(block)] if isinstance(self_weight, np.ndarray) else self_weight
            d, s = _fit_frames(core, block, self.axis, self.threads, sw, sd)
            deltas.append(d)
            status.append(s)
        return np.concatenate(deltas), np.concatenate(status)

    def _refine_once(self, stack: "_Stack", ref: np.ndarray, batch: Optional[int], start: np.ndarray,
                     box: List[int]) -> Tuple[np.ndarray, np.ndarray]:
        """The intensity refinement alone from ``start`` (statuses: 3 where it kept the start)."""
        params = self._params(stack, True, box)
        if stack.dask is not None:
            return _dask_fit(stack.dask, ref, params, _block_threads(None, self.threads), 0.0, None, start=start)
        core = _make_core(ref, **params)
        deltas, status = [], []
        for first, block in stack.batches(batch):
            d, s = _refine_frames(core, block, self.axis, self.threads, start[first:first + len(block)])
            deltas.append(d)
            status.append(s)
        return np.concatenate(deltas), np.concatenate(status)

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
                              _make_core, _plane_shape, _transform_block)
from .motion_refine import check_refine, copy_shift, reference_box, whole_shifts

# Frames per call into C++ are chosen to stay near this many bytes of
# float32, so memmaps and huge stacks are never loaded whole.
_BATCH_BYTES = 64 << 20


# Re-estimates of a mean reference by default (see CrossCorr.fit).
_DEFAULT_MEAN_ITERATIONS = 3

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
    refine : {"intensity", None}
        "intensity" (default): after the FFT peak, a few Gauss-Newton steps
        on the intensity difference with the reference (cubic-spline
        model, gain and offset solved for; the FFT estimate is kept when
        they do not lower the residual). About 7x more accurate on
        interpolated or pixel-integrated frames (0.005 against 0.033-0.038
        px mean absolute error with the true reference in
        ``bench/bench_stack.py --accuracy``) for about 1.45x the time of a
        pass. None: the FFT estimate alone (faster). With a mean reference
        only the final re-estimate's pass refines (none with
        ``iterations=0``: the plain mean of a drifting movie is blurred);
        ``subpixel=False`` never refines. See
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
                 max_shift: Any = None, refine: Optional[str] = "intensity", threads: int = 0) -> None:
        self.axis = None if axis is None else check_axis(axis)
        if not isinstance(subpixel, (bool, np.bool_)):
            raise TypeError("subpixel must be True or False")
        self.subpixel = bool(subpixel)
        self.whiten = as_float(whiten, "whiten")
        if not -1.0 <= self.whiten <= 0.0:
            raise ValueError(f"whiten must be between -1 (phase correlation) and 0 (plain "
                             f"cross-correlation), got {self.whiten}")
        self.max_shift = _check_max_shift(max_shift)
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
            One frame-shaped reference. Default: the mean of the frames
            (frames with NaN or inf pixels left out). Each frame's own share
            of a mean reference is left out of its correlation (otherwise its
            own noise, whitened, would pull its peak towards zero).
        iterations : int, optional
            Re-estimate the reference this many times as the mean of the
            registered frames (linear interpolation), refitting each time (0:
            no re-estimation). Default: 3 when the reference is the mean of
            the frames, 0 when one is given. The mean of a drifting movie is
            blurred, and whitened correlation against it finds where most
            frames sit rather than where each one is (6.7 px RMS on a movie
            drifting by 10 px, examples/motion_correction.py); three
            re-estimates bring that to 0.3 px (0.02 px with the default
            ``refine="intensity"``).
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
        ref, count = _reference(stack, reference)
        if reference is None and count == 1:
            # One usable frame: the mean is that frame, so its displacement is zero by
            # definition (leaving its own share out would leave nothing to correlate with).
            return self._own_mean_model(stack)
        # A mean reference contains each frame; its share is left out of that
        # frame's correlation (see StackRegCore.fit's self_weight).
        self_weight = 1.0 / count if count else 0.0
        # The refinement runs in the final pass only, and never against the plain mean of a
        # drifting movie (blurred: the frame's own share in it would be its sharpest match).
        deltas, status = self._fit_once(stack, ref, batch, self_weight, None,
                                        iterations == 0 and reference is not None, [])
        for it in range(iterations):
            ref, count = _registered_mean(stack, deltas, self.axis, self.threads, batch)
            self_weight = 1.0 / count
            box = reference_box(deltas, ref.shape if self.axis is None else _plane_shape(ref, self.axis), self.axis)
            deltas, status = self._fit_once(stack, ref, batch, self_weight, deltas, it + 1 == iterations, box)
        bad = np.flatnonzero(np.any(status.reshape(len(status), -1) == 1, axis=1))
        if bad.size:
            warnings.warn(f"{bad.size} frame(s) contain NaN or inf pixels (frames "
                          f"{list_indices(bad)}): their displacement is NaN; transform() returns them "
                          f"unshifted", RuntimeWarning, stacklevel=2)
        return RegistrationModel._from_arrays(deltas, self.axis, type(self).__name__, self.threads)

    def _own_mean_model(self, stack: "_Stack") -> RegistrationModel:
        """The model of a stack whose mean reference is its one finite frame: zero for that
        frame, NaN (with a warning) for the frames with NaN or inf pixels."""
        if stack.dask is not None:
            import dask.array as da

            frames = stack.dask.reshape(stack.shape[0], -1)
            finite = (np.asarray(da.all(da.isfinite(frames), axis=1).compute())
                      if np.issubdtype(stack.dask.dtype, np.floating) else np.ones(stack.shape[0], bool))
        else:
            finite = np.concatenate([_finite_frames(block) for _, block in stack.batches(None)])
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
                f"max_shift={self.max_shift}, refine={self.refine!r}, threads={self.threads})")

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

    def _fit_once(self, stack: "_Stack", ref: np.ndarray, batch: Optional[int], self_weight: float,
                  self_deltas: Optional[np.ndarray], final: bool, box: List[int]) -> Tuple[np.ndarray, np.ndarray]:
        refine = final and self.subpixel and self.refine == "intensity"
        params = _CoreParams(whiten=self.whiten, subpixel=self.subpixel, axis=self.axis,
                             max_shift=self._core_max_shift(2 if self.axis is not None else stack.ndim - 1),
                             refine=refine, reference_box=box if refine else [])
        if stack.dask is not None:
            return _dask_fit(stack.dask, ref, params, _block_threads(None, self.threads), self_weight,
                             self_deltas)
        core = _make_core(ref, **params)
        deltas, status = [], []
        for start, block in stack.batches(batch):
            sd = None if self_deltas is None else self_deltas[start:start + len(block)]
            d, s = _fit_frames(core, block, self.axis, self.threads, self_weight, sd)
            deltas.append(d)
            status.append(s)
        return np.concatenate(deltas), np.concatenate(status)


# ---------------------------------------------------------------------------------------
# Plumbing (top-level functions: the Dask per-block functions must pickle)


class _Stack:
    """A validated (T, Y, X) / (T, Z, Y, X) input: NumPy (incl. memmap) or Dask."""

    def __init__(self, images: Any) -> None:
        arr = _stack_array(images, allow_dask=True)
        self.dask = arr if _is_dask(arr) else None
        self.array = arr
        self.ndim = arr.ndim
        self.shape = tuple(int(s) for s in arr.shape)
        self.dtype = np.dtype(arr.dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def batch_size(self, batch: Optional[int]) -> int:
        if batch is not None:
            return batch
        frame_bytes = 4 * int(np.prod(self.shape[1:]))
        return max(1, min(len(self), _BATCH_BYTES // frame_bytes))

    def batches(self, batch: Optional[int]) -> Iterator[Tuple[int, np.ndarray]]:
        step = self.batch_size(batch)
        for start in range(0, len(self), step):
            yield start, np.asarray(self.array[start:start + step])

    def check_deltas(self, deltas: np.ndarray, axis: Optional[int]) -> None:
        if len(deltas) != len(self):
            raise ValueError(f"the model has {len(deltas)} transformations but images has "
                             f"{len(self)} frames")
        if axis is None:
            if deltas.shape[1] != self.ndim - 1:
                raise ValueError(f"the model's displacements have {deltas.shape[1]} axes but the frames "
                                 f"have {self.ndim - 1}")
        else:
            if self.ndim != 4:
                raise ValueError("a per-plane (axis) model needs (T, Z, Y, X) volumes")
            if deltas.shape[1] != self.shape[1 + axis]:
                raise ValueError(f"the model has {deltas.shape[1]} planes along axis {axis} but the "
                                 f"volumes have {self.shape[1 + axis]}")


def _is_dask(x: Any) -> bool:
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(x, da.Array)


def _stack_array(images: Any, allow_dask: bool = False) -> Any:
    """``images`` checked as a (T, Y, X) / (T, Z, Y, X) stack of real pixels (CrossCorr's and
    NonRigidCrossCorr's input). NumPy arrays (memmaps stay memmaps: read batch by batch) and,
    with ``allow_dask``, Dask arrays are returned as they are; anything else through np.asarray."""
    if isinstance(images, np.ndarray) or (allow_dask and _is_dask(images)):
        arr = images
    else:
        try:
            arr = np.asarray(images)
        except (TypeError, ValueError):
            raise TypeError(f"images must be an array, got {type(images).__name__}") from None
    check_dtype(arr.dtype, "images")
    if arr.ndim not in (3, 4):
        raise ValueError(f"images must be a (T, Y, X) image stack or (T, Z, Y, X) volumes, got "
                         f"{arr.ndim} dimensions (shape {tuple(arr.shape)}); a single image needs "
                         f"a leading frame axis, e.g. image[None]")
    if arr.shape[0] == 0:
        raise ValueError("images is an empty stack (no frames)")
    if any(s == 0 for s in arr.shape[1:]):
        raise ValueError(f"images has empty frames (shape {tuple(arr.shape)})")
    return arr


def _check_batch(batch: Any) -> Optional[int]:
    return None if batch is None else as_int(batch, "batch", minimum=1)


def _check_max_shift(max_shift: Any) -> Optional[Tuple[int, ...]]:
    if max_shift is None:
        return None
    values = [max_shift] if np.ndim(max_shift) == 0 else list(np.asarray(max_shift, dtype=object).ravel())
    if not 1 <= len(values) <= 3:
        raise ValueError(f"max_shift must be one integer or one per axis, got {max_shift!r}")
    return tuple(as_int(v, "max_shift", minimum=0) for v in values)


def _block_threads(threads: Optional[int], default: int) -> int:
    # Dask already runs blocks in parallel: one thread per block unless asked.
    t = default if threads is None else as_int(threads, "threads", minimum=0)
    return t if t > 0 else 1


def _reference(stack: _Stack, reference: Any) -> Tuple[np.ndarray, int]:
    """The reference, and how many frames it averages (0: given by the caller)."""
    if reference is None:
        if stack.dask is not None:
            return _dask_mean(stack.dask)
        total = np.zeros(stack.shape[1:], dtype=np.float64)
        count = 0
        for _, block in stack.batches(None):
            good = _finite_frames(block)
            total += block[good].sum(axis=0, dtype=np.float64)
            count += int(good.sum())
        if count == 0:
            raise ValueError("every frame contains NaN or inf pixels: there is nothing to build a "
                             "reference from; clean the frames (e.g. numpy.nan_to_num) or pass one")
        return (total / count).astype(np.float32), count
    if _is_dask(reference):
        reference = reference.compute()
    try:
        ref = np.asarray(reference)
    except (TypeError, ValueError):
        raise TypeError(f"reference must be an array, got {type(reference).__name__}") from None
    check_dtype(ref.dtype, "reference")
    if ref.shape != stack.shape[1:]:
        raise ValueError(f"reference shape {ref.shape} does not match the frame shape {stack.shape[1:]}: "
                         f"pass one frame-shaped reference (e.g. images.mean(axis=0)), or None for the mean")
    ref = as_core_array(ref, np.float32)
    if not np.all(np.isfinite(ref)):
        raise ValueError("reference contains NaN or inf pixels; replace them first (e.g. "
                         "numpy.nan_to_num(ref, nan=numpy.nanmean(ref)))")
    return ref, 0


def _finite_frames(block: np.ndarray) -> np.ndarray:
    if np.issubdtype(block.dtype, np.integer):
        return np.ones(len(block), dtype=bool)
    return np.all(np.isfinite(block.reshape(len(block), -1)), axis=1)


def _numpy_transform(stack: _Stack, deltas: np.ndarray, axis: Optional[int], interpolation: str,
                     threads: int, batch: Optional[int], out: Optional[np.ndarray]) -> np.ndarray:
    batch = _check_batch(batch)
    if out is None:
        out = np.empty(stack.shape, dtype=stack.dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError("out must be a NumPy array (or memmap)")
        if out.shape != stack.shape or out.dtype != stack.dtype:
            raise ValueError(f"out must have the shape {stack.shape} and dtype {stack.dtype} of images, "
                             f"got {out.shape} {out.dtype}")
        if np.may_share_memory(out, stack.array):
            raise ValueError("out must not overlap images (images are never modified): pass a new array")
    for start, block in stack.batches(batch):
        stop = start + len(block)
        if axis is None and whole_shifts(deltas[start:stop]):
            copy_shift(block, deltas[start:stop], threads, out[start:stop])  # no float32 round trip
        else:
            shift_frames(block, deltas[start:stop], axis, interpolation, threads, out[start:stop])
    return out


def _registered_mean(stack: _Stack, deltas: np.ndarray, axis: Optional[int], threads: int,
                     batch: Optional[int]) -> Tuple[np.ndarray, int]:
    """Mean of the registered frames (frames with NaN displacements left out)."""
    good = np.all(np.isfinite(deltas.reshape(len(deltas), -1)), axis=1)
    if not good.any():
        raise ValueError("no frame could be registered (all displacements are NaN)")
    if stack.dask is not None:
        reg = _dask_transform(stack.dask, deltas, axis, "linear", _block_threads(None, threads), as_float=True)
        return _dask_mean(reg[np.flatnonzero(good)])
    total = np.zeros(stack.shape[1:], dtype=np.float64)
    for start, block in stack.batches(batch):
        keep = good[start:start + len(block)]
        if not keep.any():
            continue
        reg = shift_frames(block[keep], deltas[start:start + len(block)][keep], axis, "linear", threads,
                           as_float=True)
        total += reg.sum(axis=0, dtype=np.float64)
    return (total / good.sum()).astype(np.float32), int(good.sum())

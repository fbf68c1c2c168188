"""Non-rigid (piecewise-rigid) motion correction: ``NonRigidCrossCorr``.

Brain tissue does not move as one piece. Every frame of a movie ``(T, Y, X)``
(or volume of a series ``(T, Z, Y, X)``) is registered to a reference block
by block, on a grid of overlapping blocks, as suite2p's "nonrigid" and
NoRMCorre's piecewise-rigid registration do::

    model = NonRigidCrossCorr(block_size=(128, 128)).fit(movie)
    registered = model.transform(movie)        # same shape and dtype
    model.toarray()                            # (T, ny, nx, 2) block displacements
    model.field(0)                             # (Y, X, 2) dense field of frame 0

(volumes: ``toarray()`` is (T, nz, ny, nx, 3), ``field`` (Z, Y, X, 3)).

Conventions (``CrossCorr``'s, thunder-registration's)
----------------------------------------------------
Displacements are in array axis order, ``(dy, dx)`` = (row, column) or
``(dz, dy, dx)`` for volumes, and positive when the frame's content lies
further along an axis than the reference's: a block's ``delta`` says ``frame(x) ~ reference(x - delta)``
near the block. The dense field ``d`` of a frame maps OUTPUT (reference)
coordinates to FRAME coordinates: ``transform`` returns
``registered(x) = frame(x + d(x))``, pixels entering at the edges taking the
nearest edge pixel (as ``CrossCorr.transform``).

Steps of ``fit``: (1) optionally a rigid ``CrossCorr`` pass; (2) per block,
a tapered (Hann by default), mean-subtracted, whitened FFT cross-correlation
of the frame's block (read at the reference block's position plus the
frame's rounded rigid shift, so no resampling) against the same block of the
reference, with ``CrossCorr``'s subpixel peak (parabola, then Newton steps
on the band-limited interpolant); (3) outliers (a correlation peak of low
quality, or far from the median of the neighbouring blocks) replaced by that
median; (4) optional smoothing over the block grid; (5) ``refine`` passes:
the frames resampled through the field so far, their residual block
displacements added. ``transform`` upsamples each frame's block grid into a
dense field (cubic convolution in block-index space by default) and
resamples the frame through the sample core's ``warp_field`` (linear or
cubic). Steps (2) and (5), the field and the warp run in C++ over frames x
blocks (frames for the warp) with the GIL released; results do not depend
on the number of threads. Steps (3) and (4) are NumPy on the small
(T, *grid, ndim) block grid (about 0.2 ms per frame, 1-2% of ``fit``, measured).

Why a sibling class rather than ``CrossCorr(block_size=...)``: ``CrossCorr``
keeps thunder-registration's model (one ``Displacement`` per frame in a
``transformations`` dict), which a per-block field does not fit; a separate
class and model keep that API unchanged.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np

from .. import _core
from .._validate import as_core_array, as_float, as_int
from ..transforms.displacement import check_dtype, list_indices, shift_frames
from ._motion_stack import _stack_array
from .crosscorr import CrossCorr
from .nonrigid_grid import block_grid, check_overlap, clean_blocks, fill_axes, per_axis

_BATCH_BYTES = 64 << 20
_UPSAMPLING = ("linear", "cubic")
_INTERPOLATIONS = ("linear", "cubic")


class NonRigidModel:
    """Per-frame block displacements from ``NonRigidCrossCorr.fit``.

    Attributes
    ----------
    shape : tuple of int
        Frame shape, (Y, X) or (Z, Y, X).
    block_size : tuple of int
        Block shape, one size per axis.
    block_starts : list of numpy.ndarray
        Per axis, the first corner of each block row / column / plane (pixels).
    centers : list of numpy.ndarray
        Per axis, the centre of each block row / column / plane
        (``start + (size - 1) / 2``): where a block's displacement sits in
        the dense field.
    rigid : numpy.ndarray or None
        (T, ndim) rigid displacements of the pre-step (included in the block
        displacements), or None.
    quality : numpy.ndarray
        (T, *grid) correlation peak over the correlation's RMS per block
        (first pass, before outlier replacement).
    replaced : numpy.ndarray
        (T, *grid) bool: blocks whose displacement was replaced from their
        neighbours (first pass).
    upsampling : str
        How ``field`` interpolates the block grid: "cubic" (Catmull-Rom) or
        "linear", separable in block-index space; constant beyond the
        outermost block centres.
    """

    def __init__(self, deltas: np.ndarray, *, shape: Tuple[int, ...], block_size: Tuple[int, ...],
                 block_starts: List[np.ndarray], rigid: Optional[np.ndarray] = None,
                 quality: Optional[np.ndarray] = None, replaced: Optional[np.ndarray] = None,
                 upsampling: str = "cubic", threads: int = 0) -> None:
        d = np.asarray(deltas, dtype=np.float64)
        starts = [np.asarray(st, np.int64) for st in block_starts]
        rank = len(starts)
        grid = tuple(len(st) for st in starts)
        if rank not in (2, 3) or len(shape) != rank or len(block_size) != rank:
            raise ValueError("shape, block_size and block_starts need one entry per frame axis (2 or 3)")
        if d.ndim != rank + 2 or d.shape[1:] != grid + (rank,):
            raise ValueError(f"deltas must have shape (frames, *{grid}, {rank}), got {d.shape}")
        if upsampling not in _UPSAMPLING:
            raise ValueError(f"upsampling must be one of {_UPSAMPLING}, got {upsampling!r}")
        self._deltas = np.ascontiguousarray(d)
        self.shape = tuple(int(v) for v in shape)
        self.block_size = tuple(int(v) for v in block_size)
        self.block_starts = starts
        self.centers = [st + (b - 1) / 2.0 for st, b in zip(starts, self.block_size)]
        self.rigid = rigid
        n = len(d)
        self.quality = np.zeros(d.shape[:-1], np.float32) if quality is None else quality
        self.replaced = np.zeros(d.shape[:-1], bool) if replaced is None else replaced
        self.upsampling = upsampling
        self.threads = as_int(threads, "threads", minimum=0)
        self._n = n

    def __len__(self) -> int:
        return self._n

    def toarray(self) -> np.ndarray:
        """Block displacements, (frames, ny, nx, 2) float64 (volumes: (frames, nz, ny, nx, 3)):
        ``(dy, dx)`` (``(dz, dy, dx)``) per block in array axis order, positive when the frame's content lies further along the axis than the
        reference's (NaN for frames with NaN or inf pixels)."""
        return self._deltas.copy()

    def field(self, frame: int) -> np.ndarray:
        """The dense displacement field of one frame, (Y, X, 2) (volumes: (Z, Y, X, 3)) float32
        in array axis order:
        ``transform`` samples that frame at ``x + field[x]`` (output/reference coordinates to
        frame coordinates). NaN everywhere for a frame with NaN displacements."""
        i = as_int(frame, "frame")
        if not -self._n <= i < self._n:
            raise IndexError(f"frame {i} out of range for a model of {self._n} frames")
        grid = self._deltas[i]
        if not np.all(np.isfinite(grid)):
            return np.full(self.shape + (len(self.shape),), np.nan, np.float32)
        return _core.stackreg.block_field(grid, [c.tolist() for c in self.centers], list(self.shape),
                                          self.upsampling)

    def transform(self, images: Any, *, interpolation: str = "linear", threads: Optional[int] = None,
                  batch: Optional[int] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Register ``images``: frame i resampled at ``x + field(i)[x]``.

        Parameters
        ----------
        images : array_like or numpy.memmap
            (T, Y, X) or (T, Z, Y, X), one frame per model frame; never modified (read in batches).
        interpolation : {"linear", "cubic"}
            Linear or cubic convolution (Catmull-Rom, as ``CrossCorr``'s
            "cubic") resampling of the frames.
        threads : int, optional
            Threads (0: all cores); default: the model's.
        batch : int, optional
            Frames per batch (default: about 64 MiB of float32).
        out : numpy.ndarray, optional
            Where to write the result (same shape and dtype as ``images``);
            must not overlap ``images``.

        Returns
        -------
        numpy.ndarray
            Same shape and dtype as ``images`` (integer dtypes rounded and
            clamped); frames with NaN displacements are returned unshifted,
            with a RuntimeWarning.
        """
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
        nthreads = self.threads if threads is None else as_int(threads, "threads", minimum=0)
        arr = _stack_array(images)
        if len(arr) != self._n:
            raise ValueError(f"the model has {self._n} frames but images has {len(arr)}")
        if arr.shape[1:] != self.shape:
            raise ValueError(f"the model is for frames of shape {self.shape}, got {arr.shape[1:]}")
        if out is None:
            out = np.empty(arr.shape, dtype=arr.dtype)
        elif not isinstance(out, np.ndarray) or out.shape != arr.shape or out.dtype != arr.dtype:
            raise ValueError(f"out must be a NumPy array of shape {arr.shape} and dtype {arr.dtype}")
        elif np.may_share_memory(out, arr):
            raise ValueError("out must not overlap images (images are never modified): pass a new array")
        bad = np.flatnonzero(~np.all(np.isfinite(self._deltas.reshape(self._n, -1)), axis=1))
        if bad.size:
            warnings.warn(f"{bad.size} frame(s) with NaN displacements (frames {list_indices(bad)}) are "
                          f"returned unshifted", RuntimeWarning, stacklevel=2)
        for start, block in _batches(arr, batch):
            stop = start + len(block)
            warped = self._warp(block, self._deltas[start:stop], interpolation, nthreads)
            out[start:stop] = _cast(warped, arr.dtype)
        return out

    def _warp(self, block: np.ndarray, grids: np.ndarray, interpolation: str, threads: int) -> np.ndarray:
        return _core.stackreg.warp_blocks(as_core_array(block, np.float32), grids,
                                          [c.tolist() for c in self.centers], self.upsampling, interpolation,
                                          threads)

    def __repr__(self) -> str:
        d = self._deltas
        finite = np.all(np.isfinite(d.reshape(self._n, -1)), axis=1)
        grid = " x ".join(str(v) for v in d.shape[1:-1])
        lines = [f"NonRigidModel({self._n} frames of {self.shape}, blocks {self.block_size} on a "
                 f"{grid} grid, toarray() shape {d.shape})"]
        if finite.any():
            mag = np.linalg.norm(d[finite], axis=-1)
            lines.append(f"  |delta|: mean {mag.mean():.3f}, max {mag.max():.3f} px; "
                         f"{int(self.replaced.sum())} block(s) replaced from neighbours")
        if (~finite).any():
            lines.append(f"  {int((~finite).sum())} frame(s) with NaN displacements")
        return "\n".join(lines)


class NonRigidCrossCorr:
    """Non-rigid (piecewise-rigid) motion correction by block-wise FFT cross-correlation.

    Parameters
    ----------
    block_size : int or sequence of int, optional
        Block shape in pixels, one value for every axis or one per axis
        ((rows, columns), or (planes, rows, columns) for volumes); each at
        least 4 and at most the frame's size. Default: 128 per axis (suite2p's
        default), capped at the frame's size (a volume of 30 planes gets
        blocks of 30 planes).
    block_overlap : float or int or sequence
        Overlap of neighbouring blocks, one value or one per axis: a float in
        [0, 1) is a fraction of the block size, an int (>= 0, < block size)
        a number of pixels. The blocks are spread evenly, so the actual
        overlap is at least this. Default 0.5.
    rigid : bool
        Run a rigid ``CrossCorr`` pass first (default, as suite2p): each
        block is then read at the frame's rounded rigid shift, so the blocks
        search only the residual, non-rigid motion.
    whiten : float
        Exponent in [-1, 0] applied to each block's cross-power spectrum
        (as ``CrossCorr``'s; default -0.65).
    max_shift : int or sequence of int, optional
        Largest rigid displacement searched (``CrossCorr``'s max_shift).
    block_max_shift : int or sequence of int, optional
        Largest displacement of a block relative to the frame's rounded rigid
        shift (pixels). Default: a quarter of the block size.
    taper : float
        Fraction of the block, per side, over which the raised-cosine taper
        falls to 0, in [0, 0.5] (default 0.5, a Hann window: a block's
        estimate then weights its centre most; 0.25 measured 0.10 px field
        error against 0.07 on the test movie).
    min_quality : float
        Blocks whose correlation peak is below this many times the
        correlation's RMS are replaced from their neighbours (default 5; pure
        noise gives about 4 on a 128 x 128 block).
    outlier_px : float
        Blocks farther than this (pixels, on any axis) from the median of their
        neighbours (up to 8, or 26 for volumes) are replaced by that median
        (default 2; inf disables).
    refine : int
        Refinement passes (default 1): the frames are resampled through the
        field so far and the blocks re-registered; their residual is added.
        A block's correlation measures its tapered average of the motion;
        a pass corrects the field where that average and the upsampled
        field differ (0.11 -> 0.07 px mean field error on the test movie, at
        about twice the fitting time). Blocks only a few pixels deep (volumes'
        z) bias a tapered correlation towards zero: use 2 there.
    smooth : float
        Standard deviation (in blocks) of a Gaussian smoothing of each frame's
        block grid after outlier replacement (default 0: none).
    upsampling : {"cubic", "linear"}
        Interpolation of the block grid into the dense field (default cubic).
    threads : int
        Threads for fitting and transforming (0: all cores).

    Notes
    -----
    See the module docstring for the conventions and the steps. Volumes
    (T, Z, Y, X) are registered with 3-D blocks and 3-D fields (e.g.
    ``block_size=(16, 48, 48), refine=2``); a block's neighbourhood is then
    3 x 3 x 3.
    """

    def __init__(self, *, block_size: Any = None, block_overlap: Any = 0.5, rigid: bool = True,
                 whiten: float = -0.65, max_shift: Any = None, block_max_shift: Any = None, taper: float = 0.5,
                 min_quality: float = 5.0, outlier_px: float = 2.0, smooth: float = 0.0,
                 refine: int = 1, upsampling: str = "cubic", threads: int = 0) -> None:
        self.block_size: Optional[Tuple[int, ...]] = None
        if block_size is not None:
            self.block_size = tuple(as_int(v, "block_size") for v in per_axis(block_size, "block_size", None))
            if min(self.block_size) < 4:
                raise ValueError(f"block_size must be at least 4 pixels per axis, got {self.block_size}")
        self.block_overlap = per_axis(block_overlap, "block_overlap", None)
        # Types, fractions and signs now; pixels against the block size too once it is known.
        check_overlap(self.block_overlap, fill_axes(self.block_size, len(self.block_size))
                      if self.block_size is not None else (2 ** 31 - 1,) * len(self.block_overlap))
        if not isinstance(rigid, (bool, np.bool_)):
            raise TypeError("rigid must be True or False")
        self.rigid = bool(rigid)
        self.whiten = as_float(whiten, "whiten")
        if not -1.0 <= self.whiten <= 0.0:
            raise ValueError(f"whiten must be between -1 and 0, got {self.whiten}")
        self.max_shift = max_shift
        self.block_max_shift: Optional[Tuple[int, ...]] = None
        if block_max_shift is not None:
            self.block_max_shift = tuple(as_int(v, "block_max_shift", minimum=0)
                                         for v in per_axis(block_max_shift, "block_max_shift", None))
        self.taper = as_float(taper, "taper")
        if not 0.0 <= self.taper <= 0.5:
            raise ValueError(f"taper must be in [0, 0.5], got {self.taper}")
        self.min_quality = as_float(min_quality, "min_quality")
        self.outlier_px = as_float(outlier_px, "outlier_px")
        if not self.outlier_px > 0:
            raise ValueError(f"outlier_px must be positive, got {self.outlier_px}")
        self.smooth = as_float(smooth, "smooth")
        if not self.smooth >= 0 or not math.isfinite(self.smooth):
            raise ValueError(f"smooth must be >= 0 (blocks), got {self.smooth}")
        if upsampling not in _UPSAMPLING:
            raise ValueError(f"upsampling must be one of {_UPSAMPLING}, got {upsampling!r}")
        self.upsampling = upsampling
        self.refine = as_int(refine, "refine", minimum=0)
        self._taper_frames = True  # False: the reference blocks only (measured worse; see blocks.hpp)
        self.threads = as_int(threads, "threads", minimum=0)
        # Validates max_shift the way CrossCorr does.
        self._rigid = CrossCorr(whiten=self.whiten, max_shift=max_shift, threads=self.threads)

    def fit(self, images: Any, reference: Any = None, *, iterations: Optional[int] = None,
            batch: Optional[int] = None) -> NonRigidModel:
        """Estimate each frame's block displacements relative to ``reference``.

        Parameters
        ----------
        images : array_like or numpy.memmap
            (T, Y, X) movie of 2-D frames or (T, Z, Y, X) series of volumes
            (read in batches, never modified).
        reference : array_like, optional
            One frame-shaped reference. Default: ``CrossCorr``'s default mean
            reference, registered rigidly (the mean of the rigidly registered
            frames), then refined by ``iterations`` non-rigid re-estimates.
        iterations : int, optional
            Times the reference is re-estimated as the mean of the
            non-rigidly registered frames (linear interpolation), refitting
            each time. Default: 1 without a reference, 0 with one.
        batch : int, optional
            Frames per batch (default: about 64 MiB of float32).

        Returns
        -------
        NonRigidModel
            A frame containing NaN or inf pixels gets NaN displacements and a
            RuntimeWarning (as ``CrossCorr.fit``).
        """
        arr = _stack_array(images)
        shape = tuple(int(v) for v in arr.shape[1:])
        rank = len(shape)
        if self.block_size is None:
            block = tuple(min(128, n) for n in shape)
        else:
            block = fill_axes(self.block_size, rank)
            if any(b > n for b, n in zip(block, shape)):
                raise ValueError(f"block_size {block} is larger than the frames {shape}")
        overlap = check_overlap(self.block_overlap, block)
        max_shift = (tuple(b // 4 for b in block) if self.block_max_shift is None
                     else fill_axes(self.block_max_shift, rank))
        if iterations is None:
            iterations = 1 if reference is None else 0
        iterations = as_int(iterations, "iterations", minimum=0)
        batch = None if batch is None else as_int(batch, "batch", minimum=1)
        starts = block_grid(shape, block, overlap)
        blocks = _Blocks(shape, block, starts, max_shift)
        rigid = None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*contain NaN or inf pixels", category=RuntimeWarning)
            if reference is None:
                rigid = self._rigid.fit(arr, batch=batch).toarray()
                ref = _mean(arr, batch, lambda blk, s: shift_frames(blk, rigid[s], None, "linear", self.threads,
                                                                    as_float=True), rigid)
            else:
                ref = _as_reference(reference, shape)
                if self.rigid:
                    rigid = self._rigid.fit(arr, ref, batch=batch).toarray()
        if not self.rigid:
            rigid = None
        model = self._fit_blocks(arr, ref, rigid, blocks, batch)
        for _ in range(iterations):
            ref = _mean(arr, batch, lambda blk, s: model._warp(blk, model._deltas[s], "linear", self.threads),
                        model._deltas.reshape(len(arr), -1))
            if self.rigid:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*contain NaN", category=RuntimeWarning)
                    rigid = self._rigid.fit(arr, ref, batch=batch).toarray()
            model = self._fit_blocks(arr, ref, rigid, blocks, batch)
        bad = np.flatnonzero(~np.all(np.isfinite(model._deltas.reshape(len(arr), -1)), axis=1))
        if bad.size:
            warnings.warn(f"{bad.size} frame(s) contain NaN or inf pixels (frames {list_indices(bad)}): their "
                          f"displacements are NaN; transform() returns them unshifted", RuntimeWarning,
                          stacklevel=2)
        return model

    def fit_and_transform(self, images: Any, reference: Any = None, *, iterations: Optional[int] = None,
                          interpolation: str = "linear", batch: Optional[int] = None) -> np.ndarray:
        """``fit(images, reference)`` then ``transform(images)``."""
        model = self.fit(images, reference, iterations=iterations, batch=batch)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*returned unshifted", category=RuntimeWarning)
            return model.transform(images, interpolation=interpolation, batch=batch)

    def _fit_blocks(self, arr: np.ndarray, ref: np.ndarray, rigid: Optional[np.ndarray], blocks: "_Blocks",
                    batch: Optional[int]) -> NonRigidModel:
        core = _core.stackreg.BlockRegCore(as_core_array(ref, np.float32), [st.tolist() for st in blocks.starts],
                                           list(blocks.block), self.whiten, list(blocks.max_shift), self.taper,
                                           self._taper_frames)
        grid = tuple(len(st) for st in blocks.starts)
        rank = len(grid)

        def fit(frames: np.ndarray, prior: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
            d, q, st = core.fit(as_core_array(frames, np.float32), prior, self.threads)
            return d.reshape((len(frames),) + grid + (rank,)), q.reshape((len(frames),) + grid), st

        deltas, quality, status = [], [], []
        for start, block in _batches(arr, batch):
            prior = None if rigid is None else as_core_array(rigid[start:start + len(block)], np.float64)
            d, q, st = fit(block, prior)
            deltas.append(d)
            quality.append(q)
            status.append(st)
        d, q = np.concatenate(deltas), np.concatenate(quality)
        nan_frames = np.concatenate(status) == 1
        d, replaced = clean_blocks(d, q, min_quality=self.min_quality, outlier_px=self.outlier_px,
                                   smooth=self.smooth, fallback=rigid, nan_frames=nan_frames)
        model = NonRigidModel(d, shape=blocks.shape, block_size=blocks.block, block_starts=blocks.starts,
                              rigid=rigid, quality=q, replaced=replaced, upsampling=self.upsampling,
                              threads=self.threads)
        for _ in range(self.refine):
            # Residual block displacements of the frames resampled through the field so far
            # (linear): d(x) ~ d_est(x) + r for small, smooth residuals r.
            res = []
            for start, block in _batches(arr, batch):
                warped = model._warp(block, model._deltas[start:start + len(block)], "linear", self.threads)
                res.append(fit(warped, None)[0])
            r = np.concatenate(res)
            r, _ = clean_blocks(r, np.full(r.shape[:-1], np.inf, np.float32), min_quality=0.0,
                                outlier_px=self.outlier_px, smooth=self.smooth, nan_frames=nan_frames)
            model._deltas = np.ascontiguousarray(model._deltas + r)
        return model

    def __repr__(self) -> str:
        return (f"NonRigidCrossCorr(block_size={self.block_size}, block_overlap={self.block_overlap!r}, "
                f"rigid={self.rigid}, whiten={self.whiten}, upsampling={self.upsampling!r}, "
                f"threads={self.threads})")


class _Blocks:
    """The block layout of one fit: frame shape, block shape, corners per axis, search limits."""

    def __init__(self, shape: Tuple[int, ...], block: Tuple[int, ...], starts: List[np.ndarray],
                 max_shift: Tuple[int, ...]) -> None:
        self.shape, self.block, self.starts, self.max_shift = shape, block, starts, max_shift


def _as_reference(reference: Any, shape: Tuple[int, ...]) -> np.ndarray:
    ref = np.asarray(reference)
    check_dtype(ref.dtype, "reference")
    if ref.shape != shape:
        raise ValueError(f"reference shape {ref.shape} does not match the frame shape {shape}")
    ref = as_core_array(ref, np.float32)
    if not np.all(np.isfinite(ref)):
        raise ValueError("reference contains NaN or inf pixels")
    return ref


def _batches(arr: np.ndarray, batch: Optional[int]) -> Iterator[Tuple[int, np.ndarray]]:
    step = batch or max(1, _BATCH_BYTES // (4 * int(np.prod(arr.shape[1:]))))
    for start in range(0, len(arr), step):
        yield start, np.asarray(arr[start:start + step])


def _mean(arr: np.ndarray, batch: Optional[int], warp: Any, deltas: np.ndarray) -> np.ndarray:
    """Mean of the registered frames whose displacements are finite."""
    good = np.all(np.isfinite(deltas.reshape(len(deltas), -1)), axis=1)
    if not good.any():
        raise ValueError("no frame could be registered (every frame contains NaN or inf pixels)")
    total = np.zeros(arr.shape[1:], np.float64)
    for start, block in _batches(arr, batch):
        s = slice(start, start + len(block))
        keep = good[s]
        if keep.any():
            idx = np.flatnonzero(keep) + start
            total += warp(block[keep], idx).sum(axis=0, dtype=np.float64)
    return (total / good.sum()).astype(np.float32)


def _cast(result: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.float32:
        return result
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        np.rint(result, out=result)
        np.clip(result, info.min, info.max, out=result)
    return result.astype(dtype)

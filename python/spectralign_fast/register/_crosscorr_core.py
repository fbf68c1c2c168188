"""The core plumbing of ``CrossCorr`` (the StackRegCore it makes and the per-batch fit)
and its Dask per-block functions (top-level, so that they pickle). Split from crosscorr.py."""
from __future__ import annotations

from typing import Any, List, Optional, Tuple, TypedDict

import numpy as np

from .. import _core
from .._validate import as_core_array
from ..transforms.displacement import core_frames, shift_frames
from .motion_refine import STATUS_REFINE_KEPT


def _planes_first(ref: np.ndarray, axis: Optional[int]) -> np.ndarray:
    """(planes, *plane_shape) references for the core."""
    if axis is None:
        return ref[None]
    return np.moveaxis(ref, axis, 0)


class _CoreParams(TypedDict):
    """The settings ``_make_core`` takes (passed as keywords, also to Dask tasks)."""

    whiten: float
    subpixel: bool
    axis: Optional[int]
    max_shift: List[int]
    refine: bool
    reference_box: List[int]
    taper: float


def _plane_shape(ref: np.ndarray, axis: int) -> Tuple[int, ...]:
    return tuple(s for i, s in enumerate(ref.shape) if i != axis)


def _make_core(ref: np.ndarray, *, whiten: float, subpixel: bool, axis: Optional[int],
               max_shift: List[int], refine: bool = False,
               reference_box: Optional[List[int]] = None, taper: float = 0.0) -> _core.stackreg.StackRegCore:
    refs = as_core_array(_planes_first(ref, axis), np.float32)
    for p, r in enumerate(refs):
        spread = float(np.std(r, dtype=np.float64))
        if not spread > 1e-6 * abs(float(np.mean(r, dtype=np.float64))):
            what = "reference" if axis is None else f"plane {p} (along axis {axis}) of the reference"
            raise ValueError(f"{what} is constant: it carries no position information; use a "
                             f"reference with contrast")
    return _core.stackreg.StackRegCore(refs, whiten, subpixel, max_shift, refine, reference_box or [], taper)


def _fit_frames(core: Any, block: np.ndarray, axis: Optional[int], threads: int,
                self_weight: "float | np.ndarray" = 0.0,
                self_deltas: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Deltas and statuses of ``block``'s frames. ``self_weight`` is one weight for every
    frame or one per frame (frames sharing a weight go to the core together)."""
    values = np.unique(np.asarray(self_weight, dtype=np.float64))
    if len(values) <= 1:  # one weight for every frame (none: an empty block)
        return _fit_group(core, block, axis, threads, float(values[0]) if len(values) else 0.0, self_deltas)
    weights = np.asarray(self_weight, dtype=np.float64)
    groups = []
    for value in values:
        rows = np.flatnonzero(weights == value)
        groups.append((rows, *_fit_group(core, block[rows], axis, threads, float(value),
                                         None if self_deltas is None else self_deltas[rows])))
    _, d0, s0 = groups[0]
    deltas = np.empty((len(block),) + d0.shape[1:], d0.dtype)
    status = np.empty((len(block),) + s0.shape[1:], s0.dtype)
    for rows, d, s in groups:
        deltas[rows], status[rows] = d, s
    return deltas, status


def _fit_group(core: Any, block: np.ndarray, axis: Optional[int], threads: int, self_weight: float,
               self_deltas: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    frames = core_frames(block, axis)
    if self_deltas is not None:
        self_deltas = as_core_array(self_deltas.reshape(len(frames), -1), np.float64)
    deltas, status = core.fit(frames, 0, threads, self_weight, self_deltas)
    status[status == STATUS_REFINE_KEPT] = 0  # the refinement kept the FFT estimate: a valid displacement
    if axis is not None:
        deltas = deltas.reshape(len(block), -1, 2)
        status = status.reshape(len(block), -1)
    return deltas, status


def _refine_frames(core: Any, block: np.ndarray, axis: Optional[int], threads: int,
                   start: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``core.refine`` of ``block``'s frames from ``start`` (statuses kept as the core gives
    them: 3 where the refinement kept its start)."""
    frames = core_frames(block, axis)
    deltas, status = core.refine(frames, as_core_array(start.reshape(len(frames), -1), np.float64), 0, threads)
    if axis is not None:
        deltas = deltas.reshape(len(block), -1, 2)
        status = status.reshape(len(block), -1)
    return deltas, status


# --- Dask --------------------------------------------------------------------------------


def _whole_frames(images: Any) -> Any:
    """Rechunked so every block holds whole frames (chunked along time only)."""
    return images.rechunk({i: -1 for i in range(1, images.ndim)})


def _dask_mean(images: Any) -> Tuple[np.ndarray, int]:
    import dask.array as da

    frames = images.reshape(images.shape[0], -1) if images.ndim > 1 else images
    good = da.all(da.isfinite(frames), axis=1) if np.issubdtype(images.dtype, np.floating) else None
    if good is None:
        total, count = images.sum(axis=0, dtype=np.float64), images.shape[0]
        total = total.compute()
    else:
        weights = good.astype(np.float64)
        clean = da.where(good.reshape((-1,) + (1,) * (images.ndim - 1)), images, 0)
        total, count = da.compute(clean.sum(axis=0, dtype=np.float64), weights.sum())
    if count == 0:
        raise ValueError("every frame contains NaN or inf pixels: there is nothing to build a "
                         "reference from; clean the frames (e.g. numpy.nan_to_num) or pass one")
    return (np.asarray(total) / count).astype(np.float32), int(count)


def _fit_block(block: np.ndarray, *, reference: np.ndarray, params: _CoreParams, threads: int,
               self_weight: "float | np.ndarray", self_deltas: Optional[np.ndarray],
               start_deltas: Optional[np.ndarray] = None, block_info: Any = None) -> np.ndarray:
    """Per-block fit for Dask: (frames, D + planes) float64 of deltas then statuses (with
    ``start_deltas``: the refinement alone, from them)."""
    core = _make_core(reference, **params)
    start, stop = block_info[0]["array-location"][0]
    if start_deltas is not None:
        deltas, status = _refine_frames(core, np.asarray(block), params["axis"], threads, start_deltas[start:stop])
        n = len(block)
        return np.concatenate([deltas.reshape(n, -1), status.reshape(n, -1).astype(np.float64)], axis=1)
    if self_deltas is not None:
        self_deltas = self_deltas[start:stop]
    if np.ndim(self_weight):
        self_weight = np.asarray(self_weight)[start:stop]
    deltas, status = _fit_frames(core, np.asarray(block), params["axis"], threads, self_weight, self_deltas)
    n = len(block)
    return np.concatenate([deltas.reshape(n, -1), status.reshape(n, -1).astype(np.float64)], axis=1)


def _dask_fit(images: Any, reference: np.ndarray, params: _CoreParams, threads: int,
              self_weight: "float | np.ndarray", self_deltas: Optional[np.ndarray], *,
              start: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    images = _whole_frames(images)
    axis = params["axis"]
    if axis is None:
        d, s = images.ndim - 1, 1
    else:
        planes = images.shape[1 + axis]
        d, s = 2 * planes, planes
    width = d + s
    if images.ndim == 3:
        drop = [2]
    else:
        drop = [2, 3]
    res = images.map_blocks(_fit_block, drop_axis=drop, chunks=(images.chunks[0], (width,)),
                            dtype=np.float64, meta=np.empty((0, 0), np.float64),
                            reference=reference, params=params, threads=threads, self_weight=self_weight,
                            self_deltas=self_deltas, start_deltas=start)
    out = np.asarray(res.compute())
    deltas = out[:, :d]
    status = out[:, d:].astype(np.int8)
    if axis is not None:
        deltas = deltas.reshape(len(out), -1, 2)
    else:
        status = status[:, 0]
    return np.ascontiguousarray(deltas), status


def _transform_block(block: np.ndarray, *, deltas: np.ndarray, axis: Optional[int], interpolation: str,
                     threads: int, as_float: bool = False, block_info: Any = None) -> np.ndarray:
    """Per-block transform for Dask: the frames of this block, registered."""
    start, stop = block_info[0]["array-location"][0]
    return shift_frames(np.asarray(block), deltas[start:stop], axis, interpolation, threads, as_float=as_float)


def _dask_transform(images: Any, deltas: np.ndarray, axis: Optional[int], interpolation: str,
                    threads: int, *, as_float: bool = False) -> Any:
    images = _whole_frames(images)
    return images.map_blocks(_transform_block, dtype=np.float32 if as_float else images.dtype, deltas=deltas,
                             axis=axis, interpolation=interpolation, threads=threads, as_float=as_float)

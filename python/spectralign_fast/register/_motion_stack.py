"""The frame stacks ``CrossCorr`` reads (NumPy, memmap, Dask; batch by batch), the
references it builds from them, and ``RegistrationModel.transform``'s NumPy path.
Split from crosscorr.py; the Dask per-block functions are in ``_crosscorr_core``."""
from __future__ import annotations

import sys
from typing import Any, Iterator, Optional, Tuple

import numpy as np

from .. import _core
from .._validate import as_core_array, as_int
from ..transforms.displacement import check_dtype, core_frames, shift_frames
from ._crosscorr_core import _dask_mean, _dask_transform
from .motion_reference import SEED_POOL, seed_frames, spread_indices
from .motion_refine import copy_shift, whole_shifts

# Frames per call into C++ are chosen to stay near this many bytes of
# float32, so memmaps and huge stacks are never loaded whole.
_BATCH_BYTES = 64 << 20
# The frames a mean reference is built from are read once when they take at most this much.
_SUBSET_BYTES = 512 << 20
# The seed frame of a mean reference is chosen on every this-many-th pixel along each axis.
_SEED_STRIDE = 4


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

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The frames at ``indices`` (a few), in memory."""
        return _Rows(self.dask if self.dask is not None else self.array, indices)[:]

    def subset(self, indices: np.ndarray) -> "_Stack":
        """The frames at ``indices`` as a NumPy stack: read once, here, when they fit in
        _SUBSET_BYTES (they are read several times), else batch by batch."""
        sub = object.__new__(_Stack)
        sub.dask = None
        sub.ndim, sub.dtype = self.ndim, self.dtype
        sub.shape = (len(indices),) + self.shape[1:]
        rows = _Rows(self.dask if self.dask is not None else self.array, indices)
        frame_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:]))
        sub.array = rows[:] if len(indices) * frame_bytes <= _SUBSET_BYTES else rows
        return sub

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


class _Rows:
    """Frames ``indices`` of a NumPy, memmap or Dask stack, read when sliced."""

    def __init__(self, source: Any, indices: np.ndarray) -> None:
        self.source, self.indices = source, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, rows: slice) -> np.ndarray:
        picked = self.source[self.indices[rows]]
        return np.asarray(picked.compute() if _is_dask(picked) else picked)


def _finite_mask(stack: _Stack) -> np.ndarray:
    """Which frames hold no NaN or inf pixel (every frame of an integer stack)."""
    if not np.issubdtype(stack.dtype, np.floating):
        return np.ones(len(stack), dtype=bool)
    if stack.dask is not None:
        import dask.array as da

        return np.asarray(da.all(da.isfinite(stack.dask.reshape(len(stack), -1)), axis=1).compute())
    return np.concatenate([_finite_frames(block) for _, block in stack.batches(None)])


def _seed_indices(stack: _Stack, good: np.ndarray, batch: Optional[int]) -> np.ndarray:
    """``motion_reference.seed_frames`` among SEED_POOL frames spread over ``good`` (indices
    into the stack), compared on every _SEED_STRIDE-th pixel along each axis."""
    pool = spread_indices(good, SEED_POOL)
    subset = stack.subset(pool)
    grid = (slice(None),) + (slice(None, None, _SEED_STRIDE),) * (subset.ndim - 1)
    small = [block[grid].reshape(len(block), -1).astype(np.float32) for _, block in subset.batches(batch)]
    return pool[seed_frames(np.concatenate(small))]


def _plain_mean(stack: _Stack, indices: np.ndarray) -> np.ndarray:
    """The plain mean of the frames at ``indices``, float32."""
    total = np.zeros(stack.shape[1:], dtype=np.float64)
    step = stack.batch_size(None)
    for first in range(0, len(indices), step):
        total += stack.take(indices[first:first + step]).sum(axis=0, dtype=np.float64)
    return (total / len(indices)).astype(np.float32)


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
    if axis is None:  # shifted and summed in C++, without writing the registered frames
        for start, block in stack.batches(batch):
            d = deltas[start:start + len(block)]
            _core.stackreg.accumulate_shifted(core_frames(block, None), as_core_array(d, np.float64), threads, total)
        return (total / good.sum()).astype(np.float32), int(good.sum())
    for start, block in stack.batches(batch):
        keep = good[start:start + len(block)]
        if not keep.any():
            continue
        reg = shift_frames(block[keep], deltas[start:start + len(block)][keep], axis, "linear", threads,
                           as_float=True)
        total += reg.sum(axis=0, dtype=np.float64)
    return (total / good.sum()).astype(np.float32), int(good.sum())

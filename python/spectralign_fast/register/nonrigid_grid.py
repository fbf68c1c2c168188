"""The block grid of ``NonRigidCrossCorr``: block layout, per-axis options, and the outlier
replacement and smoothing of block displacements (NumPy on the small (T, *grid, ndim) grid)."""
from __future__ import annotations

import itertools
import math
import warnings
from typing import Any, List, Optional, Tuple

import numpy as np


def block_grid(shape: Tuple[int, ...], block_size: Tuple[int, ...],
               overlap: Tuple[int, ...]) -> List[np.ndarray]:
    """First corner of the blocks along each axis (the model's ``block_starts``).

    Along an axis of n pixels with blocks of b and an overlap of at least o
    pixels (stride at most b - o), the fewest blocks that cover the axis,
    spread evenly from 0 to n - b (rounded to whole pixels).
    """
    starts = []
    for n, b, o in zip(shape, block_size, overlap):
        count = 1 if n == b else int(math.ceil((n - b) / (b - o))) + 1
        starts.append(np.rint(np.linspace(0, n - b, count)).astype(np.int64))
    return starts


def per_axis(value: Any, name: str, rank: Optional[int]) -> Tuple[Any, ...]:
    """One value per axis: a scalar for every axis, or a sequence of ``rank`` (2 or 3)."""
    if np.ndim(value) == 0:
        return (value,) * (rank or 1)
    values = tuple(np.asarray(value, dtype=object).ravel())
    if len(values) not in (2, 3) or (rank is not None and len(values) != rank):
        want = f"{rank}" if rank else "2 (rows, columns) or 3 (planes, rows, columns)"
        raise ValueError(f"{name} must be one value or {want}, got {value!r}")
    return values


def fill_axes(values: Tuple[Any, ...], rank: int) -> Tuple[int, ...]:
    """Per-axis values for ``rank`` axes (one value repeats; otherwise exactly ``rank``)."""
    if len(values) == 1:
        return (int(values[0]),) * rank
    if len(values) != rank:
        raise ValueError(f"{len(values)} values given per axis, but the frames have {rank} axes")
    return tuple(int(v) for v in values)


def check_overlap(values: Tuple[Any, ...], block: Tuple[int, ...]) -> Tuple[int, ...]:
    """Overlaps in pixels per axis (fractions of the block for floats)."""
    pair = values * len(block) if len(values) == 1 else values
    if len(pair) != len(block):
        raise ValueError(f"block_overlap needs one value or one per axis ({len(block)}), got {len(pair)}")
    out = []
    for v, b in zip(pair, block):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"block_overlap must be a fraction (float) or pixels (int), got {v!r}")
        if isinstance(v, (float, np.floating)):
            if not 0.0 <= float(v) < 1.0:
                raise ValueError(f"block_overlap as a fraction must be in [0, 1), got {v}")
            px = int(round(float(v) * b))
        else:
            px = int(v)
        if not 0 <= px < b:
            raise ValueError(f"block_overlap must be at least 0 and less than the block size ({b} px), got {v}")
        out.append(min(px, b - 1))
    return tuple(out)


def clean_blocks(deltas: np.ndarray, quality: np.ndarray, *, min_quality: float, outlier_px: float,
                 smooth: float, fallback: Optional[np.ndarray] = None,
                 nan_frames: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Outlier replacement and smoothing of (T, *grid, ndim) block displacements.

    A block is an outlier when its displacement is NaN (no contrast), its
    quality is below ``min_quality``, or it lies more than ``outlier_px``
    (on any axis) from the median of its good neighbours (3 x 3, or 3 x 3 x 3
    for volumes, itself excluded); outliers take that median (the median of the frame's good
    blocks when no neighbour is good; ``fallback[t]`` (the rigid shift) or 0
    when none is). Frames whose blocks are all NaN because the frame had NaN
    pixels (quality 0 everywhere and NaN) stay NaN. Returns the cleaned
    displacements and the mask of replaced blocks.
    """
    d = deltas.copy()
    rank = d.shape[-1]
    if nan_frames is None:
        nan_frames = np.zeros(len(d), bool)
    good = np.all(np.isfinite(d), axis=-1) & (quality >= min_quality)
    med = _neighbour_median(d, good)
    far = np.any(np.abs(d - med) > outlier_px, axis=-1) & np.all(np.isfinite(med), axis=-1)
    replaced = ~good | (far & good)
    keep = good & ~far
    med = _neighbour_median(d, keep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames
        frame_med = np.nanmedian(np.where(keep[..., None], d, np.nan).reshape(len(d), -1, rank), axis=1)
    fb = np.zeros((len(d), rank)) if fallback is None else np.nan_to_num(np.asarray(fallback, np.float64))
    frame_med = np.where(np.isfinite(frame_med), frame_med, fb)
    fill = np.where(np.isfinite(med), med, frame_med.reshape((len(d),) + (1,) * rank + (rank,)))
    d = np.where(replaced[..., None], fill, d)
    if smooth > 0:
        d = _smooth_grid(d, smooth)
    d[nan_frames] = np.nan
    replaced[nan_frames] = False
    return d, replaced


def _neighbour_median(d: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Median of the good neighbours (3 x 3 or 3 x 3 x 3, centre excluded) per block; NaN where none."""
    rank = d.shape[-1]
    vals = np.where(good[..., None], d, np.nan)
    pad = np.pad(vals, ((0, 0),) + ((1, 1),) * rank + ((0, 0),), constant_values=np.nan)
    grid = d.shape[1:-1]
    stack = [pad[(slice(None),) + tuple(slice(1 + o, 1 + o + n) for o, n in zip(off, grid))]
             for off in itertools.product((-1, 0, 1), repeat=rank) if any(off)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN neighbourhoods
        return np.nanmedian(np.stack(stack, axis=-1), axis=-1)


def _smooth_grid(d: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian smoothing over the block axes, edges renormalised."""
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    out = d
    for axis in range(1, d.ndim - 1):
        n = out.shape[axis]
        w = np.zeros((n, n))
        for i in range(n):
            for j in range(max(0, i - r), min(n, i + r + 1)):
                w[i, j] = k[j - i + r]
        w /= w.sum(axis=1, keepdims=True)
        out = np.moveaxis(np.tensordot(w, np.moveaxis(out, axis, 0), axes=(1, 0)), 0, axis)
    return np.ascontiguousarray(out)

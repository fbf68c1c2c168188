"""Chunk grids and 2x2-mean pyramids of 2-D images (the OME-Zarr writer's levels).

Coordinates: arrays are indexed (row, col) = (y, x); chunk rectangles are
``(y0, x0, h, w)`` in output pixels.
"""
from __future__ import annotations

import math
from typing import Any, List, Tuple

import numpy as np

from .._validate import as_int, as_native
from .formats import Region, as_chunk, as_dtype, as_shape, cast


def chunk_grid(shape: Any, chunk: Any) -> List[Region]:
    """The chunks of a (height, width) array as ``(y0, x0, h, w)``, row-major.

    Parameters
    ----------
    shape : (height, width)
        Array shape in pixels (rows, columns).
    chunk : int or (ch, cw)
        Chunk height and width (one integer: square chunks). Edge chunks are
        cut short by the array's edge.

    Returns
    -------
    list of (y0, x0, h, w)
        Row ``y0`` and column ``x0`` of each chunk's first pixel and its
        size, chunk rows first: chunk ``(iy, ix)`` is item
        ``iy * ceil(width / cw) + ix``.
    """
    height, width = as_shape(shape)
    ch, cw = as_chunk(chunk)
    return [(y, x, min(ch, height - y), min(cw, width - x))
            for y in range(0, height, ch) for x in range(0, width, cw)]


def downsample(image: Any, factor: Any) -> np.ndarray:
    """Block mean over ``factor x factor`` pixels, in the image's own dtype.

    Parameters
    ----------
    image : (H, W) array, uint8, uint16 or float32
        Indexed (row, col) = (y, x).
    factor : int
        Block side; output pixel (i, j) is the mean of input rows
        ``factor*i : factor*(i+1)`` and columns ``factor*j : factor*(j+1)``.
        Blocks cut short by the image's edge (odd sizes) are averaged over
        the pixels they contain, so the output is
        ``(ceil(H / factor), ceil(W / factor))``.

    Returns
    -------
    ndarray
        Same dtype as ``image``. Sums are taken in floating point (float32
        where that is exact for the integer dtype, float64 otherwise) and
        integer outputs are rounded half to even, so there is no overflow and
        no truncation bias. Output pixel (i, j) sits at input position
        ``(factor*i + (factor-1)/2, factor*j + (factor-1)/2)`` (y, x) for
        full blocks.
    """
    arr = as_native(np.asarray(image))
    if arr.ndim != 2:
        raise ValueError(f"image must be 2-D (height, width), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"image is empty (shape {arr.shape})")
    dtype = as_dtype(arr.dtype)
    f = as_int(factor, "factor", minimum=1)
    if f == 1:
        return arr.copy()
    acc_t: np.dtype[np.floating[Any]]
    if dtype.kind == "u" and f * f * np.iinfo(dtype).max < 2**24:
        acc_t = np.dtype(np.float32)  # every block sum is an integer below 2**24: exact in float32
    else:
        acc_t = np.dtype(np.float64)
    h, w = arr.shape
    hf, wf = h - h % f, w - w % f
    # Strided adds (f vector passes per axis) beat reductions over a short inner axis.
    rows = arr[0:hf:f].astype(acc_t)
    for k in range(1, f):
        rows += arr[k:hf:f]
    if hf < h:
        rows = np.vstack([rows, arr[hf:].sum(axis=0, dtype=acc_t)[None]])
    sums = rows[:, 0:wf:f].copy()
    for k in range(1, f):
        sums += rows[:, k:wf:f]
    if wf < w:
        sums = np.hstack([sums, rows[:, wf:].sum(axis=1)[:, None]])
    ny = np.minimum(f, h - np.arange(0, h, f)).astype(acc_t)
    nx = np.minimum(f, w - np.arange(0, w, f)).astype(acc_t)
    sums /= ny[:, None] * nx[None, :]
    return cast(sums, dtype)


def level_shapes(shape: Tuple[int, int], levels: int) -> List[Tuple[int, int]]:
    out = [shape]
    for _ in range(levels - 1):
        h, w = out[-1]
        out.append(((h + 1) // 2, (w + 1) // 2))
    return out


def auto_levels(shape: Tuple[int, int], chunk: Tuple[int, int]) -> int:
    levels, (h, w) = 1, shape
    while h > chunk[0] or w > chunk[1]:
        h, w = (h + 1) // 2, (w + 1) // 2
        levels += 1
    return levels


def max_levels(shape: Tuple[int, int]) -> int:
    # Halving stops changing anything once both sides are 1.
    return 1 + max(math.ceil(math.log2(s)) for s in shape)

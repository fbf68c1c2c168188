"""STalign's ``normalize`` and ``rasterize`` (cells to a density image), on the C++ core."""
from __future__ import annotations

from typing import Any, Tuple, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._core import register as _reg
from ..register.lddmm_map import _numpy


def normalize(arr: Any, t_min: float = 0, t_max: float = 1) -> np.ndarray:
    """``arr`` linearly rescaled to ``[t_min, t_max]`` (STalign's ``normalize``); a constant
    array raises ``ValueError`` (STalign divides by zero)."""
    a = np.asarray(_numpy(arr), dtype=np.float64)
    if a.size == 0:
        raise ValueError("normalize needs a non-empty array")
    lo, hi = float(np.min(a)), float(np.max(a))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("normalize needs finite values")
    if hi == lo:
        raise ValueError("normalize cannot rescale a constant array")
    return (a - lo) / (hi - lo) * (t_max - t_min) + t_min


def rasterize(x: Any, y: Any, g: Any = np.ones(1), dx: float = 30.0, blur: Any = 1.0,
              expand: float = 1.1, draw: int = 10000, wavelet_magnitude: bool = False,
              use_windowing: bool = True, *, threads: int = 0
              ) -> Union[Tuple[np.ndarray, np.ndarray, np.ndarray],
                         Tuple[np.ndarray, np.ndarray, np.ndarray, Any]]:
    """Cells at ``(x, y)`` (weights ``g``) as a density image, STalign's way.

    Each cell adds a Gaussian of standard deviation ``2 dx blur`` (one channel per entry of
    ``blur``) over the pixels within ``ceil(4 max(blur))`` of its nearest pixel, normalised to
    sum to its weight over that window. The pixel grid covers the cells' bounding box widened
    ``expand`` times, every ``dx``. Returns ``X`` (pixel x coordinates), ``Y`` (pixel y
    coordinates) and ``W`` of shape ``(len(blur), len(Y), len(X))`` — channels first, rows
    along y — and, when ``draw`` is non-zero, a matplotlib ``Figure`` (Agg canvas) of the image as
    a 4th value (drawn once, at the end). ``use_windowing=False`` (STalign's legacy whole-image kernel)
    is not supported: the window holds all but ``exp(-8)`` of the kernel.
    """
    if not use_windowing:
        raise ValueError("use_windowing=False is not supported; the windowed kernel is the one "
                         "STalign uses by default")
    xs = np.array(_numpy(x), dtype=np.float64).ravel()
    ys = np.array(_numpy(y), dtype=np.float64).ravel()
    if xs.size == 0 or xs.size != ys.size:
        raise ValueError(f"x and y must be non-empty and of one length, got {xs.size} and {ys.size}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("x and y must be finite")
    if not (np.isfinite(dx) and dx > 0):
        raise ValueError(f"dx must be positive, got {dx}")
    blurs = np.atleast_1d(np.asarray(blur, dtype=np.float64)).ravel()
    if blurs.size == 0 or not (blurs > 0).all():
        raise ValueError("blur must be one or more positive numbers")
    if wavelet_magnitude and np.any(blurs != np.sort(blurs)[::-1]):
        raise ValueError("When using wavelet magnitude, blurs must be sorted from greatest to least")
    gs = np.resize(np.asarray(_numpy(g), dtype=np.float64), xs.size)
    if not np.isfinite(gs).all():
        raise ValueError("g must be finite")
    if not (gs == 1.0).all():
        gs = normalize(gs)
    minx, maxx, miny, maxy = xs.min(), xs.max(), ys.min(), ys.max()
    minx, maxx = (minx + maxx) / 2 - (maxx - minx) / 2 * expand, (minx + maxx) / 2 + (maxx - minx) / 2 * expand
    miny, maxy = (miny + maxy) / 2 - (maxy - miny) / 2 * expand, (miny + maxy) / 2 + (maxy - miny) / 2 * expand
    X = np.arange(minx, maxx, dx)
    Y = np.arange(miny, maxy, dx)
    if X.size == 0 or Y.size == 0:
        raise ValueError("the cells span no area (all on one line); rasterize needs a 2-D spread")
    if X.size * Y.size * blurs.size > 2**31:
        raise ValueError(f"the raster would have {X.size} x {Y.size} pixels; use a larger dx")
    W = _reg.rasterize_points(xs, ys, gs, X, Y, float(dx), blurs, wavelet_magnitude=bool(wavelet_magnitude),
                              threads=threads)
    if not draw:
        return X, Y, W
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    show = W - W.min(axis=(1, 2), keepdims=True)
    show = show / np.maximum(show.max(axis=(1, 2), keepdims=True), np.finfo(float).tiny)
    rgb = show[[0, 1, 2]] if show.shape[0] >= 3 else show[[0, 1, 0]] if show.shape[0] == 2 else show[[0, 0, 0]]
    ax.imshow(np.moveaxis(rgb, 0, -1), extent=(X[0], X[-1], Y[-1], Y[0]))
    return X, Y, W, fig

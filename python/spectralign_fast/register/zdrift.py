"""Z-drift: which plane of a reference z-stack each frame of a movie shows (suite2p's z tracking).

In two-photon calcium imaging the brain also moves along the optical axis: the imaged plane drifts
through the tissue, and cells fade in and out. With a reference z-stack acquired around the
imaging plane, every frame is compared with every plane: the peak of their whitened
cross-correlation (phase correlation by default, searched over in-plane shifts up to
``max_shift``, so lateral motion does not lower it), computed in the C++ core from the planes'
spectra made once, across threads with the GIL released. The best plane is refined to a fraction
of a plane by the parabola through the peak and its two neighbours.

Conventions: arrays in array axis order, frames ``(n, rows, cols)``, the z-stack
``(nz, rows, cols)`` with plane 0 first; ``z`` is a plane index (0 .. nz - 1, fractional).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from .. import _core
from .._validate import as_float, resolve_threads


@dataclass
class ZPositions:
    """Per frame, the reference plane it shows.

    Attributes
    ----------
    z : (n,) float64
        Best-matching plane, refined between planes (NaN for frames with NaN or inf pixels).
    correlation : (n, nz) float32
        Peak correlation of each frame with each plane (1 = identical up to a shift, for
        phase correlation).
    peak : (n,) float32
        The best plane's correlation: low values mean the frame matches no plane well.
    at_edge : (n,) bool
        The best plane is the first or the last: the frame may lie beyond the z-stack.
    """

    z: np.ndarray
    correlation: np.ndarray
    peak: np.ndarray
    at_edge: np.ndarray


def _stack(a: Any, what: str, *, min_len: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise ValueError(f"{what} must be 3-D (count, rows, cols), got shape {arr.shape}")
    if arr.shape[0] < min_len:
        raise ValueError(f"{what} needs at least {min_len} planes/frames, got {arr.shape[0]}")
    if arr.shape[1] < 8 or arr.shape[2] < 8:
        raise ValueError(f"{what} frames must be at least 8 x 8 pixels, got {arr.shape[1:]}")
    # One documented copy at most: float32, C order (the caller's array is never written).
    return np.ascontiguousarray(arr, dtype=np.float32)


def estimate_z_positions(frames: Any, zstack: Any, *, max_shift: Optional[Tuple[int, int]] = None,
                         whiten: float = -1.0, taper: float = 0.125, threads: int = 0) -> ZPositions:
    """Which plane of ``zstack`` each frame shows, to a fraction of a plane.

    Parameters
    ----------
    frames : (n, rows, cols) array
        The movie (any real dtype; read as float32, never modified; memmaps are read in place).
    zstack : (nz, rows, cols) array
        Reference planes, in z order, the frames' shape (nz >= 2; 3 or more for subplane z).
    max_shift : (rows, cols), optional
        Largest in-plane shift (pixels) searched for each frame and plane; default a quarter
        of each side.
    whiten : float
        Exponent of the cross-power magnitude: -1 (default) phase correlation, whose peak is
        comparable between planes; 0 plain cross-correlation.
    taper : float
        Fraction of each side tapered to zero (raised cosine) before the transforms, so the
        frame edges do not correlate.
    threads : int
        0 = all cores. Results are identical for every thread count.

    Returns
    -------
    ZPositions
        ``z`` (n,), ``correlation`` (n, nz), ``peak``, ``at_edge``. Frames with NaN or inf
        pixels get NaN (with a RuntimeWarning); constant frames correlation 0 and ``z`` NaN.
    """
    ref = _stack(zstack, "zstack", min_len=2)
    mov = _stack(frames, "frames", min_len=1)
    if mov.shape[1:] != ref.shape[1:]:
        raise ValueError(f"frames are {mov.shape[1:]} but the z-stack's planes are {ref.shape[1:]}: they must match")
    if not np.isfinite(ref).all():
        raise ValueError("zstack contains NaN or inf values; replace them first (e.g. numpy.nan_to_num)")
    w = as_float(whiten, "whiten")
    if not -1 <= w <= 0:
        raise ValueError(f"whiten must be from -1 (phase correlation) to 0 (plain correlation), got {w}")
    t = as_float(taper, "taper")
    if not 0 <= t <= 0.5:
        raise ValueError(f"taper is a fraction of each side, from 0 to 0.5, got {t}")
    if max_shift is None:
        shift = [ref.shape[1] // 4, ref.shape[2] // 4]
    else:
        try:
            shift = [int(v) for v in max_shift]
        except (TypeError, ValueError):
            raise TypeError(f"max_shift must be (rows, cols) integers, got {max_shift!r}") from None
        if len(shift) != 2 or min(shift) < 0:
            raise ValueError(f"max_shift must be two non-negative integers (rows, cols), got {max_shift!r}")
    core = _core.stackreg.ZStackCore(ref, w, t, shift)
    corr = core.correlate(mov, resolve_threads(threads))
    return _refine(corr)


def _refine(corr: np.ndarray) -> ZPositions:
    n, nz = corr.shape
    bad = ~np.isfinite(corr).all(axis=1)
    if bad.any():
        warnings.warn(f"{int(bad.sum())} frame(s) contain NaN or inf (first: {int(np.flatnonzero(bad)[0])}); "
                      f"their z is NaN", RuntimeWarning, stacklevel=3)
    flat = ~bad & (corr.max(axis=1, initial=0.0) <= 0)
    safe = np.where(np.isfinite(corr), corr, -np.inf)
    best = np.argmax(safe, axis=1)
    z = best.astype(np.float64)
    inner = (best > 0) & (best < nz - 1) & ~bad
    rows = np.flatnonzero(inner)
    if len(rows):
        b = best[rows]
        lo, mid, hi = (corr[rows, b - 1].astype(np.float64), corr[rows, b].astype(np.float64),
                       corr[rows, b + 1].astype(np.float64))
        denom = lo - 2 * mid + hi
        step = np.where(denom < 0, 0.5 * (lo - hi) / np.where(denom < 0, denom, -1.0), 0.0)
        z[rows] = b + np.clip(step, -0.5, 0.5)
    z[bad | flat] = np.nan
    peak = np.where(bad, np.nan, safe[np.arange(n), best]).astype(np.float32)
    return ZPositions(z, corr, peak, ~bad & ~flat & ((best == 0) | (best == nz - 1)))

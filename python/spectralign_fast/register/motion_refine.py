"""Intensity refinement of ``CrossCorr`` displacements (issue 21) and the
integer-shift copy path of ``RegistrationModel.transform``.

``CrossCorr(refine="intensity")`` (the default) follows each frame's FFT
peak with a few Gauss-Newton steps on the intensity difference with the
reference, in C++ (``src/stackreg/refine.cpp``), frames in parallel with the
GIL released::

    minimise over (d, gain, offset):  sum_x (frame(x + d) - gain * reference(x) - offset)^2

- inverse-compositional: the reference's gradients are computed once per
  reference, each step costs one resampling of the frame and one pass of
  sums;
- the frame is resampled with an 8-tap cardinal cubic B-spline (the
  interpolation model of TurboReg/StackReg, truncated to +-4 samples), the
  gradients are the same spline's derivative;
- gain and offset are solved for with the displacement, so a mean
  reference's lower contrast or a frame's brightness change do not bias it;
- the sum runs over the interior where the shifted frame has content (the
  FFT estimate +-1 px, plus the interpolator's taps), intersected with the
  part of a re-estimated mean reference that every frame covered;
- the FFT estimate is the start, and is kept when the steps do not lower the
  residual, leave +-1 px of it, or the frame has too small an interior (fewer
  than 8 samples along an axis once the margins are taken off: thin volumes
  keep their FFT estimate);
- deterministic: one frame is refined by one thread, so any ``threads``
  gives bit-identical displacements.

With the default mean reference the refinement runs once, from the estimates the final
mean was built from, against that mean (``motion_reference``), and ``iterations=0`` does
not refine at all: the plain mean of a drifting movie is blurred, and a frame's own share
of it (not left out here, unlike the FFT pass) would be its sharpest match. In a mean of
registered frames a frame's share pulls its estimate towards its previous one by about
0.2 / T px on the bench movie (T frames): negligible for real movies.

``refine=None`` is the FFT estimate alone, about 1.45x faster per pass and about 7x less
accurate on interpolated or pixel-integrated frames (see bench/RESULTS.md, "Intensity
refinement (issue 21)"); ``subpixel=False`` (integer peaks, thunder-registration's answers)
never refines.
"""
from __future__ import annotations

from typing import Any, List, Optional

import numpy as np

from .. import _core
from .._validate import as_core_array

REFINE_CHOICES = ("intensity", None)

# Frames whose estimate the refinement kept (StackRegCore.fit's status 3).
STATUS_REFINE_KEPT = 3


def check_refine(refine: Any) -> Optional[str]:
    """The validated ``refine`` option: "intensity" or None."""
    if refine is None:
        return None
    if not isinstance(refine, str):
        raise TypeError(f"refine must be 'intensity' or None, got {type(refine).__name__}")
    if refine not in REFINE_CHOICES:
        raise ValueError(f"refine must be 'intensity' or None, got {refine!r}")
    return refine


def reference_box(deltas: np.ndarray, plane_shape: tuple, axis: Optional[int]) -> List[int]:
    """Region (lows, then exclusive highs) of a mean of frames registered with ``deltas``
    that every frame covered: registered frame k holds content where ``0 <= x + d_k <= n - 1``.
    The 2nd and 98th percentiles stand in for the extremes (one wild frame must not shrink it),
    and at most a quarter of an axis is taken off each side."""
    flat = deltas.reshape(-1, deltas.shape[-1])
    flat = flat[np.all(np.isfinite(flat), axis=1)]
    if flat.size == 0:
        return []
    lo_d = np.percentile(flat, 2, axis=0)
    hi_d = np.percentile(flat, 98, axis=0)
    lows, highs = [], []
    for n, a, b in zip(plane_shape, lo_d, hi_d):
        cut = n // 4
        lows.append(int(min(cut, max(0, np.ceil(-a)))))
        highs.append(int(n - min(cut, max(0, np.ceil(b)))))
    return lows + highs


def whole_shifts(deltas: np.ndarray) -> bool:
    """True when every finite displacement is a whole number (the copy path applies)."""
    d = np.asarray(deltas, dtype=np.float64)
    finite = np.isfinite(d)
    return bool(np.all(~finite | (d == np.floor(np.where(finite, d, 0)))))


def copy_shift(block: np.ndarray, deltas: np.ndarray, threads: int, out: Optional[np.ndarray]) -> np.ndarray:
    """block shifted by -deltas (whole numbers) by copying pixels in block's own dtype (no
    float32 round trip); written to out when it is C-contiguous, else copied into it."""
    src = np.ascontiguousarray(block)
    d = as_core_array(np.asarray(deltas, dtype=np.float64).reshape(len(src), -1), np.float64)
    if out is not None and out.flags.c_contiguous and out.flags.writeable and out.dtype == src.dtype:
        _core.stackreg.shift_frames_integer(src, d, threads, out)
        return out
    result = _core.stackreg.shift_frames_integer(src, d, threads)
    if out is not None:
        out[...] = result
        return out
    return result

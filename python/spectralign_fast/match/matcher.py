"""Matcher: SWiFT-IR "swim" refinement of matching points, as spectralign's.

Two deliberate differences from spectralign, both for accuracy (measured in
bench/RESULTS.md): windows are cut at integer pixels and their subpixel
remainder is applied as a phase ramp on the cross-power spectrum (no
bilinear blur), and both windows are apodized by default
(``setapodization("first")`` restores spectralign's choice).

Conventions
-----------
Points are (x, y) = (column, row) in each image's own pixel coordinates.
A shift (dx, dy) is positive when the content of the window in image 2 lies
to the right of (below) the content of the window in image 1. Each
iteration moves point 1 by -shift/2 and point 2 by +shift/2.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from .. import _core
from .._validate import MAX_ITERS, MAX_WINDOW, as_float, as_int, as_point, as_points, as_size
from ..image import Image

# Pairs per call into C++ in refine_many: keeps Ctrl-C responsive on huge
# batches while costing nothing measurable.
_BATCH = 8192


def _match_image(img: Any, name: str) -> Image:
    """The pixels the matcher keeps: float32, C order, read-only, and never memory the caller
    can still write to (validated once, they must not change behind the matcher's back)."""
    im = img if isinstance(img, Image) else Image(img)
    if im.ndim != 2 or im.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D image, got shape {im.shape}")
    arr = im.view(np.ndarray)
    callers = isinstance(img, Image) or (isinstance(img, np.ndarray) and np.may_share_memory(arr, img))
    if (callers and arr.flags.writeable) or not arr.flags.c_contiguous or not arr.flags.aligned:
        arr = np.array(arr, dtype=np.float32, order="C", copy=True)
    arr = arr.view()
    arr.flags.writeable = False
    # NaN/inf are rejected by the C++ core (MatcherCore), in one pass.
    return arr.view(Image)


class RefinementStats:
    """Statistics of one ``Matcher.refine`` call, one entry per iteration.

    A large final ``shift`` (relative to the window) suggests no convergence;
    a low ``snr`` (relative to comparable images) a poor match; an unusually
    large ``peakwidth`` is a bad sign too. A window without contrast (a
    constant patch, e.g. wholly outside the image) gives shift (0, 0),
    peakwidth (0, 0) and snr 0 for that iteration.
    """

    def __init__(self) -> None:
        self.shifts: List[np.ndarray] = []
        """(dx, dy) found in each iteration"""
        self.peakwidths: List[np.ndarray] = []
        """(sx, sy) width of the correlation peak in each iteration"""
        self.snrs: List[float] = []
        """signal-to-noise ratio of the correlation peak in each iteration"""

    @property
    def niters(self) -> int:
        """Number of iterations performed."""
        return len(self.shifts)

    @property
    def shift(self) -> np.ndarray:
        """(dx, dy) of the final iteration."""
        return self.shifts[-1]

    @property
    def peakwidth(self) -> np.ndarray:
        """(sx, sy) of the final iteration."""
        return self.peakwidths[-1]

    @property
    def snr(self) -> float:
        """SNR of the final iteration."""
        return self.snrs[-1]

    @property
    def dists(self) -> List[float]:
        """Length of the shift in each iteration."""
        return [float(np.hypot(*s)) for s in self.shifts]

    @property
    def dist(self) -> float:
        """Length of the final shift."""
        return float(np.hypot(*self.shifts[-1]))

    @property
    def totaldist(self) -> float:
        """Length of the sum of all shifts."""
        return float(np.hypot(*np.sum(self.shifts, axis=0)))

    def __repr__(self) -> str:
        s = self.shift
        return (f"RefinementStats(niters={self.niters}, shift=({s[0]:.3f}, {s[1]:.3f}), "
                f"snr={self.snr:.2f})")


class BatchRefinementStats:
    """Per-pair statistics of ``Matcher.refine_many`` (final iteration of each).

    Attributes: ``shift`` (N, 2), ``peakwidth`` (N, 2), ``snr`` (N,),
    ``niters`` (N,); see RefinementStats for their meaning.
    """

    def __init__(self, shift: np.ndarray, peakwidth: np.ndarray, snr: np.ndarray,
                 niters: np.ndarray) -> None:
        self.shift = shift
        self.peakwidth = peakwidth
        self.snr = snr
        self.niters = niters

    def __len__(self) -> int:
        return len(self.snr)

    @property
    def dist(self) -> np.ndarray:
        """Length of each pair's final shift, (N,)."""
        return np.hypot(self.shift[:, 0], self.shift[:, 1])

    def __repr__(self) -> str:
        if len(self) == 0:
            return "BatchRefinementStats(0 pairs)"
        return (f"BatchRefinementStats({len(self)} pairs, median snr={np.median(self.snr):.2f}, "
                f"max |shift|={self.dist.max():.3f})")


class Matcher:
    """Find matching points between two images (spectralign's ``Matcher``).

    Parameters
    ----------
    img1, img2 : Image or array_like or path
        The two images; converted like ``Image`` (float32, grey). They must
        be free of NaN and inf. The matcher keeps its own read-only pixels:
        a copy when the image is memory the caller can still write to (a
        writeable float32 array or ``Image``), the converted pixels
        otherwise, and read-only input as it is (so changing the caller's
        array later never changes what the matcher sees).
    stats : bool
        Whether ``refine`` also returns a RefinementStats.

    Notes
    -----
    Points are (x, y) = (column, row). The shift is positive when image 2's
    content lies right of / below image 1's; refinement moves point 1 by
    -shift/2 and point 2 by +shift/2 each iteration.
    """

    def __init__(self, img1: Any, img2: Any, stats: bool = False) -> None:
        self.img1 = _match_image(img1, "img1")
        self.img2 = _match_image(img2, "img2")
        self.stats = bool(stats)
        self._core = _core.match.MatcherCore(self.img1.view(np.ndarray), self.img2.view(np.ndarray))
        self.wht = -0.65
        self.rad = 5
        self.apodization = "both"

    def setpeakradius(self, rad: int = 5) -> None:
        """Radius of the neighbourhood of the correlation peak whose centre of
        mass gives the subpixel shift ((2*rad+1)^2 pixels; default 5)."""
        self.rad = as_int(rad, "rad", minimum=0, maximum=MAX_WINDOW // 2)

    def setprewhiten(self, wht: float = -0.65) -> None:
        """Whitening exponent: the cross-power spectrum is scaled by |.|^wht.

        -0.65 (default) is SWiFT-IR's; 0 gives plain cross-correlation, -1
        pure phase correlation. Values outside [-1, 0] are refused: above 0
        the peak drowns in the low frequencies, below -1 noise dominates and
        the spectrum's magnitude can overflow (as ``CrossCorr`` and
        ``montage``).
        """
        w = as_float(wht, "wht")
        if not -1.0 <= w <= 0.0:
            raise ValueError(f"wht is the exponent of the cross-power spectrum's magnitude: give a number "
                             f"from -1 (phase correlation) to 0 (plain correlation), got {w}")
        self.wht = w

    def setapodization(self, mode: str = "both") -> None:
        """Which windows fade to their mean at the edges before correlation.

        ``"both"`` (default) apodizes both windows. ``"first"`` apodizes only
        the window in img1, as SWiFT-IR and spectralign do; that leaves the
        correlation peak of aligned windows slightly asymmetric, a
        content-dependent bias of up to about 0.1 px at 512 px windows on
        real images (see bench/RESULTS.md), which ``"both"`` removes.
        """
        if mode not in ("both", "first"):
            raise ValueError(f"apodization must be 'both' or 'first', got {mode!r}")
        self.apodization = mode

    def refine(self, p1: Any, p2: Any, size: Any, iters: int = 1,
               tolerance: float = 0) -> Tuple[Any, ...]:
        """Iteratively refine one pair of matching points.

        Parameters
        ----------
        p1, p2 : (x, y)
            Putatively matching points in img1 and img2.
        size : int or (width, height)
            Window size in pixels, any value (not only powers of two).
        iters : int
            Maximum number of iterations.
        tolerance : float
            If positive, stop once the shift is shorter than this (pixels).

        Returns
        -------
        p1, p2 : ndarray (2,)
            Refined points (new arrays; the inputs are not modified).
        stats : RefinementStats
            Only if the Matcher was made with ``stats=True``.
        """
        # Typed as Tuple[Any, ...]: two or three items, by a flag of the Matcher (spectralign's API).
        q1, q2, st = self._refine(p1, p2, size, iters, tolerance)
        return (q1, q2, st) if self.stats else (q1, q2)

    def _refine(self, p1: Any, p2: Any, size: Any, iters: int,
                tolerance: float) -> Tuple[np.ndarray, np.ndarray, RefinementStats]:
        """``refine`` with its statistics, whatever ``stats`` the Matcher was made with."""
        a = as_point(p1, "p1")
        b = as_point(p2, "p2")
        w, h = as_size(size)
        iters = as_int(iters, "iters", minimum=1, maximum=MAX_ITERS)
        tol = as_float(tolerance, "tolerance")
        if tol < 0:
            raise ValueError(f"tolerance must be >= 0, got {tol}")
        r1, r2, its = self._core.refine((float(a[0]), float(a[1])), (float(b[0]), float(b[1])), w, h,
                                        iters, tol, self.wht, self.rad, self.apodization == "both")
        st = RefinementStats()
        st.shifts = [row[0:2].copy() for row in its]
        st.peakwidths = [row[2:4].copy() for row in its]
        st.snrs = [float(row[4]) for row in its]
        return np.array(r1), np.array(r2), st

    def refine_many(self, P1: Any, P2: Any, size: Any, *, iters: int = 1, tolerance: float = 0,
                    threads: int = 0) -> Tuple[np.ndarray, np.ndarray, BatchRefinementStats]:
        """Refine N pairs of points in one call, spread over threads.

        Equivalent to N calls of ``refine`` (identical results, whatever
        ``threads``), with the GIL released.

        Parameters
        ----------
        P1, P2 : array_like (N, 2)
            Points (x, y) in img1 and img2, row k of each forming pair k.
        size, iters, tolerance
            As in ``refine``.
        threads : int
            Worker threads; 0 (default) uses all cores. Windows of 640 x 640
            px and more are matched by teams of two threads per pair (both
            share one window's work, and its cache), smaller ones one pair
            per thread; the results are the same either way.

        Returns
        -------
        P1, P2 : ndarray (N, 2)
            Refined points (new arrays).
        stats : BatchRefinementStats
            Final-iteration shift, peakwidth, snr and the iteration count.
        """
        A = as_points(P1, "P1")
        B = as_points(P2, "P2")
        if A.shape != B.shape:
            raise ValueError(f"P1 and P2 must have the same shape, got {A.shape} and {B.shape}")
        w, h = as_size(size)
        iters = as_int(iters, "iters", minimum=1, maximum=MAX_ITERS)
        tol = as_float(tolerance, "tolerance")
        if tol < 0:
            raise ValueError(f"tolerance must be >= 0, got {tol}")
        threads = as_int(threads, "threads", minimum=0)
        n = A.shape[0]
        out: Dict[str, np.ndarray] = {"p1": np.empty((n, 2)), "p2": np.empty((n, 2)), "shift": np.empty((n, 2)),
               "peakwidth": np.empty((n, 2)), "snr": np.empty(n), "niters": np.empty(n, dtype=np.int32)}
        if n == 0:
            # Still validate the window against the images.
            self._core.refine_many(A, B, w, h, iters, tol, self.wht, self.rad,
                                   self.apodization == "both", threads)
        for start in range(0, n, _BATCH):
            stop = min(n, start + _BATCH)
            r = self._core.refine_many(A[start:stop], B[start:stop], w, h, iters, tol, self.wht,
                                       self.rad, self.apodization == "both", threads)
            for key, arr in out.items():
                arr[start:stop] = getattr(r, key)
        stats = BatchRefinementStats(out["shift"], out["peakwidth"], out["snr"], out["niters"])
        return out["p1"], out["p2"], stats

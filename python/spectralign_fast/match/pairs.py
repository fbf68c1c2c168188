"""Matching one pair of overlapping tiles: coarse match, then a grid of fine matches.

Coordinates are (x, y) = (column, row) in each tile's own pixels. ``offset``
is the position of tile b's pixel (0, 0) in tile a's frame, so a point p in
a shows the same content as ``p - offset`` in b.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .._types import TileKey
from ..render.renderer import Renderer
from ..transforms.affine import Affine
from .matcher import Matcher

PairJob = Tuple[Any, ...]
"""A pair to match: (tile a, tile b, kind) for grid neighbours, or (a, b, kind, offset) where
``offset`` (x, y) is b's pixel (0, 0) in a's frame, from nominal positions (``match.layout``)."""

# (drow, dcol) of the neighbour b relative to a.
DIRECTIONS = {"horizontal": (0, 1), "vertical": (1, 0), "diagonal": (1, 1), "antidiagonal": (1, -1)}


@dataclass
class MatchSettings:
    """How pairs are matched (the keyword options of ``montage``)."""

    overlap: float = 0.1
    coarse_size: Optional[Tuple[int, int]] = None
    fine_size: int = 128
    fine_step: float = 100.0
    iters: int = 3
    min_snr: float = 8.0
    whiten: float = -0.65
    peak_radius: int = 3
    threads: int = 0


@dataclass
class PairMatches:
    """The matches between two tiles.

    Attributes
    ----------
    tile1, tile2 : hashable
        The tiles; ``p1`` are points (x, y) in tile1's pixels, ``p2`` the
        matching points in tile2's.
    kind : str
        "horizontal", "vertical", "diagonal", "antidiagonal" (neighbours in a
        grid) or "z" (neighbouring levels of a stack).
    p1, p2 : ndarray (N, 2)
        Refined matching points, (x, y).
    snr : ndarray (N,)
        Signal-to-noise ratio of each match's correlation peak.
    peakwidth : ndarray (N, 2)
        Width of each peak, (x, y), in pixels.
    kept : ndarray of bool (N,)
        True for matches used in the placement (SNR at least ``min_snr`` and
        consistent with the pair's other matches).
    coarse_snr : float
        SNR of the coarse match that seeded the grid (NaN when not used).
    """

    tile1: TileKey
    tile2: TileKey
    kind: str
    p1: np.ndarray
    p2: np.ndarray
    snr: np.ndarray
    peakwidth: np.ndarray
    kept: np.ndarray
    coarse_snr: float = float("nan")
    note: str = field(default="", repr=False)

    def __len__(self) -> int:
        return len(self.p1)

    def to_json(self) -> Dict[str, Any]:
        return {"tile1": _key_json(self.tile1), "tile2": _key_json(self.tile2), "kind": self.kind,
                "p1": self.p1.tolist(), "p2": self.p2.tolist(), "snr": self.snr.tolist(),
                "peakwidth": self.peakwidth.tolist(), "kept": self.kept.tolist(),
                "coarse_snr": None if not np.isfinite(self.coarse_snr) else self.coarse_snr,
                "note": self.note}

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "PairMatches":
        n = len(d["p1"])
        return cls(_key_from_json(d["tile1"]), _key_from_json(d["tile2"]), d["kind"],
                   np.asarray(d["p1"], float).reshape(n, 2), np.asarray(d["p2"], float).reshape(n, 2),
                   np.asarray(d["snr"], float).reshape(n), np.asarray(d["peakwidth"], float).reshape(n, 2),
                   np.asarray(d["kept"], bool).reshape(n),
                   float("nan") if d.get("coarse_snr") is None else float(d["coarse_snr"]), d.get("note", ""))


def _key_json(key: TileKey) -> Any:
    return list(key) if isinstance(key, tuple) else key


def _key_from_json(v: Any) -> TileKey:
    return tuple(v) if isinstance(v, list) else v


def make_matcher(img_a: Any, img_b: Any, settings: MatchSettings, stats: bool = False) -> Matcher:
    m = Matcher(img_a, img_b, stats=stats)
    m.setprewhiten(settings.whiten)
    m.setpeakradius(settings.peak_radius)
    return m


def _smooth_sizes(limit: int = 4096) -> np.ndarray:
    out = set()
    for a in range(13):
        for b in range(8):
            for c in range(6):
                n = 2 ** a * 3 ** b * 5 ** c
                if 12 <= n <= limit and n % 4 == 0:
                    out.add(n)
    return np.array(sorted(out))


_SIZES = _smooth_sizes()


def fft_size(v: float, lo: int = 12, hi: int = 4096) -> int:
    """The largest FFT-friendly size (2^a 3^b 5^c, a multiple of 4) <= v, within [lo, hi].

    Window sizes that follow the data (overlap widths vary with jitter) would
    each need FFTW plans of their own, and planning costs far more than the
    transform; a few hundred sizes serve every window.
    """
    v = min(float(hi), max(float(lo), v))
    ok = _SIZES[_SIZES <= v]
    return int(ok[-1]) if len(ok) else int(lo)


def guess_offset(size_a: Tuple[int, int], size_b: Tuple[int, int], direction: Tuple[int, int],
                 overlap: float) -> np.ndarray:
    """Where b's (0, 0) lies in a's frame if the tiles overlap by ``overlap`` of their size."""
    (wa, ha), (wb, hb) = size_a, size_b
    dr, dc = direction
    ovx, ovy = overlap * (wa + wb) / 2, overlap * (ha + hb) / 2
    gx = {1: wa - ovx, 0: (wa - wb) / 2, -1: -(wb - ovx)}[dc]
    gy = {1: ha - ovy, 0: (ha - hb) / 2, -1: -(hb - ovy)}[dr]
    return np.array([gx, gy])


def overlap_rect(size_a: Tuple[int, int], size_b: Tuple[int, int], offset: np.ndarray) -> Tuple[float, ...]:
    """(x0, y0, x1, y1) of the overlap in a's frame (may be empty: x1 <= x0)."""
    (wa, ha), (wb, hb) = size_a, size_b
    return (max(0.0, offset[0]), max(0.0, offset[1]), min(float(wa), offset[0] + wb),
            min(float(ha), offset[1] + hb))


def _coarse(m: Matcher, size_a: Tuple[int, int], size_b: Tuple[int, int], offset: np.ndarray,
            settings: MatchSettings) -> Optional[Tuple[np.ndarray, float]]:
    x0, y0, x1, y1 = overlap_rect(size_a, size_b, offset)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    if settings.coarse_size is not None:
        size = settings.coarse_size
    else:
        # The whole guessed overlap (capped): the more content, the surer the peak.
        size = (fft_size(x1 - x0, 32, 1024), fft_size(y1 - y0, 32, 1024))
    p1 = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    q1, q2, st = m._refine(p1, p1 - offset, size, iters=max(settings.iters, 4), tolerance=0.05)
    return q1 - q2, float(st.snr)


def _fine_grid(size_a: Tuple[int, int], size_b: Tuple[int, int], offset: np.ndarray,
              settings: MatchSettings) -> Tuple[np.ndarray, Tuple[int, int]]:
    """Points (N, 2) in a's frame and the window (width, height) for the fine matches.

    Windows stay inside the overlap (content outside it differs between the
    tiles and biases the peak), so across a narrow overlap they shrink. Each
    axis gets at least two points: collinear matches would leave an affine
    placement free to shear along their line.
    """
    x0, y0, x1, y1 = overlap_rect(size_a, size_b, offset)
    inset = 2.0  # slack for the error of the coarse offset

    def axis(lo: float, hi: float) -> Tuple[np.ndarray, int]:
        lo, hi = lo + inset, hi - inset
        extent = hi - lo
        if extent >= settings.fine_size + settings.fine_step:
            n = int(np.floor((extent - settings.fine_size) / settings.fine_step)) + 1
            start = (lo + hi) / 2 - (n - 1) * settings.fine_step / 2
            return start + settings.fine_step * np.arange(n), settings.fine_size
        window = fft_size(min(settings.fine_size, extent / 2))
        return lo + extent * np.array([0.25, 0.75]), window

    xs, wx = axis(x0, x1)
    ys, wy = axis(y0, y1)
    return np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2), (wx, wy)


def consistent(q1: np.ndarray, q2: np.ndarray, ok: np.ndarray, *, min_px: float = 1.0) -> np.ndarray:
    """Drop matches that disagree with an affine map fitted to the others (robustly).

    A match is an outlier when its misfit exceeds max(min_px, 4 x the median
    misfit); with fewer than 6 matches a translation is fitted instead.
    """
    keep = ok.copy()
    for _ in range(6):
        idx = np.flatnonzero(keep)
        if len(idx) < 3:
            return keep
        if len(idx) >= 6:
            X = np.column_stack([q2[idx], np.ones(len(idx))])
            coef, *_ = np.linalg.lstsq(X, q1[idx], rcond=None)
            pred = np.column_stack([q2, np.ones(len(q2))]) @ coef
        else:
            pred = q2 + np.median(q1[idx] - q2[idx], axis=0)
        misfit = np.hypot(*(q1 - pred).T)
        thr = max(min_px, 4.0 * float(np.median(misfit[idx])))
        new = ok & (misfit <= thr)
        if np.array_equal(new, keep):
            break
        keep = new
    return keep


def match_pair(img_a: Any, img_b: Any, tile_a: TileKey, tile_b: TileKey, kind: str,
               settings: MatchSettings, offset: Optional[np.ndarray] = None) -> PairMatches:
    """Coarse match in the guessed overlap, then a grid of fine matches around it.

    Without ``offset`` (grid neighbours) the coarse match tries the guessed
    overlap, half and twice the guess (a window only sees shifts up to half
    its size, so a guess off by 2x needs the window that fits the truth), and
    keeps the one with the best SNR. With ``offset`` (b's pixel (0, 0) in a's
    frame, from stage positions) it starts from that alone.
    """
    size_a = (img_a.shape[1], img_a.shape[0])
    size_b = (img_b.shape[1], img_b.shape[0])
    m = make_matcher(img_a, img_b, settings, stats=True)
    if offset is not None:
        guesses = [np.asarray(offset, float)]
    else:
        direction = DIRECTIONS[kind]
        guesses = [guess_offset(size_a, size_b, direction, min(0.95, settings.overlap * f)) for f in (1.0, 0.5, 2.0)]
    best = None
    for guess in guesses:
        found = _coarse(m, size_a, size_b, guess, settings)
        if found is not None and np.isfinite(found[1]) and (best is None or found[1] > best[1]):
            best = found
    empty = np.empty((0, 2))
    if best is None:
        return PairMatches(tile_a, tile_b, kind, empty, empty, np.empty(0), empty, np.empty(0, bool),
                           note="the guessed overlap is empty")
    offset, coarse_snr = best
    if overlap_rect(size_a, size_b, offset)[2] <= overlap_rect(size_a, size_b, offset)[0]:
        return PairMatches(tile_a, tile_b, kind, empty, empty, np.empty(0), empty, np.empty(0, bool),
                           coarse_snr, note="the coarse match found no overlap")
    P1, window = _fine_grid(size_a, size_b, offset, settings)
    q1, q2, st = m.refine_many(P1, P1 - offset, window, iters=settings.iters,
                               threads=settings.threads)
    ok = np.isfinite(st.snr) & (st.snr >= settings.min_snr) & np.isfinite(q1).all(1) & np.isfinite(q2).all(1)
    kept = consistent(q1, q2, ok)
    return PairMatches(tile_a, tile_b, kind, q1, q2, st.snr.copy(), st.peakwidth.copy(), kept, coarse_snr)


def neighbour_pairs(keys: List[Tuple[int, int]], diagonals: bool) -> List[Tuple[Any, Any, str]]:
    """(a, b, kind) for every pair of grid neighbours that both exist, row-major."""
    present = set(keys)
    kinds = ["horizontal", "vertical"] + (["diagonal", "antidiagonal"] if diagonals else [])
    out = []
    for key in sorted(keys):
        r, c = key
        for kind in kinds:
            dr, dc = DIRECTIONS[kind]
            if (r + dr, c + dc) in present:
                out.append((key, (r + dr, c + dc), kind))
    return out


def rematch_pair(img_a: Any, img_b: Any, pm: PairMatches, ta: np.ndarray, tb: np.ndarray,
                 settings: MatchSettings) -> PairMatches:
    """Second pass: match a against b resampled into a's frame through the placement.

    A rotation or scale between two tiles biases a translation-only match by
    the rotation times the distance of the window's content from its centre.
    Resampling b through the first placement (cubic) leaves only a small
    residual translation, which the fine matches then measure without that
    bias; the points are mapped back into b's own pixels.
    """
    rel = Affine(ta).inverse() @ Affine(tb)  # b pixel -> a pixel
    hb, wb = img_b.shape
    ha, wa = img_a.shape
    corners = rel * np.array([[0, wb - 1, wb - 1, 0], [0, 0, hb - 1, hb - 1]], float)
    lin = np.asarray(rel)[:, :2]
    # Corners of b inside the bounding box: how far b's edge can bulge inwards.
    slack = 2.0 + float(np.abs(lin - np.eye(2)).max()) * max(wb, hb)
    x0 = max(0, int(np.ceil(corners[0].min() + slack)))
    y0 = max(0, int(np.ceil(corners[1].min() + slack)))
    x1 = min(wa, int(np.floor(corners[0].max() - slack)) + 1)
    y1 = min(ha, int(np.floor(corners[1].max() - slack)) + 1)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return pm
    w, h = x1 - x0, y1 - y0
    r = Renderer(affine={0: rel}, tilesize=(wb, hb), clip=(x0, y0, w, h), blend=0,
                 interpolation="cubic", threads=settings.threads)
    b_in_a, covered = r.render_region((x0, y0, w, h), {0: np.asarray(img_b)}, coverage=True)
    if not covered.all():
        return pm
    a_crop = np.asarray(img_a)[y0:y1, x0:x1]
    P, window = _fine_grid((w, h), (w, h), np.zeros(2), settings)
    m = make_matcher(a_crop, b_in_a, settings)
    q1, q2, st = m.refine_many(P, P, window, iters=settings.iters, threads=settings.threads)
    origin = np.array([x0, y0], float)
    p1 = q1 + origin
    p2 = (rel.inverse() * (q2 + origin).T).T
    ok = np.isfinite(st.snr) & (st.snr >= settings.min_snr) & np.isfinite(p1).all(1) & np.isfinite(p2).all(1)
    kept = consistent(p1, p2, ok)
    return PairMatches(pm.tile1, pm.tile2, pm.kind, p1, p2, st.snr.copy(), st.peakwidth.copy(), kept,
                       pm.coarse_snr, note=pm.note)

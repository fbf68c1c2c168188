"""Dense matches (a flow field) between two affine-aligned sections of a stack.

Both sections are images of one canvas (the affine-aligned model space); a
regular grid of windows inside both sections' coverage is matched with
``Matcher.refine_many`` (the swim matcher, as every other match here), then
filtered: SNR at least ``min_snr``, and each flow vector consistent with the
median of its neighbours on the grid (a fold, a tear, debris or a blank
patch gives vectors that disagree with their surroundings).
Coordinates: points are (x, y) = (column, row) in canvas pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, List, Mapping, Sequence, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._types import TileKey
from ..render.elastic import ElasticRenderer
from .pairs import MatchSettings, make_matcher


@dataclass
class SectionFlow:
    """The flow matches between sections ``z`` and ``z + 1``.

    Attributes
    ----------
    z : int
        The lower section; ``p1`` lies in section z, ``p2`` in section z + 1.
    p1, p2 : ndarray (N, 2)
        Matching points (x, y) in canvas pixels of the two affine-aligned sections.
    snr : ndarray (N,)
        Peak SNR of each match.
    kept : ndarray of bool (N,)
        SNR at least ``min_snr`` and consistent with the neighbouring flow.
    grid_shape : (rows, cols)
        The matches lie on a grid of this shape (row-major), so
        ``(p2 - p1).reshape(rows, cols, 2)`` is the flow field.
    """

    z: int
    p1: np.ndarray
    p2: np.ndarray
    snr: np.ndarray
    kept: np.ndarray
    grid_shape: tuple[int, int]

    def __len__(self) -> int:
        return len(self.snr)


def _inside_fraction(mask: np.ndarray, centres: np.ndarray, half: int) -> np.ndarray:
    """Fraction of each window (centre (x, y), side 2 * half) covered by ``mask``."""
    s = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1))
    s[1:, 1:] = np.cumsum(np.cumsum(mask, 0), 1)
    h, w = mask.shape
    x0 = np.clip(np.round(centres[:, 0]).astype(np.int64) - half, 0, w)
    x1 = np.clip(np.round(centres[:, 0]).astype(np.int64) + half, 0, w)
    y0 = np.clip(np.round(centres[:, 1]).astype(np.int64) - half, 0, h)
    y1 = np.clip(np.round(centres[:, 1]).astype(np.int64) + half, 0, h)
    area = float(2 * half) ** 2
    return (s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]) / area


def flow_grid(shape: tuple[int, int], size: int, step: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Window centres (x, y) on a regular grid over a canvas of ``shape`` (rows, cols)."""
    h, w = shape
    half = size / 2

    def axis(n: int) -> np.ndarray:
        a, b = half, n - half
        if b < a:
            return np.array([n / 2.0])
        k = int(np.floor((b - a) / step)) + 1
        return a + (b - a - (k - 1) * step) / 2 + step * np.arange(k)

    xs, ys = axis(w), axis(h)
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2), (len(ys), len(xs))


def consistent_flow(flow: np.ndarray, ok: np.ndarray, grid_shape: tuple[int, int], *,
                    min_px: float = 1.5, radius: int = 2) -> np.ndarray:
    """Drop flow vectors far from the median of their kept neighbours.

    A vector is an outlier when it differs from the median of the kept
    vectors in its (2 radius + 1)^2 grid neighbourhood by more than
    max(min_px, 4 x the median such difference of the section pair); a
    vector with fewer than 3 kept neighbours is dropped.
    """
    rows, cols = grid_shape
    keep = ok.copy()
    for _ in range(3):
        f = np.where(keep[:, None], flow, np.nan).reshape(rows, cols, 2)
        padded = np.pad(f, ((radius, radius), (radius, radius), (0, 0)), constant_values=np.nan)
        win = sliding_window_view(padded, (2 * radius + 1, 2 * radius + 1), axis=(0, 1))  # type: ignore[call-overload, unused-ignore]
        win = win.reshape(rows, cols, 2, -1)
        count = np.sum(np.isfinite(win[:, :, 0]), -1).reshape(-1)
        with np.errstate(all="ignore"):
            med = np.full((rows, cols, 2), np.nan)
            enough = count.reshape(rows, cols) >= 3
            med[enough] = np.nanmedian(win[enough], -1)
        dev = np.hypot(*(flow - med.reshape(-1, 2)).T)
        finite = np.isfinite(dev) & keep
        if not finite.any():
            return np.zeros_like(keep)
        thr = max(min_px, 4.0 * float(np.median(dev[finite])))
        new = ok & np.isfinite(dev) & (dev <= thr)
        if np.array_equal(new, keep):
            break
        keep = new
    return keep


def section_flow(img1: np.ndarray, img2: np.ndarray, cover1: np.ndarray, cover2: np.ndarray, z: int, *,
                 size: int, step: float, settings: MatchSettings) -> SectionFlow:
    """Flow matches from section ``z`` (``img1``) to section ``z + 1`` (``img2``), both on one canvas.

    ``cover1``/``cover2`` are the sections' coverage masks; only windows at
    least 95% inside both are matched. ``settings`` gives the iterations,
    ``min_snr``, whitening, peak radius and threads.
    """
    centres, grid_shape = flow_grid(img1.shape, size, step)
    half = size // 2
    inside = (_inside_fraction(cover1, centres, half) >= 0.95) & (_inside_fraction(cover2, centres, half) >= 0.95)
    n = len(centres)
    p1, p2 = centres.copy(), centres.copy()
    snr = np.zeros(n)
    ok = np.zeros(n, bool)
    if inside.any():
        m = make_matcher(img1, img2, settings)
        q1, q2, st = m.refine_many(centres[inside], centres[inside], size, iters=settings.iters,
                                   threads=settings.threads)
        p1[inside], p2[inside], snr[inside] = q1, q2, st.snr
        ok[inside] = np.isfinite(st.snr) & (st.snr >= settings.min_snr) & np.isfinite(q1).all(1) & \
            np.isfinite(q2).all(1)
    kept = consistent_flow(p2 - p1, ok, grid_shape)
    return SectionFlow(z, p1, p2, snr, kept, grid_shape)


def stack_flows(er: ElasticRenderer, tiles: Mapping[TileKey, Any], zs: Iterable[int], *, size: int, step: float,
                settings: MatchSettings) -> List[SectionFlow]:
    """``section_flow`` between sections z and z + 1 for every z of ``zs`` (ascending), each
    section rendered once through ``er`` (its tiles' affines and its mesh) over the whole canvas.
    The points are those of the rendered sections (canvas pixels)."""
    out: List[SectionFlow] = []
    cache: dict[int, Tuple[np.ndarray, np.ndarray]] = {}
    for z in zs:
        lower = cache.pop(z) if z in cache else er.section(z, tiles, threads=settings.threads)
        upper = er.section(z + 1, tiles, threads=settings.threads)
        out.append(section_flow(lower[0], upper[0], lower[1], upper[1], z, size=size, step=step,
                                settings=settings))
        cache = {z + 1: upper}
    return out

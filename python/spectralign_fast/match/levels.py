"""Matches between neighbouring levels of a stack (serial sections, z-stacks).

Each level is already placed in its own frame; its downsampled overview (see
``render.overview``) gives a coarse match, then a grid of fine matches ties
every pair of tiles, one from each level, that both hold a point.
Coordinates: points are (x, y) = (column, row).
"""
from __future__ import annotations

from typing import Any, List, Mapping, Sequence, Tuple

import numpy as np

from .._types import TileKey
from ..io.tiles import TileStore
from ..transforms.affine import Affine
from .pairs import MatchSettings, PairMatches, consistent, make_matcher


def _inside(tf: Affine, size: Tuple[int, int], m: np.ndarray, margin: float) -> np.ndarray:
    """Distance of model points m (N, 2) inside the tile's area (negative: outside)."""
    p = (Affine(tf).inverse() * m.T).T
    w, h = size
    return np.minimum.reduce([p[:, 0] - margin, w - 1 - margin - p[:, 0], p[:, 1] - margin,
                              h - 1 - margin - p[:, 1]])


def _holders(tiles: Sequence[TileKey], transforms: Mapping[TileKey, Any], sizes: Mapping[TileKey, Tuple[int, int]],
             m: np.ndarray, margin: float) -> np.ndarray:
    """(tiles, points) bool: which tiles hold each point at least ``margin`` inside."""
    return np.stack([_inside(transforms[t], sizes[t], m, margin) >= 0 for t in tiles])


def match_levels(store: TileStore, lo: Sequence[TileKey], hi: Sequence[TileKey], tf: Mapping[TileKey, Any],
                 sizes: Mapping[TileKey, Tuple[int, int]], z: int, settings: MatchSettings,
                 ov_cache: Mapping[int, Tuple[float, np.ndarray, Tuple[float, float]]]) -> List[PairMatches]:
    """Matches between level z (tiles ``lo``) and z + 1 (``hi``), each placed in its own frame."""
    k_lo, img_lo, org_lo = ov_cache[z]
    k_hi, img_hi, org_hi = ov_cache[z + 1]
    # Coarse: the overviews (same scale) matched at the centre of the lower one.
    size = (2 * (min(img_lo.shape[1], img_hi.shape[1]) // 2), 2 * (min(img_lo.shape[0], img_hi.shape[0]) // 2))
    m = make_matcher(img_lo, img_hi, settings, stats=True)
    c_lo = np.array([img_lo.shape[1] / 2, img_lo.shape[0] / 2])
    c_hi = c_lo + (np.asarray(org_lo) - np.asarray(org_hi)) / k_lo
    p, q, st = m._refine(c_lo, c_hi, size, iters=5, tolerance=0.05)
    if not np.isfinite(st.snr) or st.snr < settings.min_snr:
        raise ValueError(f"levels {z} and {z + 1} could not be matched coarsely (SNR {st.snr:.1f} < min_snr "
                         f"{settings.min_snr:g}); are they images of the same tissue?")
    shift = np.asarray(org_lo) + k_lo * p - (np.asarray(org_hi) + k_hi * q)  # hi frame -> lo frame
    # Grid of points over the part of level z that level z + 1 covers too.
    def bounds(tiles: Sequence[TileKey], offset: Any) -> Tuple[np.ndarray, np.ndarray]:
        c = np.concatenate([(Affine(tf[t]) * np.array([[0, sizes[t][0] - 1, sizes[t][0] - 1, 0],
                                                         [0, 0, sizes[t][1] - 1, sizes[t][1] - 1]])).T
                            for t in tiles]) + offset
        return c.min(0), c.max(0)

    (ax0, ay0), (ax1, ay1) = bounds(lo, 0.0)
    (bx0, by0), (bx1, by1) = bounds(hi, shift)
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    step, half = settings.fine_step, settings.fine_size / 2

    def axis(a: float, b: float) -> np.ndarray:
        a, b = a + half, b - half
        n = max(3, int(np.floor((b - a) / step)) + 1)
        return np.linspace(a, b, n) if b > a else np.array([(a + b) / 2])

    xs, ys = axis(x0, x1), axis(y0, y1)
    M = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    # Every pair of tiles that both hold a point gets the match: each tile of a
    # tiled level is tied to the next level directly, not only through its
    # neighbours (a point in a seam serves both tiles).
    a = _holders(lo, tf, sizes, M, half)
    b = _holders(hi, tf, sizes, M - shift, half)
    out = []
    for ia in range(len(lo)):
        for ib in range(len(hi)):
            sel = a[ia] & b[ib]
            if sel.sum() < 3:
                continue
            ta, tb = lo[ia], hi[ib]
            P1 = (Affine(tf[ta]).inverse() * M[sel].T).T
            P2 = (Affine(tf[tb]).inverse() * (M[sel] - shift).T).T
            mm = make_matcher(store.image(ta), store.image(tb), settings)
            q1, q2, bst = mm.refine_many(P1, P2, settings.fine_size, iters=settings.iters, threads=settings.threads)
            ok = np.isfinite(bst.snr) & (bst.snr >= settings.min_snr)
            out.append(PairMatches(ta, tb, "z", q1, q2, bst.snr.copy(), bst.peakwidth.copy(), ok,
                                   float(bst.snr.max())))
    # Outliers judged over the whole pair of levels, in model coordinates.
    if out:
        A = np.concatenate([(Affine(tf[pm.tile1]) * pm.p1.T).T for pm in out])
        B = np.concatenate([(Affine(tf[pm.tile2]) * pm.p2.T).T for pm in out])
        keep = consistent(A, B, np.concatenate([pm.kept for pm in out]))
        n = 0
        for pm in out:
            pm.kept = keep[n:n + len(pm)]
            n += len(pm)
    if not any(pm.kept.any() for pm in out):
        raise ValueError(f"levels {z} and {z + 1} have no reliable matches (lower min_snr, now "
                         f"{settings.min_snr:g}, or z_size)")
    return out

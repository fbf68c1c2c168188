"""Checks and reports around a placement solve: which tiles the matches determine, whether
the match graph is connected, the per-match residuals and their summary, and the outlier
rejection rounds (``placement.Placement`` calls these; the solve itself is in C++)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Hashable, List, Sequence, Tuple

import numpy as np

from .. import _core

# MAD -> standard deviation for normally distributed values.
_MAD_TO_SIGMA = 1.482602218505602
# Residuals below this (model units) are never called outliers, so that
# noise-free data with exact matches does not lose matches to round-off.
_REJECT_FLOOR = 1e-6


@dataclass
class PlacementResiduals:
    """Residuals of the last ``rigid()`` / ``affine()`` solve.

    Attributes
    ----------
    vectors : ndarray, shape (M, 2)
        For every match, in insertion order: ``T_tile1(p1) - T_tile2(p2)`` in
        model space, as (x, y). Dropped matches (see ``kept``) have residuals
        too; the summaries below leave them out.
    kept : ndarray of bool, shape (M,)
        False for matches that ``reject=`` dropped.
    rms : float
        Root mean square of ``|vectors|`` over kept matches (unweighted).
    max : float
        Largest ``|vectors|`` over kept matches.
    per_tile : dict
        ``{tile: rms}`` over the kept matches that involve the tile.
    """

    vectors: np.ndarray
    kept: np.ndarray
    rms: float
    max: float
    per_tile: Dict[Hashable, float] = field(repr=False)

    @property
    def norms(self) -> np.ndarray:
        """``|vectors|`` per match, shape (M,)."""
        return np.hypot(self.vectors[:, 0], self.vectors[:, 1])


def summarise_residuals(tiles: Sequence[Hashable], t1: np.ndarray, t2: np.ndarray, vec: np.ndarray,
                        kept: np.ndarray) -> PlacementResiduals:
    """``PlacementResiduals`` of the residual vectors ``vec`` (M, 2), summaries over ``kept``."""
    sq = np.einsum("ij,ij->i", vec, vec)
    sqk = np.where(kept, sq, 0.0)
    n = len(tiles)
    cnt = np.bincount(t1[kept], minlength=n) + np.bincount(t2[kept], minlength=n)
    tot = np.bincount(t1, weights=sqk, minlength=n) + np.bincount(t2, weights=sqk, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.sqrt(tot / cnt)
    nk = int(kept.sum())
    return PlacementResiduals(
        vectors=vec.copy(), kept=kept.copy(),
        rms=float(np.sqrt(sqk.sum() / nk)) if nk else float("nan"),
        max=float(np.sqrt(sqk.max())) if nk else float("nan"),
        per_tile=dict(zip(tiles, per.tolist())))


def residual_vectors(params: np.ndarray, affine: bool, t1: np.ndarray, t2: np.ndarray,
                     P1: np.ndarray, P2: np.ndarray) -> np.ndarray:
    """``T_t1(p1) - T_t2(p2)`` per match, shape (M, 2)."""
    out = np.empty_like(P1)
    step = 1 << 20  # bounded temporaries for millions of matches
    for s in range(0, len(P1), step):
        sl = slice(s, s + step)
        if not affine:
            np.subtract(P1[sl] + params[t1[sl]], P2[sl] + params[t2[sl]], out=out[sl])
            continue
        T1, T2 = params[t1[sl]], params[t2[sl]]
        out[sl] = (np.einsum("mij,mj->mi", T1[:, :, :2], P1[sl]) + T1[:, :, 2]
                   - np.einsum("mij,mj->mi", T2[:, :, :2], P2[sl]) - T2[:, :, 2])
    return out


def reject_round(res: np.ndarray, kept: np.ndarray, t1: np.ndarray, t2: np.ndarray, n: int,
                 reject: float) -> bool:
    """One round of ``reject=``: clear ``kept`` (in place) for the matches whose residual exceeds
    ``reject`` robust spreads and that are the worst offender on both of their tiles; False when
    no kept match exceeds it (the rounds are over)."""
    rk = res[kept]
    comps = rk.ravel()
    spread = _MAD_TO_SIGMA * float(np.median(np.abs(comps - np.median(comps))))
    limit = max(reject * spread, _REJECT_FLOOR)
    mag = np.hypot(res[:, 0], res[:, 1])
    over = np.flatnonzero(kept & (mag > limit))
    if len(over) == 0:
        return False
    # Drop only matches that are the worst offender on both of their
    # tiles this round: a gross outlier drags its tiles' fit and so
    # their other matches, which recover once it is gone (SWiFT-IR's
    # drop-the-worst, run on all tiles at once).
    worst = np.zeros(n)
    np.maximum.at(worst, t1[over], mag[over])
    np.maximum.at(worst, t2[over], mag[over])
    mo = mag[over]
    kept[over[(mo >= worst[t1[over]]) & (mo >= worst[t2[over]])]] = False
    return True


def _runs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Start of every run of equal (a, b) pairs (the matches of one tile pair usually come in one)."""
    run = np.ones(len(a), bool)
    run[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return np.flatnonzero(run)


def group_pairs(a: np.ndarray, b: np.ndarray, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """``np.unique(a * n + b, return_inverse=True)`` as (inverse, keys), faster when the pairs
    come in runs: the runs are found first and only their keys sorted."""
    if len(a) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = _runs(a, b)
    keys, inverse = np.unique(a[starts].astype(np.int64) * n + b[starts], return_inverse=True)
    return np.repeat(inverse.reshape(-1), np.diff(np.append(starts, len(a)))), keys


# Point moments of a group: (count, mean x, mean y, scatter xx, xy, yy about the mean).
_Moments = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _merge(group: np.ndarray, parts: _Moments, n: int) -> _Moments:
    """The moments of ``n`` groups made of parts (``group[i]``: part i's group), merged with the
    parallel-axis rule: the parts' scatters plus their means' scatter about the group's mean."""
    cnt, mx, my, cxx, cxy, cyy = parts
    g_cnt = np.bincount(group, cnt, n)
    c = np.maximum(g_cnt, 1)
    gx, gy = np.bincount(group, cnt * mx, n) / c, np.bincount(group, cnt * my, n) / c
    ox, oy = mx - gx[group], my - gy[group]
    return (g_cnt, gx, gy, np.bincount(group, cxx + cnt * ox * ox, n), np.bincount(group, cxy + cnt * ox * oy, n),
            np.bincount(group, cyy + cnt * oy * oy, n))


def _spread(m: _Moments) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, RMS spread across, along) the line the points come closest to: the square roots
    of the eigenvalues of their 2x2 covariance."""
    cnt, _, _, cxx, cxy, cyy = m
    c = np.maximum(cnt, 1)
    sxx, sxy, syy = cxx / c, cxy / c, cyy / c
    half_tr, det = (sxx + syy) / 2, sxx * syy - sxy ** 2
    gap = np.sqrt(np.maximum(half_tr ** 2 - det, 0.0))
    return cnt, np.sqrt(np.maximum(half_tr - gap, 0.0)), np.sqrt(half_tr + gap)


def _run_moments(pts: np.ndarray, starts: np.ndarray) -> _Moments:
    """Moments of every run of consecutive points (``starts``), about one of its points first
    (no cancellation), with contiguous sums."""
    length = np.diff(np.append(starts, len(pts)))
    ref = pts[starts]
    d = pts - np.repeat(ref, length, axis=0)
    x, y = d[:, 0], d[:, 1]
    sx, sy = np.add.reduceat(x, starts), np.add.reduceat(y, starts)
    cnt = length.astype(np.float64)
    mx, my = sx / cnt, sy / cnt
    return (cnt, ref[:, 0] + mx, ref[:, 1] + my, np.add.reduceat(x * x, starts) - sx * mx,
            np.add.reduceat(x * y, starts) - sx * my, np.add.reduceat(y * y, starts) - sy * my)


def underdetermined_indices(n: int, t1: np.ndarray, t2: np.ndarray, P1: np.ndarray, P2: np.ndarray,
                            model: str) -> np.ndarray:
    """Indices of the tiles whose matched points cannot fix their transform under ``model``
    (the rule: ``Placement.underdetermined``)."""
    if n == 0 or model == "rigid" or len(t1) == 0:
        deg = np.bincount(np.concatenate([t1, t2]), minlength=n) if n else np.zeros(0)
        return np.flatnonzero(deg < 1)
    # Directed edges (tile, other) with the tile's points: moments per run of one edge's
    # points, merged into edges and edges into tiles.
    tile = np.concatenate([t1, t2]).astype(np.int64)
    other = np.concatenate([t2, t1]).astype(np.int64)
    starts = _runs(tile, other)
    edge_keys, run_edge = np.unique(tile[starts] * n + other[starts], return_inverse=True)
    edge_tile = edge_keys // n
    edges = _merge(run_edge.reshape(-1), _run_moments(np.concatenate([P1, P2]), starts), len(edge_keys))
    e_count, e_across, e_along = _spread(edges)
    t_count, t_across, t_along = _spread(_merge(edge_tile, edges, n))
    if model == "similarity":
        strong_edge = (e_count >= 2) & (e_along >= 0.25)
        redundant = (t_count >= 4) & (t_along >= 0.25)
    else:
        strong_edge = (e_count >= 3) & (e_across >= np.maximum(1.0, 0.05 * e_along))
        redundant = (t_count >= 6) & (t_across >= np.maximum(1.0, 0.05 * t_along))
    strong = np.zeros(n, bool)
    strong[edge_tile[strong_edge]] = True
    return np.flatnonzero(~(strong | redundant))


def check_graph(tiles: Sequence[Hashable], t1: np.ndarray, t2: np.ndarray, components: str,
                after_reject: bool) -> None:
    """ValueError naming the tiles without matches, or (``components="error"``) the components
    of a disconnected match graph."""
    n = len(tiles)
    deg = np.bincount(t1, minlength=n) + np.bincount(t2, minlength=n)
    lonely = np.flatnonzero(deg == 0)
    if len(lonely):
        names = ", ".join(repr(tiles[i]) for i in lonely[:5]) + (" ..." if len(lonely) > 5 else "")
        why = "after rejecting outliers" if after_reject else "(only matched to itself?)"
        raise ValueError(f"{len(lonely)} tile(s) have no match to another tile {why}: {names}")
    if components == "separate":
        return
    labels, nc = _core.place.connected_components(n, t1, t2)
    if nc > 1:
        sizes = np.bincount(labels, minlength=nc)
        parts: List[str] = []
        for c in range(min(nc, 5)):
            members = np.flatnonzero(labels == c)
            names = ", ".join(repr(tiles[i]) for i in members[:4])
            more = f", ... ({sizes[c]} tiles)" if sizes[c] > 4 else ""
            parts.append("{" + names + more + "}")
        rest = f" and {nc - 5} more" if nc > 5 else ""
        when = " after rejecting outliers" if after_reject else ""
        raise ValueError(f"the match graph is disconnected{when}: {nc} components: "
                         + ", ".join(parts) + rest
                         + "; add matches that connect them or pass components='separate'")

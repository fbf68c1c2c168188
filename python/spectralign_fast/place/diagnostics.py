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


def group_pairs(a: np.ndarray, b: np.ndarray, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """``np.unique(a * n + b, return_inverse=True)`` as (inverse, keys), faster when the pairs
    come in runs (the matches of one tile pair usually do): the runs are found first and only
    their keys sorted."""
    if len(a) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    run = np.ones(len(a), bool)
    run[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    starts = np.flatnonzero(run)
    keys, inverse = np.unique(a[starts].astype(np.int64) * n + b[starts], return_inverse=True)
    return np.repeat(inverse.reshape(-1), np.diff(np.append(starts, len(a)))), keys


def _spread(group: np.ndarray, pts: np.ndarray, n: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: the number of points and their RMS spread across and along the line they come
    closest to (square roots of the eigenvalues of the 2x2 covariance)."""
    count = np.bincount(group, minlength=n).astype(np.float64)
    c = np.maximum(count, 1)
    mean = np.stack([np.bincount(group, pts[:, k], minlength=n) for k in range(2)], 1) / c[:, None]
    d = pts - mean[group]
    sxx = np.bincount(group, d[:, 0] ** 2, minlength=n) / c
    syy = np.bincount(group, d[:, 1] ** 2, minlength=n) / c
    sxy = np.bincount(group, d[:, 0] * d[:, 1], minlength=n) / c
    half_tr, det = (sxx + syy) / 2, sxx * syy - sxy ** 2
    gap = np.sqrt(np.maximum(half_tr ** 2 - det, 0.0))
    return count, np.sqrt(np.maximum(half_tr - gap, 0.0)), np.sqrt(half_tr + gap)


def underdetermined_indices(n: int, t1: np.ndarray, t2: np.ndarray, P1: np.ndarray, P2: np.ndarray,
                            model: str) -> np.ndarray:
    """Indices of the tiles whose matched points cannot fix their transform under ``model``
    (the rule: ``Placement.underdetermined``)."""
    if n == 0 or model == "rigid":
        deg = np.bincount(np.concatenate([t1, t2]), minlength=n) if n else np.zeros(0)
        return np.flatnonzero(deg < 1)
    tile = np.concatenate([t1, t2]).astype(np.int64)
    other = np.concatenate([t2, t1]).astype(np.int64)
    pts = np.concatenate([P1, P2])
    edge, edge_keys = group_pairs(tile, other, n)
    e_count, e_across, e_along = _spread(edge, pts, len(edge_keys))
    t_count, t_across, t_along = _spread(tile, pts, n)
    edge_tile = edge_keys // n
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

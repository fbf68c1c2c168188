"""Regularised affine placement: each tile's affine pulled toward its similarity placement.

``Placement.affine(regularize=lam)`` minimises, as EM_aligner / BigFeta do,
``sum_matches w |T_t1(p1) - T_t2(p2)|**2 + lam * sum_tiles W_t ||T_t - S_t||**2``
where ``S_t`` is the tile's similarity placement (``Placement.similarity()``;
rigid when the matches cannot determine a similarity) and ``W_t`` the summed
weight of the tile's matches. The norm is a squared model-space
displacement: with ``c0`` the mean of all matched points (in tile pixels)
and ``L`` their RMS distance from ``c0``,
``||T - S||**2 = |T(c0) - S(c0)|**2 + L**2 * ||A_T - A_S||_F**2``, so ``lam``
is dimensionless and independent of the tile size and the number of
matches: ``lam = 1`` pulls a tile toward its similarity as hard as all its
matches together pull it toward its neighbours. The solve itself is in C++
(``_core.place.solve(..., regularize=lam, prior=S)``).
"""
from __future__ import annotations

import math
from typing import Any, Tuple

import numpy as np

from .. import _core
from .._validate import as_float
from .diagnostics import group_pairs

# The default of montage(regularize=), with prior MONTAGE_PRIOR, measured with
# `bench/bench_place.py --montage` and on the real-image tiles of bench_montage.py
# (bench/RESULTS.md, "Regularised affine"): where the matches are consistent with
# similarities, the similarity placement's tile-corner error (1e-2 with the plain similarity
# prior, the default before: 18 % above it); where tiles stretch per axis, the plain
# affine's or better.
DEFAULT_REGULARIZE = 10.0
MONTAGE_PRIOR = "similarity-tested"


def check_regularize(value: Any) -> float:
    """``regularize`` as a float >= 0 (plain-language ValueError / TypeError otherwise)."""
    lam = as_float(value, "regularize")
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"regularize is the weight pulling each tile's affine toward its similarity placement: "
                         f"give a finite number >= 0 (0: plain affine), got {lam}")
    return lam


def central_tile(n: int, t1: np.ndarray, t2: np.ndarray) -> int:
    """A tile in the middle of the match graph: the one whose largest hop distance to four
    far-apart tiles is smallest (the ends of a long shortest path, found by breadth-first
    sweeps, then the tile farthest from both and the one farthest from that; on a grid,
    its four corners)."""
    # Matches of one tile pair usually come in runs: drop the repeats before sorting.
    run = np.ones(len(t1), bool)
    run[1:] = (t1[1:] != t1[:-1]) | (t2[1:] != t2[:-1])
    a = np.concatenate([t1[run], t2[run]])
    b = np.concatenate([t2[run], t1[run]])
    order = np.argsort(a, kind="stable")
    nbrs = b[order]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(a, minlength=n), out=indptr[1:])

    def hops(start: int) -> np.ndarray:
        dist = np.full(n, -1, np.int64)
        dist[start] = 0
        frontier = np.array([start])
        d = 0
        while frontier.size:
            d += 1
            lo, cnt = indptr[frontier], indptr[frontier + 1] - indptr[frontier]
            idx = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(lo, cnt)
            nxt = np.unique(nbrs[idx])
            frontier = nxt[dist[nxt] < 0]
            dist[frontier] = d
        return dist

    d1 = hops(int(np.argmax(hops(0))))
    d2 = hops(int(np.argmax(d1)))
    d3 = hops(int(np.argmax(np.minimum(d1, d2))))
    d4 = hops(int(np.argmax(d3)))
    return int(np.argmin(np.maximum(np.maximum(d1, d2), np.maximum(d3, d4))))


# "rigid": the prior has no scale or shear, so a chain of affines (serial sections) cannot
# drift in scale along it, as a chain of similarities can. "rigid-centres": the rigid
# placement's tile centres only, each tile's linear part left to its matches (drift-free on
# large grids, bench/RESULTS.md). "similarity-tested": the similarity placement, pulled only as
# far as the matches are consistent with similarities (similarity_test).
PRIORS = ("similarity", "rigid", "rigid-centres", "similarity-tested")
# The multipliers of the centre's and the linear part's pull per prior (the C++ solve's
# prior_centre, prior_linear). Not 0 for "rigid-centres", so that a placement whose tile
# centres all lie on one line (a single row of tiles) stays determined across it (the gauge
# is set afterwards); 1e-6 is far below the pull of any match.
PRIOR_WEIGHTS = {"similarity": (1.0, 1.0), "rigid": (1.0, 1.0), "rigid-centres": (1.0, 1e-6),
                 "similarity-tested": (1.0, 1.0)}
# "similarity-tested": the pull is regularize * min(1, (F0 / F) ** POWER) with F the
# similarity_test statistic (about 1 where the tiles only rotate, shift and scale). Chosen on
# the 8 x 8 grid of 2048 px tiles (bench_place.py --montage; bench/RESULTS.md): rotations only
# F = 0.8, 0.5 % per-axis stretch F = 39.
TEST_F0 = 2.0
TEST_POWER = 8
# Residual variance (px**2 per degree of freedom) below which edges count as noise-free, so
# that exact matches are not judged by their round-off.
_TEST_FLOOR = 1e-6


def check_prior(value: Any) -> str:
    """``prior`` as one of ``PRIORS`` (plain-language ValueError otherwise)."""
    if value not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS} (what regularize pulls each tile's affine toward), "
                         f"got {value!r}")
    return str(value)


def similarity_test(n: int, t1: np.ndarray, t2: np.ndarray, P1: np.ndarray, P2: np.ndarray,
                    w: np.ndarray) -> float:
    """How much better an affine than a similarity maps one tile's matched points onto its
    neighbour's, pooled over the tile pairs: the F statistic ``(sum dRSS / 2E) / (sum RSS_affine /
    sum dof)``, where per tile pair (E of them with at least 4 matches) ``RSS_affine`` is the
    weighted residual sum of squares of the best affine ``p2 = M p1 + t`` (``dof = 2 m - 6``) and
    ``dRSS`` how much larger the best similarity's is (2 more degrees of freedom). About 1 when
    the pairs' relative transforms are similarities up to the match noise; large where tiles
    shear or stretch individually. 0 when no pair has 4 matches."""
    lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
    flip = (t1 > t2)[:, None]
    A, B = np.where(flip, P2, P1), np.where(flip, P1, P2)  # B ~ M A + t per pair
    e, keys = group_pairs(lo, hi, n)
    E = len(keys)
    sw = np.bincount(e, w, E)
    a = A - (np.stack([np.bincount(e, w * A[:, k], E) for k in range(2)], 1) / sw[:, None])[e]
    b = B - (np.stack([np.bincount(e, w * B[:, k], E) for k in range(2)], 1) / sw[:, None])[e]

    def moment(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.bincount(e, w * x * y, E)

    sxx, sxy, syy = moment(a[:, 0], a[:, 0]), moment(a[:, 0], a[:, 1]), moment(a[:, 1], a[:, 1])
    sxu, syu = moment(a[:, 0], b[:, 0]), moment(a[:, 1], b[:, 0])
    sxv, syv = moment(a[:, 0], b[:, 1]), moment(a[:, 1], b[:, 1])
    total = moment(b[:, 0], b[:, 0]) + moment(b[:, 1], b[:, 1])
    dof = 2 * np.bincount(e, minlength=E) - 6
    det = sxx * syy - sxy ** 2
    tr = sxx + syy
    ok = (dof > 0) & (det > 1e-12 * tr ** 2)
    if not ok.any():
        return 0.0
    sxx, sxy, syy, sxu, syu, sxv, syv, total, det, tr = (v[ok] for v in (sxx, sxy, syy, sxu, syu, sxv, syv,
                                                                          total, det, tr))
    explained = ((syy * sxu ** 2 - 2 * sxy * sxu * syu + sxx * syu ** 2)
                 + (syy * sxv ** 2 - 2 * sxy * sxv * syv + sxx * syv ** 2)) / det
    rss_affine = np.maximum(total - explained, 0.0)
    rss_similarity = np.maximum(total - ((sxu + syv) ** 2 + (sxv - syu) ** 2) / tr, rss_affine)
    noise = max(float(rss_affine.sum() / dof[ok].sum()), _TEST_FLOOR)
    return float((rss_similarity - rss_affine).sum() / (2 * ok.sum()) / noise)


def tested_pull(f: float) -> float:
    """The multiplier of ``regularize`` for prior "similarity-tested": 1 while the
    ``similarity_test`` statistic ``f`` is at most TEST_F0, falling off steeply beyond."""
    return 1.0 if f <= TEST_F0 else (TEST_F0 / f) ** TEST_POWER


def prior_transforms(n: int, t1: np.ndarray, t2: np.ndarray, P1: np.ndarray, P2: np.ndarray, w: np.ndarray,
                     kind: str = "similarity") -> Tuple[np.ndarray, str]:
    """Every tile's prior (n, 2, 3) for the regulariser and its model: the similarity
    placement (``kind`` "similarity" or "similarity-tested"), or the rigid one (``kind``
    "rigid" or "rigid-centres", or where the matches cannot determine a similarity), with
    the central tile of the match graph the identity (``central_tile``). The fixed tile
    matters: the misfit is measured in its scale, and a least-squares similarity shrinks
    tiles far from it (on a 100 x 100 grid with 0.2 px noise, fixed at a corner: by up to
    3.5 % at the far corner, 68 px RMS off at the tile corners; fixed in the middle:
    2 px). The gauge of the regularised solution is set afterwards, whatever this is."""
    fix = central_tile(n, t1, t2)
    check_prior(kind)
    try:
        if kind not in ("similarity", "similarity-tested"):
            raise ValueError("the rigid prior asked for")
        # No refinement: the prior only needs to be near, and at a million tiles the
        # similarity's refinement costs seconds.
        sim = _core.place.solve_similarity(n, t1, t2, P1, P2, w, fix=fix, refine=0)
        return sim.params, "similarity"
    except ValueError:
        rig = _core.place.solve(n, t1, t2, P1, P2, w, affine=False, fix=fix, refine=0)
        prior = np.zeros((n, 2, 3))
        prior[:, 0, 0] = prior[:, 1, 1] = 1.0
        prior[:, :, 2] = rig.params
        return prior, "rigid" if kind in ("similarity", "similarity-tested") else kind

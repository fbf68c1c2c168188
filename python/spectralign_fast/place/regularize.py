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

# The default of montage(regularize=) and align_stack(regularize=), measured with
# `bench/bench_place.py --montage` (bench/RESULTS.md, "Regularised affine"): the smallest
# weight tried (1e-4 ... 1) whose tile-corner error stays within 20 % of the similarity
# placement's where the tiles only rotate, shift and scale.
DEFAULT_REGULARIZE = 1e-2


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
# drift in scale along it, as a chain of similarities can.
PRIORS = ("similarity", "rigid")


def prior_transforms(n: int, t1: np.ndarray, t2: np.ndarray, P1: np.ndarray, P2: np.ndarray, w: np.ndarray,
                     kind: str = "similarity") -> Tuple[np.ndarray, str]:
    """Every tile's prior (n, 2, 3) for the regulariser and its model: the similarity
    placement, or the rigid one where the matches cannot determine a similarity, with
    the central tile of the match graph the identity (``central_tile``). The fixed tile
    matters: the misfit is measured in its scale, and a least-squares similarity shrinks
    tiles far from it (on a 100 x 100 grid with 0.2 px noise, fixed at a corner: by up to
    3.5 % at the far corner, 68 px RMS off at the tile corners; fixed in the middle:
    2 px). The gauge of the regularised solution is set afterwards, whatever this is."""
    fix = central_tile(n, t1, t2)
    if kind not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {kind!r}")
    try:
        if kind == "rigid":
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
        return prior, "rigid"

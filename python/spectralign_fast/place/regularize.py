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


def prior_transforms(n: int, t1: np.ndarray, t2: np.ndarray, P1: np.ndarray, P2: np.ndarray, w: np.ndarray,
                     fix: int) -> Tuple[np.ndarray, str]:
    """Every tile's prior (n, 2, 3) for the regulariser and its model: the similarity
    placement with tile ``fix`` the identity, or the rigid one where the matches cannot
    determine a similarity. (The regularised solution does not depend on which tile the
    prior fixes: a global similarity of the prior moves the solution with it, and the
    gauge is set afterwards.)"""
    try:
        sim = _core.place.solve_similarity(n, t1, t2, P1, P2, w, fix=fix)
        return sim.params, "similarity"
    except ValueError:
        rig = _core.place.solve(n, t1, t2, P1, P2, w, affine=False, fix=fix)
        prior = np.zeros((n, 2, 3))
        prior[:, 0, 0] = prior[:, 1, 1] = 1.0
        prior[:, :, 2] = rig.params
        return prior, "rigid"

"""Neighbours from nominal tile positions (stage positions, TileConfiguration files), any layout.

Grids with holes, serpentine acquisition orders and irregular layouts are all
just positions: two tiles are neighbours when their nominal rectangles
overlap. Coordinates: a position is (x, y) = (column, row) of the tile's pixel
(0, 0) in a common pixel frame; sizes are (width, height).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from .._types import TileKey
from .._validate import as_point

# An overlap is "along an edge" (a horizontal or vertical neighbour) when it
# spans at least this fraction of the shorter tile side across; otherwise the
# tiles only share a corner.
_EDGE_SPAN = 0.5
# Corner overlaps thinner than this (pixels) carry too little content to match.
_MIN_SIDE = 16.0


def check_positions(positions: Any, keys: List[TileKey]) -> Dict[TileKey, np.ndarray]:
    """``{tile: (x, y)}`` as float arrays, one per tile in ``keys`` (clear errors otherwise)."""
    if not isinstance(positions, Mapping):
        raise TypeError(f"positions must be a dict {{tile: (x, y)}}, got {type(positions).__name__}")
    missing = [k for k in keys if k not in positions]
    if missing:
        raise ValueError(f"positions has no entry for tile(s) {missing[:8]}; give every tile's (x, y)")
    extra = [k for k in positions if k not in set(keys)]
    if extra:
        raise ValueError(f"positions names tile(s) {extra[:8]} that are not among the tiles")
    out = {k: as_point(positions[k], f"position of tile {k!r}") for k in keys}
    return {k: np.asarray(v, float) for k, v in out.items()}


def position_pairs(positions: Mapping[TileKey, np.ndarray], sizes: Mapping[TileKey, Tuple[int, int]], *,
                   diagonals: bool = False) -> List[Tuple[TileKey, TileKey, str, np.ndarray]]:
    """(a, b, kind, offset) for every pair of tiles whose nominal rectangles overlap.

    ``offset`` is b's pixel (0, 0) in a's frame (``positions[b] - positions[a]``),
    the guess the coarse match starts from. ``kind`` says how they overlap:
    "horizontal" or "vertical" (along an edge), "diagonal" (only a corner; kept
    with ``diagonals=True``, or when a tile would otherwise have no neighbour).
    Pairs are ordered by (a, b) in the order of ``positions``.
    """
    keys = list(positions)
    if len(keys) < 2:
        return []
    xy = np.array([positions[k] for k in keys], float)
    wh = np.array([sizes[k] for k in keys], float)
    lo, hi = xy, xy + wh
    # Candidate pairs whose boxes intersect, from a sort along x (n log n for long strips).
    order = np.argsort(lo[:, 0], kind="stable")
    pairs: List[Tuple[int, int, str, float]] = []
    for ii, i in enumerate(order):
        for j in order[ii + 1:]:
            if lo[j, 0] >= hi[i, 0]:
                break
            ox = min(hi[i, 0], hi[j, 0]) - max(lo[i, 0], lo[j, 0])
            oy = min(hi[i, 1], hi[j, 1]) - max(lo[i, 1], lo[j, 1])
            if ox <= 0 or oy <= 0:
                continue
            a, b = (int(i), int(j)) if i < j else (int(j), int(i))
            span_y = oy / min(wh[a, 1], wh[b, 1])
            span_x = ox / min(wh[a, 0], wh[b, 0])
            if span_y >= _EDGE_SPAN and span_y >= span_x:
                kind = "horizontal"
            elif span_x >= _EDGE_SPAN:
                kind = "vertical"
            elif min(ox, oy) >= _MIN_SIDE:
                kind = "diagonal"
            else:
                continue
            pairs.append((a, b, kind, ox * oy))
    has_edge = {i for a, b, kind, _ in pairs if kind != "diagonal" for i in (a, b)}
    kept = [(a, b, kind) for a, b, kind, _ in pairs
            if kind != "diagonal" or diagonals or a not in has_edge or b not in has_edge]
    kept.sort()
    return [(keys[a], keys[b], kind, xy[b] - xy[a]) for a, b, kind in kept]

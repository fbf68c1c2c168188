"""The montage engine: match neighbouring tiles, place, render (``montage``'s work, any layout).

Neighbours come from a (row, col) grid or from nominal positions (stage
metadata, TileConfiguration files). Coordinates: points are (x, y) =
(column, row) in a tile's pixels; a tile's transform maps its pixel (x, y) to
model space; positions are (x, y) of a tile's pixel (0, 0).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from .._types import TileKey
from ..execute import executor_for
from ..io.tiles import output_dtype
from ..match.layout import check_positions, position_pairs
from ..match.pairs import PairJob, neighbour_pairs
from ..place.regularize import MONTAGE_PRIOR, check_prior, check_regularize
from ..transforms.affine import Affine
from .common import (Clock, NominalLayout, check_grid, check_render_options, check_settings, grid_hint,
                     solve_placed)
from .result import MontageResult


def check_tiles(tiles: Any) -> Dict[TileKey, Any]:
    """``{tile id: source}`` with hashable ids (positions name the layout, not the ids)."""
    if not isinstance(tiles, Mapping):
        raise TypeError(f"tiles must be a dict {{tile id: image or path}}, got {type(tiles).__name__}")
    if not tiles:
        raise ValueError("tiles is empty: give at least one tile")
    for key, src in tiles.items():
        if src is None:
            raise ValueError(f"tile {key!r} is None; leave missing tiles out of the dict instead")
    return dict(tiles)


def _fixed_tile(keys: List[TileKey], positions: Optional[Mapping[TileKey, np.ndarray]]) -> TileKey:
    """The identity tile: the first grid key, or the tile nearest the layout's top-left corner."""
    if positions is None:
        return keys[0]
    return min(keys, key=lambda t: (float(np.hypot(*positions[t])), keys.index(t)))


def stitch(tiles: Mapping[Any, Any], *, positions: Optional[Mapping[Any, Any]] = None, overlap: float = 0.1,
           model: str = "affine", regularize: float, prior: str = MONTAGE_PRIOR, coarse_size: Any = None,
           fine_size: int = 128, fine_step: float = 100, iters: int = 3, min_snr: float = 8.0,
           whiten: float = -0.65, peak_radius: int = 3, diagonals: bool = False, threads: int = 0,
           progress: bool = True, render: bool = True, output: str | os.PathLike | None = None, overwrite: bool = False,
           blend: float = 10, interpolation: str = "linear", chunk: int = 1024,
           client: Any = None) -> MontageResult:
    """``montage`` of a dict of tiles (see ``montage`` for every option).

    With ``positions`` ({tile: (x, y)} of each tile's pixel (0, 0), in pixels)
    the tile ids may be anything hashable, neighbours are the tiles whose
    nominal rectangles overlap, the coarse matches start from the nominal
    offsets, and tiles that match nothing are placed at their nominal
    positions (with a RuntimeWarning). The transforms are then in the
    positions' frame: the tile nearest (0, 0) keeps its nominal place.
    """
    lam = check_regularize(regularize)
    check_prior(prior)
    check_render_options(blend=blend, interpolation=interpolation, chunk=chunk)
    settings = check_settings(overlap=overlap, model=model, coarse_size=coarse_size, fine_size=fine_size,
                              fine_step=fine_step, iters=iters, min_snr=min_snr, threads=threads, whiten=whiten,
                              peak_radius=peak_radius)
    grid: Dict[Any, Any] = check_grid(tiles) if positions is None else check_tiles(tiles)
    keys: List[TileKey] = sorted(grid) if positions is None else list(grid)
    nominal_xy = None if positions is None else check_positions(positions, keys)
    if positions is None:
        cols = [int(k[1]) for k in grid]  # check_grid: (row, col) keys
        ncols = max(cols) - min(cols) + 1
        capacity = 2 * ncols + 4
    else:
        capacity = 2 * int(np.ceil(np.sqrt(len(keys)))) + 8
    ex = executor_for(client, grid, settings.threads, capacity=capacity)
    out = ex.check_output(output, overwrite) if render else None
    clock = Clock()
    nominal = None
    if nominal_xy is None:
        pairs: List[PairJob] = list(neighbour_pairs(keys, bool(diagonals)))  # type: ignore[arg-type]
    else:
        ex.probe(keys)
        nominal = NominalLayout(nominal_xy, {t: ex.sizes[t] for t in keys})
        pairs = list(position_pairs(nominal_xy, nominal.sizes, diagonals=bool(diagonals)))
    fix = _fixed_tile(keys, nominal_xy)
    matches = ex.match(pairs, settings, progress=progress)
    ex.probe(keys)
    dtype = output_dtype({t: ex.dtypes[t] for t in keys})  # mixed dtypes fail before any work on the output
    clock.lap("match")
    transforms, residuals, model = solve_placed(keys, matches, model, fix, grid_hint(settings), lam,
                                                prior, nominal=nominal)
    clock.lap("place")
    if model != "rigid" and len(keys) > 1:
        matches = ex.rematch([(pm, settings) for pm in matches], transforms, progress=progress)
        clock.lap("match (pass 2)")
        transforms, residuals, model = solve_placed(keys, matches, model, fix, grid_hint(settings), lam,
                                                    prior, nominal=nominal)
        clock.lap("place (pass 2)")
    if nominal_xy is not None:
        # Keep the layout's frame: the fixed tile at its nominal position.
        shift = np.asarray(nominal_xy[fix], float)
        transforms = {t: _translated(tf, shift) for t, tf in transforms.items()}
    result = MontageResult(transforms, matches, residuals, model, {t: ex.sizes[t] for t in keys},
                           sources={t: s for t in keys if (s := ex.source_name(t))})
    if render:
        r = result.renderer(blend=blend, interpolation=interpolation, threads=ex.threads)
        result.canvas = r.rect
        result.image = ex.render(r, keys, dtype, output=out, overwrite=overwrite, chunk=chunk, progress=progress,
                                 levels=None)
        result.output = out
        clock.lap("render")
    result.timings = clock.laps
    return result


def _translated(tf: Any, shift: np.ndarray) -> Affine:
    m = np.array(tf, float)
    m[:, 2] += shift
    return Affine(m)

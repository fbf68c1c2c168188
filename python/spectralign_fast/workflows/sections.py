"""Serial sections and z-stacks: every level matched to its neighbour, all placed jointly.

``align_stack(slices)`` takes one entry per z-level: an image (or path) or a
grid ``{(row, col): tile}`` montaged as in ``montage``. Tiles are named
``(z, row, col)`` (single images are ``(z, 0, 0)``). Coordinates are
(x, y) = (column, row); each transform maps a tile's pixels to the shared
model space, whose frame is that of the first tile of level 0.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from .._types import GridKey, StackKey, TileKey
from .._validate import as_float, as_int
from ..execute import executor_for
from ..execute.base import Overview
from ..io.tiles import output_dtype
from ..match.pairs import PairMatches, neighbour_pairs
from ..place.regularize import check_regularize
from ..render.elastic import ElasticRenderer
from ..transforms.affine import Affine
from .common import Clock, check_grid, check_render_options, check_settings, solve, solve_placed
from .elastic import check_elastic, check_spacing, run_elastic, section_extents
from .result import MontageResult


def _levels(slices: Any) -> List[Dict[GridKey, Any]]:
    if isinstance(slices, (str, bytes, os.PathLike, Mapping)) or not isinstance(slices, Sequence) and not (
            isinstance(slices, np.ndarray) and slices.ndim == 3):
        raise TypeError("slices must be a list with one entry per z-level (an image, a path, or a dict "
                        "{(row, col): tile}), or a 3-D array (z, y, x)")
    out = []
    for z, sl in enumerate(slices):
        if isinstance(sl, Mapping):
            try:
                out.append(check_grid(sl))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"level {z}: {exc}") from None
        elif sl is None:
            raise ValueError(f"level {z} is None; leave missing levels out of the list")
        else:
            out.append({(0, 0): sl})
    if len(out) < 2:
        raise ValueError(f"a stack needs at least 2 levels, got {len(out)}")
    return out


def align_stack(slices: Any, *, model: str = "affine", regularize: float = 0.0,
                overlap: float = 0.1, coarse_size: Any = None,
                fine_size: int = 128, fine_step: float = 100, iters: int = 3, min_snr: float = 8.0,
                whiten: float = -0.65, peak_radius: int = 3, diagonals: bool = False, z_size: int = 256,
                z_step: float = 200, mesh_spacing: float = 64, stiffness: float = 1.0, pull: float = 1e-3,
                flow_size: int | None = None, flow_step: float | None = None, flow_passes: int = 2,
                threads: int = 0, progress: bool = True, render: bool = True,
                output: str | os.PathLike | None = None, overwrite: bool = False, blend: float = 10,
                interpolation: str = "linear", chunk: int = 1024, client: Any = None) -> MontageResult:
    """Align serial sections or a z-stack and render every level into one shared canvas.

    Parameters
    ----------
    slices : list or 3-D array
        One entry per z-level, in order: a 2-D image (array, ``Image`` or
        path), or a grid ``{(row, col): tile}`` montaged as in ``montage``.
        A (z, y, x) array gives one image per level.
    model : {"affine", "similarity", "rigid", "elastic"}
        Placement model for every tile. "elastic": the affine placement,
        then a mesh per section solved jointly over all sections (see
        ``mesh_spacing``; ``result.elastic`` holds it).
    regularize : float
        With ``model="affine"`` (and "elastic"): each tile's affine pulled
        toward its *rigid* placement (translations only) with this weight
        (``Placement.affine``'s ``regularize`` with ``prior="rigid"``).
        Default 0: plain affine. A stack is a long chain of affines, each
        fixed only by its neighbours, and its scale can drift along the chain
        when the matches between sections are few and the sections warp (120
        MNI152 sections of 197 x 233 px warped by 3 px each: down to 0.07 of
        section 0's scale, plain; 0.95-1.02 with 0.1, bench/RESULTS.md). The
        pull also pulls true rotations toward 0 (5 sections rotated up to 1
        degree: 0.7 px RMS error with 0.1, against < 0.1 px plain), so it is
        for long, warped stacks whose rotations an elastic stage then takes
        up, not a default.
    overlap : float
        Guessed overlap between neighbouring tiles of a tiled level, as in ``montage``.
    coarse_size : int or (width, height), optional
        Coarse match window within tiled levels, as in ``montage``.
    fine_size : int
        Fine match window (pixels) within tiled levels, as in ``montage``.
    fine_step : float
        Fine match spacing (pixels) within tiled levels, as in ``montage``.
    iters : int
        Refinement iterations per match, within and between levels.
    min_snr : float
        Matches with a lower SNR are dropped, within and between levels.
    whiten : float
        Whitening exponent of every match, as in ``montage``.
    peak_radius : int
        Radius of the correlation peak's neighbourhood for the subpixel
        centre of mass, as in ``montage`` (default 3).
    diagonals : bool
        Also match diagonal neighbours within tiled levels.
    z_size : int
        Window size (model pixels) of the matches between neighbouring levels.
    z_step : float
        Spacing (model pixels) of the grid of matches between neighbouring levels.
    mesh_spacing : float
        model="elastic": distance (canvas pixels) between the nodes of each
        section's regular triangle mesh (default 64); at most half the
        smallest section side.
    stiffness : float
        model="elastic": weight of the linear spring on every mesh edge
        against the flow matches (normalised to one unit of match weight per
        mesh cell, so it does not depend on the flow density). Higher is
        smoother; 0 leaves only ``pull``. Default 1.
    pull : float
        model="elastic": weight pulling each node toward the affine solution
        (fixes the common displacement of all sections and holds unmatched
        parts), default 1e-3.
    flow_size : int, optional
        model="elastic": window (pixels) of the dense flow matches between
        neighbouring sections; default ``max(32, 2 * mesh_spacing)``.
    flow_step : float, optional
        model="elastic": spacing of the flow matches; default ``mesh_spacing / 2``.
    flow_passes : int
        model="elastic": rounds of flow and mesh solve (default 2); each
        round after the first matches the sections as rendered through the
        meshes found so far, so the windows compare nearly aligned content.
    threads : int
        Threads for matching and rendering; 0 (default) = all cores.
    progress : bool
        tqdm progress bars.
    render : bool
        Render every level (default). False: only match and place.
    output : path, optional
        Write the (z, y, x) stack to ``.ome.zarr`` (axes z, y, x) or a
        multi-page ``.tif`` instead of returning ``result.image`` of shape
        (levels, height, width) in memory.
    overwrite : bool
        Replace an existing ``output``.
    blend : float
        Feathering radius in tile pixels, as in ``Renderer``.
    interpolation : {"linear", "nearest", "cubic"}
        Sampling of the tiles, as in ``Renderer``.
    chunk : int
        Chunk size (pixels) of the written output.
    client : dask.distributed.Client, optional
        Run on a Dask cluster, as in ``montage``: matching within levels in
        batches of neighbour pairs, each level's overview and each pair of
        neighbouring levels as tasks, the second pass per pair, placement
        here, and one task per (level, chunk) of the OME-Zarr output (a TIFF
        is refused). The result is bit for bit that of a local run when
        FFTs are planned with ``set_fft_planning("estimate")`` (as in
        ``montage``).

    Returns
    -------
    MontageResult
        Tiles are ``(z, row, col)``; ``levels`` lists each level's tiles;
        matches between levels have kind "z". Model space is the frame of the
        first tile of level 0. With model="elastic", ``model`` is "affine"
        (the tiles' transforms) and ``elastic`` holds the meshes; the
        rendered stack shows every section through its mesh.
    """
    levels = _levels(slices)
    lam = check_regularize(regularize)
    check_render_options(blend=blend, interpolation=interpolation, chunk=chunk)
    eopts = None
    if model == "elastic":
        eopts = check_elastic(mesh_spacing=mesh_spacing, stiffness=stiffness, pull=pull, flow_size=flow_size,
                              flow_step=flow_step, passes=flow_passes)
        model = "affine"
    settings = check_settings(overlap=overlap, model=model, coarse_size=coarse_size, fine_size=fine_size,
                              fine_step=fine_step, iters=iters, min_snr=min_snr, threads=threads, whiten=whiten,
                              peak_radius=peak_radius)
    zset = dataclasses.replace(settings, fine_size=as_int(z_size, "z_size", minimum=16),
                               fine_step=as_float(z_step, "z_step"))
    if not zset.fine_step > 0:
        raise ValueError(f"z_step must be positive (pixels between matches), got {zset.fine_step}")
    sources = {(z,) + key: src for z, lv in enumerate(levels) for key, src in lv.items()}
    level_keys: List[List[StackKey]] = [sorted((z,) + key for key in lv) for z, lv in enumerate(levels)]
    widest = max(max(c for _, c in lv) - min(c for _, c in lv) + 1 for lv in levels)
    ex = executor_for(client, sources, settings.threads, capacity=4 * widest + 8)
    out = ex.check_output(output, overwrite) if render else None

    clock = Clock()
    # 1. Within each level: neighbour matches and a placement of the level alone.
    pairs = [((z,) + a, (z,) + b, kind) for z, keys in enumerate(level_keys)
             for a, b, kind in neighbour_pairs([k[1:] for k in keys], bool(diagonals))]
    found = ex.match(pairs, settings, progress=False)
    within: List[PairMatches] = []
    tf: Dict[TileKey, Affine] = {}
    for z, keys in enumerate(level_keys):
        level = set(keys)
        level_pairs = [pm for pm in found if pm.tile1 in level]
        t_z, _ = solve(keys, level_pairs, model, keys[0],
                       f"Level {z}: check the overlap guess (overlap={settings.overlap:g}) or lower min_snr.", lam)
        tf.update(t_z)
        within.extend(level_pairs)
    all_keys = [t for keys in level_keys for t in keys]
    ex.probe(all_keys)
    dtype = output_dtype({t: ex.dtypes[t] for t in all_keys})
    sizes: Dict[TileKey, Tuple[int, int]] = {t: ex.sizes[t] for t in all_keys}
    if eopts is not None:
        check_spacing(eopts, section_extents(level_keys, tf, sizes))
    clock.lap("match")

    # 2. Between neighbouring levels, each still in its own frame, matched through overviews
    # of one scale for all levels (so their content matches in size).
    def overviews(zs: Sequence[int], **how: Any) -> List[Overview]:
        return ex.overviews([({t: tf[t] for t in level_keys[z]}, {t: sizes[t] for t in level_keys[z]})
                             for z in zs], **how)

    ov_cache = dict(enumerate(overviews(range(len(level_keys)), max_side=1024)))
    kmax = max(v[0] for v in ov_cache.values())
    redo = [z for z in range(len(level_keys)) if ov_cache[z][0] != kmax]
    ov_cache.update(zip(redo, overviews(redo, factor=int(kmax))))
    between = ex.match_levels(level_keys, tf, sizes, zset, ov_cache, progress=progress)
    clock.lap("match between levels")

    # 3. All levels placed jointly; unless rigid, a second pass through that placement.
    hint = "Check the overlap guess and min_snr, or the z_size / z_step of the matches between levels."
    transforms, residuals, model = solve_placed(all_keys, within + between, model, all_keys[0], hint, lam, "rigid")
    clock.lap("place")
    if model != "rigid":
        both = ex.rematch([(pm, settings) for pm in within] + [(pm, zset) for pm in between], transforms,
                          progress=progress)
        within, between = both[:len(within)], both[len(within):]
        clock.lap("match (pass 2)")
        transforms, residuals, model = solve_placed(all_keys, within + between, model, all_keys[0], hint, lam,
                                                    "rigid")
        clock.lap("place (pass 2)")
    levels_of: List[List[TileKey]] = [list(keys) for keys in level_keys]
    result = MontageResult(transforms, within + between, residuals, model, sizes,
                           sources={t: s for t in all_keys if (s := ex.source_name(t))}, levels=levels_of)
    if eopts is not None:
        r = result.renderer(blend=blend, interpolation=interpolation, threads=ex.threads)
        result.elastic = run_elastic(ex, r, levels_of, transforms, eopts, settings, progress=progress)
        clock.lap("elastic")
        if render:
            er = ElasticRenderer(r, levels_of, transforms, result.elastic.displacement, eopts.spacing)
            result.canvas = r.rect
            result.image = ex.render_elastic(er, dtype, output=out, overwrite=overwrite, chunk=chunk,
                                             progress=progress)
            result.output = out
            clock.lap("render")
        result.timings = clock.laps
        return result
    if render:
        r = result.renderer(blend=blend, interpolation=interpolation, threads=ex.threads)
        result.canvas = r.rect
        result.image = ex.render(r, all_keys, dtype, output=out, overwrite=overwrite, chunk=chunk,
                                 progress=progress, levels=levels_of)
        result.output = out
        clock.lap("render")
    result.timings = clock.laps
    return result

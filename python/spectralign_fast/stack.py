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
from typing import Any, Dict, Hashable, List, Mapping, Sequence, Tuple

import numpy as np

from ._pairs import MatchSettings, PairMatches, _matcher, consistent, neighbour_pairs, rematch_pair
from ._tiles import TileStore, output_dtype
from ._validate import as_float, as_int
from .affine import Affine
from .montage import (MontageResult, _progress, check_grid, check_settings, match_grid, overview,
                      render_result, solve)


def _levels(slices: Any) -> List[Dict[Tuple[int, int], Any]]:
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


def _inside(tf: Affine, size: Tuple[int, int], m: np.ndarray, margin: float) -> np.ndarray:
    """Distance of model points m (N, 2) inside the tile's area (negative: outside)."""
    p = (Affine(tf).inverse() * m.T).T
    w, h = size
    return np.minimum.reduce([p[:, 0] - margin, w - 1 - margin - p[:, 0], p[:, 1] - margin,
                              h - 1 - margin - p[:, 1]])


def _holders(tiles: List[Hashable], transforms, sizes, m: np.ndarray, margin: float) -> np.ndarray:
    """(tiles, points) bool: which tiles hold each point at least ``margin`` inside."""
    return np.stack([_inside(transforms[t], sizes[t], m, margin) >= 0 for t in tiles])


def _match_levels(store: TileStore, lo: List[Hashable], hi: List[Hashable], tf: Mapping, sizes: Mapping,
                  z: int, settings: MatchSettings, ov_cache: Dict[int, Any]) -> List[PairMatches]:
    """Matches between level z (tiles ``lo``) and z + 1 (``hi``), each placed in its own frame."""
    k_lo, img_lo, org_lo = ov_cache[z]
    k_hi, img_hi, org_hi = ov_cache[z + 1]
    # Coarse: the overviews (same scale) matched at the centre of the lower one.
    size = (2 * (min(img_lo.shape[1], img_hi.shape[1]) // 2), 2 * (min(img_lo.shape[0], img_hi.shape[0]) // 2))
    m = _matcher(img_lo, img_hi, settings, stats=True)
    c_lo = np.array([img_lo.shape[1] / 2, img_lo.shape[0] / 2])
    c_hi = c_lo + (np.asarray(org_lo) - np.asarray(org_hi)) / k_lo
    p, q, st = m.refine(c_lo, c_hi, size, iters=5, tolerance=0.05)
    if not np.isfinite(st.snr) or st.snr < settings.min_snr:
        raise ValueError(f"levels {z} and {z + 1} could not be matched coarsely (SNR {st.snr:.1f} < min_snr "
                         f"{settings.min_snr:g}); are they images of the same tissue?")
    shift = np.asarray(org_lo) + k_lo * p - (np.asarray(org_hi) + k_hi * q)  # hi frame -> lo frame
    # Grid of points over the part of level z that level z + 1 covers too.
    def bounds(tiles, offset):
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
            mm = _matcher(store.image(ta), store.image(tb), settings)
            q1, q2, st = mm.refine_many(P1, P2, settings.fine_size, iters=settings.iters, threads=settings.threads)
            ok = np.isfinite(st.snr) & (st.snr >= settings.min_snr)
            out.append(PairMatches(ta, tb, "z", q1, q2, st.snr.copy(), st.peakwidth.copy(), ok, float(st.snr.max())))
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


def align_stack(slices: Any, *, model: str = "affine", overlap: float = 0.1, coarse_size: Any = None,
                fine_size: int = 128, fine_step: float = 100, iters: int = 3, min_snr: float = 8.0,
                whiten: float = -0.65, peak_radius: int = 3, diagonals: bool = False, z_size: int = 256,
                z_step: float = 200,
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
    model : {"affine", "similarity", "rigid"}
        Placement model for every tile.
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
        first tile of level 0.
    """
    levels = _levels(slices)
    settings = check_settings(overlap=overlap, model=model, coarse_size=coarse_size, fine_size=fine_size,
                              fine_step=fine_step, iters=iters, min_snr=min_snr, threads=threads, whiten=whiten,
                              peak_radius=peak_radius)
    zset = dataclasses.replace(settings, fine_size=as_int(z_size, "z_size", minimum=16),
                               fine_step=as_float(z_step, "z_step"))
    if not zset.fine_step > 0:
        raise ValueError(f"z_step must be positive (pixels between matches), got {zset.fine_step}")
    sources = {(z,) + key: src for z, lv in enumerate(levels) for key, src in lv.items()}
    level_keys = [sorted((z,) + key for key in lv) for z, lv in enumerate(levels)]
    widest = max(max(c for _, c in lv) - min(c for _, c in lv) + 1 for lv in levels)
    store = TileStore(sources, capacity=4 * widest + 8)
    cluster = None
    if client is not None:
        from ._distributed import Cluster, check_client, check_output

        check_client(client)
        output = check_output(output, overwrite) if render else None
        cluster = Cluster(client, sources, settings.threads)

    # 1. Within each level: neighbour matches and a placement of the level alone.
    within: List[PairMatches] = []
    tf: Dict[Hashable, Affine] = {}
    if cluster is not None:
        pairs = [((z,) + a, (z,) + b, kind) for z, keys in enumerate(level_keys)
                 for a, b, kind in neighbour_pairs([k[1:] for k in keys], bool(diagonals))]
        found = cluster.match(pairs, settings, progress=False)
    for z, keys in enumerate(level_keys):
        if cluster is not None:
            pairs = [pm for pm in found if pm.tile1[0] == z]
        else:
            pairs = match_grid(store, [k[1:] for k in keys], settings, diagonals=bool(diagonals), progress=False,
                               key_of=lambda k, z=z: (z,) + tuple(k))
            for t in keys:
                store.image(t)
        t_z, _ = solve(keys, pairs, model, keys[0],
                       f"Level {z}: check the overlap guess (overlap={settings.overlap:g}) or lower min_snr.")
        tf.update(t_z)
        within.extend(pairs)
    if cluster is not None:
        cluster.probe([t for keys in level_keys for t in keys])
        dtype = output_dtype({t: cluster.dtypes[t] for keys in level_keys for t in keys})
        sizes = {t: cluster.sizes[t] for keys in level_keys for t in keys}
    else:
        store.probe_all()
        output_dtype(store.dtypes)
        sizes = dict(store.sizes)

    # 2. Between neighbouring levels, each still in its own frame.
    def overviews(zs, **how):
        parts = [({t: tf[t] for t in level_keys[z]}, {t: sizes[t] for t in level_keys[z]}) for z in zs]
        if cluster is not None:
            return cluster.overviews(parts, model, **how)
        out = []
        for part_tf, part_sizes in parts:
            part = MontageResult(part_tf, [], None, model, part_sizes)
            img, k, org = overview(part, sources, threads=settings.threads, **how)
            out.append((k, np.asarray(img, np.float32), org))
        return out

    ov_cache = dict(enumerate(overviews(range(len(level_keys)), max_side=1024)))
    # One scale for all overviews, so their content matches in size.
    kmax = max(v[0] for v in ov_cache.values())
    redo = [z for z in range(len(level_keys)) if ov_cache[z][0] != kmax]
    ov_cache.update(zip(redo, overviews(redo, factor=int(kmax))))
    between: List[PairMatches] = []
    if cluster is not None:
        between = cluster.match_levels(level_keys, tf, sizes, zset, ov_cache, progress=progress)
    else:
        for z in _progress(range(len(levels) - 1), total=len(levels) - 1, desc="matching levels",
                           enabled=progress):
            between.extend(_match_levels(store, level_keys[z], level_keys[z + 1], tf, sizes, z, zset, ov_cache))

    # 3. All levels placed jointly; unless rigid, a second pass through that placement.
    all_keys = [t for keys in level_keys for t in keys]
    hint = "Check the overlap guess and min_snr, or the z_size / z_step of the matches between levels."
    transforms, residuals = solve(all_keys, within + between, model, all_keys[0], hint)
    if model != "rigid":
        if cluster is not None:
            both = cluster.rematch([(pm, settings) for pm in within] + [(pm, zset) for pm in between],
                                   transforms, progress=progress)
            within, between = both[:len(within)], both[len(within):]
        else:
            within = [rematch_pair(store.image(pm.tile1), store.image(pm.tile2), pm, transforms[pm.tile1],
                                   transforms[pm.tile2], settings) if pm.kept.any() else pm for pm in within]
            between = [rematch_pair(store.image(pm.tile1), store.image(pm.tile2), pm, transforms[pm.tile1],
                                    transforms[pm.tile2], zset) if pm.kept.any() else pm for pm in between]
        transforms, residuals = solve(all_keys, within + between, model, all_keys[0], hint)
    result = MontageResult(transforms, within + between, residuals, model, sizes,
                           sources={t: s for t in all_keys if (s := store.source_name(t))}, levels=level_keys)
    if render and cluster is not None:
        r = result.renderer(blend=blend, interpolation=interpolation, threads=cluster.threads)
        result.canvas = r.rect
        cluster.render(result, r, dtype, output=output, overwrite=overwrite, chunk=chunk, progress=progress,
                       levels=level_keys)
    elif render:
        render_result(result, store, output=output, overwrite=overwrite, blend=blend, interpolation=interpolation,
                      threads=settings.threads, progress=progress, chunk=chunk, levels=level_keys)
    return result

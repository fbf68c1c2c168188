"""Imaging cycles: every later cycle's tiles registered, tile by tile, to the first cycle's montage.

In cyclic immunofluorescence the slide is imaged, bleached or restained and
imaged again, several times; each cycle re-acquires the same tile positions,
but the slide sits a little differently each time (a shift of tens of
microns, a small rotation). ASHLAR's approach, followed here: stitch the
first cycle, then place each tile of a later cycle by matching its alignment
channel (DAPI/Hoechst in practice) against the first cycle's montage around
the tile's stage position.

How: (1) one global offset per cycle from phase correlation of two
overviews (the first cycle's montage and the later cycle's tiles at their
stage positions, block-averaged to at most ``1024`` px); (2) per tile, the
first cycle's montage resampled into the tile's frame through the current
estimate, a grid of fine matches between the two, and a least-squares fit
of the tile's transform to them (two passes: after the first, the
resampled montage is nearly aligned, so translation-only windows measure the
remaining error without the bias a rotation gives them). Tiles without
usable matches (blank) keep their stage position plus the cycle's median
correction, with a RuntimeWarning.

Coordinates: points are (x, y) = (column, row); transforms map tile pixels
to the first cycle's model space.
"""
from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .._types import TileKey
from .._validate import resolve_threads
from ..execute.base import progress_bar
from ..io.tiles import TileStore, describe
from ..match.pairs import MatchSettings, consistent, fft_size, make_matcher
from ..render.overview import overview
from ..render.renderer import Renderer
from ..transforms.affine import Affine
from ..transforms.points import affine_from_points
from .result import MontageResult

_OVERVIEW_SIDE = 1024
_FIT_MODELS = {"affine": "affine", "similarity": "similarity", "rigid": "translation"}


@dataclass
class CycleResiduals:
    """How well a cycle's tiles fit the reference montage (model-space pixels).

    Attributes
    ----------
    rms, max : float
        Over every kept match of every tile: misfit of the final transforms.
    per_tile : dict
        ``{tile: rms}`` (NaN for tiles placed without matches).
    n_matches : int
        Kept matches over all tiles.
    global_shift : (x, y)
        The cycle's overall offset from its stage positions, found first.
    unmatched : list
        Tiles placed from the stage position (no usable match).
    """

    rms: float
    max: float
    per_tile: Dict[TileKey, float]
    n_matches: int
    global_shift: Tuple[float, float]
    unmatched: List[TileKey]


def register_cycle(reference: MontageResult, reference_tiles: Mapping[TileKey, Any],
                   tiles: Mapping[TileKey, Any], positions: Mapping[TileKey, Any], *,
                   settings: MatchSettings, model: str = "affine", window: int = 256,
                   progress: bool = False) -> Tuple[Dict[TileKey, Affine], CycleResiduals]:
    """Transforms of a later cycle's tiles into the reference (first cycle's) model space.

    Parameters
    ----------
    reference : MontageResult
        The first cycle's placement (``transforms``, ``tile_sizes``).
    reference_tiles : dict
        ``{tile: loader or array}`` of the first cycle's alignment channel.
    tiles : dict
        ``{tile: loader or array}`` of this cycle's alignment channel.
    positions : dict
        ``{tile: (x, y)}``: this cycle's stage positions in the reference
        model frame (pixel (0, 0) of each tile).
    settings : MatchSettings
        ``min_snr``, ``whiten``, ``peak_radius``, ``iters`` and ``threads``
        as in ``montage``.
    model : {"affine", "similarity", "rigid"}
        Fitted per tile ("rigid": a translation).
    window : int
        Side of the fine-match windows (pixels; at most a third of the tile), spaced
        a window apart in the first pass and half a window in the second; only windows
        the reference montage covers whole are used.
    """
    if model not in _FIT_MODELS:
        raise ValueError(f"model must be 'affine', 'similarity' or 'rigid', got {model!r}")
    keys = list(tiles)
    ref_store = TileStore(reference_tiles, capacity=16)
    store = TileStore(tiles, capacity=8)
    shift = _global_shift(reference, reference_tiles, tiles, positions, store, settings.threads)
    nthreads = resolve_threads(settings.threads)
    one = MatchSettings(**{**settings.__dict__, "threads": 1})
    ref_bounds = {t: _bounds(reference.transforms[t], reference.tile_sizes[t]) for t in reference.transforms}

    def run(t: TileKey) -> Tuple[Optional[Affine], np.ndarray]:
        start = Affine.translator(np.asarray(positions[t], float) + shift)
        return _register_tile(np.asarray(store.image(t)), start, reference, ref_store, ref_bounds, one,
                              _FIT_MODELS[model], window)

    with ThreadPoolExecutor(max_workers=nthreads, thread_name_prefix="spectralign-cycle") as pool:
        found = list(progress_bar(pool.map(run, keys), total=len(keys), desc="registering cycle",
                                  enabled=progress))
    fitted = {t: tf for t, (tf, _) in zip(keys, found) if tf is not None}
    unmatched = [t for t in keys if t not in fitted]
    if not fitted:
        raise ValueError(f"no tile of this cycle matched the reference montage (min_snr={settings.min_snr:g}); "
                         f"check that the alignment channel shows the same structures in both cycles")
    if unmatched:
        warnings.warn(f"{len(unmatched)} tile(s) of this cycle found no match in the reference montage "
                      f"({', '.join(describe(t) for t in unmatched[:8])}{' ...' if len(unmatched) > 8 else ''}); "
                      f"placed at their stage positions plus the cycle's median offset", RuntimeWarning, stacklevel=2)
        corr = np.median([np.asarray(fitted[t])[:, 2] - np.asarray(positions[t], float) for t in fitted], axis=0)
        for t in unmatched:
            fitted[t] = Affine.translator(np.asarray(positions[t], float) + corr)
    misfits = {t: m for t, (_, m) in zip(keys, found)}
    alln = np.concatenate([misfits[t] for t in keys]) if keys else np.empty(0)
    per = {t: float(np.sqrt(np.mean(misfits[t] ** 2))) if len(misfits[t]) else float("nan") for t in keys}
    res = CycleResiduals(float(np.sqrt(np.mean(alln ** 2))) if len(alln) else float("nan"),
                         float(alln.max()) if len(alln) else float("nan"), per, int(len(alln)),
                         (float(shift[0]), float(shift[1])), unmatched)
    return {t: fitted[t] for t in keys}, res


def _bounds(tf: Any, size: Tuple[int, int]) -> np.ndarray:
    w, h = size
    c = Affine(tf) * np.array([[-0.5, w - 0.5, w - 0.5, -0.5], [-0.5, -0.5, h - 0.5, h - 0.5]])
    return np.array([c[0].min(), c[1].min(), c[0].max(), c[1].max()])


def _global_shift(reference: MontageResult, reference_tiles: Mapping[TileKey, Any], tiles: Mapping[TileKey, Any],
                  positions: Mapping[TileKey, Any], store: TileStore, threads: int) -> np.ndarray:
    """The cycle's offset from its stage positions: phase correlation of two overviews on one grid."""
    sizes = {t: (lambda a: (a.shape[1], a.shape[0]))(np.asarray(store.image(t))) for t in tiles}
    nominal = {t: Affine.translator(np.asarray(positions[t], float)) for t in tiles}
    boxes = np.array([_bounds(tf, reference.tile_sizes[t]) for t, tf in reference.transforms.items()]
                     + [_bounds(tf, sizes[t]) for t, tf in nominal.items()])
    lo, hi = boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)
    k = max(1, int(math.ceil(float((hi - lo).max()) / _OVERVIEW_SIDE)))
    a, _, oa = overview(reference.transforms, reference.tile_sizes, reference_tiles, factor=k, threads=threads)
    b, _, ob = overview(nominal, sizes, {t: (lambda t=t: np.asarray(store.image(t))) for t in tiles},
                        factor=k, threads=threads)
    # Both onto one grid of k-pixel cells starting at lo.
    shape = (int(math.ceil((hi[1] - lo[1]) / k)) + 2, int(math.ceil((hi[0] - lo[0]) / k)) + 2)
    ga, gb = _paste(a, oa, lo, k, shape), _paste(b, ob, lo, k, shape)
    # The window stays inside the layout: its outline is the same in both cycles (same
    # stage positions) and would pull the peak to zero shift.
    size = (fft_size(0.7 * shape[1], 32, 4096), fft_size(0.7 * shape[0], 32, 4096))
    centre = np.array([shape[1] / 2, shape[0] / 2])
    m = make_matcher(ga, gb, MatchSettings(whiten=-0.65, peak_radius=3), stats=True)
    q1, q2, st = m._refine(centre, centre, size, iters=2, tolerance=0.05)
    if not np.isfinite(st.snr) or not np.isfinite(q1).all():
        return np.zeros(2)
    # Content at q1 in the reference lies at q2 in the cycle: the cycle's tiles sit q1 - q2 further on.
    return (np.asarray(q1) - np.asarray(q2)) * k


def _paste(img: np.ndarray, origin: Tuple[float, float], lo: np.ndarray, k: int, shape: Tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    # Overview pixel (0, 0) shows model point origin; grid cell (i, j) model lo + k * (j, i) + (k - 1) / 2.
    j0 = int(round((origin[0] - lo[0] - (k - 1) / 2) / k))
    i0 = int(round((origin[1] - lo[1] - (k - 1) / 2) / k))
    h, w = img.shape
    ys, xs = slice(max(0, i0), min(shape[0], i0 + h)), slice(max(0, j0), min(shape[1], j0 + w))
    out[ys, xs] = img[ys.start - i0:ys.stop - i0, xs.start - j0:xs.stop - j0]
    blank = out == 0  # outside every tile (and holes): the mean, so their edges are weak features
    if blank.any() and not blank.all():
        out[blank] = out[~blank].mean()
    return out


def _register_tile(img: np.ndarray, start: Affine, reference: MontageResult, ref_store: TileStore,
                   ref_bounds: Mapping[TileKey, np.ndarray], settings: MatchSettings, fit_model: str,
                   window: int) -> Tuple[Optional[Affine], np.ndarray]:
    h, w = img.shape
    window = min(window, fft_size(min(w, h) / 3, 32, 4096))
    tf = start
    misfit = np.empty(0)
    fitted = False
    for npass in range(2):
        box = _bounds(tf, (w, h))
        near = [s for s, b in ref_bounds.items()
                if b[0] < box[2] and b[2] > box[0] and b[1] < box[3] and b[3] > box[1]]
        if not near:
            break
        inv = tf.inverse()
        r = Renderer(affine={s: inv @ Affine(reference.transforms[s]) for s in near},
                     tilesize={s: reference.tile_sizes[s] for s in near}, blend=10, interpolation="cubic", threads=1)
        ref_img, covered = r.render_region((0, 0, w, h), {s: np.asarray(ref_store.image(s)) for s in near},
                                           threads=1, coverage=True)
        # The first pass only has to bring the resampled montage close: windows a whole window
        # apart (a quarter as many) are enough; the second, final one packs them twice as densely.
        P = _window_grid(covered, window, 1.0 if npass == 0 else 0.5)
        if len(P) < 3:
            break
        m = make_matcher(img, ref_img.astype(np.float32, copy=False), settings)
        q1, q2, st = m.refine_many(P, P, (window, window), iters=settings.iters, threads=1)
        ok = np.isfinite(st.snr) & (st.snr >= settings.min_snr) & np.isfinite(q1).all(1) & np.isfinite(q2).all(1)
        kept = consistent(q1, q2, ok)
        need = {"affine": 3, "similarity": 2, "translation": 1}[fit_model]
        if kept.sum() < max(need, 3):
            break
        target = (tf * q2[kept].T).T
        wts = (st.snr[kept] / 20.0) ** 2
        tf = Affine(affine_from_points(q1[kept], target, model=fit_model, weights=wts)[:2])
        misfit = np.hypot(*((tf * q1[kept].T).T - target).T)
        fitted = True
    return (tf if fitted else None), misfit


def _window_grid(covered: np.ndarray, window: int, spacing: float = 0.5) -> np.ndarray:
    """Centres (x, y) of windows ``spacing`` windows apart whose whole square is covered."""
    h, w = covered.shape
    half = window / 2
    step = spacing * window
    def axis(n: int) -> np.ndarray:
        count = int((n - window - 2) // step) + 1 if n > window + 2 else 1
        return np.linspace(half + 1, n - half - 1, count) if count > 1 else np.array([n / 2])

    xs, ys = axis(w), axis(h)
    pts = []
    for y in ys:
        for x in xs:
            y0, y1 = int(max(0, y - half)), int(min(h, y + half))
            x0, x1 = int(max(0, x - half)), int(min(w, x + half))
            if covered[y0:y1, x0:x1].all():
                pts.append((x, y))
    return np.array(pts, float).reshape(-1, 2)

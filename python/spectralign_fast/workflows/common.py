"""What montage and align_stack share: settings, grid checks, the placement step, timing.

Coordinates: points are (x, y) = (column, row) in a tile's pixels; a tile's
transform maps its pixel (x, y) to model space.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from .._types import GridKey, TileKey
from .._validate import MAX_ITERS, as_float, as_int, as_size
from ..io.tiles import describe
from ..match.pairs import MatchSettings, PairMatches
from ..place.placement import Placement, PlacementResiduals
from ..transforms.affine import Affine

MODELS = ("affine", "similarity", "rigid")
INTERPOLATIONS = ("linear", "nearest", "cubic")


def check_settings(*, overlap: Any, model: str, coarse_size: Any, fine_size: Any, fine_step: Any, iters: Any,
                   min_snr: Any, threads: Any, whiten: Any = -0.65, peak_radius: Any = 3) -> MatchSettings:
    """Validated matching settings (plain-language errors)."""
    if model not in MODELS:
        raise ValueError(f"model must be 'affine', 'similarity' or 'rigid', got {model!r}")
    ov = as_float(overlap, "overlap")
    if not 0 < ov < 1:
        raise ValueError(f"overlap is the fraction of a tile shared with its neighbour: give a number "
                         f"between 0 and 1 (e.g. 0.1 for 10%), got {ov}")
    cs = None if coarse_size is None else as_size(coarse_size, "coarse_size")
    fs = as_int(fine_size, "fine_size", minimum=8)
    step = as_float(fine_step, "fine_step")
    if not step > 0:
        raise ValueError(f"fine_step must be positive (pixels between fine matches), got {step}")
    snr = as_float(min_snr, "min_snr")
    if snr < 0:
        raise ValueError(f"min_snr must be >= 0, got {snr}")
    return MatchSettings(overlap=ov, coarse_size=cs, fine_size=fs, fine_step=step,
                         iters=as_int(iters, "iters", minimum=1, maximum=MAX_ITERS), min_snr=snr,
                         whiten=_whiten(whiten), peak_radius=as_int(peak_radius, "peak_radius", minimum=1),
                         threads=as_int(threads, "threads", minimum=0))


def check_render_options(*, blend: Any, interpolation: Any, chunk: Any) -> None:
    """The rendering options, checked before any matching (not found wrong after an hour of it)."""
    b = as_float(blend, "blend")
    if b < 0:
        raise ValueError(f"blend is the feathering radius in tile pixels: give 0 (hard seams) or more, got {b}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    as_int(chunk, "chunk", minimum=1, maximum=65536)


def _whiten(value: Any) -> float:
    w = as_float(value, "whiten")
    if not -1 <= w <= 0:
        raise ValueError(f"whiten is the exponent of the cross-power spectrum's magnitude: give a number "
                         f"from -1 (phase correlation) to 0 (plain correlation), got {w}")
    return w


def check_grid(tiles: Any) -> Dict[GridKey, Any]:
    if not isinstance(tiles, Mapping):
        raise TypeError(f"tiles must be a dict {{(row, col): image or path}}, got {type(tiles).__name__}")
    if not tiles:
        raise ValueError("tiles is empty: give at least one tile as {(row, col): image or path}")
    out: Dict[GridKey, Any] = {}
    for key, src in tiles.items():
        ok = isinstance(key, tuple) and len(key) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in key)
        if not ok:
            raise ValueError(f"tile keys must be (row, col) pairs of integers, got {key!r}")
        if src is None:
            raise ValueError(f"tile {key!r} is None; leave missing tiles out of the dict instead")
        out[(int(key[0]), int(key[1]))] = src
    return out


def solve(tiles: Sequence[TileKey], matches: List[PairMatches], model: str, fix: TileKey,
          hint: str, regularize: float = 0.0,
          prior: str = "similarity") -> Tuple[Dict[TileKey, Affine], PlacementResiduals]:
    """Least-squares placement from the kept matches, weighted by SNR squared, with errors
    that say what to change. A model the matches cannot determine for some tile falls back
    (affine to similarity to rigid) with a RuntimeWarning naming the tiles; ``placed_model``
    tells which model a result used. ``regularize``: ``Placement.affine``'s (affine only)."""
    tf, res, _ = solve_placed(tiles, matches, model, fix, hint, regularize, prior)
    return tf, res


def solve_placed(tiles: Sequence[TileKey], matches: List[PairMatches], model: str, fix: TileKey,
                 hint: str, regularize: float = 0.0, prior: str = "similarity",
                 nominal: Optional[NominalLayout] = None) -> Tuple[Dict[TileKey, Affine], PlacementResiduals, str]:
    """``solve``, also returning the model actually used (after any fallback).

    ``nominal`` (positions and sizes, e.g. from stage metadata) ties every tile weakly to
    its nominal place next to its neighbours, so tiles that matched nothing (blank
    tissue, a detached island of tiles) land where the stage put them, with a
    RuntimeWarning, instead of failing the montage; matched tiles move by less than
    1e-3 px for it. Residuals then count the image matches only.
    """
    pl = Placement()
    used: Set[TileKey] = set()
    for pm in matches:
        k = pm.kept
        if k.any():
            # Inverse-variance weights: a match's error scales roughly as 1 / SNR.
            pl.addmatches(pm.tile1, pm.tile2, pm.p1[k], pm.p2[k], (pm.snr[k] / 20.0) ** 2)
            used.update((pm.tile1, pm.tile2))
    lonely = [t for t in tiles if t not in used]
    if nominal is not None and len(tiles) > 1:
        _add_nominal(pl, tiles, nominal)
        if lonely:
            warnings.warn(f"{len(lonely)} tile(s) matched no neighbour ({', '.join(describe(t) for t in lonely[:8])}"
                          f"{' ...' if len(lonely) > 8 else ''}); placed at their nominal (stage) positions",
                          RuntimeWarning, stacklevel=3)
        lonely = []
    if len(tiles) > 1 and lonely:
        bad = [pm for pm in matches if not pm.kept.any()]
        detail = "; ".join(f"{describe(pm.tile1)}-{describe(pm.tile2).replace('tile ', '')}: "
                           f"{pm.note or f'no match with SNR >= min_snr (best {np.nanmax(pm.snr, initial=0):.1f})'}"
                           for pm in bad[:6])
        raise ValueError(f"{', '.join(describe(t) for t in lonely[:8])} could not be matched to any neighbour "
                         f"({detail}). {hint}")
    if len(tiles) == 1:
        return {tiles[0]: Affine()}, PlacementResiduals(np.empty((0, 2)), np.empty(0, bool), float("nan"),
                                                        float("nan"), {tiles[0]: float("nan")}), model
    chain = MODELS[MODELS.index(model):]
    for weaker in chain[1:]:
        weak = pl.underdetermined(model)
        if not weak:
            break
        warnings.warn(f"{len(weak)} tile(s) have too few matched points for a {model} placement "
                      f"({', '.join(describe(t) for t in weak[:6])}{' ...' if len(weak) > 6 else ''}); "
                      f"placing every tile as a {weaker} instead", RuntimeWarning, stacklevel=3)
        model = weaker
    try:
        if model == "affine":
            tf = pl.affine(fix=fix, regularize=regularize, prior=prior)
        elif model == "similarity":
            tf = pl.similarity(fix=fix)
        else:
            tf = {t: Affine.translator(p) for t, p in pl.rigid(fix=fix).items()}
    except ValueError as exc:
        raise ValueError(f"{exc}. {hint}") from None
    out = {t: tf[t] for t in tiles}
    return out, (pl.residuals() if nominal is None else residuals_of(out, matches)), model


@dataclass
class NominalLayout:
    """Nominal tile positions (x, y) of pixel (0, 0) and sizes (width, height), e.g. from stage metadata."""

    positions: Mapping[TileKey, np.ndarray]
    sizes: Mapping[TileKey, Tuple[int, int]]


# Weight of the nominal-position ties against an image match (weights (SNR / 20)^2,
# about 0.2-4 for kept matches): a stage error of 20 px moves a tile matched by
# 10 points by about 20 * 1e-6 / 10 px.
_NOMINAL_WEIGHT = 1e-6


def _add_nominal(pl: Placement, tiles: Sequence[TileKey], nominal: NominalLayout) -> None:
    """Three points per tile tie it to its nearest nominal neighbours (a spanning chain
    through all tiles, so islands are joined)."""
    keys = list(tiles)
    xy = np.array([nominal.positions[t] for t in keys], float)
    wh = np.array([nominal.sizes[t] for t in keys], float)
    centres = xy + wh / 2
    # Prim's minimum spanning tree over tile centres: n - 1 ties connect everything.
    n = len(keys)
    inside = np.zeros(n, bool)
    inside[0] = True
    dist = np.hypot(*(centres - centres[0]).T)
    parent = np.zeros(n, int)
    for _ in range(n - 1):
        d = np.where(inside, np.inf, dist)
        j = int(np.argmin(d))
        inside[j] = True
        a = parent[j]
        w, h = wh[a]
        pa = np.array([[w * 0.25, h * 0.25], [w * 0.75, h * 0.25], [w * 0.5, h * 0.75]])
        pl.addmatches(keys[a], keys[j], pa, pa + xy[a] - xy[j], _NOMINAL_WEIGHT)
        nd = np.hypot(*(centres - centres[j]).T)
        closer = nd < dist
        dist = np.where(closer, nd, dist)
        parent = np.where(closer, j, parent)


def grid_hint(settings: MatchSettings) -> str:
    return (f"Check the overlap guess (overlap={settings.overlap:g}; it must be within 2x of the truth), "
            f"lower min_snr (now {settings.min_snr:g}), or pass diagonals=True for grids with holes.")


class Clock:
    """Seconds per stage of a workflow (``MontageResult.timings``)."""

    def __init__(self) -> None:
        self._now = time.perf_counter
        self._last = self._now()
        self.laps: Dict[str, float] = {}

    def lap(self, name: str) -> None:
        t = self._now()
        self.laps[name] = t - self._last
        self._last = t


def residuals_of(transforms: Mapping[TileKey, Affine], matches: Sequence[PairMatches]) -> PlacementResiduals:
    vec, kept = [], []
    per: Dict[TileKey, List[float]] = {t: [] for t in transforms}
    for pm in matches:
        a = Affine(transforms[pm.tile1]) * pm.p1.T
        b = Affine(transforms[pm.tile2]) * pm.p2.T
        v = (a - b).T.reshape(-1, 2)
        vec.append(v)
        kept.append(pm.kept)
        sq = np.einsum("ij,ij->i", v, v)[pm.kept]
        per[pm.tile1].extend(sq)
        per[pm.tile2].extend(sq)
    V = np.concatenate(vec) if vec else np.empty((0, 2))
    K = np.concatenate(kept) if kept else np.empty(0, bool)
    n = np.hypot(V[K, 0], V[K, 1])
    return PlacementResiduals(V, K, float(np.sqrt(np.mean(n ** 2))) if len(n) else float("nan"),
                              float(n.max()) if len(n) else float("nan"),
                              {t: float(np.sqrt(np.mean(s))) if s else float("nan") for t, s in per.items()})

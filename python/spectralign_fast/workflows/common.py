"""What montage and align_stack share: settings, grid checks, the placement step, timing.

Coordinates: points are (x, y) = (column, row) in a tile's pixels; a tile's
transform maps its pixel (x, y) to model space.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Dict, List, Mapping, Sequence, Set, Tuple

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
                 hint: str, regularize: float = 0.0,
                 prior: str = "similarity") -> Tuple[Dict[TileKey, Affine], PlacementResiduals, str]:
    """``solve``, also returning the model actually used (after any fallback)."""
    pl = Placement()
    used: Set[TileKey] = set()
    for pm in matches:
        k = pm.kept
        if k.any():
            # Inverse-variance weights: a match's error scales roughly as 1 / SNR.
            pl.addmatches(pm.tile1, pm.tile2, pm.p1[k], pm.p2[k], (pm.snr[k] / 20.0) ** 2)
            used.update((pm.tile1, pm.tile2))
    lonely = [t for t in tiles if t not in used]
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
    return {t: tf[t] for t in tiles}, pl.residuals(), model


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

"""End-to-end montage of a grid of tiles: match neighbours, place, render.

``montage(tiles)`` does what spectralign's README does by hand: a coarse match
in the middle of each overlap between horizontal and vertical neighbours (and
diagonal ones if asked), a grid of fine matches around it, dropping low-SNR and
inconsistent matches, a least-squares placement, and the rendering.

Coordinates: points are (x, y) = (column, row) in a tile's pixels; a tile's
transform maps its pixel (x, y) to model space.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ._io import write_atomically
from ._pairs import MatchSettings, PairMatches, match_pair, neighbour_pairs, rematch_pair
from ._tiles import TileStore, describe, output_dtype
from ._validate import as_float, as_int, as_size
from .affine import Affine
from .placement import Placement, PlacementResiduals
from .renderer import Renderer

FORMAT = "spectralign-fast alignment"
_MODELS = ("affine", "similarity", "rigid")


def _progress(iterable, *, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="pair" if "match" in desc else "it",
                leave=False, dynamic_ncols=True)


def check_settings(*, overlap: Any, model: str, coarse_size: Any, fine_size: Any, fine_step: Any, iters: Any,
                   min_snr: Any, threads: Any, whiten: Any = -0.65, peak_radius: Any = 3) -> MatchSettings:
    """Validated matching settings (plain-language errors)."""
    if model not in _MODELS:
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
                         iters=as_int(iters, "iters", minimum=1), min_snr=snr,
                         whiten=_whiten(whiten), peak_radius=as_int(peak_radius, "peak_radius", minimum=1),
                         threads=as_int(threads, "threads", minimum=0))


def _whiten(value: Any) -> float:
    w = as_float(value, "whiten")
    if not -1 <= w <= 0:
        raise ValueError(f"whiten is the exponent of the cross-power spectrum's magnitude: give a number "
                         f"from -1 (phase correlation) to 0 (plain correlation), got {w}")
    return w


def check_grid(tiles: Any) -> Dict[Tuple[int, int], Any]:
    if not isinstance(tiles, Mapping):
        raise TypeError(f"tiles must be a dict {{(row, col): image or path}}, got {type(tiles).__name__}")
    if not tiles:
        raise ValueError("tiles is empty: give at least one tile as {(row, col): image or path}")
    out: Dict[Tuple[int, int], Any] = {}
    for key, src in tiles.items():
        ok = isinstance(key, tuple) and len(key) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in key)
        if not ok:
            raise ValueError(f"tile keys must be (row, col) pairs of integers, got {key!r}")
        if src is None:
            raise ValueError(f"tile {key!r} is None; leave missing tiles out of the dict instead")
        out[(int(key[0]), int(key[1]))] = src
    return out


def match_grid(store: TileStore, keys: List[Tuple[int, int]], settings: MatchSettings, *,
               diagonals: bool, progress: bool, key_of: Callable[[Any], Hashable] = lambda k: k
               ) -> List[PairMatches]:
    """Matches between all neighbouring tiles of one grid."""
    pairs = neighbour_pairs(keys, diagonals)
    out = []
    for a, b, kind in _progress(pairs, total=len(pairs), desc="matching", enabled=progress):
        pm = match_pair(store.image(key_of(a)), store.image(key_of(b)), key_of(a), key_of(b), kind, settings)
        out.append(pm)
    return out


def rematch(store: TileStore, matches: List[PairMatches], transforms: Mapping[Hashable, Affine],
            settings: MatchSettings, *, progress: bool) -> List[PairMatches]:
    """Second matching pass through the first placement (see ``_pairs.rematch_pair``)."""
    out = []
    for pm in _progress(matches, total=len(matches), desc="matching (pass 2)", enabled=progress):
        if not pm.kept.any():
            out.append(pm)
            continue
        out.append(rematch_pair(store.image(pm.tile1), store.image(pm.tile2), pm, transforms[pm.tile1],
                                transforms[pm.tile2], settings))
    return out


def solve(tiles: Sequence[Hashable], matches: List[PairMatches], model: str, fix: Hashable,
          hint: str) -> Tuple[Dict[Hashable, Affine], PlacementResiduals]:
    """Least-squares placement from the kept matches, weighted by SNR squared, with errors
    that say what to change."""
    pl = Placement()
    used = set()
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
                                                        float("nan"), {tiles[0]: float("nan")})
    try:
        if model == "affine":
            tf = pl.affine(fix=fix)
        elif model == "similarity":
            tf = pl.similarity(fix=fix)
        else:
            tf = {t: Affine.translator(p) for t, p in pl.rigid(fix=fix).items()}
    except ValueError as exc:
        raise ValueError(f"{exc}. {hint}") from None
    return {t: tf[t] for t in tiles}, pl.residuals()


def _grid_hint(settings: MatchSettings) -> str:
    return (f"Check the overlap guess (overlap={settings.overlap:g}; it must be within 2x of the truth), "
            f"lower min_snr (now {settings.min_snr:g}), or pass diagonals=True for grids with holes.")


@dataclass
class MontageResult:
    """Result of ``montage`` (and, with ``levels``, of ``align_stack``).

    Attributes
    ----------
    transforms : dict
        ``{tile: Affine}`` mapping each tile's pixel (x, y) to model space.
        Rigid models give pure translations. The first tile (lowest row, then
        column) is the identity.
    matches : list of PairMatches
        Every matched pair with its points, SNRs, peak widths and ``kept`` flags.
    residuals : PlacementResiduals
        Residuals of the kept matches after placement (model-space pixels).
    model : str
        "affine", "similarity" or "rigid".
    tile_sizes : dict
        ``{tile: (width, height)}``.
    image : ndarray or None
        The rendered montage (dtype of the tiles), if rendered in memory.
    canvas : (x0, y0, width, height)
        Model-space rectangle of ``image``: pixel (i, j) shows model point
        (x0 + j, y0 + i).
    output : Path or None
        Where the montage was written, if it was.
    sources : dict
        ``{tile: path}`` for tiles given as paths (so ``load`` + ``render`` work later).
    levels : list or None
        For stacks: the tiles of each z-level.
    timings : dict
        Seconds spent per stage ("match", "place", "match (pass 2)",
        "place (pass 2)", "render") by the call that made this result.
    """

    transforms: Dict[Hashable, Affine]
    matches: List[PairMatches]
    residuals: PlacementResiduals
    model: str
    tile_sizes: Dict[Hashable, Tuple[int, int]]
    image: Optional[np.ndarray] = None
    canvas: Optional[Tuple[float, float, int, int]] = None
    output: Optional[Path] = None
    sources: Dict[Hashable, str] = field(default_factory=dict)
    levels: Optional[List[List[Hashable]]] = None
    timings: Dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def n_matches(self) -> int:
        """Number of matches used in the placement."""
        return int(sum(int(pm.kept.sum()) for pm in self.matches))

    def renderer(self, *, blend: float = 10, interpolation: str = "linear", threads: int = 0) -> Renderer:
        """A ``Renderer`` over all tiles with the solved transforms."""
        return Renderer(affine=self.transforms, tilesize=self.tile_sizes, blend=blend,
                        interpolation=interpolation, threads=threads)

    def write(self, output: str | os.PathLike, tiles: Optional[Mapping[Hashable, Any]] = None, *,
              overwrite: bool = False, blend: float = 10, interpolation: str = "linear", chunk: int = 1024,
              threads: int = 0, progress: bool = False, client: Any = None) -> Path:
        """Render the tiles with the solved transforms into ``output`` (e.g. after ``load``).

        Parameters
        ----------
        output : path
            ``.ome.zarr`` (chunked, with a pyramid) or ``.tif``; a stack result
            gives a (z, y, x) stack. Built under a temporary name and renamed
            when complete.
        tiles : dict, optional
            ``{tile: image, path or loader}``; default ``sources`` (the paths
            the tiles were read from).
        overwrite, blend, interpolation, chunk, threads, progress, client
            As in ``montage`` (with a client, one task per output chunk).

        Returns
        -------
        Path
            ``output``; ``canvas`` and ``output`` are set on this result.
        """
        sources = dict(self.sources if tiles is None else tiles)
        missing = [t for t in self.transforms if t not in sources]
        if missing:
            raise ValueError(f"{describe(missing[0])} has no image{' stored path' if tiles is None else ''}: "
                             f"pass tiles={{tile: image or path}} covering all {len(self.transforms)} tiles")
        keys = list(self.transforms)
        path = Path(output)
        if client is not None:
            from ._distributed import Cluster, check_client, check_output

            check_client(client)
            check_output(path, overwrite)
            cluster = Cluster(client, {t: sources[t] for t in keys}, as_int(threads, "threads", minimum=0))
            cluster.probe(keys)
            dtype = output_dtype({t: cluster.dtypes[t] for t in keys})
            r = self.renderer(blend=blend, interpolation=interpolation, threads=cluster.threads)
            self.canvas = r.rect
            cluster.render(self, r, dtype, output=path, overwrite=overwrite, chunk=chunk, progress=progress,
                           levels=self.levels)
            return path
        from ._tiles import read_raw

        store = TileStore({t: sources[t] for t in keys})
        store.dtypes = {t: read_raw(store.sources[t], t).dtype for t in keys}
        render_result(self, store, output=path, overwrite=overwrite, blend=blend, interpolation=interpolation,
                      threads=threads, progress=progress, chunk=chunk, levels=self.levels)
        return path

    def tile_outlines(self) -> Dict[Hashable, np.ndarray]:
        """``{tile: (4, 2)}`` model-space corners (x, y) of each tile's area."""
        out = {}
        for t, tf in self.transforms.items():
            w, h = self.tile_sizes[t]
            c = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
            out[t] = (np.asarray(tf)[:, :2] @ c.T).T + np.asarray(tf)[:, 2]
        return out

    def match_table(self) -> Dict[str, np.ndarray]:
        """Kept matches in model space: ``points`` (N, 2) (midpoint of the two
        transformed points), ``residuals`` (N, 2) ``T1(p1) - T2(p2)``, ``snr`` (N,)."""
        pts, res, snr = [], [], []
        for pm in self.matches:
            k = pm.kept
            if not k.any():
                continue
            a = Affine(self.transforms[pm.tile1]) * pm.p1[k].T
            b = Affine(self.transforms[pm.tile2]) * pm.p2[k].T
            pts.append(((a + b) / 2).T)
            res.append((a - b).T)
            snr.append(pm.snr[k])
        if not pts:
            return {"points": np.empty((0, 2)), "residuals": np.empty((0, 2)), "snr": np.empty(0)}
        return {"points": np.concatenate(pts), "residuals": np.concatenate(res), "snr": np.concatenate(snr)}

    # -- persistence ---------------------------------------------------------------

    def to_json(self) -> Dict[str, Any]:
        def key(t):
            return list(t) if isinstance(t, tuple) else t

        return {
            "format": FORMAT, "version": 1,
            "convention": "points are (x, y) = (column, row); transform maps tile pixel (x, y) to model space",
            "model": self.model,
            "tiles": [{"key": key(t), "size": list(self.tile_sizes[t]),
                       "transform": np.asarray(tf).tolist(), "source": self.sources.get(t)}
                      for t, tf in self.transforms.items()],
            "levels": None if self.levels is None else [[key(t) for t in lv] for lv in self.levels],
            "canvas": None if self.canvas is None else list(self.canvas),
            "residuals": {"rms": _num(self.residuals.rms), "max": _num(self.residuals.max),
                          "n_matches": self.n_matches},
            "matches": [pm.to_json() for pm in self.matches],
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> None:
        """Write transforms and matches as JSON (atomically: temporary name, then rename)."""
        p = Path(path)
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
        text = json.dumps(self.to_json(), indent=1)
        write_atomically(p, lambda tmp: Path(tmp).write_text(text))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MontageResult":
        """Read a file written by ``save`` (image data is not stored; render again)."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"alignment file not found: {p}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{p} is not a spectralign-fast alignment file: {exc}") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"{p} is not a spectralign-fast alignment file (no format {FORMAT!r})")
        if d.get("version") != 1:
            raise ValueError(f"{p} has version {d.get('version')}; this spectralign-fast reads version 1")

        def key(v):
            return tuple(v) if isinstance(v, list) else v

        transforms = {key(t["key"]): Affine(np.asarray(t["transform"], float)) for t in d["tiles"]}
        sizes = {key(t["key"]): tuple(int(v) for v in t["size"]) for t in d["tiles"]}
        sources = {key(t["key"]): t["source"] for t in d["tiles"] if t.get("source")}
        matches = [PairMatches.from_json(m) for m in d["matches"]]
        res = _residuals_of(transforms, matches)
        levels = None if d.get("levels") is None else [[key(t) for t in lv] for lv in d["levels"]]
        canvas = None if d.get("canvas") is None else tuple(d["canvas"])
        return cls(transforms, matches, res, d["model"], sizes, canvas=canvas, sources=sources, levels=levels)

    def __repr__(self) -> str:
        where = (f", image {'x'.join(map(str, self.image.shape[::-1]))} {self.image.dtype}" if self.image is not None
                 else f", written to {self.output}" if self.output is not None else "")
        return (f"<MontageResult {len(self.transforms)} tiles, {self.model}, {self.n_matches} matches, "
                f"residual RMS {self.residuals.rms:.3f} px{where}>")


class _Clock:
    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self._last = self._now()
        self.laps: Dict[str, float] = {}

    def lap(self, name: str) -> None:
        t = self._now()
        self.laps[name] = t - self._last
        self._last = t


def _num(v: float) -> Optional[float]:
    return None if not np.isfinite(v) else float(v)


def _residuals_of(transforms: Mapping[Hashable, Affine], matches: List[PairMatches]) -> PlacementResiduals:
    vec, kept = [], []
    per: Dict[Hashable, List[float]] = {t: [] for t in transforms}
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


def montage(tiles: Mapping[Tuple[int, int], Any], *, overlap: float = 0.1, model: str = "affine",
            coarse_size: Any = None, fine_size: int = 128, fine_step: float = 100, iters: int = 3,
            min_snr: float = 8.0, whiten: float = -0.65, peak_radius: int = 3, diagonals: bool = False,
            threads: int = 0, progress: bool = True,
            render: bool = True, output: str | os.PathLike | None = None, overwrite: bool = False,
            blend: float = 10, interpolation: str = "linear", chunk: int = 1024,
            client: Any = None) -> MontageResult:
    """Stitch a grid of overlapping tiles: match neighbours, place, render.

    Parameters
    ----------
    tiles : dict
        ``{(row, col): tile}``, where a tile is a 2-D array, an ``Image``, a path
        (TIFF, PNG, JPEG) or a callable returning an array. Row grows down,
        column to the right; missing positions (holes) are allowed, and tiles
        may differ in size. All tiles must share one dtype.
    overlap : float
        Guessed fraction of a tile shared with each neighbour (0.1 = 10%); a
        guess within 2x of the truth works.
    model : {"affine", "similarity", "rigid"}
        Placement model: an affine transform per tile (spectralign's), a
        similarity (rotation, uniform scale and translation; not in
        spectralign), or a translation. With overlaps a tenth of a tile wide
        an affine fit extrapolates each tile's shear and stretch from narrow
        strips: "similarity" is several times more accurate where the tiles
        only rotate and shift (0.07 px against 0.56 px at the tile corners,
        bench/RESULTS.md).
    coarse_size : int or (width, height), optional
        Window of the coarse match; default: the whole guessed overlap, capped at 1024.
    fine_size : int
        Window size (pixels) of the fine matches in each overlap.
    fine_step : float
        Spacing (pixels) of the grid of fine matches in each overlap.
    iters : int
        Refinement iterations per fine match.
    min_snr : float
        Matches whose correlation SNR is lower are dropped (as are matches
        inconsistent with the rest of their pair).
    whiten : float
        Exponent applied to the magnitude of the cross-power spectrum
        (spectralign's ``setprewhiten``): -0.65 (default) as SWiFT-IR, -1
        phase correlation, 0 plain cross-correlation.
    peak_radius : int
        Radius of the neighbourhood of the correlation peak whose centre of
        mass gives the subpixel shift. 3 (default) instead of the Matcher's
        5 (spectralign's): on noisy, narrow overlaps the smaller
        neighbourhood takes in less noise (bench/RESULTS.md).
    diagonals : bool
        Also match diagonal neighbours (helps grids with holes).
    threads : int
        Threads for matching and rendering; 0 (default) = all cores.
    progress : bool
        tqdm progress bars for matching and rendering.
    render : bool
        Render the montage (default). False: only match and place.
    output : path, optional
        Write the montage to ``.ome.zarr``/``.zarr`` (chunked, with a pyramid)
        or ``.tif``/``.tiff`` instead of returning it in memory. Nothing is
        left under this name if writing fails.
    overwrite : bool
        Replace an existing ``output``.
    blend : float
        Feathering radius in tile pixels (0: hard seams), as in ``Renderer``.
    interpolation : {"linear", "nearest", "cubic"}
        Sampling of the tiles, as in ``Renderer``.
    chunk : int
        Chunk size (pixels) of the written output.
    client : dask.distributed.Client, optional
        Run on a Dask cluster instead of this machine's threads (see
        ``_distributed``): matching and the affine second pass as tasks over
        batches of neighbour pairs, each opening its own tiles; placement
        here; rendering one task per output chunk written straight into the
        OME-Zarr store, then the pyramid. Tiles given as paths are read by the
        workers (they must see the same paths: shared storage); arrays are
        scattered to the cluster once; callables are pickled with the tasks.
        ``output`` must then be OME-Zarr (a TIFF is refused) or None (the
        chunks are rendered on the cluster and assembled here). ``threads``
        is per task, and 0 means 1: Dask's worker threads fill the cores.
        The result is bit for bit that of a local run when every process
        plans its FFTs with ``set_fft_planning("estimate")`` (the tasks take
        this process's setting); with the default ``"measure"`` it may differ
        in the last bits.

    Returns
    -------
    MontageResult
        ``transforms`` (tile pixel (x, y) to model space; tile at the lowest
        row, then column, is the identity), ``matches``, ``residuals``,
        ``image`` (when rendered in memory) and ``canvas``.
    """
    grid = check_grid(tiles)
    settings = check_settings(overlap=overlap, model=model, coarse_size=coarse_size, fine_size=fine_size,
                              fine_step=fine_step, iters=iters, min_snr=min_snr, threads=threads, whiten=whiten,
                              peak_radius=peak_radius)
    if client is not None:
        return _montage_on_cluster(client, grid, settings, model=model, diagonals=bool(diagonals),
                                   progress=progress, render=render, output=output, overwrite=overwrite,
                                   blend=blend, interpolation=interpolation, chunk=chunk)
    keys = sorted(grid)
    ncols = max(c for _, c in keys) - min(c for _, c in keys) + 1
    store = TileStore(grid, capacity=2 * ncols + 4)
    clock = _Clock()
    matches = match_grid(store, keys, settings, diagonals=bool(diagonals), progress=progress)
    store.probe_all()
    output_dtype(store.dtypes)  # mixed dtypes fail before any work on the output
    clock.lap("match")
    transforms, residuals = solve(keys, matches, model, keys[0], _grid_hint(settings))
    clock.lap("place")
    if model != "rigid" and len(keys) > 1:
        matches = rematch(store, matches, transforms, settings, progress=progress)
        clock.lap("match (pass 2)")
        transforms, residuals = solve(keys, matches, model, keys[0], _grid_hint(settings))
        clock.lap("place (pass 2)")
    result = MontageResult(transforms, matches, residuals, model, dict(store.sizes),
                           sources={t: s for t in keys if (s := store.source_name(t))})
    if render:
        render_result(result, store, output=output, overwrite=overwrite, blend=blend,
                      interpolation=interpolation, threads=settings.threads, progress=progress, chunk=chunk)
        clock.lap("render")
    result.timings = clock.laps
    return result


def _montage_on_cluster(client: Any, grid: Dict[Tuple[int, int], Any], settings: MatchSettings, *, model: str,
                        diagonals: bool, progress: bool, render: bool, output: Any, overwrite: bool, blend: float,
                        interpolation: str, chunk: int) -> MontageResult:
    """``montage`` with the per-pair and per-chunk work as Dask tasks (same steps, same results)."""
    from ._distributed import Cluster, check_client, check_output

    check_client(client)
    out = check_output(output, overwrite) if render else None
    keys = sorted(grid)
    cluster = Cluster(client, grid, settings.threads)
    clock = _Clock()
    matches = cluster.match(neighbour_pairs(keys, diagonals), settings, progress=progress)
    cluster.probe(keys)
    dtype = output_dtype({t: cluster.dtypes[t] for t in keys})
    clock.lap("match")
    transforms, residuals = solve(keys, matches, model, keys[0], _grid_hint(settings))
    clock.lap("place")
    if model != "rigid" and len(keys) > 1:
        matches = cluster.rematch([(pm, settings) for pm in matches], transforms, progress=progress)
        clock.lap("match (pass 2)")
        transforms, residuals = solve(keys, matches, model, keys[0], _grid_hint(settings))
        clock.lap("place (pass 2)")
    store = TileStore(grid)
    result = MontageResult(transforms, matches, residuals, model, {t: cluster.sizes[t] for t in keys},
                           sources={t: s for t in keys if (s := store.source_name(t))})
    if render:
        r = result.renderer(blend=blend, interpolation=interpolation, threads=cluster.threads)
        result.canvas = r.rect
        cluster.render(result, r, dtype, output=out, overwrite=overwrite, chunk=chunk, progress=progress,
                       levels=None)
        clock.lap("render")
    result.timings = clock.laps
    return result


def render_result(result: MontageResult, store: TileStore, *, output, overwrite: bool, blend: float,
                  interpolation: str, threads: int, progress: bool, chunk: int,
                  levels: Optional[List[List[Hashable]]] = None) -> None:
    """Render ``result`` in memory (``result.image``) or into ``output``."""
    r = result.renderer(blend=blend, interpolation=interpolation, threads=threads)
    result.canvas = r.rect
    dtype = output_dtype(store.dtypes)
    loaders = {t: store.loader(t) for t in result.transforms}
    if output is None:
        if levels is None:
            result.image = r.render_all(loaders)
        else:
            h, w = r.shape
            stack = np.empty((len(levels), h, w), dtype)
            for z, lv in enumerate(_progress(levels, total=len(levels), desc="rendering", enabled=progress)):
                stack[z] = r.render_region(r.rect, {t: loaders[t] for t in lv})
            result.image = stack
        return
    from ._write import write_rendered

    write_rendered(Path(output), r, loaders, dtype, levels=levels, overwrite=overwrite, chunk=chunk,
                   threads=threads, progress=progress)
    result.output = Path(output)


def overview(result: MontageResult, tiles: Mapping[Hashable, Any], *, max_side: int = 1600,
             factor: Optional[int] = None, threads: int = 0) -> Tuple[np.ndarray, float, Tuple[float, float]]:
    """A downsampled rendering of the whole montage (or of a stack's first level) for reports.

    Each tile is block-averaged by an integer factor k before rendering (no
    aliasing), so memory stays near the output size.

    Returns
    -------
    image : ndarray
        The downsampled montage, indexed (row, col).
    scale : float
        Model pixels per image pixel.
    origin : (x, y)
        The model point of image pixel (0, 0)'s centre.
    """
    from .output import downsample

    full = Renderer(affine={t: result.transforms[t] for t in tiles_of(result)},
                    tilesize=result.tile_sizes, threads=threads)
    k = factor if factor is not None else max(1, int(math.ceil(max(full.shape) / max_side)))
    tiles = {t: tiles[t] for t in tiles_of(result)}
    down = Affine.scaler(1.0 / k)
    block = Affine([[k, 0.0, (k - 1) / 2], [0.0, k, (k - 1) / 2]])
    tf, sizes = {}, {}
    for t in tiles:
        w, h = result.tile_sizes[t]
        tf[t] = down @ Affine(result.transforms[t]) @ block
        sizes[t] = (-(-w // k), -(-h // k))
    r = Renderer(affine=tf, tilesize=sizes, blend=max(1.0, 10.0 / k), threads=threads)
    img = r.render_all({t: (lambda src=tiles[t]: downsample(_as_array(src), k)) for t in tiles})
    return img, float(k), (r.origin[0] * k, r.origin[1] * k)


def tiles_of(result: MontageResult) -> List[Hashable]:
    return list(result.levels[0] if result.levels else result.transforms)


def _as_array(src: Any) -> np.ndarray:
    from ._tiles import read_raw, render_array

    return render_array(read_raw(src, "overview"))


def write_report(result: MontageResult, tiles: Mapping[Hashable, Any], path: str | os.PathLike, *,
                 title: Optional[str] = None, threads: int = 0) -> Path:
    """PNG report: tile outlines over a downsampled montage, residual vectors, SNR map."""
    from .report import montage_report

    img, scale, origin = overview(result, tiles, threads=threads)
    table = result.match_table()
    return montage_report(path, image=img, scale=scale, origin=origin, tile_outlines=result.tile_outlines(),
                          points=table["points"], residuals=table["residuals"], snr=table["snr"],
                          title=title or f"{len(result.transforms)} tiles, {result.model}, "
                                         f"{result.n_matches} matches, residual RMS {result.residuals.rms:.3f} px")

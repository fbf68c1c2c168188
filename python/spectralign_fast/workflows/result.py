"""``MontageResult``: transforms, matches and residuals of a montage or a stack, saved as JSON.

Coordinates: points are (x, y) = (column, row) in a tile's pixels; a tile's
transform maps its pixel (x, y) to model space.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .._types import TileKey, TileKeyT, tile_dict
from .._validate import as_int
from ..execute import executor_for
from ..io.atomic import write_atomically
from ..io.tiles import describe, output_dtype
from ..match.pairs import PairMatches
from ..place.placement import PlacementResiduals
from ..render.elastic import ElasticRenderer
from ..render.renderer import Renderer
from ..transforms.affine import Affine
from .common import check_render_options, residuals_of
from .elastic import ElasticResult

FORMAT = "spectralign-fast alignment"


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
        "place (pass 2)", "render"; stacks also "match between levels" and,
        elastic, "elastic", split further in ``elastic.timings``) by the
        call that made this result.
    elastic : ElasticResult or None
        ``align_stack(model="elastic")``: every section's mesh; rendering
        (here and in ``write``) shows each section through it.
    """

    transforms: Dict[TileKey, Affine]
    matches: List[PairMatches]
    residuals: PlacementResiduals
    model: str
    tile_sizes: Dict[TileKey, Tuple[int, int]]
    image: Optional[np.ndarray] = None
    canvas: Optional[Tuple[float, float, int, int]] = None
    output: Optional[Path] = None
    sources: Dict[TileKey, str] = field(default_factory=dict)
    levels: Optional[List[List[TileKey]]] = None
    timings: Dict[str, float] = field(default_factory=dict, repr=False)
    elastic: Optional[ElasticResult] = None

    @property
    def n_matches(self) -> int:
        """Number of matches used in the placement."""
        return int(sum(int(pm.kept.sum()) for pm in self.matches))

    def renderer(self, *, blend: float = 10, interpolation: str = "linear", threads: int = 0) -> Renderer:
        """A ``Renderer`` over all tiles with the solved transforms."""
        return Renderer(affine=self.transforms, tilesize=self.tile_sizes, blend=blend,
                        interpolation=interpolation, threads=threads)

    def write(self, output: str | os.PathLike, tiles: Optional[Mapping[TileKeyT, Any]] = None, *,
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
        check_render_options(blend=blend, interpolation=interpolation, chunk=chunk)
        sources = dict(self.sources) if tiles is None else tile_dict(tiles)
        missing = [t for t in self.transforms if t not in sources]
        if missing:
            raise ValueError(f"{describe(missing[0])} has no image{' stored path' if tiles is None else ''}: "
                             f"pass tiles={{tile: image or path}} covering all {len(self.transforms)} tiles")
        keys = list(self.transforms)
        ex = executor_for(client, {t: sources[t] for t in keys}, as_int(threads, "threads", minimum=0))
        path = ex.check_output(output, overwrite)
        ex.probe(keys)
        dtype = output_dtype({t: ex.dtypes[t] for t in keys})
        r = self.renderer(blend=blend, interpolation=interpolation, threads=ex.threads)
        self.canvas = r.rect
        if self.elastic is not None and self.levels is not None:
            er = ElasticRenderer(r, self.levels, self.transforms, self.elastic.displacement, self.elastic.spacing,
                                 self.elastic.origin)
            ex.render_elastic(er, dtype, output=path, overwrite=overwrite, chunk=chunk, progress=progress)
        else:
            ex.render(r, keys, dtype, output=path, overwrite=overwrite, chunk=chunk, progress=progress,
                      levels=self.levels)
        self.output = path
        return Path(output)

    def tile_outlines(self) -> Dict[TileKey, np.ndarray]:
        """``{tile: (4, 2)}`` model-space corners (x, y) of each tile's area."""
        out: Dict[TileKey, np.ndarray] = {}
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
        def key(t: TileKey) -> Any:
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
            "elastic": None if self.elastic is None else {
                "convention": "section z's affine-aligned point p lies at p + v_z(p) in the output (canvas "
                              "pixels); node (r, c) at (x, y) = origin + spacing * (c, r); displacement[z][r][c] "
                              "= v_z there, (x, y)",
                "spacing": self.elastic.spacing, "origin": list(self.elastic.origin),
                "displacement": np.asarray(self.elastic.displacement).tolist()},
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> None:
        """Write transforms and matches as JSON (atomically: temporary name, then rename).

        Tile sources given as relative paths are written relative to the JSON's
        folder, so ``load`` finds them wherever the JSON is read from.
        """
        p = Path(path)
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
        d = self.to_json()
        folder = p.absolute().parent
        for t in d["tiles"]:
            if t["source"] is not None and not Path(t["source"]).is_absolute():
                t["source"] = os.path.relpath(Path(t["source"]).absolute(), folder)
        text = json.dumps(d, indent=1)
        write_atomically(p, lambda tmp: Path(tmp).write_text(text))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MontageResult":
        """Read a file written by ``save`` (image data is not stored; render again).

        Relative tile ``source`` paths are taken relative to the JSON file's
        folder (``save`` writes them so). A file that is not such a JSON, or
        one with a missing or malformed field, raises ValueError naming the field.
        """
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
        folder = p.absolute().parent

        def field(name: str, parse: Any) -> Any:
            try:
                return parse()
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                why = f"missing {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
                raise ValueError(f"{p}: field {name} is missing or malformed ({why}); the file is damaged "
                                 f"or was not written by MontageResult.save") from None

        def key(v: Any) -> Hashable:
            return tuple(v) if isinstance(v, list) else v

        def tile_entry(k: int, t: Any) -> Tuple[Hashable, Affine, Tuple[int, int], Optional[str]]:
            tk = field(f"tiles[{k}].key", lambda: key(t["key"]))
            tf = field(f"tiles[{k}].transform", lambda: Affine(np.asarray(t["transform"], float)))
            size = field(f"tiles[{k}].size", lambda: _size(t["size"]))
            src = field(f"tiles[{k}].source", lambda: t.get("source"))
            if src is not None:
                if not isinstance(src, str):
                    raise ValueError(f"{p}: field tiles[{k}].source must be a path or null, got {src!r}")
                src = str(folder / src) if not Path(src).is_absolute() else src
            return tk, tf, size, src

        entries = [tile_entry(k, t) for k, t in enumerate(field("tiles", lambda: list(d["tiles"])))]
        transforms = {tk: tf for tk, tf, _, _ in entries}
        sizes = {tk: size for tk, _, size, _ in entries}
        sources = {tk: src for tk, _, _, src in entries if src}
        raw_matches = field("matches", lambda: list(d["matches"]))
        matches = [field(f"matches[{k}]", lambda m=m: PairMatches.from_json(m)) for k, m in enumerate(raw_matches)]
        for k, pm in enumerate(matches):
            for tile in (pm.tile1, pm.tile2):
                if tile not in transforms:
                    raise ValueError(f"{p}: field matches[{k}] names tile {tile!r}, which is not in tiles")
        res = residuals_of(transforms, matches)
        levels = field("levels", lambda: None if d.get("levels") is None
                       else [[key(t) for t in lv] for lv in d["levels"]])
        canvas = field("canvas", lambda: None if d.get("canvas") is None else _canvas(d["canvas"]))
        model = field("model", lambda: d["model"])
        if model not in ("affine", "similarity", "rigid"):
            raise ValueError(f"{p}: field model must be 'affine', 'similarity' or 'rigid', got {model!r}")
        elastic = field("elastic", lambda: _elastic(d.get("elastic"), levels))
        return cls(transforms, matches, res, model, sizes, canvas=canvas, sources=sources, levels=levels,
                   elastic=elastic)

    def __repr__(self) -> str:
        where = (f", image {'x'.join(map(str, self.image.shape[::-1]))} {self.image.dtype}" if self.image is not None
                 else f", written to {self.output}" if self.output is not None else "")
        return (f"<MontageResult {len(self.transforms)} tiles, {self.model}, {self.n_matches} matches, "
                f"residual RMS {self.residuals.rms:.3f} px{where}>")


def _elastic(v: Any, levels: Optional[List[List[Hashable]]]) -> Optional[ElasticResult]:
    """The saved meshes (flows and statistics are not saved: what rendering needs)."""
    if v is None:
        return None
    u = np.asarray(v["displacement"], dtype=np.float64)
    if levels is None or u.ndim != 4 or u.shape[0] != len(levels) or u.shape[3] != 2 or min(u.shape[1:3]) < 2:
        raise ValueError("the displacement must have shape (levels, ny >= 2, nx >= 2, 2)")
    if not np.isfinite(u).all():
        raise ValueError("the displacement has non-finite values")
    spacing = float(v["spacing"])
    origin = tuple(float(c) for c in v["origin"])
    if not spacing > 0 or len(origin) != 2 or not np.isfinite(origin).all():
        raise ValueError("spacing must be positive and origin two finite numbers")
    n = u.shape[0]
    return ElasticResult(spacing, (origin[0], origin[1]), u, [], np.full(n - 1, np.nan), np.full(n - 1, np.nan),
                         np.zeros(n, np.int64), float("nan"), float("nan"))


def _size(v: Any) -> Tuple[int, int]:
    w, h = (int(x) for x in v)
    if w < 1 or h < 1:
        raise ValueError(f"a tile size must be positive, got {list(v)}")
    return w, h


def _canvas(v: Any) -> Tuple[float, float, int, int]:
    x0, y0, w, h = v
    return float(x0), float(y0), int(w), int(h)


def _num(v: float) -> Optional[float]:
    return None if not np.isfinite(v) else float(v)

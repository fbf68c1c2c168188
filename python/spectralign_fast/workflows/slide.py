"""Montage of what a microscope writes: multi-position files, channels, imaging cycles, shading.

``montage_slide`` (``montage("slide.ome.tiff")``) reads each tile's stage
position, pixel size and channels from the file's metadata (``io.slides``),
corrects uneven illumination (``io.illumination``), stitches the first cycle
on the alignment channel (``stitch`` with positions: any layout), registers
the tiles of later cycles to it (``cycles``), and renders every channel of
every cycle into one multi-channel OME-Zarr / pyramidal OME-TIFF, or into
memory.

Coordinates: points are (x, y) = (column, row); transforms map tile pixels to
the first cycle's model space; images are (channel, row, col).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._types import TileKey, tile_dict
from ..io.atomic import write_atomically
from ..io.channels import write_channels
from ..io.illumination import Illumination, estimate_illumination, refine_illumination
from ..io.slides import Slide, SlidePlane, read_slide
from ..io.tileconfig import TileEntry, write_tile_configuration
from ..io.tiles import LRUCache
from ..match.layout import position_pairs
from ..place.regularize import MONTAGE_PRIOR
from ..render.overview import overview
from ..render.renderer import Renderer
from ..report import montage_report, slide_report
from ..transforms.affine import Affine
from .common import Clock, check_render_options, check_settings
from .cycles import CycleResiduals, register_cycle
from .result import MontageResult
from .stitch import stitch


@dataclass
class CycleResult:
    """One imaging cycle: its file, its tiles' transforms into the first cycle's model space.

    ``residuals`` is None for the first cycle (its own ``montage.residuals`` say
    how well its tiles fit each other).
    """

    slide: Slide
    montage: MontageResult
    residuals: Optional[CycleResiduals] = None


@dataclass
class SlideMontage:
    """The result of ``montage`` on microscope files.

    Attributes
    ----------
    cycles : list of CycleResult
        One per file, the first being the reference.
    channels : list of str
        Output channel names, cycle by cycle (a name repeated in a later cycle
        gets " (cycle k)").
    sources : list of (cycle, channel index)
        Where each output channel comes from.
    align_channel : list of int
        The channel each cycle was aligned on.
    canvas : (x0, y0, width, height)
        The output's rectangle in model space (the first cycle's montage).
    pixel_size : (y, x) or None
        Micrometres per pixel (the files').
    image : (C, H, W) array or None
        The montage when rendered in memory.
    output : Path or None
        The file written.
    timings : dict
        Seconds per stage.
    """

    cycles: List[CycleResult]
    channels: List[str]
    sources: List[Tuple[int, int]]
    align_channel: List[int]
    canvas: Tuple[float, float, int, int] = (0.0, 0.0, 0, 0)
    pixel_size: Optional[Tuple[float, float]] = None
    image: Optional[np.ndarray] = None
    output: Optional[Path] = None
    timings: Dict[str, float] = field(default_factory=dict)

    @property
    def illumination(self) -> List[Dict[int, Illumination]]:
        """Per cycle, ``{channel index: Illumination}`` applied to its tiles (empty: none)."""
        return [c.slide.illumination for c in self.cycles]

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> None:
        """Write every cycle's transforms, the channels and the residuals as JSON (atomically).

        Each cycle is a ``MontageResult`` JSON (``MontageResult.to_json``) with the file it came
        from; images are not stored (render again from the files).
        """
        p = Path(path)
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
        d = {"format": "spectralign-fast slide montage", "version": 1,
             "convention": "points are (x, y) = (column, row); transforms map tile pixels to the first "
                           "cycle's model space; pixel_size (y, x) in micrometres",
             "channels": self.channels, "sources": [list(s) for s in self.sources],
             "align_channel": self.align_channel, "canvas": list(self.canvas),
             "pixel_size": None if self.pixel_size is None else list(self.pixel_size),
             "cycles": [{"file": str(c.slide.path), "montage": c.montage.to_json(),
                         "illumination": {c.slide.channels[k]: v.method for k, v in c.slide.illumination.items()},
                         "residuals": None if c.residuals is None else {
                             "rms": _finite(c.residuals.rms), "max": _finite(c.residuals.max),
                             "n_matches": c.residuals.n_matches, "global_shift": list(c.residuals.global_shift),
                             "unmatched": [str(t) for t in c.residuals.unmatched]}}
                        for c in self.cycles],
             "timings": self.timings}
        text = json.dumps(d, indent=1)
        write_atomically(p, lambda tmp: Path(tmp).write_text(text))

    def __repr__(self) -> str:
        res = ", ".join(f"{r.rms:.3f}" for c in self.cycles if (r := c.residuals) is not None)
        return (f"SlideMontage({len(self.cycles)} cycle(s), {len(self.cycles[0].montage.transforms)} tiles, "
                f"channels {self.channels}, canvas {self.canvas[2]}x{self.canvas[3]}"
                + (f", cycle residual RMS {res} px" if res else "") + ")")


def _finite(v: float) -> Optional[float]:
    return float(v) if np.isfinite(v) else None


def montage_slide(sources: Any, *, align_channel: Any = 0, flatfield: Any = None, darkfield: Any = None,
                  flip_x: bool = False, flip_y: bool = False, grid: Optional[Tuple[int, int]] = None,
                  overlap: float = 0.1, model: str = "affine", regularize: float, prior: str = MONTAGE_PRIOR,
                  coarse_size: Any = None, fine_size: int = 128, fine_step: float = 100, iters: int = 3,
                  min_snr: float = 8.0, whiten: float = -0.65, peak_radius: int = 3, diagonals: bool = False,
                  threads: int = 0, progress: bool = True, render: bool = True, output: str | os.PathLike | None = None,
                  overwrite: bool = False, blend: float = 10, interpolation: str = "linear",
                  chunk: int = 1024) -> SlideMontage:
    """``montage`` of one multi-position file or of one file per imaging cycle (see ``montage``)."""
    paths = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not paths or not all(isinstance(p, (str, os.PathLike)) for p in paths):
        raise TypeError("give a microscope file (path) or a list of them, one per imaging cycle")
    check_render_options(blend=blend, interpolation=interpolation, chunk=chunk)
    settings = check_settings(overlap=overlap, model=model, coarse_size=coarse_size, fine_size=fine_size,
                              fine_step=fine_step, iters=iters, min_snr=min_snr, threads=threads, whiten=whiten,
                              peak_radius=peak_radius)
    out = _check_output(output, overwrite) if render and output is not None else None
    clock = Clock()
    slides = [read_slide(p, flip_x=flip_x, flip_y=flip_y, grid=grid, overlap=overlap) for p in paths]
    _check_cycles(slides)
    align = [s.channel_index(align_channel) for s in slides]
    clock.lap("read metadata")
    for s in slides:
        _attach_illumination(s, flatfield, darkfield)
    if flatfield is not None:
        clock.lap("illumination")
    first = slides[0]
    ref = stitch(first.tiles(align[0]), positions=first.positions, overlap=overlap, model=model,
                 regularize=regularize, prior=prior, coarse_size=coarse_size, fine_size=fine_size,
                 fine_step=fine_step, iters=iters, min_snr=min_snr, whiten=whiten, peak_radius=peak_radius,
                 diagonals=diagonals, threads=threads, progress=progress, render=False)
    clock.laps.update({f"cycle 1 {k}": v for k, v in ref.timings.items()})
    clock.lap("cycle 1")
    cycles = [CycleResult(first, ref)]
    for k, s in enumerate(slides[1:], start=2):
        offset = np.subtract(s.stage_origin, first.stage_origin)
        positions = {t: np.asarray(xy, float) + offset for t, xy in s.positions.items()}
        tfs, res = register_cycle(ref, tile_dict(first.tiles(align[0])), tile_dict(s.tiles(align[k - 1])),
                                  tile_dict(positions),
                                  settings=settings, model=model, progress=progress)
        cycles.append(CycleResult(s, MontageResult(tfs, [], ref.residuals, model,
                                                   {t: (s.tile_shape[1], s.tile_shape[0]) for t in tfs}), res))
        clock.lap(f"cycle {k}")
    if isinstance(flatfield, str):
        for c in cycles:
            _refine_from_overlaps(c)
        clock.lap("illumination (overlaps)")
    names, where = _channel_names(slides)
    result = SlideMontage(cycles, names, where, align, pixel_size=first.pixel_size)
    if render:
        renderers = [c.montage.renderer(blend=blend, interpolation=interpolation, threads=threads) for c in cycles]
        x0, y0, w, h = renderers[0].rect
        result.canvas = (x0, y0, w, h)
        region = _region_fn(result, renderers)
        if out is None:
            result.image = np.stack([region(c, 0, 0, h, w) for c in range(len(names))])
        else:
            result.output = _write(out, (h, w), first.dtype, names, region, first.pixel_size, chunk=chunk,
                                   overwrite=overwrite, progress=progress)
        clock.lap("render")
    result.timings = clock.laps
    return result


def _check_output(output: Any, overwrite: bool) -> Path:
    p = Path(output)
    name = p.name.lower()
    if not name.endswith((".ome.zarr", ".zarr", ".ome.tif", ".ome.tiff")):
        raise ValueError(f"a multi-channel montage is written as OME-Zarr (.ome.zarr) or pyramidal OME-TIFF "
                         f"(.ome.tif/.ome.tiff), got {p.name!r}")
    if p.exists() and not overwrite:
        raise ValueError(f"{p} exists; pass overwrite=True (--overwrite) to replace it")
    if not p.parent.exists():
        raise ValueError(f"the folder {p.parent} does not exist")
    return p


def _check_cycles(slides: Sequence[Slide]) -> None:
    first = slides[0]
    for k, s in enumerate(slides[1:], start=2):
        if (s.pixel_size is None) != (first.pixel_size is None) or (
                s.pixel_size is not None and first.pixel_size is not None
                and not np.allclose(s.pixel_size, first.pixel_size, rtol=1e-4)):
            raise ValueError(f"cycle {k} ({s.path.name}) has pixel size {s.pixel_size} µm, cycle 1 "
                             f"{first.pixel_size} µm; cycles must be imaged at one magnification")
        if s.dtype != first.dtype:
            raise ValueError(f"cycle {k} ({s.path.name}) has {s.dtype} pixels, cycle 1 {first.dtype}")
        if s.from_grid or first.from_grid:
            raise ValueError("imaging cycles are registered from their stage positions; a file without "
                             "positions (laid out with grid=) cannot be one of several cycles")


def _attach_illumination(slide: Slide, flatfield: Any, darkfield: Any) -> None:
    if flatfield is None:
        if darkfield is not None:
            raise ValueError("darkfield is subtracted together with a flat field: give flatfield too "
                             "('auto' or an array)")
        return
    for c in range(len(slide.channels)):
        if isinstance(flatfield, str):
            if flatfield != "auto":
                raise ValueError(f"flatfield must be 'auto', an array or None, got {flatfield!r}")
            loaders = list(slide.tiles(c).values())
            slide.illumination[c] = estimate_illumination(loaders, darkfield=darkfield)
        elif isinstance(flatfield, Illumination):
            slide.illumination[c] = flatfield
        else:
            arr = np.asarray(flatfield, dtype=np.float64)
            plane = arr[c] if arr.ndim == 3 else arr
            if arr.ndim == 3 and arr.shape[0] != len(slide.channels):
                raise ValueError(f"a (channels, rows, cols) flatfield needs {len(slide.channels)} channels, "
                                 f"got {arr.shape[0]}")
            slide.illumination[c] = Illumination.given(plane, darkfield, shape=slide.tile_shape)


def _refine_from_overlaps(cycle: CycleResult) -> None:
    """Second flat-field estimate per channel from the placed tiles' overlaps (io.refine_illumination)."""
    tfs = cycle.montage.transforms
    sizes = cycle.montage.tile_sizes
    nominal = {t: np.asarray(tf, float)[:, 2] for t, tf in tfs.items()}
    pairs = [(a, b) for a, b, _, _ in position_pairs(nominal, sizes, diagonals=False)]
    for c, illum in list(cycle.slide.illumination.items()):
        raw = {t: SlidePlane(str(cycle.slide.path), int(t), c, cycle.slide.reader,  # type: ignore[call-overload]
                             page=cycle.slide.page(int(t), c))  # type: ignore[call-overload]
               for t in tfs}
        cycle.slide.illumination[c] = refine_illumination(illum, raw, tfs, pairs)


def _channel_names(slides: Sequence[Slide]) -> Tuple[List[str], List[Tuple[int, int]]]:
    names: List[str] = []
    where: List[Tuple[int, int]] = []
    for k, s in enumerate(slides):
        for c, n in enumerate(s.channels):
            names.append(n if n not in names else f"{n} (cycle {k + 1})")
            where.append((k, c))
    return names, where


def _region_fn(result: SlideMontage, renderers: List[Renderer]) -> Any:
    """``region(channel, y0, x0, h, w)`` of the output canvas (rows, cols), tiles read through an LRU cache."""
    x0, y0 = result.canvas[0], result.canvas[1]
    cache = LRUCache(32)
    loaders: Dict[Tuple[int, int], Dict[TileKey, Any]] = {}
    for (k, c) in result.sources:
        raw = result.cycles[k].slide.tiles(c)
        loaders[(k, c)] = {t: (lambda key=(k, c, t), f=f: cache.get(key, f)) for t, f in raw.items()}

    def region(ch: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        k, c = result.sources[ch]
        img = renderers[k].render_region((x0 + x, y0 + y, w, h), loaders[(k, c)])
        dtype = result.cycles[k].slide.dtype
        return img if img.dtype == dtype else img.astype(dtype)  # an empty region comes back as float32

    return region


def _write(path: Path, shape: Tuple[int, int], dtype: np.dtype, names: List[str], region: Any,
           pixel_size: Optional[Tuple[float, float]], *, chunk: int, overwrite: bool, progress: bool) -> Path:
    return write_channels(path, shape, dtype, names, region, pixel_size=pixel_size, unit="micrometer",
                          chunk=chunk, overwrite=overwrite, progress=progress)


def write_registered_configuration(result: MontageResult, path: str | os.PathLike, *,
                                   overwrite: bool = False) -> Path:
    """Fiji's ``TileConfiguration.registered.txt`` of a montage: each tile's placed (x, y).

    Fiji places tiles by translation only: the translation of each tile's transform
    (where its pixel (0, 0) lands) is written; rotation or scale in the transforms is not
    representable there. Tile names are the tiles' source files relative to the file's
    folder when known (else the tile ids); ``(name, series)`` ids keep their series.
    """
    folder = Path(path).absolute().parent
    entries = []
    for t, tf in result.transforms.items():
        m = np.asarray(tf, float)
        named_series = isinstance(t, tuple) and len(t) == 2 and isinstance(t[0], str)
        series = int(t[1]) if isinstance(t, tuple) and named_series else None
        src = result.sources.get(t)
        name = (os.path.relpath(Path(src).absolute(), folder) if src else
                str(t[0]) if isinstance(t, tuple) and named_series else str(t))
        entries.append(TileEntry(name, series, (float(m[0, 2]), float(m[1, 2]))))
    return write_tile_configuration(path, entries, dim=2, overwrite=overwrite)


def write_slide_report(result: SlideMontage, path: str | os.PathLike, *, threads: int = 0) -> Tuple[Path, Path]:
    """Two PNGs: the first cycle's montage report (``montage_report``: tile outlines, residuals,
    SNR), and ``<name>-illumination.png``: every flat field applied and each later cycle's
    residuals against the first. Returns both paths."""
    first = result.cycles[0]
    p = Path(path)
    keys = list(first.montage.transforms)
    tiles = first.slide.tiles(result.align_channel[0])
    img, scale, origin = overview(first.montage.transforms, first.montage.tile_sizes, tiles, keys=keys,
                                  threads=threads)
    table = first.montage.match_table()
    a = montage_report(p, image=img, scale=scale, origin=origin, tile_outlines=first.montage.tile_outlines(),
                       points=table["points"], residuals=table["residuals"], snr=table["snr"],
                       title=f"{len(keys)} tiles from {first.slide.path.name}, {first.montage.model}, residual RMS "
                             f"{first.montage.residuals.rms:.3f} px")
    flats = {f"c{k + 1} {c.slide.channels[ch]}": il.flatfield
             for k, c in enumerate(result.cycles) for ch, il in c.slide.illumination.items()}
    cycles = [(f"cycle {k + 1}", c.residuals.rms, c.residuals.max)
              for k, c in enumerate(result.cycles) if c.residuals is not None]
    b = slide_report(p.with_name(p.stem + "-illumination.png"), flatfields=flats, cycles=cycles,
                     title=f"{len(result.cycles)} cycle(s), channels {', '.join(result.channels)}")
    return a, b


def cycle_transforms(result: SlideMontage) -> List[Dict[TileKey, Affine]]:
    """Per cycle, ``{tile: transform}`` into the first cycle's model space."""
    return [dict(c.montage.transforms) for c in result.cycles]

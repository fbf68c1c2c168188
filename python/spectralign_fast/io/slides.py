"""Multi-position microscope files: every tile's pixels, stage position, pixel size and channels.

A *slide* is what a scanning microscope writes: one file holding many tiles
(OME "images" / bioio "scenes"), each with the stage position where it was
taken, a physical pixel size and one or more named channels. ``read_slide``
turns it into what ``montage`` needs: ``{tile index: loader}`` per channel
and each tile's nominal position in pixels.

Conventions: positions are (x, y) = (column, row) of a tile's pixel (0, 0)
in a common pixel frame whose x grows with the stage's X (to the right) and
y with the stage's Y (down), unless ``flip_x``/``flip_y`` say that the
stage axes run the other way (ASHLAR's ``--flip-x``/``--flip-y``). Pixel
sizes are (y, x) in micrometres. Tile arrays are (row, col).

OME-TIFF is read with tifffile (no extra dependency); other formats (ND2,
CZI, LIF, OME-Zarr, ...) through ``bioio`` and its format plugins, which are
optional: ``pip install spectralign-fast[slides]`` (no Java).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tifffile

from .tileconfig import read_tile_configuration

# Lengths in OME's units, in micrometres. "reference frame" is OME's unitless
# default: taken as micrometres, the unit every writer we know uses for it.
_UM = {"m": 1e6, "cm": 1e4, "mm": 1e3, "µm": 1.0, "um": 1.0, "micron": 1.0, "micrometer": 1.0,
       "nm": 1e-3, "nanometer": 1e-3, "pm": 1e-6, "Å": 1e-4, "reference frame": 1.0, "pixel": float("nan")}
_TIFF_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.tf2", ".ome.tf8", ".ome.btf")


def _in_um(value: Any, unit: Any, what: str) -> float:
    u = str(getattr(unit, "value", unit) or "µm").strip()
    scale = _UM.get(u, _UM.get(u.lower()))
    if scale is None or math.isnan(scale):
        raise ValueError(f"{what} is given in {u!r}, which is not a length this reader knows "
                         f"(m, mm, µm, nm)")
    return float(value) * scale


@dataclass(frozen=True)
class SlidePlane:
    """Loader of one channel of one tile of a slide (picklable: Dask workers open the file).

    Calling it returns the (row, col) array, corrected by ``illumination``
    when one is attached (see ``io.illumination``).
    """

    path: str
    series: int
    channel: int
    reader: str = "tifffile"
    illumination: Any = None
    page: int = -1

    def __call__(self) -> np.ndarray:
        if self.reader == "tifffile" and self.page >= 0:
            # The page alone: parsing the OME-XML of every series for each tile would make
            # reading N tiles cost N^2.
            with tifffile.TiffFile(self.path, is_ome=False) as tif:
                arr = tif.pages[self.page].asarray()
        elif self.reader == "tifffile":
            with tifffile.TiffFile(self.path) as tif:
                s = tif.series[self.series]
                if "C" in s.axes:
                    arr = s.asarray(key=self.channel) if len(s.pages) > 1 else np.take(
                        s.asarray(), self.channel, axis=s.axes.index("C"))
                else:
                    arr = s.asarray()
        else:
            img = _bioimage(self.path)
            img.set_scene(self.series)
            arr = _quiet(lambda: img.get_image_data("YX", C=self.channel, T=0, Z=0))
        arr = np.asarray(arr)
        if arr.ndim != 2:
            raise ValueError(f"{self.path}: tile {self.series}, channel {self.channel} has shape {arr.shape}; "
                             f"only 2-D tiles (one plane per channel) can be stitched")
        return arr if self.illumination is None else self.illumination.correct(arr)

    def with_illumination(self, illumination: Any) -> "SlidePlane":
        return SlidePlane(self.path, self.series, self.channel, self.reader, illumination, self.page)


@dataclass
class Slide:
    """The tiles of a multi-position file, with positions and channels.

    Attributes
    ----------
    path : Path
        The file read.
    channels : list of str
        Channel names, in file order (``"C0"``, ``"C1"``, ... where the file names none).
    positions : dict
        ``{tile index: (x, y)}``: the tile's pixel (0, 0) in pixels of the common
        frame, from the stage position divided by the pixel size (smallest x and y 0).
    tile_shape : (rows, cols)
        Shape of every tile.
    dtype : numpy.dtype
        Pixel type of the tiles.
    pixel_size : (y, x) or None
        Physical pixel size in micrometres (None when the file states none).
    from_grid : bool
        True when the positions were laid out from ``grid=`` because the file has none.
    stage_origin : (x, y)
        The stage position (in pixels, after any flips) of the frame's (0, 0): files
        of the same slide (imaging cycles) share stage coordinates, so
        ``positions[t] + stage_origin`` compares tiles across files.
    """

    path: Path
    channels: List[str]
    positions: Dict[int, Tuple[float, float]]
    tile_shape: Tuple[int, int]
    dtype: np.dtype
    pixel_size: Optional[Tuple[float, float]]
    reader: str = "tifffile"
    from_grid: bool = False
    stage_origin: Tuple[float, float] = (0.0, 0.0)
    illumination: Dict[int, Any] = field(default_factory=dict)
    pages: Dict[int, List[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.positions)

    def channel_index(self, channel: Any) -> int:
        """Index of a channel given by name or index (ValueError naming the channels otherwise)."""
        if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
            if not 0 <= int(channel) < len(self.channels):
                raise ValueError(f"channel {int(channel)} does not exist in {self.path.name}: it has "
                                 f"{len(self.channels)} channel(s) {self.channels}")
            return int(channel)
        if isinstance(channel, str):
            if channel not in self.channels:
                raise ValueError(f"{self.path.name} has no channel named {channel!r}; its channels are "
                                 f"{self.channels} (give a name or a 0-based index)")
            return self.channels.index(channel)
        raise TypeError(f"a channel is a name (str) or a 0-based index (int), got {channel!r}")

    def tiles(self, channel: Any = 0) -> Dict[int, Callable[[], np.ndarray]]:
        """``{tile index: loader}`` of one channel (name or index), illumination-corrected if set."""
        c = self.channel_index(channel)
        illum = self.illumination.get(c)
        return {t: SlidePlane(str(self.path), t, c, self.reader, illum, self.page(t, c)) for t in sorted(self.positions)}

    def page(self, tile: int, channel: int) -> int:
        """The TIFF page holding a tile's channel (-1: read through the series or bioio)."""
        pages = self.pages.get(tile, [])
        return pages[channel] if channel < len(pages) else -1


def _quiet(fn: Callable[[], Any]) -> Any:
    """bioio's plugins warn about their own dependencies' deprecations; not the user's concern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return fn()


def _bioimage(path: str) -> Any:
    try:
        from bioio import BioImage  # optional dependency: the [slides] extra
    except ImportError:
        raise ValueError(f"reading {Path(path).name} needs bioio and its format plugin: "
                         f"pip install 'spectralign-fast[slides]' (OME-TIFF is read without it)") from None
    try:
        return _quiet(lambda: BioImage(path))
    except Exception as exc:  # bioio raises its own exception types per plugin
        raise ValueError(f"bioio cannot read {path}: {exc}. Install the plugin for this format "
                         f"(bioio-nd2, bioio-czi, bioio-lif, bioio-ome-zarr, ...)") from None


def read_slide(path: str | os.PathLike, *, flip_x: bool = False, flip_y: bool = False,
               grid: Optional[Tuple[int, int]] = None, overlap: float = 0.1,
               reader: str = "auto") -> Slide:
    """Read a multi-position microscope file: tiles, stage positions, pixel size, channels.

    Parameters
    ----------
    path : str or PathLike
        An OME-TIFF (read with tifffile), or any file a bioio plugin reads
        (ND2, CZI, LIF, OME-Zarr, ...; ``pip install spectralign-fast[slides]``).
    flip_x, flip_y : bool
        The stage's X (Y) axis runs against the image columns (rows): tiles
        further along it lie further left (up). Microscopes differ; a montage
        whose tiles do not overlap where they should needs one of these.
    grid : (rows, cols), optional
        Only for files without stage positions: lay the tiles out row by row
        (raster order) on this grid, overlapping by ``overlap``. A file that
        has positions ignores nothing: giving ``grid`` for it is an error.
    overlap : float
        With ``grid``: the fraction of a tile shared with each neighbour.
    reader : {"auto", "tifffile", "bioio"}
        "auto": tifffile for OME-TIFF, bioio otherwise.

    Returns
    -------
    Slide
        Loaders per channel, positions (x, y) in pixels, pixel size (y, x) in µm.

    Raises
    ------
    ValueError
        No such file; tiles of different shapes, dtypes, channels or pixel
        sizes; a file without positions and no ``grid``; positions that put
        every tile at one place.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p} does not exist")
    if reader not in ("auto", "tifffile", "bioio"):
        raise ValueError(f"reader must be 'auto', 'tifffile' or 'bioio', got {reader!r}")
    use = reader if reader != "auto" else ("tifffile" if p.name.lower().endswith(_TIFF_SUFFIXES) else "bioio")
    tiles = _tifffile_tiles(p) if use == "tifffile" else _bioio_tiles(p)
    slide = _assemble(p, tiles, use, flip_x=bool(flip_x), flip_y=bool(flip_y), grid=grid, overlap=overlap)
    slide.pages = {k: m.pages for k, m in enumerate(tiles) if m.pages}
    return slide


@dataclass
class _TileMeta:
    shape: Tuple[int, int]
    dtype: np.dtype
    channels: List[str]
    pixel_size: Optional[Tuple[float, float]]
    position_um: Optional[Tuple[float, float]]
    pages: List[int] = field(default_factory=list)


def _tifffile_tiles(p: Path) -> List[_TileMeta]:
    with tifffile.TiffFile(p) as tif:
        if not tif.is_ome or not tif.ome_metadata:
            raise ValueError(f"{p.name} is not an OME-TIFF (it has no OME-XML metadata), so it holds no "
                             f"stage positions; give one file per tile with a name pattern, or a "
                             f"TileConfiguration.txt")
        ome = tifffile.xml2dict(tif.ome_metadata).get("OME", {})
        images = ome.get("Image", [])
        images = images if isinstance(images, list) else [images]
        series = tif.series
        if len(images) != len(series):
            raise ValueError(f"{p.name}: the OME-XML describes {len(images)} images but the file has "
                             f"{len(series)} series; it may be one part of a multi-file OME-TIFF set")
        out = []
        for k, (img, s) in enumerate(zip(images, series)):
            axes, shape = s.axes, s.shape
            if "Y" not in axes or "X" not in axes or any(a not in "CYX" and n > 1 for a, n in zip(axes, shape)):
                raise ValueError(f"{p.name}: tile {k} has axes {axes} with shape {shape}; only 2-D "
                                 f"tiles with channels (CYX) can be stitched (project or pick planes first)")
            meta = _TileMeta((int(shape[axes.index("Y")]), int(shape[axes.index("X")])),
                             np.dtype(s.dtype), *_ome_pixels(img.get("Pixels", {}), k, p.name))
            # One page per channel (planar, uncompressed or not): read pages directly later.
            if len(s.pages) == len(meta.channels) and all(pg is not None and pg.shape == meta.shape
                                                           for pg in s.pages):
                meta.pages = [int(pg.index) for pg in s.pages if pg is not None]
            out.append(meta)
    return out


def _ome_pixels(px: Dict[str, Any], k: int,
                name: str) -> Tuple[List[str], Optional[Tuple[float, float]], Optional[Tuple[float, float]]]:
    chans = px.get("Channel", [])
    chans = chans if isinstance(chans, list) else [chans]
    size_c = int(px.get("SizeC", max(1, len(chans))))
    names = [str(c.get("Name", f"C{i}")) if isinstance(c, dict) else f"C{i}" for i, c in enumerate(chans)]
    names = (names + [f"C{i}" for i in range(len(names), size_c)])[:size_c]
    size = None
    if "PhysicalSizeX" in px and "PhysicalSizeY" in px:
        size = (_in_um(px["PhysicalSizeY"], px.get("PhysicalSizeYUnit"), f"{name} tile {k} pixel size"),
                _in_um(px["PhysicalSizeX"], px.get("PhysicalSizeXUnit"), f"{name} tile {k} pixel size"))
    planes = px.get("Plane", [])
    planes = planes if isinstance(planes, list) else [planes]
    pos = None
    for pl in planes:
        if isinstance(pl, dict) and "PositionX" in pl and "PositionY" in pl:
            pos = (_in_um(pl["PositionX"], pl.get("PositionXUnit"), f"{name} tile {k} stage position"),
                   _in_um(pl["PositionY"], pl.get("PositionYUnit"), f"{name} tile {k} stage position"))
            break
    return names, size, pos


def _bioio_tiles(p: Path) -> List[_TileMeta]:
    img = _bioimage(str(p))
    ome = _quiet(lambda: getattr(img, "ome_metadata", None))
    out = []
    for k, _scene in enumerate(img.scenes):
        _quiet(lambda: img.set_scene(k))
        dims = img.dims
        if getattr(dims, "Z", 1) > 1 or getattr(dims, "T", 1) > 1:
            raise ValueError(f"{p.name}: scene {k} has {dims}; only 2-D tiles with channels can be stitched")
        names = [str(c) for c in (img.channel_names or [])] or [f"C{i}" for i in range(dims.C)]
        pps = img.physical_pixel_sizes
        size = (float(pps.Y), float(pps.X)) if pps.Y and pps.X else None
        pos = None
        if ome is not None and k < len(ome.images) and ome.images[k].pixels.planes:
            pl = ome.images[k].pixels.planes[0]
            if pl.position_x is not None and pl.position_y is not None:
                pos = (_in_um(pl.position_x, pl.position_x_unit, f"{p.name} scene {k} stage position"),
                       _in_um(pl.position_y, pl.position_y_unit, f"{p.name} scene {k} stage position"))
        out.append(_TileMeta((int(dims.Y), int(dims.X)), np.dtype(img.dtype), names, size, pos))
    return out


def _assemble(p: Path, tiles: Sequence[_TileMeta], reader: str, *, flip_x: bool, flip_y: bool,
              grid: Optional[Tuple[int, int]], overlap: float) -> Slide:
    if not tiles:
        raise ValueError(f"{p.name} holds no images")
    first = tiles[0]
    for k, t in enumerate(tiles):
        if t.shape != first.shape or t.dtype != first.dtype:
            raise ValueError(f"{p.name}: tile {k} is {t.shape[0]} x {t.shape[1]} {t.dtype}, tile 0 "
                             f"{first.shape[0]} x {first.shape[1]} {first.dtype}; a slide's tiles must share "
                             f"one shape and pixel type")
        if t.channels != first.channels:
            raise ValueError(f"{p.name}: tile {k} has channels {t.channels}, tile 0 {first.channels}")
        if (t.pixel_size is None) != (first.pixel_size is None) or (
                t.pixel_size is not None and first.pixel_size is not None
                and not np.allclose(t.pixel_size, first.pixel_size, rtol=1e-6)):
            raise ValueError(f"{p.name}: tile {k} has pixel size {t.pixel_size} µm, tile 0 {first.pixel_size} µm; "
                             f"tiles of different pixel sizes (objectives) cannot be stitched together")
    have = [t.position_um is not None for t in tiles]
    if any(have) and not all(have):
        raise ValueError(f"{p.name}: tiles {[k for k, h in enumerate(have) if not h][:8]} have no stage "
                         f"position while the others do")
    if not all(have) or len(tiles) == 1:
        if grid is None:
            if len(tiles) == 1:
                return Slide(p, list(first.channels), {0: (0.0, 0.0)}, first.shape, first.dtype,
                             first.pixel_size, reader)
            raise ValueError(f"{p.name} has no stage positions for its {len(tiles)} tiles; give the layout "
                             f"with grid=(rows, cols) (--grid RxC on the command line) to place them row by "
                             f"row, or a TileConfiguration.txt")
        return Slide(p, list(first.channels), grid_positions(len(tiles), grid, first.shape, overlap),
                     first.shape, first.dtype, first.pixel_size, reader, from_grid=True)
    if grid is not None:
        raise ValueError(f"{p.name} has stage positions; grid= is only for files without them")
    if first.pixel_size is None:
        raise ValueError(f"{p.name} has stage positions but no physical pixel size, so positions cannot be "
                         f"converted to pixels")
    sy, sx = first.pixel_size
    xy = np.array([t.position_um for t in tiles], float)
    xy = xy / np.array([sx, sy]) * np.array([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0])
    origin = xy.min(axis=0)
    xy -= origin
    if len(xy) > 1 and np.ptp(xy, axis=0).max() < 1.0:
        raise ValueError(f"{p.name}: every tile has the same stage position, so the positions cannot "
                         f"lay the tiles out; re-export the file with the stage positions")
    return Slide(p, list(first.channels), {k: (float(x), float(y)) for k, (x, y) in enumerate(xy)},
                 first.shape, first.dtype, first.pixel_size, reader,
                 stage_origin=(float(origin[0]), float(origin[1])))


def grid_positions(n: int, grid: Any, shape: Tuple[int, int], overlap: float) -> Dict[int, Tuple[float, float]]:
    """Positions (x, y) of ``n`` tiles of ``shape`` (rows, cols) laid out row by row on ``grid`` (rows, cols)."""
    try:
        rows, cols = (int(v) for v in grid)
    except (TypeError, ValueError):
        raise ValueError(f"grid must be (rows, cols), got {grid!r}") from None
    if rows < 1 or cols < 1 or rows * cols < n:
        raise ValueError(f"a {rows} x {cols} grid has room for {max(rows, 0) * max(cols, 0)} tiles, "
                         f"the file has {n}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be a fraction from 0 to 1, got {overlap}")
    h, w = shape
    return {k: ((k % cols) * w * (1 - overlap), (k // cols) * h * (1 - overlap)) for k in range(n)}


def configuration_tiles(path: str | os.PathLike) -> Tuple[Dict[Any, Any], Dict[Any, Tuple[float, float]]]:
    """``(tiles, positions)`` of a Fiji TileConfiguration file: ``{name: file}`` (or
    ``{(name, series): loader}`` for multi-series files) and each tile's (x, y) in pixels."""
    cfg = read_tile_configuration(path)
    if cfg.dim != 2:
        raise ValueError(f"{Path(path).name} is a {cfg.dim}-D configuration; montage stitches 2-D tiles")
    base = cfg.folder if cfg.folder is not None else Path(".")
    tiles: Dict[Any, Any] = {}
    positions: Dict[Any, Tuple[float, float]] = {}
    for e in cfg.entries:
        file = e.path(base)
        if not file.exists():
            raise ValueError(f"{Path(path).name} names {e.name}, which does not exist in {base}")
        key: Any = e.name if e.series is None else (e.name, e.series)
        tiles[key] = str(file) if e.series is None else SlidePlane(
            str(file), e.series, 0, "tifffile" if file.name.lower().endswith((".tif", ".tiff")) else "bioio")
        positions[key] = (float(e.position[0]), float(e.position[1]))
    return tiles, positions

"""Multi-channel images out and back: OME-Zarr and pyramidal OME-TIFF with channel names and
physical pixel sizes, written block by block so a whole channel is never in memory.

Conventions: arrays are indexed (channel, row, col) = (c, y, x); blocks are
``(y0, x0, h, w)`` in output pixels; pixel sizes are ``(y, x)`` pairs in ``unit``
(an OME-NGFF unit name such as ``"micrometer"``). Every output is built under a temporary
name and renamed when complete (``io.atomic``, ``io.stackstore``).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._validate import as_int
from .atomic import check_output_path, write_atomically
from .formats import TIFF_SUFFIXES, ZARR_SUFFIXES, as_dtype, as_shape, matching_suffix
from .omezarr import _as_pixel_size, check_output_size
from .pyramid import auto_levels, downsample, level_shapes
from .stackstore import build_stack_levels, create_stack_store, stack_array, write_zarr_stack
from .tiff import BAND_BYTES, _as_tile, band_tiles, tiff_needs_bigtiff
import tifffile
import zarr
from tqdm.auto import tqdm

ChannelRegionFn = Callable[[int, int, int, int, int], Any]
OME_TIFF_SUFFIXES = tuple(s for s in TIFF_SUFFIXES if s.startswith(".ome"))

# OME-NGFF unit names (what the OME-Zarr metadata holds) and the OME-XML symbols for them.
UNITS = {"angstrom": "Å", "picometer": "pm", "nanometer": "nm", "micrometer": "µm",
         "millimeter": "mm", "centimeter": "cm", "meter": "m"}
_UNIT_NAMES = {**{v: k for k, v in UNITS.items()}, "um": "micrometer", "\u03bcm": "micrometer"}
# Most bytes of one band that region_fn is asked for (OME-TIFF), read when writing.
band_bytes = BAND_BYTES
# Display colours (RRGGBB) given to channels in order: a nuclear stain first, as usual.
COLORS = ("0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF")


@dataclass
class ChannelImage:
    """A multi-channel image read back by ``read_channels``.

    Attributes
    ----------
    data : (c, h, w) ndarray
        The pixels, indexed (channel, row, col).
    channels : list of str
        Channel names, one per plane of ``data``.
    pixel_size : (y, x) or None
        Physical size of one pixel of ``data`` (at the level read) in ``unit``; None when the
        file states none.
    unit : str or None
        OME-NGFF unit name (``"micrometer"``, ...), or the file's own symbol when it is not one.
    levels : int
        Number of pyramid levels in the file.
    """

    data: np.ndarray
    channels: List[str]
    pixel_size: Optional[Tuple[float, float]] = None
    unit: Optional[str] = None
    levels: int = 1


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".tif", ".tiff")) and not name.endswith(OME_TIFF_SUFFIXES):
        raise ValueError(f"{path.name!r}: a multi-channel image needs its channel names in OME metadata; "
                         f"name the output *.ome.tif (pyramidal OME-TIFF) or *.ome.zarr")
    suffix = matching_suffix(path, ZARR_SUFFIXES + OME_TIFF_SUFFIXES, "multi-channel image")
    return "zarr" if suffix in ZARR_SUFFIXES else "ome-tiff"


def _as_channels(channels: Any) -> List[str]:
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence):
        raise TypeError(f"channels must be a list of channel names, got {type(channels).__name__}")
    names = list(channels)
    if not names:
        raise ValueError("channels is empty: give at least one channel name")
    for i, n in enumerate(names):
        if not isinstance(n, str):
            raise TypeError(f"channel {i} name must be a string, got {type(n).__name__}")
        if not n.strip():
            raise ValueError(f"channel {i} has an empty name; every channel needs a name")
    seen: Dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise ValueError(f"channel name {n!r} is given twice (channels {seen[n]} and {i}); names must be unique")
        seen[n] = i
    return names


def _window(dtype: np.dtype) -> Tuple[float, float]:
    if dtype.kind == "u":
        return 0.0, float(np.iinfo(dtype).max)
    return 0.0, 1.0


def omero_metadata(name: str, channels: Sequence[str], dtype: np.dtype) -> Dict[str, Any]:
    """The OME-NGFF 0.4 ``omero`` block: channel labels, colours and a display window spanning
    the dtype's range (0..1 for float32)."""
    lo, hi = _window(dtype)
    return {"omero": {
        "name": name, "version": "0.4",
        "channels": [{"label": n, "color": COLORS[i % len(COLORS)] if len(channels) > 1 else "FFFFFF",
                      "window": {"start": lo, "end": hi, "min": lo, "max": hi},
                      "active": True, "coefficient": 1.0, "family": "linear", "inverted": False}
                     for i, n in enumerate(channels)],
        "rdefs": {"model": "color" if len(channels) > 1 else "greyscale", "defaultZ": 0, "defaultT": 0}}}


def write_channels(path: str | os.PathLike, shape: Any, dtype: Any, channels: Sequence[str],
                   region_fn: ChannelRegionFn, *, pixel_size: Any = None, unit: str = "micrometer",
                   chunk: Any = 1024, tile: Any = 256, overwrite: bool = False, progress: bool = False,
                   compression: Optional[str] = None) -> Path:
    """Write a multi-channel image with a pyramid, block by block, as OME-Zarr or OME-TIFF.

    Parameters
    ----------
    path : str or PathLike
        ``*.ome.zarr`` / ``*.zarr``: OME-NGFF 0.4 on Zarr format 2, axes ``c`` (type
        ``channel``), ``y``, ``x``, chunks ``(1, chunk, chunk)``, levels at paths ``"0"``,
        ``"1"``, ... and ``omero`` channel metadata (labels, colours, a display window over the
        dtype's range, 0..1 for float32), as napari, ome-zarr-py and bioio read it.
        ``*.ome.tif`` / ``*.ome.tiff``: a tiled pyramidal OME-TIFF in the layout of Bio-Formats
        6 and QuPath: one full-resolution page per channel (axes ``CYX``), each with its
        reduced levels as SubIFDs, OME-XML channel names and physical sizes, BigTIFF when the
        file needs it (``tiff_needs_bigtiff``). A plain ``*.tif`` is refused (ValueError): it
        has nowhere to keep the channel names.
    shape : (height, width)
        Level-0 size in pixels (rows, columns).
    dtype : uint8, uint16 or float32
    channels : sequence of str
        Unique, non-empty channel names, in plane order.
    region_fn : callable
        ``region_fn(c, y0, x0, h, w)`` returns the ``(h, w)`` block of channel ``c`` (an
        index into ``channels``), rows ``y0:y0+h``, columns ``x0:x0+w``. Floats are rounded
        and clipped for integer dtypes; a wrong shape, NaN or out-of-range integers are refused
        (``io.formats.to_dtype``). It is asked for: OME-Zarr, every ``chunk`` x ``chunk`` block
        once, channel by channel; OME-TIFF, bands one tile row high (at most ``band_bytes``, 256 MiB, wide),
        channel by channel, row-major.
    pixel_size : float or (y, x), optional
        Physical size of a level-0 pixel in ``unit``; None (default) states no physical size.
    unit : str
        OME-NGFF unit name: ``"micrometer"`` (default), ``"nanometer"``, ``"millimeter"``, ...
        (see ``UNITS``); written as its symbol (``µm``) in OME-XML.
    chunk : int
        OME-Zarr chunk side (default 1024).
    tile : int or (th, tw)
        OME-TIFF tile size, multiples of 16 (default 256).
    overwrite : bool
        Replace an existing output, only once the new one is complete.
    progress : bool
        Show a tqdm progress bar.
    compression : str, optional
        OME-TIFF only: a tifffile compression such as ``"zlib"`` or ``"zstd"`` (default none).
        OME-Zarr chunks are always Blosc-LZ4.

    Returns
    -------
    Path
        The final path. On any exception the temporaries are removed and nothing appears at
        ``path`` (an existing output is kept).

    Notes
    -----
    Pyramid: each level is the 2x2 mean of the one before (``io.pyramid.downsample``), levels
    added until the largest side fits in one chunk (OME-Zarr, as ``write_ome_zarr``) or in one
    tile (OME-TIFF).

    Memory: one block at a time. OME-Zarr levels >= 1 are built chunk by chunk from the
    level below in the store. For OME-TIFF, level 1 of each band is computed as the band
    streams to level 0 and kept in a temporary Zarr store beside the output
    (``<name>.partial-...``, about a quarter of level 0, compressed); levels 2, ... are built
    there chunk by chunk, then every reduced level is streamed from it into the SubIFDs, tile
    row by tile row. No full-resolution channel is ever held in memory.
    """
    p = Path(path)
    kind = _kind(p)
    shp = as_shape(shape)
    dt = as_dtype(dtype)
    names = _as_channels(channels)
    if not callable(region_fn):
        raise TypeError(f"region_fn must be a function region_fn(c, y0, x0, h, w) -> (h, w) array, "
                        f"got {type(region_fn).__name__}")
    psize = None if pixel_size is None else _as_pixel_size(pixel_size)
    if not isinstance(unit, str):
        raise TypeError(f"unit must be a string such as 'micrometer', got {type(unit).__name__}")
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r} is not an OME-NGFF length unit this writer knows; use one of "
                         f"{', '.join(UNITS)}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    check_output_path(p, overwrite=overwrite)
    if kind == "zarr":
        if compression is not None:
            raise ValueError("compression applies to OME-TIFF output; OME-Zarr chunks are always Blosc-LZ4 "
                             "(leave compression=None)")
        side = as_int(chunk, "chunk", minimum=1)
        check_output_size(p, shp, dt, (side, side))
        planes = [_plane(region_fn, c) for c in range(len(names))]
        return write_zarr_stack(p, shp, dt, planes, chunk=side, overwrite=overwrite, progress=progress,
                                axis=("c", "channel"), names=names, pixel_size=psize,
                                unit=unit if psize is not None else None,
                                attrs=omero_metadata(p.name.split(".")[0], names, dt))
    return _write_ome_tiff(p, shp, dt, names, region_fn, psize=psize, unit=unit, tile=_as_tile(tile),
                           overwrite=overwrite, progress=progress, compression=compression)


def _plane(region_fn: ChannelRegionFn, c: int) -> Callable[[int, int, int, int], Any]:
    return lambda y, x, h, w: region_fn(c, y, x, h, w)


def _write_ome_tiff(path: Path, shape: Tuple[int, int], dtype: np.dtype, names: List[str],
                    region_fn: ChannelRegionFn, *, psize: Optional[Tuple[float, float]], unit: str,
                    tile: Tuple[int, int], overwrite: bool, progress: bool, compression: Optional[str]) -> Path:
    nc = len(names)
    th, tw = tile
    shapes = level_shapes(shape, auto_levels(shape, tile))
    ntiles = nc * sum(-(-h // th) * -(-w // tw) for h, w in shapes)
    big = tiff_needs_bigtiff((ntiles * th, tw), dtype, tile=tile)
    metadata: Dict[str, Any] = {"axes": "CYX", "Channel": {"Name": names}}
    if psize is not None:
        metadata.update({"PhysicalSizeY": psize[0], "PhysicalSizeYUnit": UNITS[unit],
                         "PhysicalSizeX": psize[1], "PhysicalSizeXUnit": UNITS[unit]})
    options: Dict[str, Any] = dict(dtype=dtype, tile=tile, photometric="minisblack", compression=compression)
    rows = nc * sum(-(-h // th) for h, _ in shapes)

    def write(tmp: str) -> None:
        spool: Optional[Path] = None
        try:
            with tqdm(total=rows, disable=not progress, unit="tile row", desc=f"writing {path.name}") as bar, \
                    tifffile.TiffWriter(tmp, bigtiff=big, ome=True) as tif:
                level1 = None
                if len(shapes) > 1:
                    spool, _ = create_stack_store(path, shapes[1], nc, dtype, tile)
                    level1 = stack_array(zarr.open_group(spool, mode="r+", zarr_format=2), "0")

                def tiles0() -> Any:
                    for c in range(nc):
                        def keep(y0: int, x0: int, band: np.ndarray, c: int = c) -> None:
                            if level1 is not None:  # bands start on even rows and columns
                                level1[c, y0 // 2:y0 // 2 + -(-band.shape[0] // 2),
                                       x0 // 2:x0 // 2 + -(-band.shape[1] // 2)] = downsample(band, 2)
                        yield from band_tiles(shape, dtype, tile, _plane(region_fn, c), bar=bar, on_band=keep,
                                              label=f"channel {names[c]!r} region", band_bytes=band_bytes)

                tif.write(tiles0(), shape=(nc,) + shape, subifds=len(shapes) - 1, metadata=metadata, **options)
                if spool is None:
                    return
                for c in range(nc):
                    build_stack_levels(spool, shapes[1:], c, tile)
                group = zarr.open_group(spool, mode="r", zarr_format=2)
                for k in range(1, len(shapes)):
                    arr = stack_array(group, str(k - 1))
                    tif.write(_level_tiles(arr, shapes[k], dtype, tile, bar), shape=(nc,) + shapes[k],
                              subfiletype=1, metadata=None, **options)
        finally:
            if spool is not None:
                shutil.rmtree(spool, ignore_errors=True)

    return write_atomically(path, write, overwrite=overwrite)


def _level_tiles(arr: zarr.Array, shape: Tuple[int, int], dtype: np.dtype, tile: Tuple[int, int],
                 bar: Any) -> Any:
    for c in range(arr.shape[0]):
        def block(y: int, x: int, h: int, w: int, c: int = c) -> Any:
            return arr[c, y:y + h, x:x + w]
        yield from band_tiles(shape, dtype, tile, block, bar=bar, band_bytes=band_bytes)


def _unit_name(symbol: Any) -> Optional[str]:
    if symbol is None:
        return None
    return _UNIT_NAMES.get(str(symbol), str(symbol))


def read_channels(path: str | os.PathLike, *, level: int = 0) -> ChannelImage:
    """Read a multi-channel OME-Zarr or OME-TIFF (as ``write_channels`` writes them) back.

    Parameters
    ----------
    path : str or PathLike
        ``*.ome.zarr``/``*.zarr`` (axes ``c, y, x``, or ``y, x`` as one channel) or
        ``*.ome.tif(f)`` (tifffile's first series; its pyramid levels).
    level : int
        Pyramid level, 0 = full resolution.

    Returns
    -------
    ChannelImage
        ``data`` (c, h, w), the channel names (OME-Zarr ``omero`` labels or OME-XML
        ``Channel/@Name``; ``"0"``, ``"1"``, ... where a file names none), the pixel size of
        that level ``(y, x)`` and its unit (OME-NGFF name), and the file's number of levels.
    """
    p = Path(path)
    lv = as_int(level, "level", minimum=0)
    if not p.exists():
        raise FileNotFoundError(f"image not found: {p}")
    if p.is_dir():
        return _read_zarr(p, lv)
    return _read_ome_tiff(p, lv)


def _read_zarr(p: Path, lv: int) -> ChannelImage:
    group = zarr.open_group(p, mode="r")
    attrs: Dict[str, Any] = group.attrs.asdict()
    attrs = attrs.get("ome", attrs)  # NGFF 0.5 nests the metadata under "ome"
    if not attrs.get("multiscales"):
        raise ValueError(f"{p} has no OME-NGFF 'multiscales' metadata; is it an OME-Zarr image?")
    ms = attrs["multiscales"][0]
    axes = [a["name"] if isinstance(a, dict) else a for a in ms["axes"]]
    if axes not in (["c", "y", "x"], ["y", "x"]):
        raise ValueError(f"{p} has axes {axes}; read_channels reads (c, y, x) or (y, x) images")
    datasets = ms["datasets"]
    if lv >= len(datasets):
        raise ValueError(f"level {lv} does not exist: {p} has levels 0..{len(datasets) - 1}")
    data = np.asarray(stack_array(group, datasets[lv]["path"])[...])
    if data.ndim == 2:
        data = data[None]
    labels = [c.get("label") for c in attrs.get("omero", {}).get("channels", [])]
    names = [str(n) for n in labels] if len(labels) == data.shape[0] and all(labels) else \
        [str(i) for i in range(data.shape[0])]
    scale = next((t["scale"] for t in datasets[lv].get("coordinateTransformations", [])
                  if t.get("type") == "scale"), [1.0] * len(axes))
    unit = ms["axes"][-1].get("unit") if isinstance(ms["axes"][-1], dict) else None
    scale0 = next((t["scale"] for t in datasets[0].get("coordinateTransformations", [])
                   if t.get("type") == "scale"), [1.0] * len(axes))
    stated = unit is not None or tuple(scale0[-2:]) != (1.0, 1.0)
    psize = (float(scale[-2]), float(scale[-1])) if stated else None
    return ChannelImage(data, names, psize, unit, len(datasets))


def _read_ome_tiff(p: Path, lv: int) -> ChannelImage:
    with tifffile.TiffFile(p) as tif:
        if not tif.is_ome or tif.ome_metadata is None:
            raise ValueError(f"{p} is not an OME-TIFF (no OME-XML); read_channels reads OME-TIFF and OME-Zarr")
        series = tif.series[0]
        if lv >= len(series.levels):
            raise ValueError(f"level {lv} does not exist: {p} has levels 0..{len(series.levels) - 1}")
        data = series.levels[lv].asarray()
        full = series.levels[0].shape
        ome = tifffile.xml2dict(tif.ome_metadata)["OME"]
    image = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
    pixels = image["Pixels"]
    chans = pixels.get("Channel", [])
    chans = chans if isinstance(chans, list) else [chans]
    axes = series.levels[lv].axes
    if "C" not in axes and data.ndim == 2:
        data = data[None]
    elif axes.replace("C", "") != "YX" or data.ndim != 3:
        raise ValueError(f"{p} has axes {axes}; read_channels reads CYX (or YX) images")
    labels = [c.get("Name") if isinstance(c, dict) else None for c in chans]
    names = [str(n) for n in labels] if len(labels) == data.shape[0] and all(labels) else \
        [str(i) for i in range(data.shape[0])]
    psize = None
    if "PhysicalSizeX" in pixels and "PhysicalSizeY" in pixels:
        # Our levels halve with rounding up (odd sides): their factor is exactly 2**level.
        fy, fx = full[-2] / data.shape[-2], full[-1] / data.shape[-1]
        if tuple(data.shape[-2:]) == level_shapes((full[-2], full[-1]), lv + 1)[-1]:
            fy = fx = 2.0 ** lv
        psize = (float(pixels["PhysicalSizeY"]) * fy, float(pixels["PhysicalSizeX"]) * fx)
    unit = _unit_name(pixels.get("PhysicalSizeXUnit", "µm")) if psize is not None else None
    return ChannelImage(np.ascontiguousarray(data), names, psize, unit, len(series.levels))



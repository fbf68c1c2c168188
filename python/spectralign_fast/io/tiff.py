"""Tiled (Big)TIFF output, from an array or streamed region by region; atomic."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Tuple

import numpy as np

from .._validate import as_int, as_native
from .atomic import write_atomically
from .formats import TIFF_SUFFIXES, as_chunk, as_dtype, as_shape, matching_suffix, to_dtype
import tifffile
from tqdm.auto import tqdm

# tifffile's own rule: classic TIFF offsets are 32-bit; keep 32 MB for tags and metadata.
_CLASSIC_TIFF_LIMIT = 2**32 - 2**25
# Default width of the bands that region_fn is asked for (one tile row high).
BAND_BYTES = 256 << 20


def tiff_needs_bigtiff(shape: Any, dtype: Any, *, tile: Any = 256) -> bool:
    """Whether a tiled TIFF of this size needs BigTIFF (64-bit offsets).

    Classic TIFF addresses at most 4 GiB. The estimate counts the edge tiles
    padded to full tiles (as stored), the tile offset and byte-count tables,
    and keeps 32 MiB for tags and metadata, like tifffile's own rule; it
    assumes no compression, so a compressed file may get BigTIFF when it
    would have fit.
    """
    h, w = as_shape(shape)
    dt = as_dtype(dtype)
    th, tw = _as_tile(tile)
    ntiles = -(-h // th) * -(-w // tw)
    nbytes = ntiles * th * tw * dt.itemsize + ntiles * 8
    return nbytes > _CLASSIC_TIFF_LIMIT


def _as_tile(tile: Any) -> Tuple[int, int]:
    th, tw = as_chunk(tile)
    if th % 16 or tw % 16:
        raise ValueError(f"TIFF tile sides must be multiples of 16, got {(th, tw)}")
    return th, tw


def band_tiles(shape: Tuple[int, int], dtype: np.dtype, tile: Tuple[int, int],
               region_fn: Callable[[int, int, int, int], Any], *, band_bytes: int = BAND_BYTES,
               bar: Any = None, label: str = "region",
               on_band: Optional[Callable[[int, int, np.ndarray], None]] = None) -> Iterator[np.ndarray]:
    """The tiles of a (height, width) image, row-major, as a tiled TIFF writer takes them.

    ``region_fn(y0, x0, h, w)`` is called for bands one tile row high and at most
    ``band_bytes`` wide (a whole number of tiles), row-major; each band is checked and
    converted with ``to_dtype`` (errors name it ``"<label> (y0, x0, h, w)"``), handed to
    ``on_band(y0, x0, band)`` when given, and cut into tiles (edge tiles are smaller). ``bar``
    (a tqdm bar) advances by one per tile row. Only one band is in memory at a time.
    """
    h, w = shape
    th, tw = tile
    band_w = max(tw, (band_bytes // max(1, th * dtype.itemsize)) // tw * tw)
    for y0 in range(0, h, th):
        bh = min(th, h - y0)
        for bx in range(0, w, band_w):
            bw = min(band_w, w - bx)
            band = to_dtype(region_fn(y0, bx, bh, bw), dtype, (bh, bw), f"{label} ({y0}, {bx}, {bh}, {bw})")
            if on_band is not None:
                on_band(y0, bx, band)
            for x0 in range(0, bw, tw):
                yield band[:, x0:x0 + tw]
        if bar is not None:
            bar.update(1)


def write_tiff(path: str | os.PathLike, image_or_shape: Any, dtype: Any = None,
               region_fn: Optional[Callable[[int, int, int, int], Any]] = None, *,
               tile: Any = 256, overwrite: bool = False, bigtiff: Optional[bool] = None,
               compression: Optional[str] = None, band_bytes: int = BAND_BYTES,
               progress: bool = False) -> Path:
    """Write a 2-D image as a tiled (Big)TIFF, from an array or region by region.

    Parameters
    ----------
    path : str or PathLike
        Ends in ``.tif``, ``.tiff``, ``.ome.tif`` or ``.ome.tiff``;
        ``.ome.tif(f)`` gets OME-XML metadata (axes ``YX``).
    image_or_shape : (H, W) array or (height, width)
        The image (uint8, uint16 or float32), or the shape of one to be
        rendered by ``region_fn``.
    dtype : uint8, uint16 or float32
        Required with a shape.
    region_fn : callable
        With a shape: ``region_fn(y0, x0, h, w)`` returns the ``(h, w)``
        block of rows ``y0:y0+h``, columns ``x0:x0+w`` (row, col order). It
        is called for bands one tile row high and at most ``band_bytes``
        wide, in row-major order, and the tiles are streamed to tifffile, so
        the whole image is never in memory.
    tile : int or (th, tw)
        TIFF tile size, multiples of 16 (default 256).
    overwrite : bool
        Replace an existing file (only once the new one is complete).
    bigtiff : bool, optional
        Default: BigTIFF exactly when ``tiff_needs_bigtiff`` says so.
    compression : str, optional
        tifffile compression, e.g. ``"zlib"`` or ``"zstd"`` (default none).

    Returns
    -------
    Path
        The final path; the file is written under a hidden temporary name and
        renamed when complete.
    """
    p = Path(path)
    suffix = matching_suffix(p, TIFF_SUFFIXES, "TIFF")
    th, tw = _as_tile(tile)
    if isinstance(image_or_shape, np.ndarray) or region_fn is None:
        if region_fn is not None or dtype is not None:
            raise TypeError("give either an image array, or a shape, a dtype and region_fn")
        image = as_native(np.asarray(image_or_shape))
        if image.ndim != 2:
            raise ValueError(f"image must be 2-D (height, width), got shape {image.shape}; for "
                             f"region-by-region writing pass (shape, dtype, region_fn)")
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"image is empty (shape {image.shape})")
        dt = as_dtype(image.dtype)
        if dt.kind == "f" and not np.isfinite(image).all():
            raise ValueError("image contains NaN or inf values; replace them first "
                             "(e.g. numpy.nan_to_num)")
        shp = image.shape
        data: Any = image
    else:
        if not callable(region_fn):
            raise TypeError(f"region_fn must be a function region_fn(y0, x0, h, w) -> (h, w) "
                            f"array, got {type(region_fn).__name__}")
        if dtype is None:
            raise TypeError("a dtype (uint8, uint16 or float32) is required with a shape")
        shp = as_shape(image_or_shape)
        dt = as_dtype(dtype)
        data = None
    if bigtiff is None:
        big = tiff_needs_bigtiff(shp, dt, tile=(th, tw))
    elif isinstance(bigtiff, (bool, np.bool_)):
        big = bool(bigtiff)
        if not big and tiff_needs_bigtiff(shp, dt, tile=(th, tw)):
            raise ValueError(f"a {shp[0]} x {shp[1]} {dt} image does not fit in a classic TIFF "
                             f"(4 GB); leave bigtiff=None or pass bigtiff=True")
    else:
        raise TypeError(f"bigtiff must be True, False or None, got {bigtiff!r}")
    bytes_limit = as_int(band_bytes, "band_bytes", minimum=1, maximum=None)
    ome = suffix.startswith(".ome")

    def tiles() -> Iterator[np.ndarray]:
        assert region_fn is not None  # only called without an image array, so with region_fn
        with tqdm(total=-(-shp[0] // th), disable=not progress, unit="tile row",
                  desc=f"writing {p.name}") as bar:
            yield from band_tiles(shp, dt, (th, tw), region_fn, band_bytes=bytes_limit, bar=bar)

    def write(tmp: str) -> None:
        tifffile.imwrite(tmp, data if data is not None else tiles(), shape=shp, dtype=dt,
                         tile=(th, tw), bigtiff=big, compression=compression,
                         photometric="minisblack", ome=ome,
                         metadata={"axes": "YX"} if ome else {})

    return write_atomically(p, write, overwrite=overwrite)

"""Rendering a placed tile set straight into an output file (montages and stacks).

Montages go through ``io.write_ome_zarr`` / ``io.write_tiff`` chunk by
chunk (``Renderer.render_region``), so the whole canvas is never in memory.
Stacks (z, y, x) go to a multi-page TIFF or an OME-Zarr with axes z, y, x,
rendered one level and one chunk at a time; both are built under a
temporary name and renamed when complete.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .._types import TileKey
from ..io.atomic import check_output_path, remove_stale_temporaries, temp_owner, write_atomically
from ..io.formats import output_kind
from ..io.omezarr import NGFF_VERSION, drop_partial_files, write_ome_zarr
from ..io.pyramid import chunk_grid, downsample
from ..io.tiff import write_tiff
from ..io.tiles import LRUCache
from ..render.renderer import Renderer
import tifffile
import numcodecs
import zarr
from tqdm.auto import tqdm


def _region_fn(r: Renderer, tiles: Mapping[TileKey, Any],
               dtype: np.dtype) -> Callable[[int, int, int, int], np.ndarray]:
    x0, y0 = r.origin

    def region(y: int, x: int, h: int, w: int) -> np.ndarray:
        img = r.render_region((x0 + x, y0 + y, w, h), tiles, threads=1)
        return img if img.dtype == dtype else img.astype(dtype)  # an empty region comes back as float32

    return region


def write_rendered(path: Path, r: Renderer, loaders: Mapping[TileKey, Callable[[], Any]], dtype: np.dtype, *,
                   levels: Optional[Sequence[Sequence[TileKey]]], overwrite: bool, chunk: int, threads: int,
                   progress: bool) -> Path:
    """Render the canvas of ``r`` (one image, or one per entry of ``levels``) into ``path``."""
    kind = output_kind(path)
    check_output_path(path, overwrite=overwrite)
    tiles = _CachedLoaders(loaders)
    h, w = r.shape
    if levels is None:
        fn = _region_fn(r, tiles, dtype)
        if kind == "zarr":
            return write_ome_zarr(path, (h, w), dtype, fn, chunk=chunk, overwrite=overwrite,
                                  threads=threads, progress=progress)
        return write_tiff(path, (h, w), dtype, fn, overwrite=overwrite, progress=progress)
    fns = [_region_fn(r, {t: tiles[t] for t in lv}, dtype) for lv in levels]
    return write_stack(path, (h, w), dtype, fns, overwrite=overwrite, chunk=chunk, progress=progress)


def write_stack(path: Path, shape: Tuple[int, int], dtype: np.dtype,
                levels: Sequence[Callable[[int, int, int, int], np.ndarray]], *, overwrite: bool, chunk: int,
                progress: bool) -> Path:
    """Write a (z, y, x) stack whose plane z has block (y, x, h, w) ``levels[z](y, x, h, w)`` to
    ``path`` (``.tif``: planes rendered whole; ``.ome.zarr``: chunk by chunk, with a pyramid)."""
    h, w = shape
    if output_kind(path) == "tiff":
        stack = np.empty((len(levels), h, w), dtype)
        for z, fn in enumerate(levels):
            stack[z] = fn(0, 0, h, w)
        write_atomically(path, lambda tmp: tifffile.imwrite(tmp, stack, bigtiff=stack.nbytes > 2**32 - 2**25,
                                                            photometric="minisblack"), overwrite=overwrite)
        return path
    return _write_zarr_stack(path, shape, dtype, levels, chunk=chunk, overwrite=overwrite, progress=progress)


class _CachedLoaders(Dict[TileKey, Callable[[], Any]]):
    """``{tile: loader}`` whose loaders run once per tile while the cache has room."""

    def __init__(self, loaders: Mapping[TileKey, Callable[[], Any]], capacity: int = 32) -> None:
        self._cache = LRUCache(capacity)
        def cached(t: TileKey, f: Callable[[], Any]) -> Callable[[], Any]:
            return lambda: self._cache.get(t, f)

        super().__init__({t: cached(t, f) for t, f in loaders.items()})


def create_stack_store(path: Path, shape: Tuple[int, int], nz: int, dtype: np.dtype,
                       chunk: int) -> Tuple[Path, List[Tuple[int, int]]]:
    """The temporary (z, y, x) OME-Zarr store ``<name>.partial-<pid>@<host>-<random>`` and its level shapes
    (stale ones of killed runs removed first, as ``OmeZarrWriter.create`` does)."""
    h, w = shape
    shapes = [(h, w)]
    while max(shapes[-1]) > chunk:
        shapes.append(((shapes[-1][0] + 1) // 2, (shapes[-1][1] + 1) // 2))
    remove_stale_temporaries(path, "dir")
    tmp = Path(tempfile.mkdtemp(prefix=f"{path.name}.partial-{temp_owner()}-", dir=path.parent))
    try:
        group = zarr.open_group(tmp, mode="w", zarr_format=2)
        for k, s in enumerate(shapes):
            group.create_array(str(k), shape=(nz,) + s, dtype=dtype,
                               chunks=(1, min(chunk, s[0]), min(chunk, s[1])), fill_value=0,
                               compressors=numcodecs.Blosc(cname="lz4", clevel=5,
                                                           shuffle=numcodecs.Blosc.SHUFFLE))
        group.attrs.update({"multiscales": [{
            "version": NGFF_VERSION, "name": path.name.split(".")[0],
            "axes": [{"name": "z", "type": "space"}, {"name": "y", "type": "space"},
                     {"name": "x", "type": "space"}],
            "datasets": [{"path": str(k), "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, 2.0 ** k, 2.0 ** k]},
                {"type": "translation", "translation": [0.0, (2.0 ** k - 1) / 2, (2.0 ** k - 1) / 2]}]}
                for k in range(len(shapes))],
            "type": "mean"}]})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, shapes


def commit_store(tmp: Path, path: Path, *, overwrite: bool) -> None:
    """Rename the finished store ``tmp`` to ``path`` (an old output is replaced only now)."""
    drop_partial_files(tmp)
    if path.exists() and overwrite:
        old = path.with_name(path.name + ".old-" + tmp.name.rsplit("-", 1)[-1])
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        check_output_path(path, overwrite=False)
        os.rename(tmp, path)


def stack_pyramid_block(source: zarr.Array, source_shape: Tuple[int, int], z: int,
                        region: Tuple[int, int, int, int]) -> np.ndarray:
    """Block ``region`` = (y, x, h, w) of plane ``z`` one pyramid level above ``source`` (the
    (z, y, x) level below, whose planes are ``source_shape``): 2x2 means, the same values as
    downsampling the whole plane, since every block starts on an even row and column."""
    y, x, h, w = region
    sh, sw = source_shape
    return downsample(source[z, 2 * y:min(2 * (y + h), sh), 2 * x:min(2 * (x + w), sw)], 2)


def _array(group: zarr.Group, name: str) -> zarr.Array:
    arr = group[name]
    if not isinstance(arr, zarr.Array):
        raise TypeError(f"{name!r} in {group.store} is a group, not an array")
    return arr


def _write_zarr_stack(path: Path, shape: Tuple[int, int], dtype: np.dtype,
                      levels: Sequence[Callable[[int, int, int, int], np.ndarray]], *,
                      chunk: int, overwrite: bool, progress: bool) -> Path:
    h, w = shape
    nz = len(levels)
    tmp, shapes = create_stack_store(path, (h, w), nz, dtype, chunk)
    try:
        group = zarr.open_group(tmp, mode="r+", zarr_format=2)
        arrays = [_array(group, str(k)) for k in range(len(shapes))]
        grid = chunk_grid((h, w), chunk)
        with tqdm(total=nz * len(grid), disable=not progress, unit="chunk", desc=f"writing {path.name}") as bar:
            for z, fn in enumerate(levels):
                for (y, x, ch, cw) in grid:
                    arrays[0][z, y:y + ch, x:x + cw] = fn(y, x, ch, cw)
                    bar.update(1)
                # The pyramid chunk by chunk, never a whole plane in memory.
                for k in range(1, len(shapes)):
                    for region in chunk_grid(shapes[k], chunk):
                        y, x, ch, cw = region
                        arrays[k][z, y:y + ch, x:x + cw] = stack_pyramid_block(arrays[k - 1], shapes[k - 1],
                                                                               z, region)
        commit_store(tmp, path, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path

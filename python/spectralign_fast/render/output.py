"""Rendering a placed tile set straight into an output file (montages and stacks).

Montages go through ``io.write_ome_zarr`` / ``io.write_tiff`` chunk by
chunk (``Renderer.render_region``), so the whole canvas is never in memory.
Stacks (z, y, x) go to a multi-page TIFF or an OME-Zarr with axes z, y, x,
rendered one level and one chunk at a time; both are built under a
temporary name and renamed when complete.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from .._types import TileKey
from ..io.atomic import check_output_path, write_atomically
from ..io.formats import output_kind
from ..io.omezarr import write_ome_zarr
# The stack store pieces moved to io.stackstore (shared with io.channels); still importable from here.
from ..io.stackstore import commit_store, create_stack_store, stack_pyramid_block, write_zarr_stack  # noqa: F401
from ..io.tiff import write_tiff
from ..io.tiles import LRUCache
from ..render.renderer import Renderer
import tifffile


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
    return write_zarr_stack(path, shape, dtype, levels, chunk=chunk, overwrite=overwrite, progress=progress)


class _CachedLoaders(Dict[TileKey, Callable[[], Any]]):
    """``{tile: loader}`` whose loaders run once per tile while the cache has room."""

    def __init__(self, loaders: Mapping[TileKey, Callable[[], Any]], capacity: int = 32) -> None:
        self._cache = LRUCache(capacity)
        def cached(t: TileKey, f: Callable[[], Any]) -> Callable[[], Any]:
            return lambda: self._cache.get(t, f)

        super().__init__({t: cached(t, f) for t, f in loaders.items()})

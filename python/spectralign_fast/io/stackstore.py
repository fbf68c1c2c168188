"""(n, y, x) OME-Zarr stores: a stack of 2-D planes (z sections, or channels) with a 2x2-mean
pyramid of every plane, built under a temporary name and renamed when complete.

The stack writer (``render.output.write_stack``), the Dask executor's stack writer and the
multi-channel writer (``io.channels.write_channels``) share these pieces. Coordinates: planes
are indexed (row, col) = (y, x); blocks are ``(y0, x0, h, w)`` in output pixels.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .atomic import check_output_path, remove_stale_temporaries, temp_owner
from .formats import as_chunk, to_dtype
from .omezarr import _multiscales, drop_partial_files
from .pyramid import auto_levels, chunk_grid, downsample, level_shapes
import numcodecs
import zarr
from tqdm.auto import tqdm

BlockFn = Callable[[int, int, int, int], Any]


def create_stack_store(path: Path, shape: Tuple[int, int], nz: int, dtype: np.dtype, chunk: Any, *,
                       axis: Tuple[str, str] = ("z", "space"), pixel_size: Optional[Tuple[float, float]] = None,
                       unit: Optional[str] = None,
                       attrs: Optional[Mapping[str, Any]] = None) -> Tuple[Path, List[Tuple[int, int]]]:
    """The temporary (n, y, x) OME-Zarr store ``<name>.partial-<pid>@<host>-<random>`` and its level shapes.

    Stale temporaries of the same output left by killed runs are removed first, as
    ``OmeZarrWriter.create`` does. Levels: each the 2x2 mean of the one before, until the
    largest side fits in one chunk (the same rule as ``OmeZarrWriter``); chunks ``(1, ch, cw)``.

    Parameters
    ----------
    path : Path
        The final path (``.ome.zarr`` or ``.zarr``); the store is made in its folder.
    shape : (height, width)
        Level-0 plane size (rows, columns).
    nz : int
        Number of planes (the first axis).
    dtype : numpy dtype
    chunk : int or (ch, cw)
        Chunk size in pixels, the same at every level.
    axis : (name, type)
        The first axis in the NGFF metadata: ``("z", "space")`` for sections (default),
        ``("c", "channel")`` for channels. Its scale is 1 and its translation 0 at every level.
    pixel_size : (y, x), optional
        Physical size of a level-0 pixel in ``unit`` (default 1, no unit).
    unit : str, optional
        An OME-NGFF space unit such as ``"micrometer"``, put on the y and x axes.
    attrs : mapping, optional
        More group attributes (e.g. ``omero`` channel metadata).
    """
    ch, cw = as_chunk(chunk)
    shapes = level_shapes(shape, auto_levels(shape, (ch, cw)))
    remove_stale_temporaries(path, "dir")
    tmp = Path(tempfile.mkdtemp(prefix=f"{path.name}.partial-{temp_owner()}-", dir=path.parent))
    try:
        group = zarr.open_group(tmp, mode="w", zarr_format=2)
        for k, s in enumerate(shapes):
            group.create_array(str(k), shape=(nz,) + s, dtype=dtype,
                               chunks=(1, min(ch, s[0]), min(cw, s[1])), fill_value=0,
                               compressors=numcodecs.Blosc(cname="lz4", clevel=5,
                                                           shuffle=numcodecs.Blosc.SHUFFLE))
        meta = _multiscales(path.name.split(".")[0], shapes, pixel_size or (1.0, 1.0), unit)
        (ms,) = meta["multiscales"]
        ms["axes"].insert(0, {"name": axis[0], "type": axis[1]})
        for d in ms["datasets"]:
            scale, translation = d["coordinateTransformations"]
            scale["scale"].insert(0, 1.0)
            translation["translation"].insert(0, 0.0)
        group.attrs.update(meta)
        if attrs:
            group.attrs.update(dict(attrs))
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
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
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


def stack_array(group: zarr.Group, name: str) -> zarr.Array:
    """Array ``name`` of ``group`` (a clear error when it is a group)."""
    arr = group[name]
    if not isinstance(arr, zarr.Array):
        raise TypeError(f"{name!r} in {group.store} is a group, not an array")
    return arr


def build_stack_levels(tmp: Path, shapes: Sequence[Tuple[int, int]], z: int, chunk: Any) -> None:
    """Levels 1, 2, ... of plane ``z`` of the store ``tmp`` from its level 0, chunk by chunk
    (never a whole plane in memory)."""
    group = zarr.open_group(tmp, mode="r+", zarr_format=2)
    for k in range(1, len(shapes)):
        below, here = stack_array(group, str(k - 1)), stack_array(group, str(k))
        for region in chunk_grid(shapes[k], chunk):
            y, x, ch, cw = region
            here[z, y:y + ch, x:x + cw] = stack_pyramid_block(below, shapes[k - 1], z, region)


def write_zarr_stack(path: Path, shape: Tuple[int, int], dtype: np.dtype, planes: Sequence[BlockFn], *,
                     chunk: Any, overwrite: bool, progress: bool, axis: Tuple[str, str] = ("z", "space"),
                     names: Optional[Sequence[str]] = None, pixel_size: Optional[Tuple[float, float]] = None,
                     unit: Optional[str] = None, attrs: Optional[Mapping[str, Any]] = None) -> Path:
    """Write the (n, y, x) OME-Zarr whose plane ``z`` has block (y, x, h, w) ``planes[z](y, x, h, w)``.

    Every level-0 chunk is asked for once, plane by plane and row-major, and checked (shape,
    NaN, range; floats rounded and clipped to integer dtypes, see ``io.formats.to_dtype``);
    the pyramid is built chunk by chunk after each plane. ``names`` label the planes in error
    messages; ``axis``, ``pixel_size``, ``unit`` and ``attrs`` go to ``create_stack_store``.
    Built under a temporary name: on any exception it is removed and nothing appears at ``path``.
    """
    h, w = shape
    nz = len(planes)
    tmp, shapes = create_stack_store(path, (h, w), nz, dtype, chunk, axis=axis, pixel_size=pixel_size,
                                     unit=unit, attrs=attrs)
    try:
        level0 = stack_array(zarr.open_group(tmp, mode="r+", zarr_format=2), "0")
        grid = chunk_grid((h, w), chunk)
        with tqdm(total=nz * len(grid), disable=not progress, unit="chunk", desc=f"writing {path.name}") as bar:
            for z, fn in enumerate(planes):
                label = f"{axis[0]} {z}" if names is None else f"{names[z]!r}"
                for (y, x, ch, cw) in grid:
                    level0[z, y:y + ch, x:x + cw] = to_dtype(fn(y, x, ch, cw), dtype, (ch, cw),
                                                             f"block ({y}, {x}, {ch}, {cw}) of {label}")
                    bar.update(1)
                build_stack_levels(tmp, shapes, z, chunk)
        commit_store(tmp, path, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path

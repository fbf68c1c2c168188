"""Tile sources for the workflow layer: arrays, paths or loaders, read lazily.

A tile is given as an array, an ``Image``, a path (TIFF, PNG, JPEG, ...) or a
callable returning an array. Matching sees it as a float32 ``Image`` (scaled
as spectralign scales integers); rendering sees it in its own dtype.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Tuple

import numpy as np

from .._types import TileKey, TileKeyT, tile_dict
from ..image import Image
from .._validate import as_native
from .images import read_image

_RENDER_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def describe(tile: TileKey) -> str:
    return "tile " + (repr(tile) if not isinstance(tile, tuple) else "(" + ", ".join(map(str, tile)) + ")")


def read_raw(src: Any, tile: TileKey) -> np.ndarray:
    """The tile's pixels as given (a view where possible; never written to)."""
    try:
        if isinstance(src, (str, os.PathLike)):
            arr = read_image(src)
        elif callable(src):
            arr = np.asarray(src())
        else:
            arr = np.asarray(src)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{describe(tile)}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{describe(tile)}: {exc}") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{describe(tile)} has non-numeric dtype {arr.dtype}")
    arr = as_native(arr)
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        channels = arr.shape[-1] if arr.shape[-1] in (1, 3) else 3
        grey = arr[..., :channels].mean(axis=-1)
        arr = np.rint(grey).astype(arr.dtype) if arr.dtype.kind in "iub" else grey.astype(arr.dtype)
    if arr.ndim != 2:
        raise ValueError(f"{describe(tile)} must be a 2-D image (height, width), got shape {arr.shape}")
    if min(arr.shape) < 16:
        raise ValueError(f"{describe(tile)} is {arr.shape[1]} x {arr.shape[0]} pixels; tiles must be at "
                         f"least 16 x 16")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{describe(tile)} contains NaN or infinite pixels; replace them (e.g. with "
                         f"np.nan_to_num) before aligning")
    return arr


def render_array(raw: np.ndarray) -> np.ndarray:
    """The tile as the renderer takes it: uint8, uint16 or float32."""
    if raw.dtype in _RENDER_DTYPES:
        return raw
    if raw.dtype == np.bool_:
        return raw.astype(np.uint8)
    return raw.astype(np.float32)


def output_dtype(dtypes: Mapping[TileKey, np.dtype]) -> np.dtype:
    """The one dtype of all tiles, or a ValueError naming two that differ."""
    items = list(dtypes.items())
    first_tile, first = items[0]
    for tile, dt in items[1:]:
        if dt != first:
            raise ValueError(f"tiles have mixed dtypes: {describe(first_tile)} is {first}, {describe(tile)} "
                             f"is {dt}; convert them to one dtype before montaging")
    return np.dtype(render_array(np.empty(0, first)).dtype)


class LRUCache:
    """A thread-safe cache of the ``capacity`` most recently used values.

    ``get(key, load)`` returns the cached value or calls ``load()`` outside the
    lock (tiles load in parallel; two threads asking for the same missing key
    may each load it once) and keeps the result. The tile caches of matching,
    local rendering and the Dask workers all use it.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, int(capacity))
        self._items: "OrderedDict[TileKey, Any]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: TileKey, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value

    def __contains__(self, key: TileKey) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class TileStore:
    """Reads tiles on demand and keeps the most recent ``capacity`` as float32 Images.

    Thread-safe; records each tile's size and raw dtype the first time it is read.
    """

    def __init__(self, sources: Mapping[TileKeyT, Any], capacity: int = 16) -> None:
        self.sources = tile_dict(sources)
        self.capacity = max(2, int(capacity))
        self._cache = LRUCache(self.capacity)
        self._lock = threading.Lock()
        self.sizes: Dict[TileKey, Tuple[int, int]] = {}
        self.dtypes: Dict[TileKey, np.dtype] = {}

    def image(self, tile: TileKey) -> Image:
        def load() -> Image:
            raw = read_raw(self.sources[tile], tile)
            with self._lock:
                self.sizes[tile] = (int(raw.shape[1]), int(raw.shape[0]))
                self.dtypes[tile] = raw.dtype
            img = Image(raw)
            if np.may_share_memory(img, raw):  # the caller's float32 array: keep a copy of our own
                img = Image(np.array(raw, dtype=np.float32, order="C", copy=True))
            img.flags.writeable = False  # shared by the matchers of every pair; none may change it
            return img

        return self._cache.get(tile, load)

    def probe_all(self) -> None:
        """Record every tile's size and dtype (reading headers would do, but tiles are read whole)."""
        for tile in self.sources:
            if tile not in self.sizes:
                self.image(tile)

    def loader(self, tile: TileKey) -> Callable[[], np.ndarray]:
        src = self.sources[tile]
        return lambda: render_array(read_raw(src, tile))

    def source_name(self, tile: TileKey) -> str | None:
        src = self.sources[tile]
        return str(Path(src)) if isinstance(src, (str, os.PathLike)) else None

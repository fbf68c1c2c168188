"""montage / align_stack on a Dask cluster (``client=``): what runs where.

- Matching: one task per batch of neighbour pairs (and per pair of levels for
  stacks); each task opens its own tiles and returns ``PairMatches``. The
  second pass (affine and similarity) is per-pair work too.
- Placement: on the client (a least-squares solve, fast).
- Rendering: tasks of consecutive output chunks, a few per worker thread
  (``render_region`` from the tiles that overlap each chunk, written whole
  into the ``OmeZarrWriter``'s temporary store), then the same for the chunks
  of each pyramid level, then ``commit()`` on the client. No
  process ever holds the whole montage unless it is asked for in memory.

Tasks are the top-level functions below (they pickle by reference) and run
the same code as the local path with one thread each, so results are bit for
bit those of a local run. Tiles given as paths are opened by the tasks (every
worker must see the same path: shared storage); arrays and Images are
scattered to the cluster once (one copy each, so a worker that dies takes
them with it: use paths for fault tolerance); callables are pickled with
their tasks and called on the workers.

This module (and with it dask and distributed) is imported only when a
client is given.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

import zarr
from tqdm.auto import tqdm

from .. import _core
from .._types import TileKey, TileKeyT, tile_dict
from .._config import set_fft_planning
from ..io.atomic import check_output_path
from ..io.formats import output_kind
from ..io.omezarr import OmeZarrWriter
from ..io.pyramid import chunk_grid
from ..io.stackstore import commit_store, create_stack_store, stack_pyramid_block
from ..io.tiles import LRUCache, TileStore, read_raw, render_array
from ..match.flow import SectionFlow, stack_flows
from ..match.levels import match_levels
from ..match.pairs import MatchSettings, PairJob, PairMatches, match_pair, rematch_pair
from ..render.elastic import ElasticRenderer
from ..render.overview import overview
from ..render.renderer import Renderer
from ..transforms.affine import Affine
from .base import Executor, Overview
import logging

_STATES = ("running", "newly-created", "connecting")


def check_client(client: Any) -> Any:
    """The client, after checking that it is a live ``dask.distributed.Client``."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("client= needs Dask's distributed scheduler: "
                          "pip install 'spectralign-fast[dask]'") from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed.Client (or None to run on this machine), "
                        f"got {type(client).__name__}")
    if client.status not in _STATES:
        raise ValueError(f"the Dask client is {client.status}; connect a new one "
                         f"(dask.distributed.Client(address))")
    return client


def connect(address: str, timeout: float = 10.0) -> Any:
    """A ``Client`` for the scheduler at ``address``, or ConnectionError within ``timeout`` seconds;
    ImportError when Dask's distributed scheduler is not installed."""
    from distributed import Client

    # distributed logs every failed attempt; the one error below says it all.
    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, ValueError, TypeError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConnectionError(f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s ({why}); "
                              f"check the address (e.g. tcp://host:8786) and that the scheduler is "
                              f"running") from None
    finally:
        log.setLevel(level)


# --- tasks (run on the workers) ---------------------------------------------------------------

def _task(rigor: str, fn: Callable, *args: Any) -> Any:
    """Run fn with the client's FFT planning: FFTW_MEASURE picks algorithms by timing, so plans (and
    the last bits of results) differ between processes; "estimate" plans are the same everywhere."""
    if _core.config.fft_planning() != rigor:
        set_fft_planning(rigor)  # "estimate" also drops cached wisdom, as on the client
    return fn(*args)


def _run_batch(fn: Callable, items: List[Tuple]) -> List[Any]:
    """fn(*args) for each args of a batch, in order: a few tasks per worker thread instead of one
    per chunk keeps Dask's per-task cost (scheduling, pickling, reopening the store) small, and
    consecutive chunks share their tiles in the worker's cache. Every call writes whole chunks, so a
    batch re-run after a lost worker rewrites them identically."""
    return [fn(*args) for args in items]


# What a task learnt about the tiles it read: {tile: ((width, height), dtype string)}.
_TileInfo = Dict[TileKey, Tuple[Tuple[int, int], str]]

# The arguments of _render_block: transforms, sizes, blend, interpolation, rect (x, y, w, h),
# sources, dtype, threads, canvas (x0, y0, w, h) of the whole output.
_BlockArgs = Tuple[Dict[TileKey, Affine], Dict[TileKey, Tuple[int, int]], float, str,
                   Tuple[float, float, int, int], Dict[TileKey, Any], np.dtype, int,
                   Tuple[float, float, int, int]]


def _tile_info(store: TileStore) -> _TileInfo:
    return {t: (store.sizes[t], store.dtypes[t].str) for t in store.sizes}


def _match_task(pairs: List[PairJob], sources: Dict[TileKey, Any],
                settings: MatchSettings) -> Tuple[List[PairMatches], _TileInfo]:
    store = TileStore(sources, capacity=min(len(sources), 8))  # pairs come row-major: neighbours reuse tiles
    out = [match_pair(store.image(a), store.image(b), a, b, kind, settings, *rest) for a, b, kind, *rest in pairs]
    return out, _tile_info(store)


def _probe_task(sources: Dict[TileKey, Any]) -> _TileInfo:
    info: _TileInfo = {}
    for t, src in sources.items():
        raw = read_raw(src, t)
        info[t] = ((int(raw.shape[1]), int(raw.shape[0])), raw.dtype.str)
    return info


def _rematch_task(items: List[Tuple[PairMatches, Affine, Affine, MatchSettings]],
                  sources: Dict[TileKey, Any]) -> List[PairMatches]:
    store = TileStore(sources, capacity=len(sources))
    return [rematch_pair(store.image(pm.tile1), store.image(pm.tile2), pm, t1, t2, s) for pm, t1, t2, s in items]


def _overview_task(transforms: Dict[TileKey, Affine], sizes: Dict[TileKey, Tuple[int, int]],
                   sources: Dict[TileKey, Any], max_side: int, factor: Optional[int], threads: int) -> Overview:
    img, k, org = overview(transforms, sizes, sources, max_side=max_side, factor=factor, threads=threads)
    return k, np.asarray(img, np.float32), org


def _match_levels_task(sources: Dict[TileKey, Any], lo: List[TileKey], hi: List[TileKey],
                       transforms: Dict[TileKey, Affine], sizes: Dict[TileKey, Tuple[int, int]], z: int,
                       settings: MatchSettings, ov_pair: Dict[int, Overview]) -> List[PairMatches]:
    store = TileStore(sources, capacity=len(sources))
    return match_levels(store, lo, hi, transforms, sizes, z, settings, ov_pair)


# Neighbouring chunks share tiles; a few per worker process keep memory near chunk + tiles.
_TILE_CACHE = LRUCache(6)


def _cached_tile(src: Any, tile: TileKey) -> np.ndarray:
    """A tile for rendering; files are kept in a small per-process cache keyed by path, size and mtime."""
    if not isinstance(src, str):
        return render_array(read_raw(src, tile))
    try:
        st = os.stat(src)
        key = (src, st.st_size, st.st_mtime_ns)
    except OSError:
        return render_array(read_raw(src, tile))  # read_raw says what is wrong, naming the tile

    def load() -> np.ndarray:
        arr = render_array(read_raw(src, tile))
        arr.flags.writeable = False  # shared by every task in this process
        return arr

    return _TILE_CACHE.get(key, load)


def _render_block(transforms: Dict[TileKey, Affine], sizes: Dict[TileKey, Tuple[int, int]], blend: float,
                  interpolation: str, rect: Tuple[float, float, int, int], sources: Dict[TileKey, Any],
                  dtype: np.dtype, threads: int, canvas: Tuple[float, float, int, int]) -> np.ndarray:
    """The output block of model rectangle ``rect = (x, y, w, h)``, as the local writer renders it:
    in the whole output's canvas (clip=), so its pixels are bit for bit those of ``render_all``."""
    x0, y0, w, h = rect
    if not transforms:
        return np.zeros((h, w), np.float32).astype(dtype)  # render_region's fill, cast as locally
    r = Renderer(affine=transforms, tilesize=sizes, clip=canvas, blend=blend, interpolation=interpolation,
                 threads=threads)
    img = r.render_region(rect, _loaders(sources), threads=threads)
    return img if img.dtype == dtype else img.astype(dtype)


def _worker_write(what: str, target: Path, write: Callable[[], None]) -> None:
    try:
        write()
    except PermissionError as exc:
        raise PermissionError(f"cannot write {what} into {target} on a Dask worker ({exc}); the output "
                              f"folder must be writable from every worker (shared storage)") from None


def _zarr_chunk_task(writer: OmeZarrWriter, iy: int, ix: int, block_args: _BlockArgs) -> None:
    writer.check_open()  # an aborted run: stop before the (expensive) rendering
    block = _render_block(*block_args)
    _worker_write(f"chunk ({iy}, {ix})", writer.path, lambda: writer.write_chunk(iy, ix, block))


def _zarr_build_task(writer: OmeZarrWriter, level: int, iy: int, ix: int) -> None:
    _worker_write(f"level {level} chunk ({iy}, {ix})", writer.path, lambda: writer.build_chunk(level, iy, ix))


# Made in a stack's temporary store when its run fails: tasks still queued or running then write
# nothing more, and the client removes the store once every task has finished.
_ABORTED = ".aborted"


def _stack_array(tmp: Path, level: int) -> zarr.Array:
    if not tmp.is_dir() or (tmp / _ABORTED).exists():
        raise FileNotFoundError(f"the temporary store {tmp} is gone (the run was aborted)")
    return zarr.open_array(tmp / str(level), mode="r+", zarr_format=2)


def _loaders(sources: Dict[TileKey, Any]) -> Dict[TileKey, Callable[[], np.ndarray]]:
    def loader(src: Any, t: TileKey) -> Callable[[], np.ndarray]:
        return lambda: _cached_tile(src, t)

    return {t: loader(src, t) for t, src in sources.items()}


def _flow_task(er: ElasticRenderer, sources: Dict[TileKey, Any], zs: List[int], size: int, step: float,
               settings: MatchSettings) -> List[SectionFlow]:
    return stack_flows(er, _loaders(sources), zs, size=size, step=step, settings=settings)


def _elastic_block(er: ElasticRenderer, z: int, region: Tuple[int, int, int, int], sources: Dict[TileKey, Any],
                   dtype: np.dtype, threads: int) -> np.ndarray:
    y, x, h, w = region
    return er.region(z, _loaders(sources), y, x, h, w, dtype, threads=threads)


def _stack_chunk_task(tmp: str, z: int, region: Tuple[int, int, int, int], block_args: Tuple,
                      block_fn: Callable[..., np.ndarray] = _render_block) -> None:
    y, x, h, w = region
    _stack_array(Path(tmp), 0)  # an aborted run: stop before the (expensive) rendering
    block = block_fn(*block_args)

    def write() -> None:
        _stack_array(Path(tmp), 0)[z, y:y + h, x:x + w] = block

    _worker_write(f"level {z} chunk at ({y}, {x})", Path(tmp), write)


def _stack_build_task(tmp: str, level: int, z: int, region: Tuple[int, int, int, int],
                      source_shape: Tuple[int, int]) -> None:
    y, x, h, w = region
    block = stack_pyramid_block(_stack_array(Path(tmp), level - 1), source_shape, z, region)

    def write() -> None:
        _stack_array(Path(tmp), level)[z, y:y + h, x:x + w] = block

    _worker_write(f"pyramid level {level} of z {z}", Path(tmp), write)


# --- the client side -------------------------------------------------------------------------


class DaskExecutor(Executor):
    """One montage / stack run on a client: tile sources as the workers see them, tile sizes and dtypes."""

    def __init__(self, client: Any, sources: Mapping[TileKeyT, Any], threads: int) -> None:
        self.client = check_client(client)
        # threads=0 means one per task: Dask's worker threads already fill the cores.
        self.threads = threads if threads > 0 else 1
        self._given = tile_dict(sources)
        self.rigor = _core.config.fft_planning()
        self.sources: Dict[TileKey, Any] = {}
        arrays = []
        for t, src in sources.items():
            if isinstance(src, (str, os.PathLike)):
                self.sources[t] = os.path.abspath(os.fspath(src))  # workers may run elsewhere
            elif callable(src):
                self.sources[t] = src
            else:
                arrays.append(t)
        if arrays:
            futures = self.client.scatter([np.asarray(sources[t]) for t in arrays], hash=False)
            self.sources.update(zip(arrays, futures))
        self.sizes: Dict[TileKey, Tuple[int, int]] = {}
        self.dtypes: Dict[TileKey, np.dtype] = {}

    # -- plumbing ----------------------------------------------------------------------

    def _settings(self, settings: MatchSettings) -> MatchSettings:
        return dataclasses.replace(settings, threads=self.threads)

    def _subset(self, tiles: Iterable[TileKey]) -> Dict[TileKey, Any]:
        return {t: self.sources[t] for t in dict.fromkeys(tiles)}

    def _batches(self, items: Sequence, per_thread: int = 4) -> List[Sequence]:
        nthreads = max(1, sum(self.client.nthreads().values()))
        size = max(1, math.ceil(len(items) / (per_thread * nthreads)))
        return [items[i:i + size] for i in range(0, len(items), size)]

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(_task, self.rigor, fn, *args, pure=False)

    def _map(self, fn: Callable, items: List[Tuple], *, desc: str, progress: bool, unit: str,
             stop: Optional[Callable[[], None]] = None) -> List[Any]:
        """fn(*args) for every args in items, as batched tasks; results in order. ``stop`` (for
        tasks that write): see ``_collect``."""
        batches = self._batches(items)
        futures = [self._submit(_run_batch, fn, list(b)) for b in batches]
        out: List[Any] = []
        for res in self._collect(futures, desc=desc, progress=progress, unit="batch", stop=stop):
            out.extend(res)
        return out

    def _collect(self, futures: List[Any], *, desc: str, progress: bool, unit: str,
                 stop: Optional[Callable[[], None]] = None) -> List[Any]:
        """Results in order; on the first failure (or Ctrl-C) the error is raised after the rest
        are dealt with: cancelled, or, for tasks that write (``stop`` given), told to stop
        (``stop()`` makes every further write refuse) and waited for, so no task is still running,
        or writes, when the caller removes what they wrote into."""
        from distributed import as_completed

        try:
            with tqdm(total=len(futures), desc=desc, unit=unit, disable=not progress, leave=False,
                      dynamic_ncols=True) as bar:
                # This client's loop: without it Dask looks for a default client, and the command
                # line's is not one (set_as_default=False).
                for fut in as_completed(futures, loop=self.client.loop):
                    if fut.status == "error":
                        fut.result()
                    bar.update(1)
            return [f.result() for f in futures]
        except BaseException:
            if stop is None:
                self.client.cancel(futures)
                raise
            stop()
            # Cancelling would not stop a task already running on a worker (Dask cannot interrupt
            # it): each one must end, which after stop() takes at most the chunk it is rendering.
            for fut in futures:  # distributed.wait would look for a default client too
                try:
                    fut.result()
                except KeyboardInterrupt:
                    raise
                except BaseException:  # its own failure, or cancelled (asyncio's CancelledError)
                    pass
            raise

    def _record(self, info: Mapping[TileKey, Tuple[Tuple[int, int], str]]) -> None:
        for t, (size, dt) in info.items():
            self.sizes[t] = (int(size[0]), int(size[1]))
            self.dtypes[t] = np.dtype(dt)

    # -- matching -----------------------------------------------------------------------

    def match(self, pairs: List[PairJob], settings: MatchSettings, *,
              progress: bool) -> List[PairMatches]:
        s = self._settings(settings)
        futures = [self._submit(_match_task, list(b), self._subset(t for p in b for t in p[:2]), s)
                   for b in self._batches(pairs)]
        out: List[PairMatches] = []
        for pms, info in self._collect(futures, desc="matching", progress=progress, unit="batch"):
            out.extend(pms)
            self._record(info)
        return out

    def probe(self, tiles: Sequence[TileKey]) -> None:
        """Sizes and dtypes of tiles that no match task has read."""
        todo = [t for t in tiles if t not in self.sizes]
        if todo:
            futures = [self._submit(_probe_task, self._subset(b)) for b in self._batches(todo, 1)]
            for info in self._collect(futures, desc="reading tiles", progress=False, unit="batch"):
                self._record(info)

    def rematch(self, items: List[Tuple[PairMatches, MatchSettings]], transforms: Mapping[TileKey, Affine], *,
                progress: bool) -> List[PairMatches]:
        """The second pass for every pair with kept matches (others are returned unchanged)."""
        todo = [k for k, (pm, _) in enumerate(items) if pm.kept.any()]
        work = [(items[k][0], transforms[items[k][0].tile1], transforms[items[k][0].tile2],
                 self._settings(items[k][1])) for k in todo]
        futures = [self._submit(_rematch_task, list(b), self._subset(t for pm, *_ in b for t in (pm.tile1, pm.tile2)))
                   for b in self._batches(work)]
        done = [pm for part in self._collect(futures, desc="matching (pass 2)", progress=progress, unit="batch")
                for pm in part]
        out = [pm for pm, _ in items]
        for k, pm in zip(todo, done):
            out[k] = pm
        return out

    def check_output(self, output: Any, overwrite: bool) -> Optional[Path]:
        return check_output(output, overwrite)

    def source_name(self, tile: TileKey) -> Optional[str]:
        src = self._given[tile]
        return str(Path(src)) if isinstance(src, (str, os.PathLike)) else None

    def overviews(self, parts: List[Tuple[Dict[TileKey, Affine], Dict[TileKey, Tuple[int, int]]]], *,
                  max_side: int = 1024, factor: Optional[int] = None) -> List[Overview]:
        futures = [self._submit(_overview_task, tf, sizes, self._subset(tf), max_side, factor, self.threads)
                   for tf, sizes in parts]
        return self._collect(futures, desc="overviews", progress=False, unit="level")

    def match_levels(self, level_keys: Sequence[Sequence[TileKey]], tf: Mapping[TileKey, Affine],
                     sizes: Mapping[TileKey, Tuple[int, int]], settings: MatchSettings,
                     overviews: Mapping[int, Overview], *, progress: bool) -> List[PairMatches]:
        s = self._settings(settings)
        futures = []
        for z in range(len(level_keys) - 1):
            lo, hi = level_keys[z], level_keys[z + 1]
            tiles = [*lo, *hi]
            futures.append(self._submit(_match_levels_task, self._subset(tiles), lo, hi,
                                        {t: tf[t] for t in tiles}, {t: sizes[t] for t in tiles}, z, s,
                                        {z: overviews[z], z + 1: overviews[z + 1]}))
        parts = self._collect(futures, desc="matching levels", progress=progress, unit="level")
        return [pm for part in parts for pm in part]

    # -- rendering ----------------------------------------------------------------------

    def _block_args(self, r: Renderer, tiles: Sequence[TileKey], rect: Tuple[float, float, int, int],
                    dtype: np.dtype) -> _BlockArgs:
        over = r.overlapping(rect)
        keep = set(tiles)
        use = [t for t in over if t in keep]
        assert r.afms is not None  # the workflows render with transforms (MontageResult.renderer)
        return ({t: r.afms[t] for t in use}, {t: r.imgsizes[t] for t in use}, r.blend, r.interpolation,
                rect, self._subset(use), dtype, self.threads, r.rect)

    def render(self, r: Renderer, tiles: Sequence[TileKey], dtype: np.dtype, *, output: Optional[Path],
               overwrite: bool, chunk: int, progress: bool,
               levels: Optional[Sequence[Sequence[TileKey]]]) -> Optional[np.ndarray]:
        h, w = r.shape
        x0, y0 = r.origin
        all_tiles = list(tiles)
        if output is None:
            grid = chunk_grid((h, w), chunk)
            zs = [all_tiles] if levels is None else levels
            items = [self._block_args(r, lv, (x0 + x, y0 + y, cw, ch), dtype) for lv in zs for (y, x, ch, cw) in grid]
            blocks = iter(self._map(_render_block, items, desc="rendering", progress=progress, unit="chunk"))
            image = np.empty((len(zs), h, w), dtype)
            for z in range(len(zs)):
                for (y, x, ch, cw) in grid:
                    image[z, y:y + ch, x:x + cw] = next(blocks)
            return image[0] if levels is None else image
        if levels is None:
            self._render_zarr(r, all_tiles, dtype, output, overwrite=overwrite, chunk=chunk, progress=progress)
        else:
            self._render_zarr_stack(r, levels, dtype, output, overwrite=overwrite, chunk=chunk, progress=progress)
        return None

    def _render_zarr(self, r: Renderer, tiles: Sequence[TileKey], dtype: np.dtype, path: Path, *,
                     overwrite: bool, chunk: int, progress: bool) -> None:
        x0, y0 = r.origin
        # Absolute: the workers open the temporary store by name, and their working folder is not ours.
        writer = OmeZarrWriter.create(path.absolute(), r.shape, dtype, chunk=chunk, overwrite=overwrite)
        try:
            gx = writer.grid_shape(0)[1]
            items = [(writer, k // gx, k % gx, self._block_args(r, tiles, (x0 + x, y0 + y, cw, ch), dtype))
                     for k, (y, x, ch, cw) in enumerate(writer.grid(0))]
            self._map(_zarr_chunk_task, items, desc=f"writing {path.name}", progress=progress, unit="chunk",
                      stop=writer.close_for_writing)
            for lv in range(1, writer.levels):
                gy, gx = writer.grid_shape(lv)
                self._map(_zarr_build_task, [(writer, lv, cy, cx) for cy in range(gy) for cx in range(gx)],
                          desc=f"pyramid level {lv}", progress=progress, unit="chunk",
                          stop=writer.close_for_writing)
            writer.commit()
        except BaseException as exc:
            err = writer.abort_for(exc)
            if err is exc:
                raise
            raise err from exc

    def _render_zarr_stack(self, r: Renderer, levels: Sequence[Sequence[TileKey]], dtype: np.dtype, path: Path, *,
                           overwrite: bool, chunk: int,
                           progress: bool) -> None:
        x0, y0 = r.origin
        self._write_stack(path, r.shape, len(levels), dtype,
                          lambda z, y, x, ch, cw: (self._block_args(r, levels[z], (x0 + x, y0 + y, cw, ch), dtype),
                                                   _render_block),
                          overwrite=overwrite, chunk=chunk, progress=progress)

    def _write_stack(self, path: Path, shape: Tuple[int, int], nz: int, dtype: np.dtype,
                     block: Callable[[int, int, int, int, int], Tuple[Tuple, Callable[..., np.ndarray]]], *,
                     overwrite: bool, chunk: int, progress: bool) -> None:
        """A (z, y, x) OME-Zarr whose chunk (z, y, x, h, w) is ``fn(*args)`` for ``args, fn = block(z, y, x, h,
        w)``, one task per batch of chunks, then the pyramid, then the rename."""
        tmp, shapes = create_stack_store(path.absolute(), shape, nz, dtype, chunk)

        def stop() -> None:
            (tmp / _ABORTED).touch()

        try:
            items = [(str(tmp), z, (y, x, ch, cw)) + block(z, y, x, ch, cw)
                     for z in range(nz) for (y, x, ch, cw) in chunk_grid(shape, chunk)]
            self._map(_stack_chunk_task, items, desc=f"writing {path.name}", progress=progress, unit="chunk",
                      stop=stop)
            for k in range(1, len(shapes)):
                build = [(str(tmp), k, z, region, shapes[k - 1])
                         for z in range(nz) for region in chunk_grid(shapes[k], chunk)]
                self._map(_stack_build_task, build, desc=f"pyramid level {k}", progress=progress, unit="chunk",
                          stop=stop)
            commit_store(tmp, path, overwrite=overwrite)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # -- elastic sections -----------------------------------------------------------------

    def section_flows(self, er: ElasticRenderer, *, size: int, step: float, settings: MatchSettings,
                      progress: bool) -> List[SectionFlow]:
        """One task per run of consecutive pairs (each renders its sections once)."""
        lv = er.levels
        futures = [self._submit(_flow_task, er, self._subset(t for z in b for t in lv[z] + lv[z + 1]), list(b),
                                size, step, self._settings(settings))
                   for b in self._batches(list(range(len(lv) - 1)), per_thread=1)]
        parts = self._collect(futures, desc="section flow", progress=progress, unit="batch")
        return [f for part in parts for f in part]

    def render_elastic(self, er: ElasticRenderer, dtype: np.dtype, *, output: Optional[Path], overwrite: bool,
                       chunk: int, progress: bool) -> Optional[np.ndarray]:
        def args(z: int, region: Tuple[int, int, int, int]) -> Tuple:
            return (er, z, region, self._subset(er.levels[z]), dtype, self.threads)

        h, w = er.shape
        nz = len(er.levels)
        if output is not None:
            self._write_stack(output, er.shape, nz, dtype, lambda z, y, x, ch, cw: (args(z, (y, x, ch, cw)),
                                                                                     _elastic_block),
                              overwrite=overwrite, chunk=chunk, progress=progress)
            return None
        grid = chunk_grid((h, w), chunk)
        blocks = iter(self._map(_elastic_block, [args(z, region) for z in range(nz) for region in grid],
                                desc="rendering", progress=progress, unit="chunk"))
        image = np.empty((nz, h, w), dtype)
        for z in range(nz):
            for (y, x, ch, cw) in grid:
                image[z, y:y + ch, x:x + cw] = next(blocks)
        return image


def check_output(output: Any, overwrite: bool) -> Optional[Path]:
    """Checks an output for a cluster run up front, before any work is sent out."""
    if output is None:
        return None
    path = Path(output)
    if output_kind(path) != "zarr":
        raise ValueError(f"with a Dask client the output must be OME-Zarr (name it *.ome.zarr), got "
                         f"{path.name!r}: a TIFF is one file written front to back, which the workers "
                         f"cannot share; write OME-Zarr, or leave client=None to write a TIFF here")
    check_output_path(path, overwrite=overwrite)
    return path


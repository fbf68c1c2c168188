"""OME-Zarr output: written chunk by chunk (from threads or Dask workers), with a pyramid.

Every writer follows the same rules: the output is built under a temporary
name next to the final path and renamed only once it is complete, so an
interrupted or failed run (an exception, Ctrl-C, a full disk) never leaves a
half-written store under the final name. An existing output is refused
unless ``overwrite=True``, and even then it is replaced only after the new
one is complete.

Coordinates: arrays are indexed (row, col) = (y, x); chunk rectangles are
``(y0, x0, h, w)`` in output pixels, and ``region_fn(y0, x0, h, w)`` must
return the ``(h, w)`` block of rows ``y0:y0+h`` and columns ``x0:x0+w``.
For a ``Renderer`` canvas with origin ``(ox, oy)`` that is
``renderer.render_region((ox + x0, oy + y0, w, h), tiles)`` (note the
(x, y, width, height) order there).
"""
from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import tempfile
import uuid
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from .._validate import as_float, as_int, resolve_threads
from .atomic import UMASK, check_output_path, disk_full, remove_stale_temporaries, temp_owner
from .formats import ZARR_SUFFIXES, Region, as_chunk, as_dtype, as_shape, matching_suffix, to_dtype
from .pyramid import auto_levels, chunk_grid, downsample, level_shapes, max_levels
import numcodecs
import zarr
from tqdm.auto import tqdm

STATE_FILE = ".spectralign-writer.json"  # writer state inside the temporary store only
NGFF_VERSION = "0.4"


def _as_pixel_size(pixel_size: Any) -> Tuple[float, float]:
    if np.ndim(pixel_size) == 0:
        v = as_float(pixel_size, "pixel_size")
        sy = sx = v
    else:
        values = list(np.asarray(pixel_size, dtype=object).ravel())
        if len(values) != 2:
            raise ValueError(f"pixel_size must be one number or a (y, x) pair, got {pixel_size!r}")
        sy, sx = as_float(values[0], "pixel_size y"), as_float(values[1], "pixel_size x")
    if sy <= 0 or sx <= 0:
        raise ValueError(f"pixel_size must be positive, got {(sy, sx)}")
    return sy, sx


def _multiscales(name: str, level_shapes: List[Tuple[int, int]], pixel_size: Tuple[float, float],
                 unit: Optional[str]) -> dict:
    axes = []
    for ax in ("y", "x"):
        entry = {"name": ax, "type": "space"}
        if unit is not None:
            entry["unit"] = unit
        axes.append(entry)
    datasets = []
    for level in range(len(level_shapes)):
        k = 2 ** level
        # Level-l pixel i is the mean of level-0 pixels k*i .. k*i + k - 1: its centre
        # lies (k - 1) / 2 level-0 pixels on from k*i.
        datasets.append({
            "path": str(level),
            "coordinateTransformations": [
                {"type": "scale", "scale": [pixel_size[0] * k, pixel_size[1] * k]},
                {"type": "translation",
                 "translation": [pixel_size[0] * (k - 1) / 2, pixel_size[1] * (k - 1) / 2]},
            ],
        })
    return {"multiscales": [{
        "version": NGFF_VERSION,
        "name": name,
        "axes": axes,
        "datasets": datasets,
        "type": "mean",
        "metadata": {"description": "each level is the 2x2 mean of the one before; blocks cut "
                                    "short by an odd edge are averaged over the pixels present",
                     "method": "spectralign_fast.io.downsample"},
    }]}


def _final_from_tmp(tmp: Path) -> Path:
    name = tmp.name
    cut = name.rfind(".partial-")
    if cut <= 0:
        raise ValueError(f"{tmp} is not a temporary OME-Zarr store made by OmeZarrWriter.create "
                         f"(its name should look like '<name>.partial-<random>')")
    return tmp.with_name(name[:cut])


class OmeZarrWriter:
    """An OME-Zarr image written chunk by chunk, possibly from several processes.

    Create one with ``create``; write every level-0 chunk with
    ``write_chunk``, then every chunk of levels 1, 2, ... with
    ``build_chunk``; finally ``commit`` (or ``abort``). Until the
    commit everything lives in a temporary sibling directory
    ``<name>.partial-<pid>@<host>-<random>``, so the final path only ever holds a
    complete store; ``create`` removes such folders of the same output left by
    processes of this machine that no longer exist (killed runs).

    The format is OME-NGFF 0.4 on Zarr format 2 (``.zgroup``/``.zattrs``,
    Blosc-LZ4 chunks): the version that every current reader opens
    (napari-ome-zarr, ome-zarr-py, Fiji/MoBIE, neuroglancer, vizarr), while
    NGFF 0.5 on Zarr format 3 needs the newest ones. Axes are ``y, x``
    (rows, columns); level ``l`` is stored at path ``"l"`` with a ``scale``
    of ``2**l`` times the pixel size and a ``translation`` of
    ``(2**l - 1) / 2`` pixels, which puts each downsampled pixel at the centre
    of the level-0 pixels it averages.

    One chunk is one zarr chunk file (chunks are aligned, and zarr writes each
    file under a temporary name and renames it), so a task that is re-run
    after a worker died simply overwrites its chunk whole. The writer pickles
    as its temporary path: send it to other processes, or re-open the store
    there with ``open``.
    """

    def __init__(self, tmp_path: Path, state: dict) -> None:
        self._tmp = Path(tmp_path)
        # The final path is the temporary's own name without ".partial-<random>", in the same
        # folder: never taken from the state file alone, which anyone could have edited.
        self._path = _final_from_tmp(self._tmp).absolute()
        try:
            named = Path(state["path"])
            self._shape = (int(state["shape"][0]), int(state["shape"][1]))
            self._dtype = as_dtype(state["dtype"])
            self._chunk = (int(state["chunk"][0]), int(state["chunk"][1]))
            self._levels = int(state["levels"])
            overwrite = state["overwrite"]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"the writer state in {self._tmp} is damaged ({exc!r}); abort this store and "
                             f"write the output again") from None
        # Only the name is compared: another machine may mount the same folder elsewhere.
        if named.name != self._path.name:
            raise ValueError(f"the writer state in {self._tmp} names {named}, but this temporary store can "
                             f"only become {self._path}: the store was moved or its state edited; refusing "
                             f"to use it")
        if not isinstance(overwrite, bool) or min(self._shape + self._chunk) < 1 or self._levels < 1:
            raise ValueError(f"the writer state in {self._tmp} is damaged; abort this store and write the "
                             f"output again")
        self._overwrite = overwrite
        self._level_shapes = level_shapes(self._shape, self._levels)
        self._arrays: Dict[int, zarr.Array] = {}

    # -- construction ---------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, shape: Any, dtype: Any, *, chunk: Any = 1024,
               levels: Optional[int] = None, overwrite: bool = False, name: Optional[str] = None,
               pixel_size: Any = 1.0, unit: Optional[str] = None) -> "OmeZarrWriter":
        """Create the temporary store for an image of ``shape`` and ``dtype``.

        Parameters
        ----------
        path : str or PathLike
            The final path, ending in ``.ome.zarr`` or ``.zarr``; it must not
            exist unless ``overwrite``.
        shape : (height, width)
            Level-0 size in pixels (rows, columns).
        dtype : uint8, uint16 or float32
        chunk : int or (ch, cw)
            Chunk size in pixels, the same at every level (cut to the level's
            size when that is smaller). Default 1024.
        levels : int, optional
            Number of pyramid levels including level 0. Default: halve until
            the largest side fits in one chunk (at least 1 level).
        overwrite : bool
            Replace an existing output at ``path`` on ``commit``.
        name : str, optional
            The image name in the metadata (default: the file name without
            its suffix).
        pixel_size : float or (y, x)
            Physical size of a level-0 pixel (default 1), in ``unit``.
        unit : str, optional
            An OME-NGFF space unit such as ``"micrometer"`` or ``"nanometer"``.
        """
        final = Path(path)
        suffix = matching_suffix(final, ZARR_SUFFIXES, "OME-Zarr")
        check_output_path(final, overwrite=overwrite)
        shp = as_shape(shape)
        dt = as_dtype(dtype)
        ch = as_chunk(chunk)
        if levels is None:
            nlev = auto_levels(shp, ch)
        else:
            nlev = as_int(levels, "levels", minimum=1)
            if nlev > max_levels(shp):
                raise ValueError(f"levels={nlev} is too many for a {shp[0]} x {shp[1]} image: "
                                 f"level {max_levels(shp) - 1} is already 1 x 1; use at most "
                                 f"{max_levels(shp)}")
        check_output_size(final, shp, dt, ch)
        psize = _as_pixel_size(pixel_size)
        if unit is not None and not isinstance(unit, str):
            raise TypeError(f"unit must be a string such as 'micrometer', got {type(unit).__name__}")
        if name is None:
            name = final.name[:-len(suffix)]
        elif not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")

        try:
            remove_stale_temporaries(final, "dir")
            tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}.partial-{temp_owner()}-", dir=final.parent))
        except PermissionError:
            raise PermissionError(f"cannot create a folder next to {final}: the output folder "
                                  f"is not writable; choose another output path") from None
        state = {"path": str(final.absolute()), "shape": list(shp), "dtype": dt.name,
                 "chunk": list(ch), "levels": nlev, "overwrite": bool(overwrite)}
        try:
            os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes it private
            group = zarr.open_group(tmp, mode="w", zarr_format=2)
            shapes = level_shapes(shp, nlev)
            for level, lshape in enumerate(shapes):
                group.create_array(
                    str(level), shape=lshape, dtype=dt,
                    chunks=(min(ch[0], lshape[0]), min(ch[1], lshape[1])),
                    fill_value=0,
                    compressors=numcodecs.Blosc(cname="lz4", clevel=5,
                                                shuffle=numcodecs.Blosc.SHUFFLE),
                    config={"write_empty_chunks": True})
            group.attrs.update(_multiscales(name, shapes, psize, unit))
            with open(tmp / STATE_FILE, "w") as f:
                json.dump(state, f)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            full = disk_full(exc, final)
            if full is not None:
                raise full from exc
            raise
        return cls(tmp, state)

    @classmethod
    def open(cls, tmp_path: str | os.PathLike) -> "OmeZarrWriter":
        """Re-open a temporary store (``writer.tmp_path``), e.g. in another process."""
        tmp = Path(tmp_path)
        _final_from_tmp(tmp)
        state_file = tmp / STATE_FILE
        if not state_file.is_file():
            raise FileNotFoundError(f"{tmp} is not an open OmeZarrWriter store (missing, or "
                                    f"already committed or aborted)")
        with open(state_file) as f:
            state = json.load(f)
        return cls(tmp, state)

    def __reduce__(self):
        return (OmeZarrWriter.open, (str(self._tmp),))

    def __repr__(self) -> str:
        return (f"OmeZarrWriter({str(self._path)!r}, shape={self._shape}, dtype={self._dtype.name}, "
                f"chunk={self._chunk}, levels={self._levels})")

    # -- properties -----------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The final path (written by ``commit``)."""
        return self._path

    @property
    def tmp_path(self) -> Path:
        """The temporary store that chunks are written into."""
        return self._tmp

    @property
    def shape(self) -> Tuple[int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def chunk(self) -> Tuple[int, int]:
        return self._chunk

    @property
    def levels(self) -> int:
        return self._levels

    @property
    def level_shapes(self) -> List[Tuple[int, int]]:
        """(height, width) of every level; each is the ceiling half of the one before."""
        return list(self._level_shapes)

    def level_chunk(self, level: int) -> Tuple[int, int]:
        """Chunk (height, width) of ``level``: ``chunk``, cut to the level's size."""
        h, w = self._level_shapes[self._check_level(level)]
        return min(self._chunk[0], h), min(self._chunk[1], w)

    def grid(self, level: int = 0) -> List[Region]:
        """The chunks ``(y0, x0, h, w)`` of ``level``, row-major (see ``chunk_grid``)."""
        return chunk_grid(self._level_shapes[self._check_level(level)], self.level_chunk(level))

    def grid_shape(self, level: int = 0) -> Tuple[int, int]:
        """Number of chunk rows and columns of ``level``."""
        (h, w), (ch, cw) = self._level_shapes[self._check_level(level)], self.level_chunk(level)
        return -(-h // ch), -(-w // cw)

    # -- writing --------------------------------------------------------------------

    def _check_level(self, level: Any) -> int:
        lv = as_int(level, "level", minimum=0)
        if lv >= self._levels:
            raise ValueError(f"level {lv} does not exist: this store has levels 0..{self._levels - 1}")
        return lv

    def check_open(self) -> None:
        """Raise FileNotFoundError when the store takes no more chunks (committed, aborted, or
        closed for writing)."""
        if not (self._tmp / STATE_FILE).is_file():
            raise FileNotFoundError(f"the temporary store {self._tmp} is gone (committed or "
                                    f"aborted); no more chunks can be written")

    def close_for_writing(self) -> None:
        """Make every further ``write_chunk``/``build_chunk`` (in any process) refuse, the first step
        of an abort while other processes may still be writing: once they have all finished,
        ``abort()`` removes the store and nothing can write into it again."""
        try:
            os.unlink(self._tmp / STATE_FILE)
        except FileNotFoundError:
            pass

    def _array(self, level: int) -> zarr.Array:
        # Checked before every write, not only the first: a cached array would otherwise write on
        # (and zarr recreate the folders) after the store was aborted.
        self.check_open()
        arr = self._arrays.get(level)
        if arr is None:
            # Every chunk must exist as a file, even one that is all fill value: commit()
            # and build_chunk() check completeness by the files. (zarr 3.1 ignores a
            # config= passed to open_array, so it is set on the opened array.)
            arr = zarr.open_array(self._tmp / str(level), mode="r+", zarr_format=2).with_config(
                {"write_empty_chunks": True})
            self._arrays[level] = arr
        return arr

    def _region(self, level: int, iy: Any, ix: Any) -> Region:
        gy, gx = self.grid_shape(level)
        cy, cx = as_int(iy, "iy", minimum=0), as_int(ix, "ix", minimum=0)
        if cy >= gy or cx >= gx:
            raise ValueError(f"chunk ({cy}, {cx}) is outside level {level}'s grid of "
                             f"{gy} x {gx} chunks (rows, columns)")
        (h, w), (ch, cw) = self._level_shapes[level], self.level_chunk(level)
        y0, x0 = cy * ch, cx * cw
        return y0, x0, min(ch, h - y0), min(cw, w - x0)

    def _chunk_file(self, level: int, cy: int, cx: int) -> Path:
        return self._tmp / str(level) / f"{cy}.{cx}"

    def write_chunk(self, iy: int, ix: int, data: Any) -> None:
        """Write level-0 chunk (iy, ix), i.e. rows ``iy*ch : iy*ch + h``, columns ``ix*cw : ...``.

        ``data`` must have exactly the chunk's shape ``(h, w)`` (edge chunks
        are smaller; see ``grid``). Floats written to an integer store are
        rounded and clipped; NaN or inf is refused.
        """
        y0, x0, h, w = self._region(0, iy, ix)
        block = to_dtype(data, self._dtype, (h, w), f"chunk ({iy}, {ix})")
        self._array(0)[y0:y0 + h, x0:x0 + w] = block

    def build_chunk(self, level: int, iy: int, ix: int) -> None:
        """Compute chunk (iy, ix) of ``level`` >= 1 from ``level - 1`` (2x2 mean, see
        ``downsample``); the source chunks must have been written."""
        lv = self._check_level(level)
        if lv == 0:
            raise ValueError("level 0 is written with write_chunk(); build_chunk makes levels >= 1")
        y0, x0, h, w = self._region(lv, iy, ix)
        sh, sw = self._level_shapes[lv - 1]
        sy0, sx0 = 2 * y0, 2 * x0
        sy1, sx1 = min(2 * (y0 + h), sh), min(2 * (x0 + w), sw)
        sch, scw = self.level_chunk(lv - 1)
        missing = [(cy, cx) for cy in range(sy0 // sch, -(-sy1 // sch))
                   for cx in range(sx0 // scw, -(-sx1 // scw))
                   if not self._chunk_file(lv - 1, cy, cx).is_file()]
        if missing:
            raise RuntimeError(f"level {lv} chunk ({iy}, {ix}) needs level {lv - 1} chunks "
                               f"{missing[:4]} which have not been written yet; write every "
                               f"chunk of a level before building the next")
        src = self._array(lv - 1)[sy0:sy1, sx0:sx1]
        self._array(lv)[y0:y0 + h, x0:x0 + w] = downsample(src, 2)

    def missing_chunks(self) -> List[Tuple[int, int, int]]:
        """``(level, iy, ix)`` of every chunk not written yet."""
        out: List[Tuple[int, int, int]] = []
        for level in range(self._levels):
            gy, gx = self.grid_shape(level)
            have = set(os.listdir(self._tmp / str(level)))
            out.extend((level, cy, cx) for cy in range(gy) for cx in range(gx)
                       if f"{cy}.{cx}" not in have)
        return out

    # -- finishing ------------------------------------------------------------------

    def commit(self) -> Path:
        """Move the finished store to the final path and return that path.

        Refused (nothing moved) while chunks are missing. An existing output
        is replaced only when the writer was created with ``overwrite=True``,
        and only now that the new store is complete; if the move fails the old
        output is put back.
        """
        if not (self._tmp / STATE_FILE).is_file():
            raise FileNotFoundError(f"the temporary store {self._tmp} is gone (already committed "
                                    f"or aborted)")
        missing = self.missing_chunks()
        if missing:
            raise RuntimeError(f"cannot commit {self._path}: {len(missing)} chunks are not "
                               f"written yet (first: level, iy, ix = {missing[0]})")
        drop_partial_files(self._tmp)
        final = self._path
        old = None
        if final.exists() or final.is_symlink():
            if not self._overwrite:
                raise FileExistsError(f"output already exists: {final}; delete it, choose "
                                      f"another path, or create the writer with overwrite=True")
            if not _is_zarr_store(final):
                raise FileExistsError(f"{final} exists and is not an OME-Zarr store; it is not replaced "
                                      f"(nothing was deleted): remove it yourself or choose another path")
            old = final.with_name(f"{final.name}.old-{uuid.uuid4().hex[:12]}")
            os.rename(final, old)
        try:
            os.rename(self._tmp, final)
        except BaseException:
            if old is not None:
                os.rename(old, final)
            raise
        self._arrays.clear()
        os.unlink(final / STATE_FILE)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def abort(self) -> None:
        """Remove the temporary store (nothing else is touched)."""
        self._arrays.clear()
        if self._tmp.is_dir() and not self._tmp.is_symlink():
            shutil.rmtree(self._tmp, ignore_errors=True)

    def abort_for(self, exc: BaseException) -> BaseException:
        """``abort()`` after ``exc`` ended the run; returns what to raise: ``exc``, or an
        OSError that says the disk is full when that is what happened."""
        self.abort()
        full = disk_full(exc, self.path)
        return exc if full is None else full


def _is_zarr_store(path: Path) -> bool:
    """A real folder holding a Zarr group (format 2 or 3), i.e. something a writer made."""
    return path.is_dir() and not path.is_symlink() and ((path / ".zgroup").is_file()
                                                        or (path / "zarr.json").is_file())


# A store needs one file per chunk; far beyond this no file system copes.
_MAX_CHUNK_FILES = 10**9
# Level 0 uncompressed against the free disk: LZ4 rarely saves more than a few times on images,
# so beyond this factor the output cannot fit (a mistyped shape, usually).
_MAX_BYTES_PER_FREE_BYTE = 64


def check_output_size(path: Path, shape: Tuple[int, int], dtype: np.dtype, chunk: Tuple[int, int]) -> None:
    """Refuse, before anything is written, an output that cannot fit: more chunk files than a
    file system holds, or far more data than the free disk space (clear ValueError)."""
    h, w = shape
    nchunks = -(-h // chunk[0]) * -(-w // chunk[1])
    if nchunks > _MAX_CHUNK_FILES:
        raise ValueError(f"a {h} x {w} image in chunks of {chunk[0]} x {chunk[1]} needs {nchunks:.3g} chunk "
                         f"files at full resolution alone; use larger chunks or check the shape")
    nbytes = h * w * dtype.itemsize
    try:
        free = shutil.disk_usage(path.parent if str(path.parent) else Path(".")).free
    except OSError:
        return
    if nbytes > _MAX_BYTES_PER_FREE_BYTE * free:
        raise ValueError(f"a {h} x {w} {dtype} image holds {nbytes / 2**30:.3g} GiB uncompressed, more than "
                         f"{_MAX_BYTES_PER_FREE_BYTE}x the {free / 2**30:.3g} GiB free at {path.parent}; check the "
                         f"shape, or free space")


def drop_partial_files(store: Path) -> None:
    """Remove zarr's ``*.partial`` files (a chunk write cut short when its process died;
    the chunk itself is written again whole by the re-run task)."""
    for p in store.rglob("*.partial"):
        p.unlink(missing_ok=True)


def _run_tasks(tasks: Iterable[Callable[[], None]], threads: int, bar: Any) -> None:
    """Run tasks on a pool, taking them from the iterable as workers free up (never the whole
    list at once); the first failure stops the rest and is raised once all running tasks have
    stopped (so nothing writes into a store being removed)."""
    if threads <= 1:
        for task in tasks:
            task()
            bar.update(1)
        return
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="spectralign-output")
    todo = iter(tasks)
    try:
        pending = {pool.submit(task) for task in itertools.islice(todo, 2 * threads)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                fut.result()
                bar.update(1)
            pending |= {pool.submit(task) for task in itertools.islice(todo, len(done))}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def write_ome_zarr(path: str | os.PathLike, shape: Any, dtype: Any,
                   region_fn: Callable[[int, int, int, int], Any], *, chunk: Any = 1024,
                   levels: Optional[int] = None, overwrite: bool = False, threads: int = 0,
                   progress: bool = False, name: Optional[str] = None, pixel_size: Any = 1.0,
                   unit: Optional[str] = None) -> Path:
    """Render an image chunk by chunk into an OME-Zarr store with a pyramid.

    Parameters
    ----------
    path : str or PathLike
        Ends in ``.ome.zarr`` or ``.zarr``.
    shape : (height, width)
        Level-0 size (rows, columns).
    dtype : uint8, uint16 or float32
    region_fn : callable
        ``region_fn(y0, x0, h, w)`` returns the ``(h, w)`` block of rows
        ``y0:y0+h`` and columns ``x0:x0+w`` (note: (row, col) order, unlike
        ``Renderer.render_region``'s (x, y, w, h) rectangle). Called once per
        level-0 chunk, from several threads at once: it must be thread-safe,
        and it runs in parallel when it releases the GIL (the renderer does).
        Floats are rounded and clipped for integer dtypes; NaN is refused.
    chunk : int or (ch, cw)
        Chunk size in pixels (default 1024), as in ``OmeZarrWriter.create``.
    levels : int, optional
        Pyramid levels including level 0 (default: halve until one chunk holds
        the largest side).
    name : str, optional
        Image name in the metadata (default: the file name without its suffix).
    pixel_size : float or (y, x)
        Physical size of a level-0 pixel (default 1), in ``unit``.
    unit : str, optional
        An OME-NGFF space unit such as ``"micrometer"``.
    overwrite : bool
        Replace an existing output, only once the new one is complete.
    threads : int
        Chunks rendered and written at once; 0 (default) means all cores.
    progress : bool
        Show a tqdm progress bar (one step per chunk, all levels).

    Returns
    -------
    Path
        The final path. On any exception (including KeyboardInterrupt) the
        temporary store is removed and the exception re-raised, so nothing
        ever appears under ``path``; a full disk is reported as an OSError
        that says so.
    """
    if not callable(region_fn):
        raise TypeError(f"region_fn must be a function region_fn(y0, x0, h, w) -> (h, w) array, "
                        f"got {type(region_fn).__name__}")
    nthreads = resolve_threads(threads)
    writer = OmeZarrWriter.create(path, shape, dtype, chunk=chunk, levels=levels,
                                  overwrite=overwrite, name=name, pixel_size=pixel_size, unit=unit)
    try:
        total = sum(math.prod(writer.grid_shape(lv)) for lv in range(writer.levels))
        with tqdm(total=total, disable=not progress, unit="chunk",
                  desc=f"writing {writer.path.name}") as bar:
            gy0, gx0 = writer.grid_shape(0)

            def level0(cy: int, cx: int) -> Callable[[], None]:
                def task() -> None:
                    writer.write_chunk(cy, cx, region_fn(*writer._region(0, cy, cx)))
                return task

            _run_tasks((level0(cy, cx) for cy in range(gy0) for cx in range(gx0)), nthreads, bar)
            def build(lv: int, cy: int, cx: int) -> Callable[[], None]:
                return lambda: writer.build_chunk(lv, cy, cx)

            for lv in range(1, writer.levels):
                gy, gx = writer.grid_shape(lv)
                _run_tasks((build(lv, cy, cx) for cy in range(gy) for cx in range(gx)), nthreads, bar)
        return writer.commit()
    except BaseException as exc:
        err = writer.abort_for(exc)
        if err is exc:
            raise
        raise err from exc


def read_ome_zarr(path: str | os.PathLike, level: int = 0) -> np.ndarray:
    """Read one pyramid level of an OME-Zarr image as a NumPy array (rows, columns).

    ``path`` is a store written by ``write_ome_zarr`` or
    ``OmeZarrWriter`` (or any 2-D OME-NGFF 0.4 image); ``level`` counts
    from 0 (full resolution), following the ``multiscales`` dataset order.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"OME-Zarr store not found: {p}")
    try:
        group = zarr.open_group(p, mode="r")
        attrs: Dict[str, Any] = group.attrs.asdict()  # JSON of whatever shape the file has
        multiscales = attrs.get("multiscales")
        if "ome" in attrs:  # NGFF 0.5 nests the metadata under "ome"
            multiscales = attrs["ome"].get("multiscales")
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"cannot read OME-Zarr store {p}: {exc}") from exc
    if not multiscales:
        raise ValueError(f"{p} has no OME-NGFF 'multiscales' metadata; is it an OME-Zarr image?")
    datasets = multiscales[0]["datasets"]
    lv = as_int(level, "level", minimum=0)
    if lv >= len(datasets):
        raise ValueError(f"level {lv} does not exist: {p} has levels 0..{len(datasets) - 1}")
    arr = group[datasets[lv]["path"]]
    if not isinstance(arr, zarr.Array):
        raise ValueError(f"level {lv} of {p} ({datasets[lv]['path']!r}) is a group, not an array")
    return np.asarray(arr[...])

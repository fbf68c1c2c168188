"""Renderer: tiles warped into model space and blended, as spectralign's ``Renderer``.

Coordinates: points are (x, y) = (column, row). A tile's pixel (row r,
column c) has its centre at tile coordinates (x, y) = (c, r) and the tile
covers the area [-0.5, W - 0.5) x [-0.5, H - 0.5). Output pixel (row i,
column j) of the canvas shows model point (x0 + j, y0 + i), where
(x0, y0) = ``Renderer.origin``.

The work happens in C++: the output is cut into blocks, each block knows the
tiles that overlap it, and every output pixel is sampled from each covering
tile through the inverse transform, on all cores with the GIL released.
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Hashable, List, Literal, Mapping, Optional, Sequence, Tuple, Union, overload

import numpy as np

from .. import _core
from .._types import TileKey, TileKeyT, tile_dict
from ..io.images import read_image
from .._validate import as_float, as_int, as_native, as_point, as_size, rows_are_contiguous
from ..transforms.affine import Affine

_INTERPOLATIONS = ("linear", "nearest", "cubic")
_DTYPES = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16",
           np.dtype(np.float32): "float32"}
_EPS = 1e-9


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


def _check_bytes(nbytes: float, what: str) -> None:
    """Refuses (ValueError) an allocation larger than this machine's memory."""
    ram = _physical_memory()
    if nbytes > ram:
        raise ValueError(f"{what} would need about {nbytes / 1e9:.1f} GB, more than this "
                         f"machine's {ram / 1e9:.1f} GB of memory; render it in pieces with "
                         f"render_region()")


def _as_render_image(img: Any, what: str) -> np.ndarray:
    """A 2-D uint8/uint16/float32 array with contiguous rows, as a view when possible.

    float64 is converted to float32 (one copy); other dtypes are refused.
    """
    if isinstance(img, (str, os.PathLike)):
        img = read_image(img)
    arr = np.asarray(img)
    if arr.dtype.kind in "uif":
        arr = as_native(arr)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype not in _DTYPES:
        raise TypeError(f"{what} has dtype {arr.dtype}; the renderer takes uint8, uint16 or "
                        f"float32 (float64 is converted to float32)")
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D (height, width), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{what} is empty (shape {arr.shape})")
    if not rows_are_contiguous(arr) or not arr.flags.aligned:
        arr = np.array(arr, order="C", copy=True)  # the one documented copy: the core reads rows by stride
    if arr.dtype == np.float32 and not _core.image.all_finite(arr):
        raise ValueError(f"{what} contains NaN or inf pixels, which would spread into the output; "
                         f"replace them first (e.g. numpy.nan_to_num)")
    return arr


def tile_corners(tf: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Model-space corners (4, 2) of a tile's area, in order around it."""
    w, h = size
    c = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    return c @ tf[:, :2].T + tf[:, 2]


def _clip_convex(poly: np.ndarray, clipper: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: the part of convex polygon `poly` inside convex `clipper`."""
    def area2(p: np.ndarray) -> float:
        x, y = p[:, 0], p[:, 1]
        return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))

    orient = 1.0 if area2(clipper) > 0 else -1.0
    out = list(poly)
    for k in range(len(clipper)):
        a, b = clipper[k], clipper[(k + 1) % len(clipper)]
        inp, out = out, []
        if not inp:
            break

        def side(p: np.ndarray) -> float:
            return orient * ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))

        for m in range(len(inp)):
            p, q = inp[m], inp[(m + 1) % len(inp)]
            sp, sq = side(p), side(q)
            if sp >= 0:
                out.append(p)
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                out.append(p + t * (q - p))
    return np.array(out).reshape(-1, 2)


class Renderer:
    """Renders tiles into model space, blended, as spectralign's ``Renderer``.

    Parameters
    ----------
    rigid : dict, optional
        ``{tile: (x, y)}`` from ``Placement.rigid()``: the model position of
        the tile's pixel (0, 0). Subpixel positions are kept (the tile is
        resampled), not rounded.
    affine : dict, optional
        ``{tile: Affine}`` from ``Placement.affine()``, each mapping tile
        coordinates (x, y) to model space. Give exactly one of rigid and affine.
    tilesize : (W, H) or dict
        Width and height of every tile, or ``{tile: (W, H)}``.
    clip : bool or (x0, y0, w, h)
        False (default): the canvas covers the union of the tiles. True: the
        bounding box of the intersection of all tiles. A rectangle: that
        rectangle of model space, output pixel (0, 0) at model point (x0, y0).
    blend : float
        Feathering radius in tile pixels (default 10): every output pixel is
        the weighted mean of the tiles covering it, with weights rising
        linearly from 0 at a tile's edge to 1 at ``blend`` pixels inside, so
        there are no seams and the order of ``render`` calls does not matter.
        0 gives hard seams: the covering tile whose centre is nearest wins
        (on an exact tie the larger value, again independent of order).
    interpolation : {"linear", "nearest", "cubic"}
        Sampling of the tiles (cubic: Catmull-Rom; edges replicated).
    fill : float
        Value of output pixels that no tile covers (default 0).
    threads : int
        Threads for rendering; 0 (default) means all cores.

    Notes
    -----
    The output dtype follows the input (uint8, uint16 or float32; float64
    input is converted to float32 once). Weighted sums accumulate in float64
    (so tiles near the float32 maximum blend without overflow), weights in
    float32; integer output is rounded and clamped to the dtype's range. Input
    images are never modified. Tiles are blended in the order the renderer
    was given them, whatever the order of a ``render_all``/``render_region``
    dict, and ``render_region`` of a rectangle at whole-pixel offsets inside
    the canvas gives bit for bit the same pixels as ``render_all``.

    Incremental ``render()`` keeps a float64 and a float32 accumulator of the
    canvas size (12 bytes per output pixel); ``render_all()`` and
    ``render_region()`` need only the output itself (``render_all`` keeps the
    coverage as a bit mask, 1 bit per output pixel, until ``coverage`` is
    first read, which unpacks it to a bool mask) plus small per-thread
    scratch.
    """

    def __init__(self, rigid: Optional[Mapping[TileKeyT, Any]] = None,
                 affine: Optional[Mapping[TileKeyT, Any]] = None,
                 tilesize: Any = None, clip: Any = False, blend: float = 10, *,
                 interpolation: str = "linear", fill: float = 0.0, threads: int = 0) -> None:
        if (rigid is None) == (affine is None):
            raise ValueError("give exactly one of rigid= (tile positions) and affine= (tile transforms)")
        given = rigid if rigid is not None else affine
        if not isinstance(given, Mapping):
            raise TypeError(f"{'rigid' if rigid is not None else 'affine'} must be a dict "
                            f"{{tile: ...}}, got {type(given).__name__}")
        if len(given) == 0:
            raise ValueError("there are no tiles to render")
        keys = list(given.keys())
        self._tiles: List[TileKey] = list(keys)
        self._index = {t: k for k, t in enumerate(self._tiles)}
        tfs = np.empty((len(self._tiles), 2, 3))
        for k, t in enumerate(keys):
            if rigid is not None:
                x, y = as_point(rigid[t], f"position of tile {t!r}")
                tfs[k] = [[1.0, 0.0, x], [0.0, 1.0, y]]
            elif affine is not None:
                try:
                    tfs[k] = Affine(affine[t]).view(np.ndarray)
                except (TypeError, ValueError) as e:
                    raise type(e)(f"transform of tile {t!r}: {e}") from None
                det = tfs[k, 0, 0] * tfs[k, 1, 1] - tfs[k, 0, 1] * tfs[k, 1, 0]
                scale = max(1.0, float(np.abs(tfs[k, :, :2]).max()))
                if abs(det) <= 1e-12 * scale * scale:
                    raise ValueError(f"transform of tile {t!r} is singular (determinant {det:g})")
        self._transforms = tfs
        self.pos: Optional[Dict[TileKey, Any]] = tile_dict(rigid) if rigid is not None else None
        self.afms: Optional[Dict[TileKey, Any]] = tile_dict(affine) if affine is not None else None

        if tilesize is None:
            raise ValueError("tilesize is required: (W, H) or {tile: (W, H)}")
        sizes = np.empty((len(self._tiles), 2), np.int64)
        for k, t in enumerate(keys):
            if isinstance(tilesize, Mapping):
                if t not in tilesize:
                    raise ValueError(f"tilesize has no entry for tile {t!r}")
                sizes[k] = as_size(tilesize[t], f"tilesize of tile {t!r}")
            else:
                sizes[k] = as_size(tilesize, "tilesize")
        self._sizes = sizes
        self.imgsizes = {t: (int(sizes[k, 0]), int(sizes[k, 1])) for k, t in enumerate(self._tiles)}

        self.blend = as_float(blend, "blend")
        if self.blend < 0:
            raise ValueError(f"blend must be >= 0, got {self.blend}")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
        self.interpolation = interpolation
        self.fill = as_float(fill, "fill")
        self.threads = as_int(threads, "threads", minimum=0)

        corners = np.stack([tile_corners(tfs[k], self.imgsizes[t])
                            for k, t in enumerate(self._tiles)])
        lo, hi = corners.reshape(-1, 2).min(0), corners.reshape(-1, 2).max(0)
        # Pixel centres of the union: x0 + j for j < ceil(width of the areas).
        x0, y0 = lo + 0.5
        w, h = (math.ceil(hi[0] - lo[0] - _EPS), math.ceil(hi[1] - lo[1] - _EPS))
        if isinstance(clip, (bool, np.bool_)):
            if clip:
                poly = corners[0]
                for k in range(1, len(corners)):
                    poly = _clip_convex(poly, corners[k])
                    if len(poly) < 3:
                        break
                if len(poly) < 3:
                    raise ValueError("clip=True, but the tiles have no common intersection")
                a, b = poly.min(0), poly.max(0)
                # Pixel centres c of the union grid with a <= c < b.
                j0 = math.ceil(a[0] - x0 - _EPS)
                j1 = math.ceil(b[0] - x0 - _EPS)
                i0 = math.ceil(a[1] - y0 - _EPS)
                i1 = math.ceil(b[1] - y0 - _EPS)
                x0, y0, w, h = x0 + j0, y0 + i0, j1 - j0, i1 - i0
                if w < 1 or h < 1:
                    raise ValueError("clip=True, but the intersection of the tiles contains no pixel")
        else:
            vals = list(np.asarray(clip, dtype=object).ravel())
            if len(vals) != 4:
                raise ValueError(f"clip must be False, True or (x0, y0, w, h), got {clip!r}")
            x0, y0 = as_float(vals[0], "clip x0"), as_float(vals[1], "clip y0")
            cw, ch = as_float(vals[2], "clip width"), as_float(vals[3], "clip height")
            if cw <= 0 or ch <= 0:
                raise ValueError(f"clip rectangle is empty (width {cw}, height {ch})")
            w, h = math.ceil(cw - _EPS), math.ceil(ch - _EPS)
        if w > 2**31 - 1 or h > 2**31 - 1:
            raise ValueError(f"canvas of {w} x {h} pixels is absurdly large; are the transforms right?")
        self.origin = (float(x0), float(y0))
        self.size = np.array([w, h], int)
        # render(), clear() and the image state are shared by the threads that use this
        # renderer; one lock keeps the lazily made accumulators consistent.
        self._lock = threading.RLock()
        self.clear()

    # -- geometry -------------------------------------------------------------

    @property
    def shape(self) -> Tuple[int, int]:
        """(height, width) of the canvas."""
        return int(self.size[1]), int(self.size[0])

    @property
    def rect(self) -> Tuple[float, float, int, int]:
        """The canvas in model space: (x0, y0, width, height)."""
        return self.origin[0], self.origin[1], int(self.size[0]), int(self.size[1])

    @property
    def tiles(self) -> List[TileKey]:
        """The tile ids, in the order given."""
        return list(self._tiles)

    def tile_bounds(self, tile: TileKey) -> Tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in model space of the tile's area."""
        k = self._tile_index(tile)
        c = tile_corners(self._transforms[k], self.imgsizes[tile])
        return (float(c[:, 0].min()), float(c[:, 1].min()), float(c[:, 0].max()), float(c[:, 1].max()))

    def overlapping(self, rect: Any) -> List[TileKey]:
        """Tiles whose transformed bounds overlap ``rect = (x0, y0, w, h)`` of model space.

        ``rect`` names output pixels: centres x0 + j, y0 + i for j < w, i < h.
        """
        x0, y0, w, h = self._parse_rect(rect)
        out = []
        for t in self._tiles:
            bx0, by0, bx1, by1 = self.tile_bounds(t)
            if bx0 < x0 + w - 0.5 and bx1 > x0 - 0.5 and by0 < y0 + h - 0.5 and by1 > y0 - 0.5:
                out.append(t)
        return out

    # -- incremental rendering ----------------------------------------------------

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def clear(self) -> None:
        """Forget everything rendered (call between z-levels)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._num: Optional[np.ndarray] = None
        self._den: Optional[np.ndarray] = None
        self._dtype: Optional[np.dtype] = None
        self._image: Optional[np.ndarray] = None
        self._coverage: Optional[np.ndarray] = None
        self._coverage_bits: Optional[np.ndarray] = None  # render_all's mask, packed until asked for
        self._final = False  # image came from render_all()

    def render(self, tile: TileKey, img: Any) -> None:
        """Render one tile's image into the canvas.

        Parameters
        ----------
        tile : hashable
            The tile's id (a key of ``rigid`` / ``affine``).
        img : array_like (H, W) or path
            The tile's image: uint8, uint16 or float32 (float64 is converted),
            of the tile's size. It is read, never modified. All tiles
            rendered between ``clear()`` calls must share one dtype.

        Notes
        -----
        Safe to call from several threads at once: the calls take turns at
        the canvas (each one is itself multithreaded), and the result is that
        of calling them one after the other.
        """
        k = self._tile_index(tile)
        arr = self._checked_image(tile, img)
        with self._lock:
            self._render_checked(tile, k, arr)

    def _render_checked(self, tile: Hashable, k: int, arr: np.ndarray) -> None:
        if self._final:
            raise ValueError("the image came from render_all(); call clear() before render()")
        if self._dtype is not None and arr.dtype != self._dtype:
            raise ValueError(f"tile {tile!r} has dtype {arr.dtype}, but earlier tiles had "
                             f"{self._dtype}; render tiles of one dtype (or clear() first)")
        h, w = self.shape
        num, den = self._num, self._den
        if num is None or den is None:
            _check_bytes(float(h) * w * (8 + 4), f"rendering a canvas of {w} x {h} pixels incrementally")
            num = self._num = np.zeros((h, w), np.float64)
            den = self._den = (np.full((h, w), np.inf, np.float32) if self.blend == 0
                               else np.zeros((h, w), np.float32))
        self._dtype = arr.dtype
        _core.render.accumulate_tile(arr, self._transforms[k], self.origin[0], self.origin[1], w, h,
                                self.interpolation, self.blend, num, den, self.threads)
        self._image = None
        self._coverage = None
        self._coverage_bits = None

    def _finalize(self, coverage: bool = True) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """The image and (if asked for) the coverage of what was rendered (computed once, then kept)."""
        with self._lock:
            bits = self.__dict__.get("_coverage_bits")  # absent in renderers pickled by older versions
            if bits is not None and self._image is not None:
                if not coverage:
                    return self._image, None
                self._coverage = np.unpackbits(bits, axis=1, count=self.shape[1]).view(bool)
                self._coverage_bits = None
            if self._image is None or self._coverage is None:
                h, w = self.shape
                if self._num is None or self._den is None or self._dtype is None:
                    self._image = np.full((h, w), self.fill, np.float32)
                    self._coverage = np.zeros((h, w), bool)
                else:
                    image, cov = _core.render.finalize_canvas(
                        self._num, self._den, self.blend == 0, self.fill, _DTYPES[self._dtype], self.threads,
                        True)
                    assert cov is not None  # asked for (coverage=True)
                    self._image, self._coverage = image, cov
            return self._image, self._coverage

    @property
    def image(self) -> np.ndarray:
        """The rendered canvas (height, width); pixel (i, j) shows model point
        (x0 + j, y0 + i). dtype: that of the tiles (float32 before any)."""
        return self._finalize(coverage=False)[0]

    @property
    def blended(self) -> np.ndarray:
        """Same as ``image`` (spectralign's name)."""
        return self.image

    @property
    def coverage(self) -> np.ndarray:
        """Bool mask of the output pixels that the rendered tiles cover."""
        mask = self._finalize()[1]
        assert mask is not None  # asked for
        return mask

    # -- one-call rendering ---------------------------------------------------------

    def render_all(self, images: Mapping[TileKeyT, Any], *, threads: Optional[int] = None) -> np.ndarray:
        """Render all given tiles in one parallel call; returns (and keeps) the image.

        Replaces whatever was rendered before (as ``clear()`` would).

        Parameters
        ----------
        images : dict
            ``{tile: image}``, where an image is an array, a path, or a loader
            (a callable with no arguments returning the array). Loaders run
            on the renderer's threads (so they must be thread-safe) before
            rendering starts, so all images are in memory together. Tiles left out are not rendered.
        threads : int, optional
            Overrides the renderer's ``threads`` (0 = all cores).

        Returns
        -------
        numpy.ndarray
            The canvas (height, width), dtype that of the tiles; also kept as ``image``.
        """
        # render(), clear() and the image state are shared by the threads that use this
        # renderer; one lock keeps the lazily made accumulators consistent.
        self._lock = threading.RLock()
        keys = self._check_keys(images)
        with self._lock:
            return self._render_all_locked(images, keys, threads)

    def _render_all_locked(self, images: Mapping[TileKeyT, Any], keys: List[TileKeyT],
                           threads: Optional[int]) -> np.ndarray:
        self._clear()
        h, w = self.shape
        arrays = self._load_all(images, keys, threads)
        dtype = self._common_dtype(keys, arrays)
        _check_bytes(float(h) * w * (dtype.itemsize + 0.125), f"a canvas of {w} x {h} pixels")
        idx = [self._index[t] for t in keys]
        # The coverage comes back as a bit mask (an eighth of a bool mask's pages to
        # fault in and write); ``coverage`` unpacks it when first read.
        self._image, self._coverage_bits = _core.render.render_canvas(
            arrays, self._transforms[idx], self.origin[0], self.origin[1], w, h,
            self.interpolation, self.blend, self.fill, self._threads(threads), True, _DTYPES[dtype],
            coverage_bits=True)
        self._dtype = dtype
        self._final = True
        return self._image

    @overload
    def render_region(self, rect: Any, tiles: Mapping[TileKeyT, Any], *, threads: Optional[int] = None,
                      coverage: Literal[False] = False) -> np.ndarray: ...

    @overload
    def render_region(self, rect: Any, tiles: Mapping[TileKeyT, Any], *, threads: Optional[int] = None,
                      coverage: Literal[True]) -> Tuple[np.ndarray, np.ndarray]: ...

    @overload
    def render_region(self, rect: Any, tiles: Mapping[TileKeyT, Any], *, threads: Optional[int] = None,
                      coverage: bool) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]: ...

    def render_region(self, rect: Any, tiles: Mapping[TileKeyT, Any], *, threads: Optional[int] = None,
                      coverage: bool = False) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """Render one rectangle of model space from the tiles that overlap it.

        Parameters
        ----------
        rect : (x0, y0, w, h)
            Output pixel (i, j) shows model point (x0 + j, y0 + i); w and h
            are whole numbers of pixels. It need not lie inside the canvas.
        tiles : dict
            ``{tile: image, path or loader}``; only the tiles whose bounds
            overlap ``rect`` are loaded (loaders called) and rendered, so a
            canvas too large for memory can be written chunk by chunk.
        threads : int, optional
            Overrides the renderer's ``threads``.
        coverage : bool
            Also return the bool mask of covered pixels.

        Returns
        -------
        image or (image, mask)
            dtype that of the tiles; float32 filled with ``fill`` when no
            given tile overlaps. Blending is exactly that of the whole canvas,
            so chunks fit together seamlessly.
        """
        x0, y0, w, h = self._parse_rect(rect)
        keys = self._check_keys(tiles)
        wanted = set(self.overlapping((x0, y0, w, h)))
        frame, window = self._frame(x0, y0, w, h)
        keys = [t for t in keys if t in wanted]
        if not keys:
            _check_bytes(float(h) * w * 5, f"a region of {w} x {h} pixels")
            empty = np.full((h, w), self.fill, np.float32)
            return (empty, np.zeros((h, w), bool)) if coverage else empty
        arrays = self._load_all(tiles, keys, threads)
        dtype = self._common_dtype(keys, arrays)
        _check_bytes(float(h) * w * (dtype.itemsize + 1), f"a region of {w} x {h} pixels")
        idx = [self._index[t] for t in keys]
        img, mask = _core.render.render_canvas(
            arrays, self._transforms[idx], *frame, self.interpolation, self.blend,
            self.fill, self._threads(threads), coverage, _DTYPES[dtype], window)
        if coverage:
            assert mask is not None  # asked for
            return img, mask
        return img

    # -- masks --------------------------------------------------------------------

    def unionmask(self) -> np.ndarray:
        """Bool canvas: True where at least one tile's area contains the pixel centre."""
        return self._mask(False)

    def intersectionmask(self) -> np.ndarray:
        """Bool canvas: True where every tile's area contains the pixel centre."""
        return self._mask(True)

    def _mask(self, all_tiles: bool) -> np.ndarray:
        h, w = self.shape
        _check_bytes(float(h) * w, f"a mask of {w} x {h} pixels")
        return _core.render.tile_coverage(self._transforms, self._sizes, self.origin[0], self.origin[1],
                                   w, h, all_tiles, self.threads)

    # -- helpers --------------------------------------------------------------------

    def _threads(self, threads: Optional[int]) -> int:
        return self.threads if threads is None else as_int(threads, "threads", minimum=0)

    def _tile_index(self, tile: TileKey) -> int:
        try:
            return self._index[tile]
        except (KeyError, TypeError):
            raise KeyError(f"tile {tile!r} has no transform in this renderer") from None

    def _check_keys(self, images: Mapping[TileKeyT, Any]) -> List[TileKeyT]:
        """The keys of ``images`` in the renderer's tile order (the order tiles are blended in)."""
        if not isinstance(images, Mapping):
            raise TypeError(f"images must be a dict {{tile: image or loader}}, got {type(images).__name__}")
        for t in images:
            self._tile_index(t)
        return sorted(images.keys(), key=self._tile_index)

    def _frame(self, x0: float, y0: float, w: int, h: int) -> Tuple[Tuple[float, float, int, int],
                                                                     Optional[Tuple[int, int, int, int]]]:
        """The canvas to compute in and the window of it that ``rect = (x0, y0, w, h)`` is: this
        renderer's canvas when the rectangle lies inside it at whole-pixel offsets (so its pixels
        are computed exactly as ``render_all`` computes them), else the rectangle itself."""
        ox, oy = x0 - self.origin[0], y0 - self.origin[1]
        cw, ch = int(self.size[0]), int(self.size[1])
        if (ox.is_integer() and oy.is_integer() and self.origin[0] + ox == x0 and self.origin[1] + oy == y0
                and 0 <= ox <= cw - w and 0 <= oy <= ch - h):
            return (self.origin[0], self.origin[1], cw, ch), (int(oy), int(ox), h, w)
        return (x0, y0, w, h), None

    def _load_all(self, sources: Mapping[TileKeyT, Any], keys: List[TileKeyT],
                  threads: Optional[int]) -> List[np.ndarray]:
        """Load (paths, loaders) and check every tile, in order; in parallel when
        there is reading to do (file decoding and the finiteness check release the GIL)."""
        def one(t: TileKeyT) -> np.ndarray:
            return self._checked_image(t, self._load(sources[t], t))

        nthreads = self._threads(threads) or (os.cpu_count() or 1)
        slow = sum(1 for t in keys if not isinstance(sources[t], np.ndarray))
        if nthreads <= 1 or len(keys) < 2 or slow == 0:
            return [one(t) for t in keys]
        with ThreadPoolExecutor(max_workers=min(nthreads, len(keys)),
                                thread_name_prefix="spectralign-load") as pool:
            return list(pool.map(one, keys))

    @staticmethod
    def _load(src: Any, tile: TileKey) -> Any:
        if callable(src) and not isinstance(src, np.ndarray):
            return src()
        return src

    def _checked_image(self, tile: TileKey, img: Any) -> np.ndarray:
        arr = _as_render_image(img, f"image of tile {tile!r}")
        w, h = self.imgsizes[tile]
        if arr.shape != (h, w):
            raise ValueError(f"image of tile {tile!r} has shape {arr.shape} (rows, columns), but its "
                             f"tilesize (W, H) = ({w}, {h}) says ({h}, {w})")
        return arr

    @staticmethod
    def _common_dtype(keys: Sequence[TileKey], arrays: List[np.ndarray]) -> np.dtype:
        dtype = arrays[0].dtype
        for t, a in zip(keys, arrays):
            if a.dtype != dtype:
                raise ValueError(f"tile {t!r} has dtype {a.dtype}, tile {keys[0]!r} has {dtype}; "
                                 f"all tiles must share one dtype")
        return dtype

    @staticmethod
    def _parse_rect(rect: Any) -> Tuple[float, float, int, int]:
        vals = list(np.asarray(rect, dtype=object).ravel())
        if len(vals) != 4:
            raise ValueError(f"rect must be (x0, y0, width, height), got {rect!r}")
        x0, y0 = as_float(vals[0], "rect x0"), as_float(vals[1], "rect y0")
        w, h = as_int(vals[2], "rect width", minimum=1), as_int(vals[3], "rect height", minimum=1)
        if w > 2**31 - 1 or h > 2**31 - 1:
            raise ValueError(f"rect of {w} x {h} pixels is absurdly large")
        return x0, y0, w, h

    def __repr__(self) -> str:
        kind = "rigid" if self.pos is not None else "affine"
        return (f"Renderer({len(self._tiles)} tiles, {kind}, canvas {self.size[0]} x {self.size[1]} "
                f"at ({self.origin[0]:g}, {self.origin[1]:g}), blend={self.blend:g}, "
                f"interpolation={self.interpolation!r})")

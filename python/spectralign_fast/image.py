"""Image: a 2-D float32 array with spectralign's window operations.

Coordinates: points are (x, y) = (column, row); pixel (row r, column c) has
its centre at (x, y) = (c, r).
"""
from __future__ import annotations

import os
from typing import Any, Optional, cast

import numpy as np

from . import _core
from .io.images import read_image, write_image
from ._validate import as_core_array, as_float, as_int, as_native, as_size

_UNSIGNED_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0,
                   np.dtype(np.uint32): 4294967295.0}


# Sample positions the core turns into pixel indices must fit its integers with room to spare.
_MAX_REACH = 2.0**30


def _check_reach(xy: np.ndarray, what: str) -> None:
    if not np.all(np.abs(xy) <= _MAX_REACH):
        raise ValueError(f"{what} reaches pixel positions beyond +-2**30 (got up to "
                         f"{float(np.max(np.abs(xy))):.3g}); check the transform and the centre")


def _to_float_image(data: Any) -> np.ndarray:
    if isinstance(data, (str, os.PathLike)):
        data = read_image(data)
    arr = np.asarray(data)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"image data must be numeric (bool, integer or float), got dtype {arr.dtype}")
    arr = as_native(arr)
    if arr.ndim == 3:
        if arr.shape[-1] not in (1, 2, 3, 4):
            raise ValueError(f"a 3-D image must be (height, width, channels) with 1-4 channels, "
                             f"got shape {arr.shape}")
        # Colour becomes grey with equal weights; an alpha channel is dropped.
        channels = arr.shape[-1] if arr.shape[-1] in (1, 3) else arr.shape[-1] - 1
        scale = _UNSIGNED_SCALE.get(arr.dtype, 1.0)
        grey = arr[..., :channels].mean(axis=-1, dtype=np.float64)
        return (grey / scale).astype(np.float32)
    if arr.ndim != 2:
        raise ValueError(f"image must be 2-D (height, width), got {arr.ndim}-D with shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"image is empty (shape {arr.shape})")
    unsigned_scale = _UNSIGNED_SCALE.get(arr.dtype)
    if unsigned_scale is not None:
        return (arr.astype(np.float32) / np.float32(unsigned_scale))
    return as_core_array(arr, np.float32)


class Image(np.ndarray):
    """A 2-D float32 image, as spectralign's ``Image``.

    ``Image(array)`` or ``Image(path)``. Paths: TIFF via tifffile, PNG/JPEG/...
    via Pillow. Colour is averaged to grey (alpha dropped). uint8, uint16 and
    uint32 data scale to [0, 1] as in spectralign; other types are converted
    to float32 unchanged. A float32, C-ordered input is viewed, not copied;
    nothing here ever writes to the caller's array.

    Points are (x, y) = (column, row).
    """

    apo: bool = False

    def __new__(cls, data: Any) -> "Image":
        arr = _to_float_image(data)
        if arr.ndim != 2 or arr.size == 0:
            raise ValueError(f"image must be a non-empty 2-D array, got shape {arr.shape}")
        obj = arr.view(cls)
        obj.apo = bool(getattr(data, "apo", False)) if isinstance(data, Image) else False
        return obj

    def __array_finalize__(self, obj: Optional[np.ndarray]) -> None:
        if obj is None:
            return
        self.apo = getattr(obj, "apo", False)

    @staticmethod
    def load(path: str | os.PathLike) -> "Image":
        """Read an image file (TIFF, PNG, JPEG, ...)."""
        return Image(path)

    def __repr__(self) -> str:
        if self.ndim != 2 or self.size == 0:
            return repr(self.view(np.ndarray))
        a = self.view(np.ndarray)
        return (f"Image({a.shape[1]}x{a.shape[0]} px, min={float(a.min()):.4g}, "
                f"max={float(a.max()):.4g}, mean={float(a.mean()):.4g})")

    __str__ = __repr__

    def _plain(self) -> np.ndarray:
        if self.ndim != 2:
            raise ValueError(f"this operation needs a 2-D image, this one has shape {self.shape}")
        return self.view(np.ndarray)

    def straightwindow(self, xy: Any = None, size: Any = 512, border: Optional[float] = None,
                       *, siz: Any = None) -> "Image":
        """Window of ``size`` (int or (width, height)) centred on ``xy``.

        Window pixel (row i, column j) samples the image bilinearly at
        ``(x - width/2 + j, y - height/2 + i)``; ``xy`` need not be integer
        and defaults to the image centre. Pixels outside the image take
        ``border``, by default the mean of the image under the window.
        (``siz`` is spectralign's name for ``size``.)
        """
        w, h = as_size(siz if siz is not None else size)
        plain = self._plain()
        x, y = (plain.shape[1] / 2, plain.shape[0] / 2) if xy is None else _xy(xy)
        b = None if border is None else as_float(border, "border")
        _check_reach(np.array([x, y]), "the window's centre")
        return Image(_core.image.straight_window(plain, x, y, w, h, b))

    def transformedwindow(self, xy: Any = None, tfm: Any = None, size: Any = 512,
                          border: Optional[float] = None, *, siz: Any = None) -> "Image":
        """Window of ``size`` centred on ``xy`` through a linear transform.

        Window pixel (row i, column j) samples the image at
        ``tfm @ (j - width/2, i - height/2) + xy``. ``tfm`` is a 2x2 matrix,
        a 4-tuple (a, b, c, d) or an Affine (its linear part); identity by
        default. Outside pixels take ``border``, by default the mean of the
        image under the window's bounding box (spectralign used 0).
        """
        w, h = as_size(siz if siz is not None else size)
        plain = self._plain()
        x, y = (plain.shape[1] // 2, plain.shape[0] // 2) if xy is None else _xy(xy)
        lin: tuple[float, ...]
        if tfm is None:
            lin = (1.0, 0.0, 0.0, 1.0)
        else:
            t = np.asarray(tfm, dtype=np.float64)
            if t.shape in ((2, 3), (3, 3)):
                t = t[:2, :2]
            if t.size != 4:
                raise ValueError(f"tfm must be 2x2 (or an Affine), got shape {t.shape}")
            lin = tuple(float(v) for v in t.ravel())
            if not np.all(np.isfinite(lin)):
                raise ValueError("tfm must be finite")
        corners = np.array(lin).reshape(2, 2) @ np.array([[-w / 2, w / 2, w / 2, -w / 2],
                                                          [-h / 2, -h / 2, h / 2, h / 2]])
        _check_reach(corners + np.array([[x], [y]]), "the transformed window")
        b = None if border is None else as_float(border, "border")
        return Image(_core.image.transformed_window(plain, float(x), float(y), lin, w, h, b))

    def apodized(self, gray: Optional[float] = None, force: bool = False) -> "Image":
        """Copy with the outer quarter on each side faded to ``gray``.

        The fade is spectralign's raised cosine; ``gray`` defaults to the
        image mean. An image already apodized is returned as is unless
        ``force``.
        """
        if self.apo and not force:
            return self
        g = None if gray is None else as_float(gray, "gray")
        out = Image(_core.image.apodized(self._plain(), g))
        out.apo = True
        return out

    def scaled(self, fac: int = 2) -> "Image":
        """Downscaled by an integer factor: each output pixel is the mean of
        a fac x fac block; the right and bottom remainders are trimmed."""
        fac = as_int(fac, "fac", minimum=1)
        a = self._plain()
        h, w = a.shape[0] // fac, a.shape[1] // fac
        if h == 0 or w == 0:
            raise ValueError(f"factor {fac} is larger than the image ({a.shape[1]}x{a.shape[0]})")
        blocks = a[: h * fac, : w * fac].reshape(h, fac, w, fac)
        return Image(blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32))

    def stretched(self, percent: float = 0.1) -> "Image":
        """Contrast-stretched copy: ``percent`` % of pixels become 0 and as
        many 1, the rest map linearly in between. A constant image gives 0."""
        pct = as_float(percent, "percent")
        if not 0 <= pct < 50:
            raise ValueError(f"percent must be in [0, 50), got {pct}")
        a = self._plain().ravel()
        n = a.size
        lo_idx, hi_idx = int(0.01 * pct * n), min(n - 1, int((1 - 0.01 * pct) * n))
        part = np.partition(a, (lo_idx, hi_idx))
        lo, hi = float(part[lo_idx]), float(part[hi_idx])
        if not hi > lo:
            return Image(np.zeros_like(self._plain()))
        out = (self._plain().astype(np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))
        return Image(np.clip(out, 0, 1))

    def roi(self, rect: Any) -> "Image":
        """The rectangle (x0, y0, width, height) of the image (a view)."""
        vals = np.asarray(rect).ravel()
        if vals.size != 4:
            raise ValueError(f"rect must be (x0, y0, width, height), got {rect!r}")
        x0, y0 = as_int(vals[0], "x0"), as_int(vals[1], "y0")
        w, h = as_int(vals[2], "width", minimum=1), as_int(vals[3], "height", minimum=1)
        H, W = self._plain().shape
        if x0 < 0 or y0 < 0 or x0 + w > W or y0 + h > H:
            raise ValueError(f"rect {(x0, y0, w, h)} does not fit inside the {W}x{H} image")
        # A slice of an Image is an Image (numpy's stubs type it as a plain ndarray).
        return cast(Image, self[y0 : y0 + h, x0 : x0 + w])

    def save(self, path: str | os.PathLike, qual: Optional[int] = None) -> None:
        """Write to ``path``: TIFF keeps float32 values; PNG/JPEG store [0, 1]
        as 8 bits. ``qual`` is the JPEG quality. The file appears only once
        completely written."""
        write_image(path, self._plain(), qual)


def _xy(xy: Any) -> tuple[float, float]:
    arr = np.asarray(xy, dtype=np.float64).ravel()
    if arr.size != 2:
        raise ValueError(f"xy must be an (x, y) pair, got {xy!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"xy must be finite, got {arr.tolist()}")
    return float(arr[0]), float(arr[1])

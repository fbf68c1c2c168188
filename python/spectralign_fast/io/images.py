"""Reading and writing single images (TIFF through tifffile, PNG/JPEG/... through
Pillow); writes are atomic (``io.atomic``)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import write_atomically
from .formats import PILLOW_SUFFIXES, TIFF_SUFFIXES
import tifffile
from PIL import Image as PILImage


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a TIFF (tifffile) or PNG/JPEG/... (Pillow) file as an array."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {p}")
    if not p.is_file():
        raise ValueError(f"not a regular file: {p}")
    suffix = p.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            return np.asarray(tifffile.imread(p))
        with PILImage.open(p) as im:
            if im.mode == "P":
                return np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {p}: {exc}") from exc


def write_image(path: str | os.PathLike, data: np.ndarray, quality: int | None = None) -> None:
    """Write a float image: TIFF keeps float32; 8-bit formats map [0, 1] to 0..255."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        arr = np.ascontiguousarray(data, dtype=np.float32)
        write_atomically(p, lambda tmp: tifffile.imwrite(tmp, arr))
        return
    if suffix not in PILLOW_SUFFIXES:
        raise ValueError(f"unsupported image format {suffix!r}: use .tif, .png or .jpg")
    arr8 = (np.clip(np.nan_to_num(np.asarray(data, dtype=np.float32)), 0, 1) * 255.99).astype(np.uint8)
    kwargs = {}
    if quality is not None:
        if suffix not in {".jpg", ".jpeg"}:
            raise ValueError("quality applies to JPEG files only")
        kwargs["quality"] = int(quality)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(suffix, suffix[1:].upper())
    write_atomically(p, lambda tmp: PILImage.fromarray(arr8).save(tmp, format=fmt, **kwargs))

"""One table of file kinds and output dtypes, and the checks that go with them."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, Tuple

import numpy as np

from .._validate import as_int

# Output pixel types every writer and the renderer take.
DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
# File name endings, longest first within a kind (".ome.tif" before ".tif").
ZARR_SUFFIXES = (".ome.zarr", ".zarr")
TIFF_SUFFIXES = (".ome.tif", ".ome.tiff", ".tif", ".tiff")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
JSON_SUFFIXES = (".json",)

Region = Tuple[int, int, int, int]


def output_kind(path: Path) -> str:
    """"zarr" or "tiff" from the output's name (clear error otherwise)."""
    name = path.name.lower()
    if any(name.endswith(s) for s in ZARR_SUFFIXES):
        return "zarr"
    if any(name.endswith(s) for s in TIFF_SUFFIXES):
        return "tiff"
    raise ValueError(f"cannot tell the output format from {path.name!r}: name it *.ome.zarr (chunked, with "
                     f"a pyramid) or *.tif")


def as_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be uint8, uint16 or float32, got {dtype!r}") from None
    if not dt.isnative and dt.byteorder != "|":
        dt = dt.newbyteorder("=")  # byte order is the input's detail; outputs are native
    if dt not in DTYPES:
        raise TypeError(f"dtype {dt} is not supported for output: use uint8, uint16 or float32 "
                        f"(convert with array.astype(...))")
    return dt


def as_shape(shape: Any) -> Tuple[int, int]:
    if np.ndim(shape) != 1 or len(shape) != 2:
        raise ValueError(f"shape must be a (height, width) pair, got {shape!r}")
    return as_int(shape[0], "height", minimum=1), as_int(shape[1], "width", minimum=1)


def matching_suffix(path: Path, allowed: Sequence[str], what: str) -> str:
    name = path.name.lower()
    for s in allowed:
        if name.endswith(s) and len(name) > len(s):
            return s
    raise ValueError(f"unsupported {what} file name {path.name!r}: it must end with "
                     f"{', '.join(allowed)}")


def cast(acc: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float values to dtype: rounded half to even and clipped for integer dtypes."""
    if dtype.kind == "f":
        return acc.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    out = np.rint(acc)
    np.clip(out, info.min, info.max, out=out)
    return out.astype(dtype)


def to_dtype(data: Any, dtype: np.dtype, shape: Tuple[int, int], what: str) -> np.ndarray:
    """A block for the output: right shape, finite, converted to dtype.

    Floats written to an integer output are rounded and clipped to its range
    (the renderer returns float32 fill for regions that no tile covers).
    """
    arr = np.asarray(data)
    if arr.shape != shape:
        raise ValueError(f"{what} has shape {arr.shape}, expected {shape} (rows, columns)")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contains NaN or inf values; replace them first "
                             f"(e.g. numpy.nan_to_num)")
        return cast(arr, dtype)
    if arr.dtype == dtype:
        return arr
    if arr.dtype.kind in "iub":
        if dtype.kind != "f" and arr.size:
            info = np.iinfo(dtype)
            lo, hi = arr.min(), arr.max()
            if lo < info.min or hi > info.max:
                raise ValueError(f"{what} has values {lo}..{hi} outside the range of the "
                                 f"output dtype {dtype}")
        return arr.astype(dtype)
    raise TypeError(f"{what} has dtype {arr.dtype}; give numbers (uint8, uint16 or float32)")


def as_chunk(chunk: Any) -> Tuple[int, int]:
    if np.ndim(chunk) == 0:
        side = as_int(chunk, "chunk", minimum=1)
        return side, side
    values = list(np.asarray(chunk, dtype=object).ravel())
    if len(values) != 2:
        raise ValueError(f"chunk must be one integer or a (height, width) pair, got {chunk!r}")
    return as_int(values[0], "chunk height", minimum=1), as_int(values[1], "chunk width", minimum=1)

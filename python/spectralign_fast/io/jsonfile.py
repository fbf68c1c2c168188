"""JSON written atomically, NumPy values converted, NaN refused."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .._validate import as_int
from .atomic import write_bytes_atomically
from .formats import JSON_SUFFIXES, matching_suffix


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON; convert it to lists, "
                    f"numbers and strings first")


def write_json(path: str | os.PathLike, obj: Any, *, overwrite: bool = False,
               indent: Optional[int] = None) -> Path:
    """Write ``obj`` as JSON atomically (temporary name, then rename).

    NumPy arrays and scalars become lists and numbers, an ``Affine`` its 2x3
    matrix (it is an array). NaN and infinity are refused (JSON has no such numbers), as is an
    existing file unless ``overwrite``.
    """
    p = Path(path)
    matching_suffix(p, JSON_SUFFIXES, "JSON")
    if indent is not None:
        indent = as_int(indent, "indent", minimum=0)
    try:
        text = json.dumps(obj, default=_json_default, allow_nan=False, indent=indent)
    except ValueError as exc:
        raise ValueError(f"cannot write {p}: the data contain NaN or infinity, which JSON "
                         f"cannot represent; replace them (e.g. with None) first") from exc
    return write_bytes_atomically(p, (text + "\n").encode("utf-8"), overwrite=overwrite)

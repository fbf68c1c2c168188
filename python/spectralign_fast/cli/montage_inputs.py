"""What ``spectralign-fast montage`` is given: a file-name pattern, a Fiji TileConfiguration, or
microscope files (one per imaging cycle), and the options that only some of them take.

Patterns take any of ``{row}``, ``{col}``, ``{index}``, ``{x}``, ``{y}``; only the ones that vary
are needed (a single row of tiles needs no ``{row}``). ``{index}`` is laid out with ``--grid RxC``
(row by row); ``{x}``/``{y}`` are the tiles' pixel positions (column, row) in the file names.
"""
from __future__ import annotations

import argparse
import glob
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..io.illumination import Illumination, estimate_illumination
from ..io.images import read_image
from ..io.slides import configuration_tiles
from ..io.tiles import read_raw

PATTERN_FIELDS = ("row", "col", "index", "x", "y")


class InputError(ValueError):
    """A mistake in the montage command's inputs (reported as a usage error)."""


def input_kind(inputs: List[str]) -> str:
    """"pattern", "configuration" or "slides"."""
    if len(inputs) == 1 and re.search(r"{\w+}", inputs[0]):
        return "pattern"
    if len(inputs) == 1 and inputs[0].lower().endswith(".txt"):
        return "configuration"
    for p in inputs:
        if re.search(r"{\w+}", p) or p.lower().endswith(".txt"):
            raise InputError(f"give one pattern, one TileConfiguration file, or microscope files (one per "
                             f"imaging cycle); got {inputs}")
        if not Path(p).is_file():
            raise InputError(f"{p} does not exist")
    return "slides"


def parse_grid(text: Optional[str]) -> Optional[Tuple[int, int]]:
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise InputError(f"--grid is ROWSxCOLS, e.g. 4x6; got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_channel(text: str) -> Any:
    return int(text) if text.isdigit() else text


def match_files(pattern: str, *, number: str = r"-?\d+") -> Tuple[List[Tuple[str, "re.Match[str]"]], bool]:
    """Files matching a pattern whose ``{name}`` placeholders stand for numbers, sorted, each with its
    match (group per placeholder); and whether the glob found any file at all."""
    regex = "^"
    for part in re.split(r"({\w+})", pattern):
        m = re.fullmatch(r"{(\w+)}", part)
        regex += f"(?P<{m.group(1)}>{number})" if m else re.escape(part)
    compiled = re.compile(regex + "$")
    globbed = glob.glob(re.sub(r"{\w+}", "*", glob.escape(pattern).replace("[{]", "{").replace("[}]", "}")))
    out = []
    for path in sorted(globbed):
        m = compiled.match(path)
        if m:
            out.append((path, m))
    return out, bool(globbed)


def pattern_tiles(pattern: str, grid: Optional[Tuple[int, int]], overlap: float
                  ) -> Tuple[Dict[Any, str], Optional[Dict[Any, Tuple[float, float]]]]:
    """``(tiles, positions)`` from a file-name pattern (positions None for a (row, col) grid)."""
    names = re.findall(r"{(\w+)}", pattern)
    unknown = sorted(set(names) - set(PATTERN_FIELDS))
    if unknown:
        raise InputError(f"unknown placeholder {{{unknown[0]}}} in {pattern!r}; use {{row}}, {{col}}, {{index}}, "
                         f"{{x}} and {{y}}")
    for f in set(names):
        if names.count(f) > 1:
            raise InputError(f"{{{f}}} appears twice in {pattern!r}")
    has = set(names)
    if ("x" in has) != ("y" in has):
        raise InputError(f"{pattern!r} has only one of {{x}} and {{y}}; positions need both")
    if "index" in has and has & {"row", "col"}:
        raise InputError("{index} numbers the tiles on its own; use it without {row} and {col}")
    if "index" in has and grid is None:
        raise InputError("tiles numbered by {index} need the layout: --grid ROWSxCOLS (row by row)")
    found, globbed = match_files(pattern, number=r"-?\d+(?:\.\d+)?")
    tiles: Dict[Any, str] = {}
    positions: Dict[Any, Tuple[float, float]] = {}
    for path, m in found:
        if "x" in has:
            key: Any = Path(path).name
            positions[key] = (float(m.group("x")), float(m.group("y")))
        elif "index" in has:
            assert grid is not None
            k = int(float(m.group("index")))
            if not 0 <= k < grid[0] * grid[1]:
                raise InputError(f"{path} has index {k}, outside a {grid[0]}x{grid[1]} grid")
            key = divmod(k, grid[1])
        else:
            key = (int(m.group("row")) if "row" in has else 0, int(m.group("col")) if "col" in has else 0)
        if key in tiles:
            raise InputError(f"two files give the same tile {key}: {tiles[key]} and {path}")
        tiles[key] = path
    if not tiles:
        raise InputError(f"no file matches {pattern!r}" + ("" if globbed else " (check the folder and the file names)"))
    return tiles, (positions if "x" in has else None)


def configuration_inputs(path: str) -> Tuple[Dict[Any, Any], Dict[Any, Tuple[float, float]]]:
    try:
        return configuration_tiles(path)
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from None


def flatfield_option(text: Optional[str]) -> Any:
    """None, "auto", or the array in a .npy/.tif file."""
    if text is None or text.lower() == "none":
        return None
    if text.lower() == "auto":
        return "auto"
    p = Path(text)
    if not p.is_file():
        raise InputError(f"--flatfield is 'auto', 'none' or a .npy/.tif file; {text} does not exist")
    return np.load(p) if p.suffix.lower() == ".npy" else read_image(p)


def corrected_tiles(tiles: Dict[Any, Any], flatfield: Any, darkfield: Optional[float]
                    ) -> Tuple[Dict[Any, Callable[[], np.ndarray]], Illumination]:
    """Tiles of a pattern or configuration wrapped to come out illumination-corrected."""
    loaders = [(lambda src=src, k=k: read_raw(src, k)) for k, src in tiles.items()]
    if isinstance(flatfield, str):
        illum = estimate_illumination(loaders, darkfield=darkfield)
    else:
        illum = Illumination.given(flatfield, darkfield)
    def corrected(src: Any, k: Any) -> Callable[[], np.ndarray]:
        return lambda: illum.correct(read_raw(src, k))

    return {k: corrected(src, k) for k, src in tiles.items()}, illum


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--align-channel", default="0", metavar="NAME|INDEX",
                   help="microscope files: the channel to align on, by name or 0-based index (0)")
    p.add_argument("--flatfield", default=None, metavar="auto|none|FILE",
                   help="correct uneven illumination: 'auto' estimates it from the tiles, or a .npy/.tif "
                        "flat field (none)")
    p.add_argument("--darkfield", type=float, default=None, metavar="COUNTS",
                   help="camera offset subtracted with the flat field (0)")
    p.add_argument("--grid", default=None, metavar="ROWSxCOLS",
                   help="layout of tiles numbered by {index}, or of a microscope file without stage positions")
    p.add_argument("--flip-x", action="store_true", help="microscope files: the stage x axis runs right to left")
    p.add_argument("--flip-y", action="store_true", help="microscope files: the stage y axis runs bottom to top")
    p.add_argument("--tile-configuration", metavar="FILE",
                   help="also write Fiji's TileConfiguration.registered.txt with the placed tile positions")

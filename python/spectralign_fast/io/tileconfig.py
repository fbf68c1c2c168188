"""Fiji/ImageJ ``TileConfiguration.txt`` files (Grid/Collection stitching), read and written.

The format, as Fiji's ``Stitching_Grid`` writes and reads it::

    # Define the number of dimensions we are working on
    dim = 2

    # Define the image coordinates
    tile_x000_y000.tif; ; (0.0, 0.0)
    tile_x001_y000.tif; ; (921.6, -3.2)

One line per tile: ``file; series; (x, y[, z])``. ``file`` is relative to the configuration
file's folder; ``series`` is empty except in multi-series files (a ``multiseries = true``
line, then ``file.czi; 3; (x, y)``); positions are the tile's top-left corner in pixels,
**(x, y) order** (column, row), as Fiji writes them. The registered positions that Fiji
writes after stitching go to ``TileConfiguration.registered.txt`` in the same format.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .atomic import write_bytes_atomically

HEADER_DIM = "# Define the number of dimensions we are working on"
HEADER_TILES = "# Define the image coordinates"
_DIM = re.compile(r"dim\s*=\s*(.*)", re.IGNORECASE)
_MULTISERIES = re.compile(r"multiseries\s*=\s*(.*)", re.IGNORECASE)


@dataclass(frozen=True)
class TileEntry:
    """One tile of a TileConfiguration.

    Attributes
    ----------
    name : str
        The image file as written in the configuration (relative to its folder, or absolute).
    series : int or None
        The series (position) inside a multi-series file such as ``.czi`` or ``.lif``; None for
        one image per file.
    position : tuple of float
        The tile's top-left corner in pixels, ``(x, y)`` or ``(x, y, z)`` (column first), as
        Fiji writes it.
    """

    name: str
    series: Optional[int]
    position: Tuple[float, ...]

    def path(self, base: str | os.PathLike) -> Path:
        """The image file: ``name`` resolved against ``base`` (the configuration's folder)."""
        return Path(base) / self.name


@dataclass
class TileConfiguration:
    """The contents of a TileConfiguration file.

    Attributes
    ----------
    dim : int
        2 or 3: the length of every position.
    entries : list of TileEntry
        The tiles in file order.
    folder : Path or None
        The folder the file was read from (what tile names are relative to).
    """

    dim: int
    entries: List[TileEntry]
    folder: Optional[Path] = field(default=None)

    @property
    def multiseries(self) -> bool:
        """Whether any tile names a series (the file then has a ``multiseries = true`` line)."""
        return any(e.series is not None for e in self.entries)

    def paths(self) -> List[Path]:
        """Every tile's image file, resolved against ``folder`` (the current folder when None)."""
        base = self.folder if self.folder is not None else Path(".")
        return [e.path(base) for e in self.entries]


def _fail(path: Any, lineno: int, line: str, why: str) -> ValueError:
    return ValueError(f"{path}, line {lineno}: {why}: {line!r}")


def _number(text: str, path: Any, lineno: int, line: str) -> float:
    try:
        v = float(text.strip())
    except ValueError:
        raise _fail(path, lineno, line, f"cannot read the coordinate {text.strip()!r} as a number") from None
    if not math.isfinite(v):
        raise _fail(path, lineno, line, f"the coordinate {text.strip()!r} is not finite")
    return v


def _parse_tile(text: str, dim: int, path: Any, lineno: int, line: str) -> TileEntry:
    parts = text.split(";")
    if len(parts) != 3:
        raise _fail(path, lineno, line, "a tile line must have 3 fields 'file; series; (x, y)' separated by ';', "
                                        f"found {len(parts)}")
    name, series_text, coords = (s.strip() for s in parts)
    if not name:
        raise _fail(path, lineno, line, "the file name is empty")
    series: Optional[int] = None
    if series_text:
        if not re.fullmatch(r"\d+", series_text):
            raise _fail(path, lineno, line, f"the series {series_text!r} is not a whole number >= 0")
        series = int(series_text)
    if not (coords.startswith("(") and coords.endswith(")")):
        raise _fail(path, lineno, line, "the position must be in parentheses, '(x, y)' or '(x, y, z)'")
    values = coords[1:-1].split(",")
    if len(values) != dim:
        raise _fail(path, lineno, line, f"the position has {len(values)} coordinates but the file says "
                                        f"dim = {dim}")
    return TileEntry(name, series, tuple(_number(v, path, lineno, line) for v in values))


def parse_tile_configuration(text: str, *, source: Any = "<text>",
                             folder: Optional[Path] = None) -> TileConfiguration:
    """Parse the text of a TileConfiguration (see ``read_tile_configuration``); ``source`` names
    it in error messages."""
    dim: Optional[int] = None
    dim_line = 0
    entries: List[TileEntry] = []
    lines: Dict[Tuple[str, Optional[int]], int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # A line with ';' is a tile, even one whose file name starts with "dim" or "multiseries".
        m = None if ";" in line else _DIM.fullmatch(line)
        if m:
            value = m.group(1).strip()
            if value not in ("2", "3"):
                raise _fail(source, lineno, raw, f"dim must be 2 or 3, got {value!r}")
            if entries:
                raise _fail(source, lineno, raw, "'dim = N' must come before the tiles")
            if dim is not None and int(value) != dim:
                raise _fail(source, lineno, raw, f"a second 'dim' line contradicts line {dim_line} (dim = {dim})")
            dim, dim_line = int(value), lineno
            continue
        m = None if ";" in line else _MULTISERIES.fullmatch(line)
        if m:
            if m.group(1).strip().lower() not in ("true", "false"):
                raise _fail(source, lineno, raw, "expected 'multiseries = true' or 'multiseries = false'")
            continue
        if dim is None:
            raise _fail(source, lineno, raw, "a tile comes before the 'dim = 2' (or 3) header")
        entry = _parse_tile(line, dim, source, lineno, raw)
        key = (entry.name, entry.series)
        if key in lines:
            what = entry.name if entry.series is None else f"{entry.name} series {entry.series}"
            raise _fail(source, lineno, raw, f"tile {what} is listed twice (also on line {lines[key]})")
        lines[key] = lineno
        entries.append(entry)
    if dim is None:
        raise ValueError(f"{source}: no 'dim = 2' (or 3) line; is this a Fiji TileConfiguration file?")
    if not entries:
        raise ValueError(f"{source}: no tiles (lines 'file; ; (x, y)')")
    return TileConfiguration(dim, entries, folder)


def read_tile_configuration(path: str | os.PathLike) -> TileConfiguration:
    """Read a Fiji ``TileConfiguration.txt`` or ``TileConfiguration.registered.txt``.

    Parameters
    ----------
    path : str or PathLike
        The file. Accepted: ``#`` comments and blank lines, a ``dim = 2`` (or 3) header before
        the tiles, an optional ``multiseries = true|false`` line, tile lines
        ``file; series; (x, y)`` with the series empty or a whole number, any spacing, numbers
        in any notation Python's ``float`` reads (``1.5E3``), file names with spaces.

    Returns
    -------
    TileConfiguration
        ``dim``, the entries in file order (positions (x, y[, z]) in pixels, as written) and
        ``folder``, the file's folder, which tile names are relative to
        (``TileConfiguration.paths()``).

    Raises
    ------
    ValueError
        A malformed line (the message names the file and line number), coordinates that do not
        match ``dim``, a tile listed twice (same name and series), no header or no tiles.
    """
    p = Path(path)
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # Fiji writes in the platform's charset
    return parse_tile_configuration(text, source=p, folder=p.parent)


def _java_double(v: float) -> str:
    """``v`` as Java's ``Double.toString`` writes it (what Fiji writes): ``512.0``, ``-3.25``,
    ``1.0E7``, ``1.5E-4``, with the shortest digits that read back to the same double."""
    if v == 0:
        return "-0.0" if math.copysign(1.0, v) < 0 else "0.0"
    if 1e-3 <= abs(v) < 1e7:
        return repr(v)  # Python's shortest repr is plain decimal in this range, as Java's is
    sign, digits, exp = Decimal(repr(v)).as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits)).rstrip("0") or "0"
    exponent = exp + len(digits) - 1
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{exponent}"


def format_tile_configuration(entries: Iterable[TileEntry], *, dim: int = 2) -> str:
    """The text of a TileConfiguration file, line for line as Fiji writes it (see
    ``write_tile_configuration``)."""
    if dim not in (2, 3) or isinstance(dim, bool):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    rows = list(entries)
    if not rows:
        raise ValueError("no tiles to write")
    seen: Dict[Tuple[str, Optional[int]], int] = {}
    lines = []
    for i, e in enumerate(rows):
        if not isinstance(e, TileEntry):
            raise TypeError(f"entry {i} is a {type(e).__name__}, not a TileEntry(name, series, position)")
        if not isinstance(e.name, str) or not e.name.strip() or any(c in e.name for c in ";\r\n"):
            raise ValueError(f"entry {i} has the file name {e.name!r}: it must be non-empty, without ';' or "
                             f"line breaks (Fiji could not read it back)")
        if e.name != e.name.strip():
            raise ValueError(f"entry {i} file name {e.name!r} starts or ends with spaces, which Fiji strips")
        if e.series is not None and (isinstance(e.series, bool) or not isinstance(e.series, int) or e.series < 0):
            raise ValueError(f"entry {i} ({e.name}) has the series {e.series!r}: give None or a whole number >= 0")
        if len(e.position) != dim:
            raise ValueError(f"entry {i} ({e.name}) has {len(e.position)} coordinates, but dim = {dim}")
        pos = [float(v) for v in e.position]
        if not all(math.isfinite(v) for v in pos):
            raise ValueError(f"entry {i} ({e.name}) has a position that is not finite: {e.position}")
        key = (e.name, e.series)
        if key in seen:
            raise ValueError(f"entries {seen[key]} and {i} are the same tile ({e.name}, series {e.series})")
        seen[key] = i
        series = "" if e.series is None else str(e.series)
        lines.append(f"{e.name}; {series}; ({', '.join(_java_double(v) for v in pos)})")
    head = [HEADER_DIM, f"dim = {dim}"]
    if any(e.series is not None for e in rows):
        head.append("multiseries = true")  # Fiji reads the series only after this line
    return "\n".join(head + ["", HEADER_TILES] + lines) + "\n"


def write_tile_configuration(path: str | os.PathLike, entries: Iterable[TileEntry], *, dim: int = 2,
                             overwrite: bool = False) -> Path:
    """Write a Fiji ``TileConfiguration.txt`` (atomically: under a temporary name, then renamed).

    Parameters
    ----------
    path : str or PathLike
        The file, e.g. ``TileConfiguration.registered.txt`` next to the tile images (Fiji reads
        tile names relative to the file's folder).
    entries : iterable of TileEntry
        ``TileEntry(name, series, position)`` with positions ``(x, y)`` (or ``(x, y, z)``) in
        pixels, column first, as Fiji uses them; series None except for multi-series files.
    dim : int
        2 (default) or 3; every position must have this many coordinates.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The path written. The layout is Fiji's own: the two comment lines, ``dim = N``,
        ``multiseries = true`` when any tile has a series, and ``name; series; (x, y)``
        lines with numbers as Java prints doubles (``512.0``, ``1.0E7``), in UTF-8.
    """
    text = format_tile_configuration(entries, dim=dim)
    return write_bytes_atomically(path, text.encode("utf-8"), overwrite=overwrite)

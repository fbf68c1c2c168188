"""Names for the types of tile ids, used in annotations across the package.

A tile id is any hashable value; ``montage`` names tiles ``(row, col)`` and
``align_stack`` ``(z, row, col)``. Functions that take a user's
``{tile: ...}`` dict are generic in its key type (``TileKeyT``): ``Mapping``
is invariant in its keys, so ``Mapping[Hashable, X]`` would refuse a
``dict[tuple[int, int], X]``.
"""
from __future__ import annotations

from typing import Dict, Hashable, Mapping, Tuple, TypeAlias, TypeVar

TileKey: TypeAlias = Hashable
"""Any tile id: an int, a str, a ``(row, col)`` tuple, ..."""

GridKey: TypeAlias = Tuple[int, int]
"""``(row, col)`` of a tile in a ``montage`` grid (row grows down, column to the right)."""

StackKey: TypeAlias = Tuple[int, int, int]
"""``(z, row, col)`` of a tile in ``align_stack`` (single images are ``(z, 0, 0)``)."""

TileKeyT = TypeVar("TileKeyT", bound=Hashable)
"""The key type of a ``{tile: ...}`` dict (e.g. ``GridKey``), kept through a call."""

V = TypeVar("V")


def tile_dict(tiles: Mapping[TileKeyT, V]) -> Dict[TileKey, V]:
    """A ``{tile: ...}`` dict with the same entries, keyed by ``TileKey`` for code that
    indexes it with tile ids of any type (e.g. those of ``PairMatches``)."""
    return {t: v for t, v in tiles.items()}


__all__ = ["GridKey", "StackKey", "TileKey", "TileKeyT", "tile_dict"]

"""Downsampled renderings of a placed tile set (for reports and for matching sections).

Coordinates: points are (x, y) = (column, row); transforms map tile pixels to
model space.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from .._types import TileKey, TileKeyT, tile_dict
from ..io.pyramid import downsample
from ..io.tiles import read_raw, render_array
from ..transforms.affine import Affine
from .renderer import Renderer


def overview(transforms: Mapping[TileKey, Any], tile_sizes: Mapping[TileKey, Tuple[int, int]],
             tiles: Mapping[TileKeyT, Any], *, keys: Optional[Sequence[TileKey]] = None, max_side: int = 1600,
             factor: Optional[int] = None, threads: int = 0) -> Tuple[np.ndarray, float, Tuple[float, float]]:
    """A downsampled rendering of the tiles ``keys`` (default: all of ``transforms``).

    Each tile is block-averaged by an integer factor k before rendering (no
    aliasing), so memory stays near the output size.

    Returns
    -------
    image : ndarray
        The downsampled montage, indexed (row, col).
    scale : float
        Model pixels per image pixel.
    origin : (x, y)
        The model point of image pixel (0, 0)'s centre.
    """
    use = list(transforms if keys is None else keys)
    full = Renderer(affine={t: transforms[t] for t in use}, tilesize=dict(tile_sizes), threads=threads)
    k = factor if factor is not None else max(1, int(math.ceil(max(full.shape) / max_side)))
    given = tile_dict(tiles)
    sources = {t: given[t] for t in use}
    down = Affine.scaler(1.0 / k)
    block = Affine([[k, 0.0, (k - 1) / 2], [0.0, k, (k - 1) / 2]])
    tf: Dict[TileKey, Affine] = {}
    sizes: Dict[TileKey, Tuple[int, int]] = {}
    for t in sources:
        w, h = tile_sizes[t]
        tf[t] = down @ Affine(transforms[t]) @ block
        sizes[t] = (-(-w // k), -(-h // k))
    r = Renderer(affine=tf, tilesize=sizes, blend=max(1.0, 10.0 / k), threads=threads)
    img = r.render_all({t: (lambda src=sources[t]: downsample(_as_array(src), k)) for t in sources})
    return img, float(k), (r.origin[0] * k, r.origin[1] * k)


def _as_array(src: Any) -> np.ndarray:
    return render_array(read_raw(src, "overview"))

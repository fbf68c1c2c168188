"""Rendering sections through their elastic mesh (the warp core's displacement-field path).

Section z's mesh is a push map: the affine-aligned section's point p lies at
p + v_z(p) in the output. Output pixel q therefore shows the section at the
p with p + v_z(p) = q, found triangle by triangle (``_core.place.mesh_field``
inverts the piecewise-affine mesh exactly where it is not folded). A section
made of one image is sampled straight from that image (one interpolation:
the inverse mesh composed with the image's inverse affine); a montaged
section is first rendered through its tiles' affines (blended as
``Renderer`` does) over the region the field reaches, then sampled through
the field (two interpolations). Coordinates: points are (x, y) = (column, row).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from .._types import TileKey
from ..transforms.affine import Affine
from .renderer import Renderer
from .warp import warp

_ORDERS: Dict[str, Union[int, str]] = {"linear": 1, "nearest": 0, "cubic": "catmull-rom"}
# (row, col, 1) of the canvas -> (x, y, 1) of the canvas, and back.
_SWAP = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


class ElasticRenderer:
    """Regions of each section of a stack, warped by the section's mesh.

    Parameters
    ----------
    renderer : Renderer
        The affine renderer of all tiles (its canvas is the output canvas).
    levels : list of list of tile keys
        The tiles of each section.
    transforms : dict
        ``{tile: Affine}`` tile pixel (x, y) to model space (those of ``renderer``).
    displacement : ndarray (sections, ny, nx, 2)
        Node displacements (x, y) in canvas pixels of each section's push
        map; node (r, c) rests at canvas pixel (x, y) = (origin_x + c *
        spacing, origin_y + r * spacing).
    spacing : float
        Node pitch.
    origin : (x, y)
        Canvas pixel of node (0, 0).
    """

    def __init__(self, renderer: Renderer, levels: Sequence[Sequence[TileKey]], transforms: Mapping[TileKey, Any],
                 displacement: np.ndarray, spacing: float, origin: Tuple[float, float] = (0.0, 0.0)) -> None:
        self.renderer = renderer
        self.transforms = {t: Affine(transforms[t]) for lv in levels for t in lv}
        self.levels = [list(lv) for lv in levels]
        self.displacement = np.ascontiguousarray(displacement, dtype=np.float64)
        self.spacing = float(spacing)
        self.origin = (float(origin[0]), float(origin[1]))
        if self.displacement.shape[0] != len(self.levels):
            raise ValueError(f"displacement has {self.displacement.shape[0]} sections, levels has {len(self.levels)}")

    @property
    def shape(self) -> Tuple[int, int]:
        """(rows, cols) of the canvas."""
        return self.renderer.shape

    def _field(self, z: int, region: Tuple[int, int, int, int], matrix: np.ndarray, threads: int) -> np.ndarray:
        y, x, h, w = region
        return _core.place.mesh_field(self.displacement[z], self.spacing, self.origin[0], self.origin[1], y, x, h, w,
                                      np.ascontiguousarray(matrix, np.float64), threads)

    def region(self, z: int, tiles: Mapping[TileKey, Any], y: int, x: int, h: int, w: int, dtype: np.dtype, *,
               threads: int = 1) -> np.ndarray:
        """Rows ``y:y+h`` and columns ``x:x+w`` of section ``z`` on the canvas, as ``dtype``.

        ``tiles`` maps each tile of the section (others are ignored) to its image, path or loader.
        """
        out, _ = self._sample(z, tiles, (y, x, h, w), threads, False)
        return out if out.dtype == dtype else out.astype(dtype)

    def section(self, z: int, tiles: Mapping[TileKey, Any], *, threads: int = 1) -> Tuple[np.ndarray, np.ndarray]:
        """Section ``z`` on the whole canvas as float32, and the bool mask of the pixels it covers."""
        h, w = self.shape
        img, cover = self._sample(z, tiles, (0, 0, h, w), threads, True)
        assert cover is not None  # asked for
        return np.asarray(img, np.float32), cover

    def _sample(self, z: int, tiles: Mapping[TileKey, Any], region: Tuple[int, int, int, int], threads: int,
                coverage: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        r = self.renderer
        lv = self.levels[z]
        order = _ORDERS[r.interpolation]
        x0, y0 = r.origin
        y, x, h, w = region
        if len(lv) == 1:
            t = lv[0]
            src = r._load_all(tiles, [t], threads)[0]
            mask = np.ones(src.shape, np.float32) if coverage else None
            # canvas (row, col) -> model (x, y) -> tile (x, y) -> tile (row, col)
            to_model = np.array([[0.0, 1.0, x0], [1.0, 0.0, y0], [0.0, 0.0, 1.0]])
            inverse = np.vstack([np.asarray(self.transforms[t].inverse(), float), [0.0, 0.0, 1.0]])
            matrix = _SWAP @ inverse @ to_model
        else:
            u = self.displacement[z]
            # output q shows p = q - v(p): within the displacements' range of q
            sy0 = math.floor(y - float(u[..., 1].max())) - 2
            sx0 = math.floor(x - float(u[..., 0].max())) - 2
            sh = math.ceil(y + h - 1 - float(u[..., 1].min())) + 3 - sy0
            sw = math.ceil(x + w - 1 - float(u[..., 0].min())) + 3 - sx0
            rect = (x0 + sx0, y0 + sy0, sw, sh)
            tiles = {t: tiles[t] for t in lv}  # this section's tiles only
            if coverage:
                src, covered = r.render_region(rect, tiles, threads=threads, coverage=True)
                mask = covered.astype(np.float32)
            else:
                src, mask = r.render_region(rect, tiles, threads=threads), None
            matrix = np.array([[1.0, 0.0, -sy0], [0.0, 1.0, -sx0], [0.0, 0.0, 1.0]])
        field = self._field(z, region, matrix, threads)
        out = warp(src, field, order=order, mode="constant", cval=r.fill, threads=threads)
        if mask is None:
            return out, None
        return out, warp(mask, field, order=1, mode="constant", cval=0.0, threads=threads) > 0.999

    def region_fns(self, tiles: Mapping[TileKey, Any], dtype: np.dtype, *,
                   threads: int = 1) -> List[Callable[[int, int, int, int], np.ndarray]]:
        """One ``fn(y, x, h, w)`` per section (what the stack writers take)."""
        def one(z: int) -> Callable[[int, int, int, int], np.ndarray]:
            sub = {t: tiles[t] for t in self.levels[z]}
            return lambda y, x, h, w: self.region(z, sub, y, x, h, w, dtype, threads=threads)

        return [one(z) for z in range(len(self.levels))]

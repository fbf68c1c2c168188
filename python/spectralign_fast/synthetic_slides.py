"""Microscope slides with known truth: multi-position OME-TIFF files cut from real photographs.

What a slide scanner writes, made from scikit-image photographs: one OME-TIFF
per imaging cycle, every tile an OME image with its stage position
(``Plane PositionX/Y`` in µm), the physical pixel size and named channels.
The layout may have holes, a serpentine acquisition order and jitter; the
recorded stage positions carry a stage error; a later cycle sees the slide
shifted and slightly rotated; every channel is shaded by one off-centre
vignette (the flat field).

Truth: ``truth[t]`` maps tile t's pixel (x, y) (points are (x, y) =
(column, row)) to photograph (x, y).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tifffile

from .synthetic import sample
from .transforms.affine import Affine


@dataclass
class SlideLayout:
    """Where the tiles of a slide lie: true origins (x, y) in photograph pixels, acquisition order."""

    origins: Dict[int, np.ndarray]
    rotations: Dict[int, float]
    grid: Dict[int, Tuple[int, int]]
    tile: int


@dataclass
class SyntheticSlide:
    """A written slide file and its truth."""

    path: Path
    truth: Dict[int, Affine]
    channels: List[str]
    pixel_size: float
    flatfield: Optional[np.ndarray]
    stage_positions: Dict[int, np.ndarray]


def slide_layout(rows: int, cols: int, *, tile: int = 256, overlap: float = 0.12, holes: Sequence[Tuple[int, int]] = (),
                 serpentine: bool = True, jitter: float = 6.0, max_rotation: float = 0.0, margin: float = 40.0,
                 seed: int = 0) -> SlideLayout:
    """A rows x cols layout (minus ``holes``), numbered in acquisition order (serpentine: every other
    row right to left), each tile jittered by up to ``jitter`` px and rotated up to ``max_rotation``°."""
    rng = np.random.default_rng(seed)
    step = tile * (1 - overlap)
    origins, rotations, grid = {}, {}, {}
    k = 0
    for r in range(rows):
        cs = range(cols - 1, -1, -1) if serpentine and r % 2 else range(cols)
        for c in cs:
            jit = rng.uniform(-jitter, jitter, 2)
            rot = float(rng.uniform(-max_rotation, max_rotation))
            if (r, c) in set(holes):
                continue
            origins[k] = np.array([margin + c * step, margin + r * step]) + jit
            rotations[k] = rot
            grid[k] = (r, c)
            k += 1
    return SlideLayout(origins, rotations, grid, tile)


def vignette(tile: int, strength: float = 0.35, centre: Tuple[float, float] = (0.62, 0.4)) -> np.ndarray:
    """An off-centre radial shading (mean about 1 - strength/3) of a tile (rows, cols)."""
    ys, xs = np.mgrid[0:tile, 0:tile].astype(np.float64)
    cx, cy = centre[0] * tile, centre[1] * tile
    r2 = ((xs - cx) ** 2 + (ys - cy) ** 2) / (tile * tile / 2)
    return (1 - strength * np.minimum(r2, 1.5)).astype(np.float32)


def write_slide(path: str | os.PathLike, channels: Dict[str, np.ndarray], layout: SlideLayout, *,
                pixel_size: float = 0.65, slide_motion: Optional[Affine] = None, stage_error: float = 1.5,
                flatfield: Optional[np.ndarray] = None, noise: float = 0.004, dtype: type = np.uint16,
                positions: bool = True, seed: int = 1) -> SyntheticSlide:
    """Write one cycle of a slide as a multi-position OME-TIFF and return its truth.

    Parameters
    ----------
    channels : dict
        ``{name: photograph}``, float images in [0, 1] of one shape (row, col).
    slide_motion : Affine, optional
        Where the slide sits this cycle: photograph point p is seen at stage point
        ``slide_motion * p`` (default: identity, the first cycle).
    stage_error : float
        The recorded stage positions differ from the true ones by up to this many pixels.
    flatfield : (tile, tile) array, optional
        Multiplied into every channel (vignetting).
    positions : bool
        False writes the file without stage positions (for the error path).
    """
    rng = np.random.default_rng(seed)
    motion_inv = Affine() if slide_motion is None else Affine(slide_motion).inverse()
    t = layout.tile
    centre = (t - 1) / 2
    info = np.iinfo(dtype)
    truth: Dict[int, Affine] = {}
    stage: Dict[int, np.ndarray] = {}
    names = list(channels)
    with tifffile.TiffWriter(path, ome=True) as tif:
        for k, origin in layout.origins.items():
            tf = (motion_inv @ Affine.translator(origin + centre) @ Affine.rotator(np.radians(layout.rotations[k]))
                  @ Affine.translator((-centre, -centre)))
            planes: List[np.ndarray] = []
            for photo in channels.values():
                img = sample(photo, tf, (t, t))
                if flatfield is not None:
                    img = img * flatfield
                img = img + rng.normal(0, noise, img.shape).astype(np.float32)
                planes.append(np.rint(np.clip(img, 0, 1) * info.max * 0.9).astype(dtype))
            recorded = origin + rng.uniform(-stage_error, stage_error, 2)
            truth[k], stage[k] = tf, recorded
            meta: Dict[str, object] = {"axes": "CYX", "Name": f"tile {k}", "PhysicalSizeX": pixel_size,
                                       "PhysicalSizeY": pixel_size, "PhysicalSizeXUnit": "µm",
                                       "PhysicalSizeYUnit": "µm", "Channel": {"Name": names}}
            if positions:
                um = recorded * pixel_size
                meta["Plane"] = {"PositionX": [float(um[0])] * len(names), "PositionY": [float(um[1])] * len(names),
                                 "PositionXUnit": ["µm"] * len(names), "PositionYUnit": ["µm"] * len(names)}
            tif.write(np.stack(planes), photometric="minisblack", metadata=meta)
    return SyntheticSlide(Path(path), truth, names, pixel_size, flatfield, stage)


def cycle_misregistration(reference: Dict[int, Affine], cycle: Dict[int, Affine], reference_truth: Dict[int, Affine],
                          cycle_truth: Dict[int, Affine], tile: int) -> np.ndarray:
    """Distances (model pixels) between where two cycles' placements put the same photograph point.

    Each corner of each tile of ``cycle`` (transforms into model space; truth into the
    photograph) is found in every reference tile that shows it, and mapped through that
    tile's placement: what a user sees as one channel misaligned against another.
    """
    corners = np.array([[0, 0], [tile - 1, 0], [tile - 1, tile - 1], [0, tile - 1]], float).T
    d: List[float] = []
    for t, tf2 in cycle_truth.items():
        photo_pts = Affine(tf2) * corners
        model2 = Affine(cycle[t]) * corners
        for s, tf1 in reference_truth.items():
            inside = Affine(tf1).inverse() * photo_pts
            ok = np.all((inside > -0.5) & (inside < tile - 0.5), axis=0)
            if ok.any():
                model1 = Affine(reference[s]) * inside
                d.extend(np.hypot(*(model1 - model2))[ok].tolist())
    return np.array(d)

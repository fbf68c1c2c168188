"""Serial sections with known truth, made from real anatomy (tests, benchmarks, examples).

:func:`mni_axial_slices` gives consecutive axial slices of nilearn's bundled
1 mm MNI152 template (real anatomy changing from slice to slice);
:func:`serial_sections` deforms each one by a known smooth non-linear map plus
a small affine and noise, as cutting and imaging warp real sections;
:func:`section_tiles` cuts a section into an overlapping grid of tiles.
Coordinates: points are (x, y) = (column, row) in pixels. Needs scipy (and
nilearn for the template), imported only when called.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from .synthetic_tissue import SmoothDisplacement, smooth_displacement


@dataclass
class SerialSections:
    """Deformed sections and the maps that made them.

    Attributes
    ----------
    images : list of ndarray (H, W) float32
        The observed sections: ``images[z]`` at pixel p shows
        ``reference[z]`` at ``to_reference(z, p)``.
    reference : ndarray (n, H, W) float32
        The undeformed slices.
    affines : ndarray (n, 3, 3)
        Homogeneous (x, y) affine of each section's map.
    fields : list of SmoothDisplacement
        Smooth displacement (x, y) of each section's map.
    """

    images: List[np.ndarray]
    reference: np.ndarray
    affines: np.ndarray
    fields: List[SmoothDisplacement]

    def to_reference(self, z: int, points: np.ndarray) -> np.ndarray:
        """Reference (undeformed) position of section z's pixels ``points`` (N, 2) (x, y):
        ``A_z p + d_z(p)``."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        a = self.affines[z]
        return p @ a[:2, :2].T + a[:2, 2] + self.fields[z](p)


def mni_axial_slices(first: int = 20, count: int = 150, *, step: int = 1) -> np.ndarray:
    """``count`` axial slices (z, y, x) of the 1 mm MNI152 template from slice ``first``
    every ``step``, y pointing anterior-to-posterior so rows run front to back, scaled to [0, 1]."""
    from nilearn.datasets import load_mni152_template  # type: ignore[import-untyped]

    vol = np.asarray(load_mni152_template(resolution=1).get_fdata(), dtype=np.float64)  # (x, y, z)
    last = first + step * (count - 1)
    if first < 0 or count < 1 or last >= vol.shape[2]:
        raise ValueError(f"slices {first}..{last} are outside the template's {vol.shape[2]} axial slices")
    out = np.transpose(vol[:, ::-1, first:last + 1:step], (2, 1, 0))
    return ((out - vol.min()) / (vol.max() - vol.min())).astype(np.float32)


def serial_sections(slices: np.ndarray, *, max_displacement: float = 3.0, cycles: Tuple[float, float] = (1.5, 3.0),
                    rotation_deg: float = 1.0, shift: float = 3.0, scale: float = 0.01, noise: float = 0.01,
                    seed: int = 0) -> SerialSections:
    """Each slice deformed by its own known map ``p -> A p + d(p)`` (pull: the observed pixel p
    shows the slice at that point), then Gaussian noise of standard deviation ``noise``.

    ``A`` rotates by up to ``rotation_deg`` degrees and scales by up to ``1 +- scale`` about the
    centre, then shifts by up to ``shift`` pixels; ``d`` is a sum of four sinusoids of
    ``cycles`` cycles across the section with largest magnitude ``max_displacement`` px.
    """
    from scipy.ndimage import map_coordinates

    ref = np.asarray(slices, dtype=np.float32)
    n, h, w = ref.shape
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    grid = np.column_stack([xs.ravel(), ys.ravel()])
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    images, affines, fields = [], [], []
    for z in range(n):
        t = np.radians(rng.uniform(-rotation_deg, rotation_deg))
        s = 1 + rng.uniform(-scale, scale)
        lin = s * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        a = np.eye(3)
        a[:2, :2] = lin
        a[:2, 2] = centre - lin @ centre + rng.uniform(-shift, shift, 2)
        field = smooth_displacement(rng, grid, max_displacement, lin, cycles_range=cycles)
        src = grid @ lin.T + a[:2, 2] + field(grid)
        img = map_coordinates(ref[z].astype(np.float64), [src[:, 1], src[:, 0]], order=3, mode="constant")
        img = img.reshape(h, w) + rng.normal(0, noise, (h, w))
        images.append(img.astype(np.float32))
        affines.append(a)
        fields.append(field)
    return SerialSections(images, ref, np.array(affines), fields)


def section_tiles(image: np.ndarray, rows: int = 2, cols: int = 2, *,
                  overlap: float = 0.25) -> Tuple[Dict[Tuple[int, int], np.ndarray], Dict[Tuple[int, int], np.ndarray]]:
    """Cut ``image`` into a rows x cols grid of equal, axis-aligned tiles sharing ``overlap`` of
    their size with each neighbour. Returns ``{(row, col): tile}`` and ``{(row, col): (x0, y0)}``,
    each tile's pixel (0, 0) in the image."""
    h, w = image.shape
    th = int(h / (rows - (rows - 1) * overlap))
    tw = int(w / (cols - (cols - 1) * overlap))
    tiles, origins = {}, {}
    for r in range(rows):
        for c in range(cols):
            y0 = 0 if rows == 1 else round(r * (h - th) / (rows - 1))
            x0 = 0 if cols == 1 else round(c * (w - tw) / (cols - 1))
            tiles[(r, c)] = np.ascontiguousarray(image[y0:y0 + th, x0:x0 + tw])
            origins[(r, c)] = np.array([x0, y0], dtype=np.float64)
    return tiles, origins

"""Cross-modality test cases with known truth, made from real image content (STalign-style).

Conventions (those of STalign): points are ``(row, col)`` in 2-D and ``(z, row, col)`` in 3-D,
i.e. array-axis order; the physical coordinates of pixel centres are lists of 1-D uniformly
spaced vectors, ``xI = [row_coords, col_coords]``; images are channels-first, ``(C, H, W)``
or ``(C, D, H, W)``, float64.

* :func:`fluorescence_pair` -- a brightfield immunohistochemistry photograph (target) and a
  simulated fluorescence image of the same tissue (source), related by a known smooth map.
* :func:`cell_point_clouds` -- nuclei centres from that photograph and their images under a
  known smooth map, with dropped and spurious cells.
* :func:`atlas_slice` -- the MNI152 template (3-D atlas) and one oblique, deformed 2-D slice.

Each true map is an affine map plus a smooth displacement :class:`SmoothDisplacement` (a sum
of a few low-frequency sinusoids) scaled so that its largest magnitude on the domain's grid is
exactly the requested one, and checked to be small enough that the map is a diffeomorphism.
Needs scipy and scikit-image (and nilearn for the atlas), imported only when called.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

# Luminance weights of scikit-image's rgb2gray (ITU-R 709).
GREY_WEIGHTS = (0.2125, 0.7154, 0.0721)


def to_grey(image: np.ndarray) -> np.ndarray:
    """Channels-first RGB ``(3, H, W)`` to grey ``(H, W)`` with :data:`GREY_WEIGHTS`."""
    return np.tensordot(np.asarray(GREY_WEIGHTS), np.asarray(image, dtype=np.float64)[:3], axes=1)


@dataclass(frozen=True)
class SmoothDisplacement:
    """``d(x) = sum_k amplitudes[k] * sin(2 pi frequencies[k] . x + phases[k])``.

    Attributes
    ----------
    amplitudes : ndarray, shape (K, 2)
        Displacement vector of each term (units of the points).
    frequencies : ndarray, shape (K, 2)
        Spatial frequency of each term, cycles per unit, in the points' axis order.
    phases : ndarray, shape (K,)
        Phase of each term, radians.
    """

    amplitudes: np.ndarray
    frequencies: np.ndarray
    phases: np.ndarray

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Displacement ``(n, 2)`` at ``points`` ``(n, 2)``."""
        arg = 2 * np.pi * np.asarray(points, dtype=np.float64) @ self.frequencies.T + self.phases
        return np.sin(arg) @ self.amplitudes

    def jacobian(self, points: np.ndarray) -> np.ndarray:
        """Derivative ``(n, 2, 2)``: ``[i, a, b] = d d_a / d x_b`` at ``points[i]``."""
        arg = 2 * np.pi * np.asarray(points, dtype=np.float64) @ self.frequencies.T + self.phases
        slope = 2 * np.pi * np.cos(arg)
        return np.einsum("nk,ka,kb->nab", slope, self.amplitudes, self.frequencies)


def _grid(shape: Sequence[int], step: float = 1.0) -> np.ndarray:
    """Pixel-centre coordinates ``(prod(shape), 2)`` of a 2-D grid with spacing ``step``."""
    r, c = np.meshgrid(np.arange(shape[0]) * step, np.arange(shape[1]) * step, indexing="ij")
    return np.column_stack([r.ravel(), c.ravel()])


def smooth_displacement(rng: np.random.Generator, grid: np.ndarray, max_displacement: float,
                         linear: np.ndarray, terms: int = 4,
                         cycles_range: Tuple[float, float] = (0.5, 1.5)) -> SmoothDisplacement:
    """Random smooth field, ``cycles_range`` cycles across the grid's extent, scaled so that its
    largest magnitude on ``grid`` is ``max_displacement``. ``x -> linear @ x + d(x)`` is
    checked to be a diffeomorphism: ``|linear^-1 grad d| < 1`` everywhere (a bound)."""
    extent = float(np.max(grid.max(axis=0) - grid.min(axis=0)))
    angle = rng.uniform(0, 2 * np.pi, terms)
    cycles = rng.uniform(*cycles_range, terms) / extent
    freq = np.column_stack([np.cos(angle), np.sin(angle)]) * cycles[:, None]
    field = SmoothDisplacement(rng.normal(size=(terms, 2)), freq, rng.uniform(0, 2 * np.pi, terms))
    biggest = float(np.max(np.linalg.norm(field(grid), axis=1)))
    scale = max_displacement / biggest if biggest > 0 else 0.0
    field = SmoothDisplacement(field.amplitudes * scale, freq, field.phases)
    bound = np.sum(np.linalg.norm(field.amplitudes, axis=1) * 2 * np.pi * cycles)
    if bound * np.linalg.norm(np.linalg.inv(linear), 2) >= 0.9:
        raise ValueError(f"max_displacement={max_displacement} is too large for a smooth "
                         "invertible map on this domain")
    return field


def _rotation_2d(zoom: float, rotation_deg: float) -> np.ndarray:
    t = np.radians(rotation_deg)
    return zoom * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _homogeneous(linear: np.ndarray, offset: np.ndarray) -> np.ndarray:
    n = len(offset)
    out = np.eye(n + 1)
    out[:n, :n], out[:n, n] = linear, offset
    return out


def _photo(downsample: int) -> Tuple[np.ndarray, np.ndarray]:
    """IHC photograph, full resolution ``(3, 512, 512)`` and area-mean downsampled, in [0, 1]."""
    from skimage import data

    full = np.moveaxis(np.asarray(data.immunohistochemistry(), dtype=np.float64) / 255.0, -1, 0)
    h, w = (s // downsample for s in full.shape[1:])
    small = full[:, :h * downsample, :w * downsample].reshape(3, h, downsample, w, downsample)
    return full, small.mean(axis=(2, 4))


def _spread(candidates: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` well-spread rows of ``candidates`` (greedy farthest-point, random start)."""
    chosen = [int(rng.integers(len(candidates)))]
    dist = np.linalg.norm(candidates - candidates[chosen[0]], axis=1)
    for _ in range(k - 1):
        chosen.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(candidates - candidates[chosen[-1]], axis=1))
    return candidates[chosen]


def _mask_points(mask: np.ndarray, n: int, seed: int, step: float = 1.0) -> np.ndarray:
    """``n`` random points (pixel centres of ``mask`` jittered by up to half a pixel)."""
    rng = np.random.default_rng(seed)
    idx = np.argwhere(mask).astype(np.float64)
    pick = rng.choice(len(idx), size=n, replace=n > len(idx))
    return (idx[pick] + rng.uniform(-0.5, 0.5, (n, 2))) * step


@dataclass(frozen=True)
class TissuePair:
    """A fluorescence image (source I) and a brightfield photograph (target J) of one tissue.

    Source pixel ``x = (row, col)`` (pixel units) shows the target photograph at
    ``T(x) = true_affine[:2, :2] @ x + true_affine[:2, 2] + displacement(x)``
    (target pixel units), :meth:`source_to_target`.

    Attributes
    ----------
    I : ndarray, shape (1, Hs, Ws)
        Simulated fluorescence, ``1 - grey`` of the photograph sampled at ``T(x)``.
    xI : list of ndarray
        ``[arange(Hs), arange(Ws)]`` as float64.
    J : ndarray, shape (3, H, W)
        The RGB photograph in [0, 1].
    xJ : list of ndarray
        ``[arange(H), arange(W)]`` as float64.
    true_affine : ndarray, shape (3, 3)
        Affine part of T, homogeneous, (row, col) order.
    displacement : SmoothDisplacement
        Non-linear part of T (target pixels, as a function of source points).
    tissue_mask : ndarray of bool, shape (Hs, Ws)
        Source pixels with enough signal, away from the borders, mapping well inside J.
    """

    I: np.ndarray
    xI: list[np.ndarray]
    J: np.ndarray
    xJ: list[np.ndarray]
    true_affine: np.ndarray
    displacement: SmoothDisplacement
    tissue_mask: np.ndarray

    def source_to_target(self, points: np.ndarray) -> np.ndarray:
        """The true map T: source points ``(n, 2)`` to target points ``(n, 2)``, (row, col)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return p @ self.true_affine[:2, :2].T + self.true_affine[:2, 2] + self.displacement(p)

    def tissue_points(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` random source points ``(n, 2)`` inside :attr:`tissue_mask`."""
        return _mask_points(self.tissue_mask, n, seed)

    def landmarks(self, k: int = 4, noise_px: float = 1.0, seed: int = 0
                  ) -> Tuple[np.ndarray, np.ndarray]:
        """``k`` well-spread source points in the tissue and their images under T plus
        Gaussian noise of standard deviation ``noise_px`` per axis: ``(pointsI, pointsJ)``."""
        rng = np.random.default_rng(seed)
        points = _spread(np.argwhere(self.tissue_mask).astype(np.float64), k, rng)
        return points, self.source_to_target(points) + rng.normal(0.0, noise_px, points.shape)


def fluorescence_pair(*, downsample: int = 2, zoom: float = 1.1, rotation_deg: float = 10.0,
                      translation: Tuple[float, float] = (3.0, -4.0),
                      max_displacement: float = 5.0, crop: float = 0.9,
                      min_signal: float = 0.15, seed: int = 0) -> TissuePair:
    """Brightfield photograph (target) and simulated fluorescence (source) with a known map.

    The target is scikit-image's ``immunohistochemistry`` photograph, area-mean downsampled by
    ``downsample``. The source is ``crop`` times its size; source pixel ``x`` shows the target at
    ``T(x) = cJ + t + zoom * R (x - cI) + d(x)``, where ``cI``, ``cJ`` are the image centres,
    ``R = [[cos a, -sin a], [sin a, cos a]]`` with ``a = rotation_deg`` (row, col order),
    ``t = translation`` and ``d`` a smooth displacement of largest magnitude
    ``max_displacement`` target pixels on the source grid. The source's corners may map
    outside the target (about 6% of its pixels with the defaults); they show the photograph
    mirrored at its edges and lie outside ``tissue_mask``. The source shows
    ``1 - grey``, sampled (cubic spline) from the full-resolution grey photograph, smoothed
    against aliasing, at ``downsample * T(x) + (downsample - 1) / 2``.

    Returns
    -------
    TissuePair
    """
    from scipy import ndimage

    full, J = _photo(downsample)
    H, W = J.shape[1:]
    Hs, Ws = int(round(crop * H)), int(round(crop * W))
    linear = _rotation_2d(zoom, rotation_deg)
    cI, cJ = np.array([(Hs - 1) / 2, (Ws - 1) / 2]), np.array([(H - 1) / 2, (W - 1) / 2])
    affine = _homogeneous(linear, cJ + np.asarray(translation, dtype=np.float64) - linear @ cI)
    grid = _grid((Hs, Ws))
    field = smooth_displacement(np.random.default_rng(seed), grid, max_displacement, linear)
    pair = TissuePair(np.empty((1, Hs, Ws)), [np.arange(Hs) * 1.0, np.arange(Ws) * 1.0], J,
                      [np.arange(H) * 1.0, np.arange(W) * 1.0], affine, field,
                      np.zeros((Hs, Ws), dtype=bool))
    mapped = pair.source_to_target(grid)
    grey = ndimage.gaussian_filter(to_grey(full), 0.5 * downsample)
    at = (downsample * mapped + (downsample - 1) / 2).T
    fluor = 1.0 - ndimage.map_coordinates(grey, at, order=3, mode="mirror").reshape(Hs, Ws)
    margin = 8.0
    inside = np.all((mapped >= margin) & (mapped <= np.array([H, W]) - 1 - margin), axis=1)
    border = np.zeros((Hs, Ws), dtype=bool)
    border[int(margin):Hs - int(margin), int(margin):Ws - int(margin)] = True
    mask = (ndimage.gaussian_filter(fluor, 2.0) > min_signal) & border & inside.reshape(Hs, Ws)
    pair.I[0] = fluor
    pair.tissue_mask[...] = mask
    return pair


@dataclass(frozen=True)
class PointCloudPair:
    """Cell centres (source) and their images under a known map, with losses and extras (target).

    Attributes
    ----------
    points_source : ndarray, shape (n, 2)
        Nuclei centres, (row, col) pixels of the downsampled photograph.
    points_target : ndarray, shape (m, 2)
        T of the kept source cells plus spurious cells, in random order.
    matched_source, matched_target : ndarray of int, shape (k,)
        ``points_target[matched_target] == source_to_target(points_source[matched_source])``;
        target points not in ``matched_target`` are spurious.
    true_affine : ndarray, shape (3, 3)
        Affine part of T, homogeneous, (row, col) order.
    displacement : SmoothDisplacement
        Non-linear part of T: ``T(x) = true_affine @ x + displacement(x)``.
    image : ndarray, shape (3, H, W)
        The downsampled RGB photograph the cells were found in.
    """

    points_source: np.ndarray
    points_target: np.ndarray
    matched_source: np.ndarray
    matched_target: np.ndarray
    true_affine: np.ndarray
    displacement: SmoothDisplacement
    image: np.ndarray

    def source_to_target(self, points: np.ndarray) -> np.ndarray:
        """The true map T: source points ``(n, 2)`` to target points ``(n, 2)``."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return p @ self.true_affine[:2, :2].T + self.true_affine[:2, 2] + self.displacement(p)


def find_nuclei(image: np.ndarray, *, min_distance: int = 4, sigma: float = 1.0,
                threshold: float = 0.03) -> np.ndarray:
    """Nuclei centres ``(n, 2)`` (row, col pixels) in a channels-first RGB brightfield image:
    local maxima of the smoothed haematoxylin channel (``skimage.color.rgb2hed``) above
    ``threshold``, at least ``min_distance`` pixels apart."""
    from scipy import ndimage
    from skimage.color import rgb2hed
    from skimage.feature import peak_local_max

    hema = ndimage.gaussian_filter(rgb2hed(np.moveaxis(image, 0, -1))[..., 0], sigma)
    peaks = peak_local_max(hema, min_distance=min_distance, threshold_abs=threshold,
                           exclude_border=min_distance)
    return peaks[np.lexsort((peaks[:, 1], peaks[:, 0]))].astype(np.float64)


def cell_point_clouds(*, downsample: int = 2, dropout: float = 0.1, extra: float = 0.05,
                      max_displacement: float = 5.0, zoom: float = 1.1, rotation_deg: float = 10.0,
                      translation: Tuple[float, float] = (3.0, -4.0), min_distance: int = 4,
                      seed: int = 0) -> PointCloudPair:
    """Nuclei of the immunohistochemistry photograph and their images under a known map.

    Source cells are :func:`find_nuclei` of the photograph downsampled by ``downsample``.
    ``T(x) = c + t + zoom * R (x - c) + d(x)`` (``c`` the image centre, ``R`` as in
    :func:`fluorescence_pair`, ``d`` smooth with largest magnitude ``max_displacement`` on
    the image grid). The target holds T of all cells but ``round(dropout * n)`` random ones,
    plus ``round(extra * n)`` uniform random points inside the convex hull of T(cells),
    shuffled.

    Returns
    -------
    PointCloudPair
    """
    from scipy.spatial import Delaunay

    _, image = _photo(downsample)
    source = find_nuclei(image, min_distance=min_distance)
    rng = np.random.default_rng(seed)
    n = len(source)
    shape = image.shape[1:]
    centre = (np.array(shape, dtype=np.float64) - 1) / 2
    linear = _rotation_2d(zoom, rotation_deg)
    shift = np.asarray(translation, dtype=np.float64)
    affine = _homogeneous(linear, centre + shift - linear @ centre)
    field = smooth_displacement(rng, _grid(shape), max_displacement, linear)
    pair = PointCloudPair(source, np.empty((0, 2)), np.empty(0, np.int64), np.empty(0, np.int64),
                          affine, field, image)
    mapped = pair.source_to_target(source)
    kept = np.sort(rng.choice(n, size=n - int(round(dropout * n)), replace=False))
    hull = Delaunay(mapped)
    lo, hi = mapped.min(axis=0), mapped.max(axis=0)
    extras = np.empty((0, 2))
    while len(extras) < int(round(extra * n)):
        trial = rng.uniform(lo, hi, (64, 2))
        extras = np.concatenate([extras, trial[hull.find_simplex(trial) >= 0]])
    target = np.concatenate([mapped[kept], extras[:int(round(extra * n))]])
    order = rng.permutation(len(target))
    position = np.empty(len(target), dtype=np.int64)
    position[order] = np.arange(len(target))
    return PointCloudPair(source, target[order], kept, position[:len(kept)], affine, field, image)


@dataclass(frozen=True)
class AtlasSlice:
    """A 3-D atlas (source I) and one oblique, in-plane deformed 2-D slice of it (target J).

    Target pixel ``(r, c)`` (mm, point ``(0, r, c)``) shows the atlas at
    ``A_true @ (0, r + d_r, c + d_c, 1)`` with ``(d_r, d_c) = displacement((r, c))``,
    :meth:`target_to_atlas`; STalign's ``LDDMM_3D_to_slice`` convention.

    Attributes
    ----------
    I : ndarray, shape (1, D, H, W)
        The atlas in [0, 1]; axes (z inferior->superior, y posterior->anterior,
        x left->right).
    xI : list of ndarray
        ``[arange(D), arange(H), arange(W)] * resolution`` (mm).
    J : ndarray, shape (1, 1, H, W)
        The slice (linear interpolation, zero outside the atlas).
    xJ : list of ndarray
        ``[[0.0], arange(H) * resolution, arange(W) * resolution]`` (mm).
    A_true : ndarray, shape (4, 4)
        Slice plane to atlas, homogeneous, (z, y, x) order: a rotation and a translation.
    displacement : SmoothDisplacement
        In-plane displacement (mm) as a function of the slice point (r, c).
    brain_mask : ndarray of bool, shape (H, W)
        Slice pixels inside the brain (J above 0.1, eroded by two pixels).
    """

    I: np.ndarray
    xI: list[np.ndarray]
    J: np.ndarray
    xJ: list[np.ndarray]
    A_true: np.ndarray
    displacement: SmoothDisplacement
    brain_mask: np.ndarray

    def target_to_atlas(self, points: np.ndarray) -> np.ndarray:
        """Slice points ``(n, 3)``, ``(0, r, c)`` in mm, to atlas points ``(n, 3)`` (mm)."""
        q = np.array(points, dtype=np.float64).reshape(-1, 3)
        q[:, 1:] += self.displacement(q[:, 1:])
        return q @ self.A_true[:3, :3].T + self.A_true[:3, 3]

    def slice_points(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` random slice points ``(n, 3)``, ``(0, r, c)`` in mm, inside the brain."""
        step = float(self.xJ[1][1] - self.xJ[1][0])
        rc = _mask_points(self.brain_mask, n, seed, step)
        return np.column_stack([np.zeros(n), rc])


def _rotation_3d(tilt_deg: Tuple[float, float]) -> np.ndarray:
    """Rotation about the y axis by ``tilt_deg[0]`` then about the x axis by ``tilt_deg[1]``,
    acting on (z, y, x) vectors."""
    a, b = np.radians(tilt_deg[0]), np.radians(tilt_deg[1])
    about_y = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
    about_x = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    return about_x @ about_y


def atlas_slice(*, resolution: int = 2, tilt_deg: Tuple[float, float] = (8.0, 5.0),
                slice_offset_vox: float = 0.0, max_displacement: float = 2.0,
                seed: int = 0) -> AtlasSlice:
    """The MNI152 template as a 3-D atlas and a known oblique, deformed axial slice of it.

    The atlas is nilearn's bundled 1 mm MNI152 template (no network needed), transposed to
    (z, y, x), block-mean downsampled to ``resolution`` mm and scaled to [0, 1]; its
    coordinates start at 0 mm (not MNI coordinates). The slice has the atlas's (H, W) grid.
    ``A_true`` rotates the plane ``z = 0`` by ``tilt_deg`` (degrees about the y then the x
    axis, :func:`_rotation_3d`) about the slice centre and puts that centre at the atlas's
    intensity centre of mass moved ``slice_offset_vox`` voxels along the plane's normal.
    The in-plane displacement has largest magnitude ``max_displacement`` voxels on the slice
    grid.

    Returns
    -------
    AtlasSlice
    """
    from nilearn.datasets import load_mni152_template  # type: ignore[import-untyped]
    from scipy import ndimage

    data = np.asarray(load_mni152_template(resolution=1).get_fdata(), dtype=np.float64)
    data = np.transpose(data, (2, 1, 0))
    D, H, W = (s // resolution for s in data.shape)
    r = resolution
    atlas = data[:D * r, :H * r, :W * r].reshape(D, r, H, r, W, r).mean(axis=(1, 3, 5))
    atlas = (atlas - atlas.min()) / (atlas.max() - atlas.min())
    xI = [np.arange(D) * float(r), np.arange(H) * float(r), np.arange(W) * float(r)]
    rot = _rotation_3d(tilt_deg)
    centre = np.array(ndimage.center_of_mass(atlas)) * r + slice_offset_vox * r * rot[:, 0]
    plane_centre = np.array([0.0, (H - 1) / 2 * r, (W - 1) / 2 * r])
    A = _homogeneous(rot, centre - rot @ plane_centre)
    grid = _grid((H, W), float(r))
    field = smooth_displacement(np.random.default_rng(seed), grid, max_displacement * r,
                                np.eye(2))
    out = AtlasSlice(atlas[None], xI, np.empty((1, 1, H, W)),
                     [np.zeros(1), xI[1].copy(), xI[2].copy()], A, field,
                     np.zeros((H, W), dtype=bool))
    at = out.target_to_atlas(np.column_stack([np.zeros(len(grid)), grid])) / r
    out.J[0, 0] = ndimage.map_coordinates(atlas, at.T, order=1, mode="constant",
                                          cval=0.0).reshape(H, W)
    out.brain_mask[...] = ndimage.binary_erosion(out.J[0, 0] > 0.1, iterations=2)
    return out

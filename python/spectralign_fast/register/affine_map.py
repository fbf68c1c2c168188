"""DIPY's ``AffineMap`` and its starting-point helpers, on the project's warp core.

Conventions (DIPY's): images in array axis order; a ``grid2world`` maps a homogeneous array
index to world coordinates (identity when None: world = array index). ``affine`` maps STATIC
(domain) world points to MOVING (codomain) world points; ``transform(moving)`` resamples the
moving image onto the static grid (at ``inv(codomain_grid2world) @ affine @
domain_grid2world @ index``), ``transform_inverse(static)`` the other way.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .._validate import as_int, real_array
from ..render.warp import warp
from . import _checks

__all__ = ["AffineMap", "AffineInversionError", "transform_centers_of_mass",
           "transform_geometric_centers", "transform_origins"]


class AffineInversionError(ValueError):
    """The affine cannot be inverted (DIPY's exception of the same name)."""


def _shape(value: Any, dim: int | None, name: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    shape = tuple(as_int(v, name, minimum=1) for v in np.asarray(value).ravel())
    if dim is not None and len(shape) != dim:
        raise ValueError(f"{name} must have {dim} entries, got {shape}")
    return shape


class AffineMap:
    """An affine map between a static (domain) and a moving (codomain) grid, in world space.

    Parameters
    ----------
    affine : array_like or None
        ``(d + 1, d + 1)`` matrix from static world to moving world (None: identity of the
        dimension the grids give).
    domain_grid_shape, codomain_grid_shape : sequence of int, optional
        Default sampling grids of ``transform`` (static) and ``transform_inverse`` (moving).
    domain_grid2world, codomain_grid2world : array_like, optional
        Their grid-to-world matrices (identity when None).
    """

    def __init__(self, affine: Any, domain_grid_shape: Any = None, domain_grid2world: Any = None,
                 codomain_grid_shape: Any = None, codomain_grid2world: Any = None) -> None:
        self.domain_shape = _shape(domain_grid_shape, None, "domain_grid_shape")
        self.codomain_shape = _shape(codomain_grid_shape, None, "codomain_grid_shape")
        dim = None
        if affine is not None:
            arr = real_array(affine, "affine")
            if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] not in (3, 4):
                raise ValueError(f"affine must be a 3x3 (2-D) or 4x4 (3-D) matrix, got shape {arr.shape}")
            dim = arr.shape[0] - 1
        elif self.domain_shape is not None:
            dim = len(self.domain_shape)
        elif self.codomain_shape is not None:
            dim = len(self.codomain_shape)
        self._dim = dim
        self.domain_grid2world = (None if domain_grid2world is None or dim is None else
                                  _checks.grid2world(domain_grid2world, dim, "domain_grid2world"))
        self.codomain_grid2world = (None if codomain_grid2world is None or dim is None else
                                    _checks.grid2world(codomain_grid2world, dim, "codomain_grid2world"))
        self.affine: np.ndarray | None = None
        self.affine_inv: np.ndarray | None = None
        self.set_affine(affine)

    def set_affine(self, affine: Any) -> None:
        """Replace the matrix (a copy is kept); None means the identity."""
        if affine is None:
            self.affine = None if self._dim is None else np.eye(self._dim + 1)
        else:
            arr = real_array(affine, "affine")
            dim = arr.shape[0] - 1 if arr.ndim == 2 else -1
            if arr.shape != (dim + 1, dim + 1) or dim not in (2, 3):
                raise ValueError(f"affine must be a 3x3 (2-D) or 4x4 (3-D) matrix, got shape {arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError("affine must be finite")
            self._dim = dim
            self.affine = arr
        if self.affine is not None:
            if np.linalg.cond(self.affine[:-1, :-1]) > 1e12:
                raise AffineInversionError("affine is singular: its linear part cannot be inverted")
            self.affine_inv = np.linalg.inv(self.affine)

    def get_affine(self) -> np.ndarray:
        """A copy of the matrix."""
        if self.affine is None:
            raise ValueError("this AffineMap has no dimension yet; give an affine or a grid shape")
        return self.affine.copy()

    def _apply(self, image: Any, interpolation: str, image_grid2world: Any, sampling_grid_shape: Any,
               sampling_grid2world: Any, resample_only: bool, inverse: bool, threads: int) -> np.ndarray:
        if interpolation not in ("linear", "nearest"):
            raise ValueError(f"interpolation must be 'linear' or 'nearest', got {interpolation!r}")
        raw = np.asarray(image)
        if raw.ndim not in (2, 3):
            raise ValueError(f"image must be 2-D or 3-D, got {raw.ndim} dimensions")
        dim = raw.ndim
        if self._dim is not None and dim != self._dim:
            raise ValueError(f"this map is {self._dim}-D but the image is {dim}-D")
        shape = _shape(sampling_grid_shape, dim, "sampling_grid_shape")
        if shape is None:
            shape = self.codomain_shape if inverse else self.domain_shape
        if shape is None:
            raise ValueError("unknown sampling grid: pass sampling_grid_shape (or give the map a "
                             "domain/codomain grid shape)")
        default_out = self.codomain_grid2world if inverse else self.domain_grid2world
        default_in = self.domain_grid2world if inverse else self.codomain_grid2world
        out_g2w = _checks.grid2world(sampling_grid2world if sampling_grid2world is not None
                                     else default_out, dim, "sampling_grid2world")
        in_g2w = _checks.grid2world(image_grid2world if image_grid2world is not None
                                    else default_in, dim, "image_grid2world")
        aff = np.eye(dim + 1) if (self.affine is None or resample_only) else (
            self.affine_inv if inverse else self.affine)
        assert aff is not None
        index_map = np.linalg.inv(in_g2w) @ aff @ out_g2w
        if interpolation == "nearest" and raw.dtype in (np.uint8, np.uint16, np.float32):
            src = raw
        else:
            src = _checks.volume(raw, "image", allow_constant=True)
        return warp(src, index_map, output_shape=shape, order=1 if interpolation == "linear" else 0,
                    threads=threads)

    def transform(self, image: Any, interpolation: str = "linear", image_grid2world: Any = None,
                  sampling_grid_shape: Any = None, sampling_grid2world: Any = None,
                  resample_only: bool = False, *, threads: int = 0) -> np.ndarray:
        """Resample ``image`` (on the codomain/moving grid) onto the domain/static grid.

        Linear interpolation returns float32 (images of other dtypes are converted once);
        ``"nearest"`` keeps uint8, uint16 and float32. Samples outside the image are 0.
        """
        return self._apply(image, interpolation, image_grid2world, sampling_grid_shape,
                           sampling_grid2world, resample_only, False, threads)

    def transform_inverse(self, image: Any, interpolation: str = "linear", image_grid2world: Any = None,
                          sampling_grid_shape: Any = None, sampling_grid2world: Any = None,
                          resample_only: bool = False, *, threads: int = 0) -> np.ndarray:
        """Resample ``image`` (on the domain/static grid) onto the codomain/moving grid."""
        return self._apply(image, interpolation, image_grid2world, sampling_grid_shape,
                           sampling_grid2world, resample_only, True, threads)

    def _points(self, points: Any, matrix: np.ndarray | None) -> np.ndarray:
        pts = real_array(points, "points")
        if matrix is None:
            raise ValueError("this AffineMap has no matrix")
        d = matrix.shape[0] - 1
        single = pts.ndim == 1
        pts2 = pts.reshape(1, -1) if single else pts
        if pts2.ndim != 2 or pts2.shape[1] != d:
            raise ValueError(f"points must have shape (n, {d}) (world coordinates, array axis order), "
                             f"got {pts.shape}")
        if not np.isfinite(pts2).all():
            raise ValueError("points must be finite")
        out = pts2 @ matrix[:d, :d].T + matrix[:d, d]
        return out[0] if single else out

    def transform_points(self, points: Any) -> np.ndarray:
        """Static world points ``(n, d)`` (array axis order) mapped to moving world points."""
        return self._points(points, self.affine)

    def transform_points_inverse(self, points: Any) -> np.ndarray:
        """Moving world points ``(n, d)`` mapped to static world points."""
        return self._points(points, self.affine_inv)

    def __repr__(self) -> str:
        return f"AffineMap(affine={None if self.affine is None else self.affine.tolist()!r})"


def _translation_map(static: Any, static_grid2world: Any, moving: Any, moving_grid2world: Any,
                     c_static: np.ndarray, c_moving: np.ndarray) -> AffineMap:
    s, m = np.asarray(static), np.asarray(moving)
    d = s.ndim
    gs = _checks.grid2world(static_grid2world, d, "static_grid2world")
    gm = _checks.grid2world(moving_grid2world, d, "moving_grid2world")
    t = np.eye(d + 1)
    t[:d, d] = (gm @ np.append(c_moving, 1.0))[:d] - (gs @ np.append(c_static, 1.0))[:d]
    return AffineMap(t, s.shape, gs, m.shape, gm)


def _center_of_mass(img: np.ndarray, name: str) -> np.ndarray:
    w = img.astype(np.float64)
    total = float(w.sum())
    if not total > 0.0:
        raise ValueError(f"{name} has no positive mass (its intensities sum to {total:g}); a centre "
                         f"of mass needs mostly non-negative intensities (shift or mask the image)")
    return np.asarray(ndimage.center_of_mass(w), dtype=np.float64)


def transform_centers_of_mass(static: Any, static_grid2world: Any, moving: Any,
                              moving_grid2world: Any) -> AffineMap:
    """The translation that maps the static image's intensity centre of mass (world) onto the
    moving image's (DIPY's function of the same name)."""
    s, m = _checks.volume_pair(static, moving, allow_constant=True)
    return _translation_map(s, static_grid2world, m, moving_grid2world,
                            _center_of_mass(s, "static"), _center_of_mass(m, "moving"))


def transform_geometric_centers(static: Any, static_grid2world: Any, moving: Any,
                                moving_grid2world: Any) -> AffineMap:
    """The translation that maps the static grid's centre (world) onto the moving grid's
    (DIPY's convention: the centre of a grid of n samples is at index n / 2)."""
    s, m = _checks.volume_pair(static, moving, allow_constant=True)
    return _translation_map(s, static_grid2world, m, moving_grid2world,
                            np.array(s.shape) * 0.5, np.array(m.shape) * 0.5)


def transform_origins(static: Any, static_grid2world: Any, moving: Any,
                      moving_grid2world: Any) -> AffineMap:
    """The translation that maps the static grid's voxel 0 (world) onto the moving grid's."""
    s, m = _checks.volume_pair(static, moving, allow_constant=True)
    z = np.zeros(s.ndim)
    return _translation_map(s, static_grid2world, m, moving_grid2world, z, z)

"""DIPY's ``DiffeomorphicMap``: a pre-alignment followed by a displacement field, on the C++ core.

Conventions (DIPY's): images in array axis order; a ``grid2world`` maps a homogeneous array index
to world coordinates (None: the identity, world = array index). A displacement field has shape
``disp_shape + (dim,)``, float32; component ``k`` is world coordinate ``k`` of the displacement,
in world units, and the field lives on the grid ``disp_grid2world``. Interpolating a field
d-linearly at a point off its grid gives the zero vector (the identity).

For a map ``m`` from a STATIC (domain) to a MOVING (codomain) image, as
``SymmetricDiffeomorphicRegistration.optimize`` returns it, ``m.transform(moving)`` resamples
moving onto the static grid: a static world point ``x`` is sent to the moving world point
``P @ (x + b(x))`` (``P`` the pre-alignment, DIPY's ``prealign``; ``b`` the field that
``get_backward_field`` returns for this result); ``m.transform_inverse(static)`` goes the other
way. ``transform_points`` sends points the same way ``transform`` pulls images: static world
points to moving world points. Each warp and field operation runs in the C++ core
(multithreaded, the GIL released) and gives the same bits for every thread count.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._core import register as _core
from .._validate import as_int, real_array
from . import _checks

__all__ = ["DiffeomorphicMap", "mult_aff", "get_direction_and_spacings"]

INTERPOLATIONS = ("linear", "nearest")


def mult_aff(A: Optional[np.ndarray], B: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """``A @ B`` with None standing for the identity (None when both are None)."""
    if A is None:
        return B
    if B is None:
        return A
    return A @ B


def get_direction_and_spacings(affine: Optional[np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The rotation part and the voxel sizes of a grid-to-world matrix (DIPY's function).

    The spacing along array axis ``k`` is the length of column ``k`` of the linear part; the
    direction is the linear part with its columns divided by those lengths.
    """
    if affine is None:
        return np.eye(dim), np.ones(dim)
    lin = np.asarray(affine, dtype=np.float64)[:dim, :dim]
    spacings = np.sqrt((lin ** 2).sum(axis=0))
    return lin / spacings, spacings


def _matrix(value: Any, dim: int, name: str) -> Optional[np.ndarray]:
    if value is None or (isinstance(value, str) and value == "identity"):
        return None
    if isinstance(value, str):
        raise ValueError(f"{name} must be a matrix, None or 'identity', got {value!r}")
    return _checks.grid2world(value, dim, name)


def _shape(value: Any, dim: int, name: str) -> Optional[tuple[int, ...]]:
    if value is None:
        return None
    shape = tuple(as_int(v, name, minimum=1) for v in np.asarray(value).ravel())
    if len(shape) != dim:
        raise ValueError(f"{name} must have {dim} entries for a {dim}-D map, got {shape}")
    return shape


def _inv(m: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if m is None else np.linalg.inv(m)


def _eye_if_none(m: Optional[np.ndarray], dim: int) -> np.ndarray:
    return np.eye(dim + 1) if m is None else m


class DiffeomorphicMap:
    """A diffeomorphic map between two grids in world space (DIPY's class and semantics).

    Parameters
    ----------
    dim : {2, 3}
        The dimension.
    disp_shape : sequence of int
        Shape of the grid the displacement fields live on (array axis order).
    disp_grid2world : array_like, optional
        That grid's ``(dim + 1, dim + 1)`` grid-to-world matrix (None: identity).
    domain_shape, domain_grid2world : optional
        Default sampling grid of ``transform`` (the static image's); by default the field grid.
    codomain_shape, codomain_grid2world : optional
        Default sampling grid of ``transform_inverse`` (the moving image's); by default the domain.
    prealign : array_like, optional
        Linear map applied to input world points before the field (DIPY's ``prealign``).

    Notes
    -----
    ``forward`` and ``backward`` start as None; ``allocate`` makes them zero (the identity).
    ``is_inverse`` swaps the roles of ``transform`` and ``transform_inverse`` (``inverse()``
    returns such a view sharing the arrays).
    """

    def __init__(self, dim: int, disp_shape: Any, disp_grid2world: Any = None, domain_shape: Any = None,
                 domain_grid2world: Any = None, codomain_shape: Any = None,
                 codomain_grid2world: Any = None, prealign: Any = None) -> None:
        if dim not in (2, 3) or isinstance(dim, bool):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        self.dim = int(dim)
        if disp_shape is None:
            raise ValueError("disp_shape is required: the shape of the displacement fields' grid")
        shape = _shape(disp_shape, self.dim, "disp_shape")
        assert shape is not None
        self.disp_shape: tuple[int, ...] = shape
        self.disp_grid2world = _matrix(disp_grid2world, self.dim, "disp_grid2world")
        self.disp_world2grid = _inv(self.disp_grid2world)
        self.domain_shape: tuple[int, ...] = _shape(domain_shape, self.dim, "domain_shape") or self.disp_shape
        self.domain_grid2world = _matrix(domain_grid2world, self.dim, "domain_grid2world")
        self.domain_world2grid = _inv(self.domain_grid2world)
        self.codomain_shape: tuple[int, ...] = (_shape(codomain_shape, self.dim, "codomain_shape")
                                                or self.domain_shape)
        self.codomain_grid2world = _matrix(codomain_grid2world, self.dim, "codomain_grid2world")
        self.codomain_world2grid = _inv(self.codomain_grid2world)
        self.prealign = _matrix(prealign, self.dim, "prealign")
        self.prealign_inv = _inv(self.prealign)
        self.is_inverse = False
        self.forward: Optional[np.ndarray] = None
        self.backward: Optional[np.ndarray] = None
        self.threads = 0
        # Set by the optimiser for its internal warps of images it has checked already.
        self._trusted_inputs = False

    # ------------------------------------------------------------------ fields
    def allocate(self) -> None:
        """Zero forward and backward fields (the identity map)."""
        self.forward = np.zeros(self.disp_shape + (self.dim,), dtype=np.float32)
        self.backward = np.zeros(self.disp_shape + (self.dim,), dtype=np.float32)

    def _field(self, which: str) -> np.ndarray:
        field = self.forward if which == "forward" else self.backward
        if field is None:
            raise ValueError("this map has no displacement fields yet: call allocate() or set "
                             "forward and backward")
        expected = self.disp_shape + (self.dim,)
        if field.shape != expected:
            raise ValueError(f"the {which} field has shape {field.shape}, expected {expected} "
                             f"(disp_shape + (dim,))")
        return field

    def get_forward_field(self) -> np.ndarray:
        """The field ``transform`` uses (``backward`` when ``is_inverse``)."""
        return self._field("backward" if self.is_inverse else "forward")

    def get_backward_field(self) -> np.ndarray:
        """The field ``transform_inverse`` uses (``forward`` when ``is_inverse``)."""
        return self._field("forward" if self.is_inverse else "backward")

    # ------------------------------------------------------------------ warping images
    def _warp(self, image: Any, backward: bool, interpolation: str, image_world2grid: Any,
              out_shape: Any, out_grid2world: Any, threads: Optional[int],
              out: Optional[np.ndarray] = None) -> np.ndarray:
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be 'linear' or 'nearest', got {interpolation!r}")
        arr = np.asarray(image)
        if arr.ndim != self.dim:
            raise ValueError(f"this map is {self.dim}-D but the image has {arr.ndim} dimensions "
                             f"(shape {arr.shape})")
        if interpolation == "linear" and not (arr.dtype == np.float32 and arr.flags.c_contiguous
                                              and self._trusted_inputs):
            arr = _checks.volume(arr, "image", allow_constant=True)
        elif arr.dtype == np.float64:
            arr = _checks.volume(arr, "image", allow_constant=True)
        elif arr.dtype == np.int64:
            if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
                raise ValueError("int64 labels beyond int32's range cannot be warped")
            arr = arr.astype(np.int32)
        W = _matrix(image_world2grid, self.dim, "image_world2grid")
        S = _matrix(out_grid2world, self.dim, "out_grid2world")
        shape = _shape(out_shape, self.dim, "out_shape")
        Dinv = self.disp_world2grid
        if backward:
            W = W if image_world2grid is not None else self.domain_world2grid
            S = S if out_grid2world is not None else self.codomain_grid2world
            shape = shape or self.codomain_shape
            field = self._field("backward")
            Pinv = self.prealign_inv
            idx_in = mult_aff(Dinv, S)
            idx_out = mult_aff(W, mult_aff(Pinv, S))
            disp = mult_aff(W, Pinv)
        else:
            W = W if image_world2grid is not None else self.codomain_world2grid
            S = S if out_grid2world is not None else self.domain_grid2world
            shape = shape or self.domain_shape
            field = self._field("forward")
            P = self.prealign
            idx_in = mult_aff(Dinv, mult_aff(P, S))
            idx_out = mult_aff(W, mult_aff(P, S))
            disp = W
        d = self.dim
        return _core.warp_image(arr, field, _eye_if_none(idx_in, d), _eye_if_none(idx_out, d),
                                _eye_if_none(disp, d), list(shape), interpolation=interpolation, out=out,
                                threads=self.threads if threads is None else threads)

    def transform(self, image: Any, interpolation: str = "linear", image_world2grid: Any = None,
                  out_shape: Any = None, out_grid2world: Any = None, *,
                  threads: Optional[int] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Warp ``image`` in the forward direction (the backward one when ``is_inverse``).

        Parameters
        ----------
        image : array, shape ``(s, r, c)`` or ``(r, c)``
            The image to warp (for this map's default use, the moving image).
        interpolation : {"linear", "nearest"}
            d-linear (float32 output) or nearest neighbour (keeps uint8, uint16, int32 and float32;
            use it for label volumes).
        image_world2grid : array_like, optional
            World-to-grid matrix of ``image`` (default: the codomain's).
        out_shape, out_grid2world : optional
            The sampling grid (default: the domain's).
        threads : int, optional
            Threads (0: all cores; default: the map's ``threads`` attribute, 0).
        out : ndarray, optional
            Write the result here (C-contiguous, writeable, the output's shape and dtype: float32
            for linear) instead of a new array.

        Returns
        -------
        ndarray
            The warped image; samples whose source lies outside ``image`` are 0.
        """
        return self._warp(image, self.is_inverse, interpolation, image_world2grid, out_shape,
                          out_grid2world, threads, out)

    def transform_inverse(self, image: Any, interpolation: str = "linear", image_world2grid: Any = None,
                          out_shape: Any = None, out_grid2world: Any = None, *,
                          threads: Optional[int] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Warp ``image`` in the backward direction (the forward one when ``is_inverse``).

        Same parameters as ``transform``; by default ``image`` lies on the domain grid (the static
        image) and is sampled onto the codomain grid (the moving image's).
        """
        return self._warp(image, not self.is_inverse, interpolation, image_world2grid, out_shape,
                          out_grid2world, threads, out)

    # ------------------------------------------------------------------ points
    def _points(self, points: Any, backward: bool, coord2world: Any, world2coord: Any) -> np.ndarray:
        pts = real_array(points, "points")
        if pts.ndim != 2 or pts.shape[1] != self.dim:
            raise ValueError(f"points must have shape (n, {self.dim}), got {pts.shape}")
        if not np.isfinite(pts).all():
            raise ValueError("points must be finite")
        c2w = _matrix(coord2world, self.dim, "coord2world")
        w2c = _matrix(world2coord, self.dim, "world2coord")
        d = self.dim
        homo = np.hstack([pts.astype(np.float64), np.ones((len(pts), 1))])
        if backward:
            field = self._field("backward")
            world = homo @ _eye_if_none(c2w, d).T
            after = _eye_if_none(mult_aff(w2c, self.prealign_inv), d)
        else:
            field = self._field("forward")
            world = homo @ _eye_if_none(mult_aff(self.prealign, c2w), d).T
            after = _eye_if_none(w2c, d)
        grid = world @ _eye_if_none(self.disp_world2grid, d).T
        moved = world[:, :d] + _core.interpolate_field(field, np.ascontiguousarray(grid[:, :d]),
                                                      threads=self.threads)
        out = np.hstack([moved, np.ones((len(pts), 1))]) @ after.T
        return out[:, :d]

    def transform_points(self, points: Any, coord2world: Any = None, world2coord: Any = None) -> np.ndarray:
        """Move points the way ``transform`` pulls images: static world points to moving world points.

        Parameters
        ----------
        points : array_like, shape (n, dim)
            Points in array axis order (the world coordinates ``grid2world`` gives).
        coord2world : array_like, optional
            Maps the given coordinates to world (e.g. a ``grid2world`` for voxel indices).
        world2coord : array_like, optional
            Maps the resulting world points to the coordinates wanted.

        Returns
        -------
        ndarray, shape (n, dim), float64
        """
        return self._points(points, self.is_inverse, coord2world, world2coord)

    def transform_points_inverse(self, points: Any, coord2world: Any = None,
                                 world2coord: Any = None) -> np.ndarray:
        """Move points the other way: moving world points to static world points (see
        ``transform_points``)."""
        return self._points(points, not self.is_inverse, coord2world, world2coord)

    # ------------------------------------------------------------------ algebra
    def shallow_copy(self) -> "DiffeomorphicMap":
        """A new map sharing this one's field arrays."""
        new = DiffeomorphicMap.__new__(DiffeomorphicMap)
        new.__dict__.update(self.__dict__)
        return new

    def inverse(self) -> "DiffeomorphicMap":
        """The inverse map (a view sharing the arrays; ``is_inverse`` flipped)."""
        inv = self.shallow_copy()
        inv.is_inverse = not self.is_inverse
        return inv

    def expand_fields(self, expand_factors: Any, new_shape: Any) -> None:
        """Up-sample both fields to ``new_shape`` (the next finer level of the scale space).

        ``expand_factors`` are the ratios of the new spacing to the current one per axis (< 1).
        """
        factors = np.asarray(expand_factors, dtype=np.float64).ravel()
        shape = _shape(new_shape, self.dim, "new_shape")
        assert shape is not None
        if factors.shape != (self.dim,) or not np.all(np.isfinite(factors)) or np.any(factors <= 0):
            raise ValueError(f"expand_factors must be {self.dim} positive numbers, got {expand_factors!r}")
        self.forward = _core.resample_field(self._field("forward"), factors, list(shape), threads=self.threads)
        self.backward = _core.resample_field(self._field("backward"), factors, list(shape),
                                             threads=self.threads)
        self.disp_shape = shape
        self.disp_grid2world = mult_aff(self.disp_grid2world, np.diag(np.append(factors, 1.0)))
        self.disp_world2grid = _inv(self.disp_grid2world)

    def compute_inversion_error(self) -> tuple[np.ndarray, np.ndarray]:
        """Forward composed with backward, which is zero for an exact inverse pair.

        Returns
        -------
        residual : ndarray
            ``forward[i + Dinv @ backward[i]] + backward[i]`` (DIPY's composition).
        stats : ndarray, shape (3,)
            Maximum, mean and standard deviation of the residual's norms.
        """
        return _core.compose_fields(self._field("backward"), self._field("forward"),
                                    np.eye(self.dim + 1), _eye_if_none(self.disp_world2grid, self.dim), 1.0,
                                    threads=self.threads)

    def warp_endomorphism(self, phi: "DiffeomorphicMap") -> "DiffeomorphicMap":
        """``C(x) = phi(self(x))`` with inverse ``self^-1(phi^-1(y))``; ``phi`` must share this
        map's field grid (and have no pre-alignment)."""
        if tuple(phi.disp_shape) != tuple(self.disp_shape):
            raise ValueError(f"phi's field grid {phi.disp_shape} differs from this map's {self.disp_shape}")
        d = self.dim
        premult = _eye_if_none(self.disp_world2grid, d)
        forward, _ = _core.compose_fields(self.get_forward_field(), phi.get_forward_field(), np.eye(d + 1),
                                          premult, 1.0, stats=False, threads=self.threads)
        backward, _ = _core.compose_fields(phi.get_backward_field(), self.get_backward_field(),
                                           np.eye(d + 1), premult, 1.0, stats=False, threads=self.threads)
        out = self.shallow_copy()
        out.is_inverse = False
        out.forward = forward
        out.backward = backward
        return out

    def jacobian_determinant(self, *, inverse: bool = False) -> np.ndarray:
        """det(I + du/dx) on the field grid, float32 (> 0 everywhere: the map does not fold).

        ``u`` is the field ``transform`` uses (``get_forward_field()``; for a registration result,
        the static-to-moving displacement), or with ``inverse=True`` the one
        ``transform_inverse`` uses; derivatives are central differences (one-sided at the edges)
        with respect to world coordinates.
        """
        field = self.get_backward_field() if inverse else self.get_forward_field()
        return _core.jacobian_determinant(field, _eye_if_none(self.disp_grid2world, self.dim),
                                          threads=self.threads)

    def __repr__(self) -> str:
        return (f"DiffeomorphicMap(dim={self.dim}, disp_shape={self.disp_shape}, "
                f"domain_shape={self.domain_shape}, codomain_shape={self.codomain_shape}, "
                f"prealign={'None' if self.prealign is None else 'affine'}, is_inverse={self.is_inverse})")

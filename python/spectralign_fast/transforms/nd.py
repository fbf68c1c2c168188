"""N-D transforms in array axis order: ``AffineTransform`` and ``DisplacementField``.

Convention (scipy.ndimage's rule, used by ``warp`` and every registration
method): a transform maps **output array indices to input array indices**.
``AffineTransform`` is a homogeneous ``(d+1) x (d+1)`` matrix ``M``: output
index ``o`` (a column vector in array order, ``(row, col)`` or
``(plane, row, col)``) samples the input at ``M[:d, :d] @ o + M[:d, d]``.
``DisplacementField`` holds, for every output index ``o``, the offset ``u(o)``
so that the input is sampled at ``o + u(o)``. For spectralign's 2x3
``Affine`` in (x, y) see ``transforms.conventions``.
"""
from __future__ import annotations

from typing import Any, Sequence, Tuple

import numpy as np

from .conventions import affine_array_to_xy, affine_xy_to_array


class AffineTransform:
    """An affine map in array axis order, as a homogeneous ``(d+1) x (d+1)`` matrix (d = 2 or 3).

    Parameters
    ----------
    matrix : array_like
        ``(d+1, d+1)`` with last row ``[0, ..., 0, 1]``, or ``(d, d+1)``
        (the last row is added). Maps output array indices to input array
        indices, as ``scipy.ndimage.affine_transform``'s ``matrix``.

    Notes
    -----
    ``A @ B`` is the map "B, then A" (``(A @ B).apply(p) == A.apply(B.apply(p))``).
    The matrix is stored as a float64 copy and never changes.
    """

    __slots__ = ("_m",)

    def __init__(self, matrix: Any) -> None:
        self._m = _as_homogeneous(matrix, "matrix")
        self._m.flags.writeable = False

    # -- constructors -------------------------------------------------------------------

    @classmethod
    def identity(cls, ndim: int) -> "AffineTransform":
        """The identity in ``ndim`` (2 or 3) dimensions."""
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
        return cls(np.eye(ndim + 1))

    @classmethod
    def from_linear(cls, linear: Any, offset: Any = None) -> "AffineTransform":
        """From a ``d x d`` linear part and a length-``d`` offset (default 0), array order."""
        lin = np.asarray(linear, dtype=np.float64)
        if lin.ndim != 2 or lin.shape[0] != lin.shape[1] or lin.shape[0] not in (2, 3):
            raise ValueError(f"linear must be 2x2 or 3x3, got shape {lin.shape}")
        d = lin.shape[0]
        off = np.zeros(d) if offset is None else np.asarray(offset, dtype=np.float64)
        if off.shape != (d,):
            raise ValueError(f"offset must have {d} values (one per axis), got shape {off.shape}")
        m = np.eye(d + 1)
        m[:d, :d] = lin
        m[:d, d] = off
        return cls(m)

    @classmethod
    def translation(cls, shift: Sequence[float]) -> "AffineTransform":
        """Output index ``o`` samples the input at ``o + shift`` (array order)."""
        s = np.asarray(shift, dtype=np.float64)
        if s.ndim != 1 or s.size not in (2, 3):
            raise ValueError(f"shift must hold 2 or 3 values (one per axis), got shape {s.shape}")
        return cls.from_linear(np.eye(s.size), s)

    @classmethod
    def from_xy(cls, affine: Any) -> "AffineTransform":
        """The same 2-D map as spectralign's 2x3 ``Affine`` (or any 2x3 / 3x3 matrix) in (x, y).

        The direction is kept: to render a tile placed by ``fwd`` (tile to
        model) into model space, warp with ``AffineTransform.from_xy(fwd).inverse()``.
        """
        return cls(affine_xy_to_array(np.asarray(affine, dtype=np.float64)))

    # -- properties -----------------------------------------------------------------------

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions d."""
        return self._m.shape[0] - 1

    @property
    def matrix(self) -> np.ndarray:
        """The ``(d+1) x (d+1)`` homogeneous matrix (read-only float64)."""
        return self._m

    @property
    def linear(self) -> np.ndarray:
        """The ``d x d`` linear part (a copy)."""
        return self._m[:-1, :-1].copy()

    @property
    def offset(self) -> np.ndarray:
        """The length-``d`` offset (a copy)."""
        return self._m[:-1, -1].copy()

    # -- algebra --------------------------------------------------------------------------

    def inverse(self) -> "AffineTransform":
        """The inverse map (ValueError when the linear part is singular)."""
        lin = self._m[:-1, :-1]
        if not _invertible(lin):
            raise ValueError(f"the transform is singular (determinant {np.linalg.det(lin):.3g}): it has no "
                             f"inverse")
        return AffineTransform(np.linalg.inv(self._m))

    def __matmul__(self, other: "AffineTransform") -> "AffineTransform":
        if not isinstance(other, AffineTransform):
            return NotImplemented
        if other.ndim != self.ndim:
            raise ValueError(f"cannot compose a {self.ndim}-D and a {other.ndim}-D transform")
        return AffineTransform(self._m @ other._m)

    def apply(self, points: Any) -> np.ndarray:
        """Map (N, d) points (array order) through the transform; float64 (N, d)."""
        p = np.asarray(points, dtype=np.float64)
        d = self.ndim
        if p.ndim != 2 or p.shape[1] != d:
            raise ValueError(f"points must have shape (N, {d}) in array order, got {p.shape}")
        return p @ self._m[:d, :d].T + self._m[:d, d]

    def to_xy(self) -> np.ndarray:
        """The same 2-D map as a 2x3 matrix in (x, y) (spectralign's ``Affine`` layout)."""
        if self.ndim != 2:
            raise ValueError("only 2-D transforms have an (x, y) form")
        return affine_array_to_xy(self._m)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.array(self._m, dtype=dtype)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AffineTransform) and np.array_equal(self._m, other._m)

    def __hash__(self) -> int:
        return hash(self._m.tobytes())

    def __repr__(self) -> str:
        rows = ", ".join(str(np.round(r, 6).tolist()) for r in self._m)
        return f"AffineTransform([{rows}])"


class DisplacementField:
    """A dense displacement field in array axis order: output index ``o`` samples the input at
    ``o + field[o]``.

    Parameters
    ----------
    field : array_like, shape ``output_shape + (d,)``
        d = 2 or 3 components per voxel, in array order (``field[..., 0]``
        along axis 0). Stored as a C-contiguous float32 copy; NaN or inf
        values are refused.
    """

    __slots__ = ("_f",)

    def __init__(self, field: Any) -> None:
        f = np.asarray(field)
        if f.dtype.kind not in "iuf":
            raise TypeError(f"field must hold real numbers, got dtype {f.dtype}")
        if f.ndim not in (3, 4) or f.shape[-1] != f.ndim - 1:
            raise ValueError(f"field must have shape (rows, cols, 2) or (planes, rows, cols, 3), got {f.shape}")
        if min(f.shape[:-1]) < 1:
            raise ValueError(f"field is empty (shape {f.shape})")
        f = np.array(f, dtype=np.float32, order="C", copy=True)
        if not np.all(np.isfinite(f)):
            raise ValueError("field contains NaN or inf displacements")
        f.flags.writeable = False
        self._f = f

    @classmethod
    def zeros(cls, shape: Sequence[int]) -> "DisplacementField":
        """The identity field over an output grid of ``shape`` (2-D or 3-D)."""
        shp = tuple(int(s) for s in shape)
        if len(shp) not in (2, 3):
            raise ValueError(f"shape must have 2 or 3 axes, got {shape!r}")
        return cls(np.zeros(shp + (len(shp),), np.float32))

    @classmethod
    def from_affine(cls, transform: Any, shape: Sequence[int]) -> "DisplacementField":
        """The field of an affine map (``AffineTransform`` or homogeneous matrix) over ``shape``."""
        t = transform if isinstance(transform, AffineTransform) else AffineTransform(transform)
        shp = tuple(int(s) for s in shape)
        if len(shp) != t.ndim:
            raise ValueError(f"shape has {len(shp)} axes but the transform is {t.ndim}-D")
        grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shp], indexing="ij"), axis=-1)
        mapped = grid @ t.matrix[:-1, :-1].T + t.matrix[:-1, -1]
        return cls((mapped - grid).astype(np.float32))

    @property
    def field(self) -> np.ndarray:
        """The ``output_shape + (d,)`` float32 array (read-only)."""
        return self._f

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions d."""
        return self._f.ndim - 1

    @property
    def shape(self) -> Tuple[int, ...]:
        """The output grid's shape."""
        return tuple(self._f.shape[:-1])

    def coordinates(self) -> np.ndarray:
        """Absolute input coordinates ``o + field[o]``, float64 ``output_shape + (d,)``."""
        grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in self.shape], indexing="ij"),
                        axis=-1)
        return grid + self._f

    def __repr__(self) -> str:
        mag = float(np.sqrt((self._f.astype(np.float64) ** 2).sum(-1)).max())
        return f"DisplacementField(shape={self.shape}, ndim={self.ndim}, max |u| = {mag:.3g})"


def _as_homogeneous(matrix: Any, name: str) -> np.ndarray:
    m = np.asarray(matrix)
    if m.dtype.kind == "c":
        raise TypeError(f"{name} is complex; give real numbers")
    if m.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {m.dtype}")
    m = np.array(m, dtype=np.float64, copy=True)
    if m.ndim != 2 or m.shape[1] not in (3, 4) or m.shape[0] not in (m.shape[1] - 1, m.shape[1]):
        raise ValueError(f"{name} must be (d+1)x(d+1) homogeneous or d x (d+1) with d = 2 or 3, got shape "
                         f"{m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} contains NaN or inf")
    d = m.shape[1] - 1
    if m.shape[0] == d:
        m = np.vstack([m, np.eye(d + 1)[d]])
    elif not np.array_equal(m[d], np.eye(d + 1)[d]):
        raise ValueError(f"{name}'s last row must be [0, ..., 0, 1] (an affine map), got {m[d].tolist()}")
    return m


def _invertible(lin: np.ndarray) -> bool:
    # Relative to the matrix's scale, so a tiny but well-conditioned scaling still inverts.
    s = np.linalg.svd(lin, compute_uv=False)
    return bool(s[-1] > 1e-12 * max(s[0], 1e-300))

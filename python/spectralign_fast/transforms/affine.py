"""Affine: a 2x3 affine transform of (x, y) points, as spectralign's ``Affine``."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import _core
from .._validate import as_float, as_int, real_array
from ..image import Image


class Affine(np.ndarray):
    """A 2x3 float64 affine transform ``p -> A p + b`` acting on (x, y).

    ``Affine()`` is the identity; ``Affine(arr)`` takes a 2x3 matrix (or a
    3x3 homogeneous one with last row (0, 0, 1)). ``T1 @ T2`` applies T2
    first, then T1; ``T * p`` maps a point (2,) or points (2, N).
    """

    def __new__(cls, arr: Optional[Any] = None) -> "Affine":
        if arr is None:
            return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).view(cls)
        a = real_array(arr, "an Affine's matrix")  # always a copy
        if a.shape == (3, 3):
            if not np.allclose(a[2], [0, 0, 1]):
                raise ValueError("a 3x3 affine matrix must have last row (0, 0, 1)")
            a = a[:2].copy()
        if a.shape != (2, 3):
            raise ValueError(f"an Affine must be 2x3, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("an Affine must be finite (it has NaN or inf)")
        return a.view(cls)

    def __array_finalize__(self, obj: Optional[np.ndarray]) -> None:
        return

    def __repr__(self) -> str:
        if self.shape != (2, 3):
            return repr(self.view(np.ndarray))
        rows = [f"[{r[0]:9.5f} {r[1]:9.5f} | {r[2]:10.4f}]" for r in self.view(np.ndarray)]
        return "Affine(" + "\n       ".join(rows) + ")"

    __str__ = __repr__

    def _m(self) -> np.ndarray:
        if self.shape != (2, 3):
            raise ValueError(f"not a 2x3 affine (shape {self.shape})")
        return self.view(np.ndarray)

    def _homogeneous(self) -> np.ndarray:
        return np.vstack([self._m(), [0.0, 0.0, 1.0]])

    def __matmul__(self, other: Any) -> "Affine":
        """``T1 @ T2``: the transform that applies T2 first, then T1."""
        return Affine((self._homogeneous() @ Affine(other)._homogeneous())[:2])

    def __imatmul__(self, other: Any) -> "Affine":
        self[...] = self @ other
        return self

    def __mul__(self, xy: Any) -> np.ndarray:
        """``T * p``: p of shape (2,) or (2, N) mapped through the transform."""
        p = real_array(xy, "points")
        m = self._m()
        if p.shape == (2,):
            return m[:, :2] @ p + m[:, 2]
        if p.ndim == 2 and p.shape[0] == 2:
            return m[:, :2] @ p + m[:, 2:3]
        raise ValueError(f"points must have shape (2,) or (2, N), got {p.shape}")

    def shift(self, dxy: Any) -> "Affine":
        """Add a translation after the transform, in place; returns self."""
        d = real_array(dxy, "dxy").ravel()
        if d.size != 2 or not np.all(np.isfinite(d)):
            raise ValueError(f"dxy must be a finite (dx, dy) pair, got {dxy!r}")
        self[0, 2] += d[0]
        self[1, 2] += d[1]
        return self

    def shifted(self, dxy: Any) -> "Affine":
        """A copy with a translation added after the transform."""
        return Affine(self).shift(dxy)

    def inverse(self) -> "Affine":
        """The inverse transform (ValueError if singular)."""
        m = self._m()
        det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
        scale = max(1.0, float(np.abs(m[:, :2]).max()))
        if abs(det) <= 1e-12 * scale * scale:
            raise ValueError(f"this affine is singular (determinant {det:g}) and has no inverse")
        return Affine(np.linalg.inv(self._homogeneous())[:2])

    def invert(self) -> "Affine":
        """Invert in place; returns self."""
        self[...] = self.inverse()
        return self

    def magnification(self) -> float:
        """sqrt(|det A|): the scale factor, exact for rotation + isotropic scale."""
        m = self._m()
        return float(np.sqrt(abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])))

    def angle(self, refine: bool = False) -> float:
        """Rotation angle in radians (positive turns +x towards +y).

        It is the angle of the rotation closest (Frobenius norm) to A; that
        has the closed form atan2(a10 - a01, a00 + a11), so ``refine`` (an
        iterative search in spectralign) changes nothing.
        """
        m = self._m()
        return float(np.arctan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1]))

    def translation(self) -> np.ndarray:
        """The translation b (a copy)."""
        return self._m()[:, 2].copy()

    def centerofrotation(self) -> np.ndarray:
        """The point c with T(p) = A (p - c) + c; ValueError when A - I is
        singular (e.g. a pure translation has no centre)."""
        m = self._m()
        a = m[:, :2] - np.eye(2)
        if abs(np.linalg.det(a)) < 1e-12:
            raise ValueError("this transform has no unique centre of rotation "
                             "(its linear part has eigenvalue 1, e.g. a pure translation)")
        return np.linalg.solve(a, -m[:, 2])

    def apply(self, img: Any, rect: Optional[Any] = None) -> Image:
        """Render ``img`` through this transform (image space -> model space).

        Output pixel (row i, column j) shows model point (x0 + j, y0 + i),
        sampled bilinearly from the image at ``inverse() * (x, y)``; outside
        pixels are 0. Without ``rect`` the output has the image's size and
        x0 = y0 = 0; ``rect = (x0, y0, width, height)`` picks a rectangle of
        model space.
        """
        im = img if isinstance(img, Image) else Image(img)
        plain = im.view(np.ndarray)
        inv = self.inverse()._m()
        if rect is None:
            x0, y0, w, h = 0.0, 0.0, plain.shape[1], plain.shape[0]
        else:
            vals = np.asarray(rect).ravel()
            if vals.size != 4:
                raise ValueError(f"rect must be (x0, y0, width, height), got {rect!r}")
            x0, y0 = as_float(vals[0], "x0"), as_float(vals[1], "y0")
            w, h = as_int(vals[2], "width", minimum=1), as_int(vals[3], "height", minimum=1)
        return Image(_core.image.warp_affine(plain, tuple(inv.ravel()), float(x0), float(y0), w, h))

    @staticmethod
    def translator(dxy: Any) -> "Affine":
        """Pure translation by (dx, dy)."""
        dx, dy = (float(v) for v in np.asarray(dxy, dtype=np.float64).ravel()[:2])
        return Affine([[1.0, 0.0, dx], [0.0, 1.0, dy]])

    @staticmethod
    def rotator(phi: float, xy0: Any = (0, 0)) -> "Affine":
        """Rotation by ``phi`` radians about the point ``xy0``."""
        c, s = np.cos(as_float(phi, "phi")), np.sin(phi)
        x0, y0 = (float(v) for v in np.asarray(xy0, dtype=np.float64).ravel()[:2])
        return (Affine.translator([x0, y0]) @ Affine([[c, -s, 0], [s, c, 0]])
                @ Affine.translator([-x0, -y0]))

    @staticmethod
    def scaler(s: float, xy0: Any = (0, 0)) -> "Affine":
        """Isotropic scaling by ``s`` about the point ``xy0``."""
        s = as_float(s, "s")
        x0, y0 = (float(v) for v in np.asarray(xy0, dtype=np.float64).ravel()[:2])
        return Affine([[s, 0.0, x0 * (1 - s)], [0.0, s, y0 * (1 - s)]])

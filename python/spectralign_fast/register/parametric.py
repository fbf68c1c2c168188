"""DIPY's parametric transforms (``dipy.align.transforms``), with DIPY's parameter order.

Every transform maps a parameter vector to a homogeneous ``(d + 1) x (d + 1)`` matrix that acts
on world points in ARRAY AXIS ORDER (DIPY's convention: for a 3-D volume the axes of the array,
mapped to world by its ``grid2world``; for a 2-D image without ``grid2world`` the world is the
array index ``(row, col)``). ``params0`` therefore means exactly what it means in DIPY:

====================================  ==========================================================
``TranslationTransform2D/3D``         ``[t0, t1(, t2)]``
``RotationTransform2D``               ``[angle]``
``RotationTransform3D``               ``[a, b, c]`` (DIPY's Euler angles, radians)
``RigidTransform2D``                  ``[angle, t0, t1]``
``RigidTransform3D``                  ``[a, b, c, t0, t1, t2]``
``RigidIsoScalingTransform2D``        ``[angle, t0, t1, s]``
``RigidIsoScalingTransform3D``        ``[a, b, c, t0, t1, t2, s]``
``RigidScalingTransform2D``           ``[angle, t0, t1, s0, s1]``
``RigidScalingTransform3D``           ``[a, b, c, t0, t1, t2, s0, s1, s2]``
``ScalingTransform2D/3D``             ``[s]`` (isotropic)
``AffineTransform2D``                 the top two rows, row major (6 values)
``AffineTransform3D``                 the top three rows, row major (12 values)
====================================  ==========================================================

The derivative of the matrix with respect to the parameters (``matrix_jacobian``) is exact:
complex-step differentiation of the same formulas, which has no cancellation error.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import real_array

__all__ = [
    "Transform", "TranslationTransform2D", "TranslationTransform3D", "RotationTransform2D",
    "RotationTransform3D", "RigidTransform2D", "RigidTransform3D", "RigidIsoScalingTransform2D",
    "RigidIsoScalingTransform3D", "RigidScalingTransform2D", "RigidScalingTransform3D",
    "ScalingTransform2D", "ScalingTransform3D", "AffineTransform2D", "AffineTransform3D",
    "transform_for",
]


def _rotation_2d(angle: Any) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _rotation_3d(a: Any, b: Any, c: Any) -> np.ndarray:
    # DIPY's composition (transforms.pyx, RotationTransform3D), written out.
    sa, ca, sb, cb, sc, cc = np.sin(a), np.cos(a), np.sin(b), np.cos(b), np.sin(c), np.cos(c)
    return np.array([[cc * cb - sc * sa * sb, -sc * ca, cc * sb + sc * sa * cb],
                     [sc * cb + cc * sa * sb, cc * ca, sc * sb - cc * sa * cb],
                     [-ca * sb, sa, ca * cb]])


class Transform:
    """A parametric family of affine maps (DIPY's ``Transform``).

    Subclasses set ``dim``, ``number_of_parameters`` and the kind of parameters each slot holds
    (``"angle"``, ``"translation"``, ``"scale"`` or ``"linear"``), and write ``_matrix``.
    """

    dim: int = 0
    number_of_parameters: int = 0
    parameter_kinds: tuple[str, ...] = ()

    def get_number_of_parameters(self) -> int:
        """The length of the parameter vector."""
        return self.number_of_parameters

    def get_dim(self) -> int:
        """The dimension (2 or 3) of the space the transform acts on."""
        return self.dim

    def get_identity_parameters(self) -> np.ndarray:
        """The parameters of the identity map."""
        return np.array([1.0 if k == "scale" else 0.0 for k in self.parameter_kinds])

    def _checked(self, theta: Any) -> np.ndarray:
        params = real_array(theta, "params") if not np.iscomplexobj(theta) else np.asarray(theta)
        if params.shape != (self.number_of_parameters,):
            raise ValueError(f"{type(self).__name__} takes {self.number_of_parameters} parameters, "
                             f"got an array of shape {params.shape}")
        return params

    def param_to_matrix(self, theta: Any) -> np.ndarray:
        """The ``(dim + 1) x (dim + 1)`` matrix (array axis order, world units) for ``theta``."""
        params = self._checked(theta)
        if not np.all(np.isfinite(params)):
            raise ValueError("params must be finite")
        return self._homogeneous(params)

    def _homogeneous(self, params: np.ndarray) -> np.ndarray:
        d = self.dim
        linear, translation = self._matrix(params)
        out = np.zeros((d + 1, d + 1), dtype=np.result_type(params.dtype, np.float64))
        out[:d, :d] = linear
        out[:d, d] = translation
        out[d, d] = 1.0
        return out

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        raise NotImplementedError

    def matrix_jacobian(self, theta: Any) -> np.ndarray:
        """d(matrix) / d(theta): shape ``(n, dim + 1, dim + 1)``, exact to rounding."""
        params = self._checked(theta).astype(np.float64)
        h = 1e-30
        out = np.empty((self.number_of_parameters, self.dim + 1, self.dim + 1))
        for k in range(self.number_of_parameters):
            step = params.astype(np.complex128)
            step[k] += 1j * h
            out[k] = self._homogeneous(step).imag / h
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TranslationTransform2D(Transform):
    """Translation in 2-D: ``[t0, t1]`` (array axis order)."""
    dim, number_of_parameters, parameter_kinds = 2, 2, ("translation",) * 2

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return np.eye(2), p[:2]


class TranslationTransform3D(Transform):
    """Translation in 3-D: ``[t0, t1, t2]`` (array axis order)."""
    dim, number_of_parameters, parameter_kinds = 3, 3, ("translation",) * 3

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return np.eye(3), p[:3]


class RotationTransform2D(Transform):
    """Rotation about the world origin in 2-D: ``[angle]`` (radians)."""
    dim, number_of_parameters, parameter_kinds = 2, 1, ("angle",)

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return _rotation_2d(p[0]), np.zeros(2)


class RotationTransform3D(Transform):
    """Rotation about the world origin in 3-D: DIPY's angles ``[a, b, c]`` (radians)."""
    dim, number_of_parameters, parameter_kinds = 3, 3, ("angle",) * 3

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return _rotation_3d(p[0], p[1], p[2]), np.zeros(3)


class RigidTransform2D(Transform):
    """Rotation and translation in 2-D: ``[angle, t0, t1]``."""
    dim, number_of_parameters, parameter_kinds = 2, 3, ("angle", "translation", "translation")

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return _rotation_2d(p[0]), p[1:3]


class RigidTransform3D(Transform):
    """Rotation and translation in 3-D: ``[a, b, c, t0, t1, t2]``."""
    dim, number_of_parameters, parameter_kinds = 3, 6, ("angle",) * 3 + ("translation",) * 3

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return _rotation_3d(p[0], p[1], p[2]), p[3:6]


class RigidIsoScalingTransform2D(Transform):
    """Rotation, translation and one scale in 2-D: ``[angle, t0, t1, s]``."""
    dim, number_of_parameters = 2, 4
    parameter_kinds = ("angle", "translation", "translation", "scale")

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return _rotation_2d(p[0]) * p[3], p[1:3]


class RigidIsoScalingTransform3D(Transform):
    """Rotation, translation and one scale in 3-D: ``[a, b, c, t0, t1, t2, s]``."""
    dim, number_of_parameters = 3, 7
    parameter_kinds = ("angle",) * 3 + ("translation",) * 3 + ("scale",)

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return _rotation_3d(p[0], p[1], p[2]) * p[6], p[3:6]


class RigidScalingTransform2D(Transform):
    """Rotation, translation and a scale per axis in 2-D: ``[angle, t0, t1, s0, s1]``
    (DIPY: row ``k`` of the rotation scaled by ``s_k``)."""
    dim, number_of_parameters = 2, 5
    parameter_kinds = ("angle", "translation", "translation", "scale", "scale")

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return _rotation_2d(p[0]) * p[3:5, None], p[1:3]


class RigidScalingTransform3D(Transform):
    """Rotation, translation and a scale per axis in 3-D: ``[a, b, c, t0, t1, t2, s0, s1, s2]``
    (DIPY: row ``k`` of the rotation scaled by ``s_k``)."""
    dim, number_of_parameters = 3, 9
    parameter_kinds = ("angle",) * 3 + ("translation",) * 3 + ("scale",) * 3

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return _rotation_3d(p[0], p[1], p[2]) * p[6:9, None], p[3:6]


class ScalingTransform2D(Transform):
    """Isotropic scaling about the world origin in 2-D: ``[s]``."""
    dim, number_of_parameters, parameter_kinds = 2, 1, ("scale",)

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return np.eye(2) * p[0], np.zeros(2)


class ScalingTransform3D(Transform):
    """Isotropic scaling about the world origin in 3-D: ``[s]``."""
    dim, number_of_parameters, parameter_kinds = 3, 1, ("scale",)

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        return np.eye(3) * p[0], np.zeros(3)


class AffineTransform2D(Transform):
    """A general affine map in 2-D: the matrix's top two rows, row major."""
    dim, number_of_parameters = 2, 6
    parameter_kinds = ("linear", "linear", "translation") * 2

    def get_identity_parameters(self) -> np.ndarray:
        """The parameters of the identity map."""
        return np.eye(3)[:2].ravel()

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        rows = p.reshape(2, 3)
        return rows[:, :2], rows[:, 2]


class AffineTransform3D(Transform):
    """A general affine map in 3-D: the matrix's top three rows, row major."""
    dim, number_of_parameters = 3, 12
    parameter_kinds = ("linear", "linear", "linear", "translation") * 3

    def get_identity_parameters(self) -> np.ndarray:
        """The parameters of the identity map."""
        return np.eye(4)[:3].ravel()

    def _matrix(self, p: np.ndarray) -> tuple[Any, Any]:
        rows = p.reshape(3, 4)
        return rows[:, :3], rows[:, 3]


_MODELS = {
    "translation": (TranslationTransform2D, TranslationTransform3D),
    "rigid": (RigidTransform2D, RigidTransform3D),
    "similarity": (RigidIsoScalingTransform2D, RigidIsoScalingTransform3D),
    "rigid_scaling": (RigidScalingTransform2D, RigidScalingTransform3D),
    "affine": (AffineTransform2D, AffineTransform3D),
}


def transform_for(model: str, dim: int) -> Transform:
    """The transform for a model name (``"translation"``, ``"rigid"``, ``"similarity"``,
    ``"rigid_scaling"`` or ``"affine"``) in ``dim`` (2 or 3) dimensions."""
    if model not in _MODELS:
        raise ValueError(f"model must be one of {sorted(_MODELS)}, got {model!r}")
    if dim not in (2, 3):
        raise ValueError(f"images must be 2-D or 3-D, got {dim} dimensions")
    return _MODELS[model][dim - 2]()

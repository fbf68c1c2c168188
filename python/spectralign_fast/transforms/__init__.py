"""Transforms.

- ``Affine``: spectralign's 2x3 matrix in (x, y), tile pixels to model space.
- ``AffineTransform``: N-D homogeneous ``(d+1) x (d+1)`` matrix in array axis
  order, output indices to input indices (scipy.ndimage's rule).
- ``DisplacementField``: output index ``o`` samples the input at ``o + u(o)``.
- ``Displacement`` / ``LocalDisplacement``: thunder-registration's shifts.
- ``affine_from_points``: the least-squares (affine, rigid, similarity,
  translation) homogeneous matrix taking fixed points to moving points.
- ``conventions``: the one rule for (x, y) versus array order.
"""
from __future__ import annotations

from .affine import Affine
from .displacement import Displacement, LocalDisplacement
from .nd import AffineTransform, DisplacementField
from .points import affine_from_points

__all__ = ["Affine", "AffineTransform", "Displacement", "DisplacementField", "LocalDisplacement",
           "affine_from_points"]

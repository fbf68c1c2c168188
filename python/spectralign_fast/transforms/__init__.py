"""Transforms.

- ``Affine``: spectralign's 2x3 matrix in (x, y), tile pixels to model space.
- ``AffineTransform``: N-D homogeneous ``(d+1) x (d+1)`` matrix in array axis
  order, output indices to input indices (scipy.ndimage's rule).
- ``DisplacementField``: output index ``o`` samples the input at ``o + u(o)``.
- ``Displacement`` / ``LocalDisplacement``: thunder-registration's shifts.
- ``conventions``: the one rule for (x, y) versus array order.
"""
from __future__ import annotations

from .affine import Affine
from .displacement import Displacement, LocalDisplacement
from .nd import AffineTransform, DisplacementField

__all__ = ["Affine", "AffineTransform", "Displacement", "DisplacementField", "LocalDisplacement"]

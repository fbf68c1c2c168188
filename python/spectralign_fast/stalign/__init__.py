"""STalign's API on this package's C++ core: change ``from STalign import STalign`` to
``from spectralign_fast import stalign as STalign`` and the same calls run.

Kept from STalign (JEFworks-Lab): the function names, arguments, defaults and conventions —
points and coordinates in ``(row, col)`` = ``(y, x)`` order (``(slice, row, col)`` in 3-D),
images channels first, grids as lists of 1-D coordinate vectors (``xI = [rows, cols]``),
affine matrices homogeneous in that order, velocities ``(nt, *grid, d)``. Differences: arrays
are NumPy (torch tensors are accepted and converted; torch is never needed), results are NumPy
arrays, nothing is drawn while fitting, the computation is float64 in C++ whatever ``dtype``
says (the results are cast to it), ``device`` is ignored, and runs are deterministic.
``LDDMM_3D_to_slice`` regularises with the full 3-D Fourier transform of the velocity (STalign
transforms two of its three axes). Bad input raises ``ValueError``/``TypeError`` saying what
to fix, where STalign raises ``Exception`` or fails inside torch.
"""
from __future__ import annotations

from .lddmm import LDDMM, LDDMM_3D_to_slice
from .raster import normalize, rasterize
from .transforms import (L_T_from_points, build_transform, build_transform3D, calculate_tre, clip,
                         extent_from_x, interp, interp3D, to_A, to_A_3D,
                         transform_image_source_to_target, transform_image_source_with_A,
                         transform_image_target_to_source, transform_points_source_to_target,
                         transform_points_target_to_source, v_to_phii, v_to_phii_3D)

__all__ = [
    "LDDMM", "LDDMM_3D_to_slice", "L_T_from_points", "build_transform", "build_transform3D",
    "calculate_tre", "clip", "extent_from_x", "interp", "interp3D", "normalize", "rasterize",
    "to_A", "to_A_3D", "transform_image_source_to_target", "transform_image_source_with_A",
    "transform_image_target_to_source", "transform_points_source_to_target",
    "transform_points_target_to_source", "v_to_phii", "v_to_phii_3D",
]

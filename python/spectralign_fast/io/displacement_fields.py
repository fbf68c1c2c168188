"""Displacement fields that other tools read: ANTs/ITK warp files and DIPY's mapping layout.

Conventions (the same as ``io.transform_files``). Our fields are DIPY's: shape
``grid + (d,)``, float32, component ``k`` = displacement along OUR world axis ``k``, on a grid
whose ``grid2world`` maps an array index (array order) to our world. ``world`` names that world:
``"ras"`` (NIfTI/nibabel RAS+ mm; the default in 3-D), ``"array"`` (array index order, the world
of ``SimpleITK.GetImageFromArray``, reversed axes; the default in 2-D) or ``"lps"`` (ITK's).

ANTs/ITK (``antsRegistration`` output, ``ants.apply_transforms``, SimpleITK's
``DisplacementFieldTransform``): a NIfTI-1 file of shape ``(X, Y, Z, 1, d)`` (``Z = 1`` in 2-D),
intent ``vector`` (1007), float32, whose header geometry is the field grid and whose vectors are
displacements in ITK's LPS physical space, components in ITK's order ``(x, y[, z])``. A fixed
(static) point ``x`` maps to the moving point ``A(x + u(x))`` with ``A`` the affine
(``0GenericAffine.mat``) and ``u`` the forward warp (``1Warp.nii.gz``): the transform list
``[prefix + "1Warp.nii.gz", prefix + "0GenericAffine.mat"]`` for ``ants.apply_transforms``.
The inverse maps a moving point ``y`` to ``A^-1 y + v(A^-1 y)`` with ``v`` the inverse warp:
``[prefix + "0GenericAffine.mat", prefix + "1InverseWarp.nii.gz"]`` with the affine inverted.

DIPY's own layout (``write_mapping`` / ``read_mapping``) is in ``register.mapping_files``, next to
the ``DiffeomorphicMap`` it reads into.

Every write is atomic (``io.atomic``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple, Optional

import nibabel as nib
import numpy as np

from .._validate import real_array
from .atomic import write_bytes_atomically
from .transform_files import WORLDS, _basis, write_affine
from .volumes import nifti_affine, nifti_bytes

__all__ = ["AntsTransformFiles", "DisplacementField", "read_displacement_field", "write_ants_transforms",
           "write_displacement_field"]

NIFTI_INTENT_VECTOR = 1007
# p_ras = F p_lps (and back); F is its own inverse.
_F = np.diag([-1.0, -1.0, 1.0, 1.0])


class DisplacementField(NamedTuple):
    """A field read back: ``field`` (grid + (d,), float32, our world units) on ``grid2world``."""
    field: np.ndarray
    grid2world: np.ndarray


class AntsTransformFiles(NamedTuple):
    """The files ``write_ants_transforms`` wrote, and the transform lists ANTs takes."""
    affine: Path
    warp: Path
    inverse_warp: Path

    @property
    def forward_transforms(self) -> list[str]:
        """``ants.apply_transforms(fixed, moving, transformlist=...)``: moving onto the fixed grid."""
        return [str(self.warp), str(self.affine)]

    @property
    def inverse_transforms(self) -> list[str]:
        """With ``whichtoinvert=[True, False]``: fixed onto the moving grid."""
        return [str(self.affine), str(self.inverse_warp)]


def _world(world: Optional[str], d: int) -> str:
    w = world if world is not None else ("ras" if d == 3 else "array")
    if w not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}, got {world!r}")
    return w


def _check_field(field: Any, grid2world: Any) -> tuple[np.ndarray, np.ndarray]:
    f = real_array(field, "field")
    if f.ndim not in (3, 4) or f.shape[-1] != f.ndim - 1:
        raise ValueError(f"a field must have shape (rows, cols, 2) or (slices, rows, cols, 3), got {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("the field holds NaN or inf values")
    d = f.ndim - 1
    g = real_array(grid2world, "grid2world").astype(np.float64)
    if g.shape != (d + 1, d + 1) or not np.isfinite(g).all():
        raise ValueError(f"grid2world must be a finite ({d + 1}, {d + 1}) matrix for a {d}-D field")
    if abs(np.linalg.det(g[:d, :d])) < 1e-12:
        raise ValueError("grid2world is singular")
    return np.ascontiguousarray(f, dtype=np.float32), g


def write_displacement_field(path: str | os.PathLike, field: Any, grid2world: Any, *,
                             world: Optional[str] = None, overwrite: bool = False) -> Path:
    """Write a field as an ANTs/ITK displacement-field NIfTI (vectors in LPS, ITK's order).

    Parameters
    ----------
    path : str or PathLike
        ``.nii`` or ``.nii.gz``.
    field : array, shape ``grid + (d,)``
        Displacements in our world units along our world axes (DIPY's layout, d = 2 or 3).
    grid2world : (d+1, d+1) array
        The field grid's array index -> our world matrix.
    world : {"ras", "array", "lps"}, optional
        Our world (module docstring); default ``"ras"`` in 3-D, ``"array"`` in 2-D.
    overwrite : bool
        Replace an existing file once the new one is complete; otherwise FileExistsError.

    Returns
    -------
    Path
    """
    p = Path(path)
    if not p.name.lower().endswith((".nii", ".nii.gz")):
        raise ValueError(f"{p.name}: displacement fields are written as NIfTI (.nii or .nii.gz)")
    f, g = _check_field(field, grid2world)
    d = f.ndim - 1
    w = _world(world, d)
    C = _basis(d, w)
    # ITK's index order: our array order, reversed for the "array" world (GetImageFromArray).
    perm = np.arange(d)[::-1] if w == "array" else np.arange(d)
    P = np.eye(d + 1)
    P[:d, :d] = np.eye(d)[:, perm]  # our index = P @ itk index
    itk_index_to_lps = C @ g @ P
    affine = _F @ nifti_affine(itk_index_to_lps)  # NIfTI's affine is index -> RAS
    vectors = f @ C[:d, :d].T  # LPS components, ITK's order (x, y[, z])
    data = np.transpose(vectors, tuple(perm) + (d,))
    if d == 2:
        data = data[:, :, None, None, :]
    else:
        data = data[:, :, :, None, :]
    blob = nifti_bytes(np.ascontiguousarray(data, dtype=np.float32), affine, p, intent="vector")
    return write_bytes_atomically(p, blob, overwrite=bool(overwrite))


def read_displacement_field(path: str | os.PathLike, *, world: Optional[str] = None) -> DisplacementField:
    """Read an ANTs/ITK displacement-field NIfTI back into our layout.

    Parameters
    ----------
    path : str or PathLike
        A NIfTI of shape ``(X, Y, Z, 1, d)`` (vectors in LPS, ITK's component order), as ANTs and
        ``write_displacement_field`` write it.
    world : {"ras", "array", "lps"}, optional
        The world to return the field in (default ``"ras"`` in 3-D, ``"array"`` in 2-D).

    Returns
    -------
    DisplacementField
        ``field`` (grid + (d,), float32) and ``grid2world`` in that world.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such displacement field")
    img: Any = nib.load(str(p))
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim != 5 or data.shape[3] != 1 or data.shape[4] not in (2, 3):
        raise ValueError(f"{p.name}: a displacement field has shape (X, Y, Z, 1, d) with d = 2 or 3, got "
                         f"{data.shape}")
    d = data.shape[4]
    if d == 2 and data.shape[2] != 1:
        raise ValueError(f"{p.name}: a 2-D field must have Z = 1, got shape {data.shape}")
    w = _world(world, d)
    C = _basis(d, w)
    perm = np.arange(d)[::-1] if w == "array" else np.arange(d)
    P = np.eye(d + 1)
    P[:d, :d] = np.eye(d)[:, perm]
    affine = np.asarray(img.affine, dtype=np.float64)
    lps4 = _F @ affine
    if d == 2:
        itk_index_to_lps = lps4[np.ix_([0, 1, 3], [0, 1, 3])]
    else:
        itk_index_to_lps = lps4
    g = C @ itk_index_to_lps @ np.linalg.inv(P)
    g[-1] = np.eye(d + 1)[-1]
    vectors = data[:, :, 0, 0, :] if d == 2 else data[:, :, :, 0, :]
    inv_perm = np.argsort(perm)
    ours = np.transpose(vectors, tuple(inv_perm) + (d,)) @ C[:d, :d].T
    return DisplacementField(np.ascontiguousarray(ours, dtype=np.float32), g)


def write_ants_transforms(prefix: str | os.PathLike, affine: Any, forward_field: Any, inverse_field: Any,
                          grid2world: Any, *, world: Optional[str] = None,
                          overwrite: bool = False) -> AntsTransformFiles:
    """Write an affine + SyN result as antsRegistration names it.

    Parameters
    ----------
    prefix : str or PathLike
        Output prefix: writes ``{prefix}0GenericAffine.mat``, ``{prefix}1Warp.nii.gz`` and
        ``{prefix}1InverseWarp.nii.gz``.
    affine : (d+1, d+1) array
        Static (fixed) world -> moving world (``SynResult.affine``, DIPY's ``prealign``).
    forward_field, inverse_field : arrays, grid + (d,)
        ``mapping.get_forward_field()`` and ``mapping.get_backward_field()`` of the SyN result:
        a static point ``x`` maps to the moving point ``affine(x + forward(x))``.
    grid2world : (d+1, d+1) array
        The fields' grid (the static image's grid2world).
    world, overwrite
        As for ``write_displacement_field``.

    Returns
    -------
    AntsTransformFiles
        The three paths, and the transform lists for ``ants.apply_transforms``.
    """
    base = str(prefix)
    fwd, g = _check_field(forward_field, grid2world)
    inv, _ = _check_field(inverse_field, grid2world)
    if fwd.shape != inv.shape:
        raise ValueError(f"the forward {fwd.shape} and inverse {inv.shape} fields must share one grid")
    d = fwd.ndim - 1
    w = _world(world, d)
    aff = write_affine(base + "0GenericAffine.mat", affine, world=w, overwrite=overwrite, format="mat")
    warp = write_displacement_field(base + "1Warp.nii.gz", fwd, g, world=w, overwrite=overwrite)
    inverse = write_displacement_field(base + "1InverseWarp.nii.gz", inv, g, world=w, overwrite=overwrite)
    return AntsTransformFiles(aff, warp, inverse)

"""Images with their grid-to-world matrix: NIfTI volumes (nibabel) and 2-D TIFF/PNG/JPEG.

Conventions: images are arrays in array axis order. ``grid2world`` is a
homogeneous ``(d+1) x (d+1)`` float64 matrix mapping an array index (array
order, homogeneous) to world coordinates: for NIfTI, nibabel's affine (world =
RAS+ millimetres, points ``(x, y, z)``; voxel sizes, anisotropic ones
included, are in it); for a 2-D image file, the identity (world = array index
``(row, col)``). A registration ``affine`` maps static world points to moving
world points; resampling moving onto the static grid samples moving at index
``inv(moving_grid2world) @ affine @ static_grid2world @ static_index``.

Writes are atomic (``io.atomic``).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any, Optional, Tuple

import nibabel as nib
import numpy as np

from .._validate import real_array
from .atomic import write_bytes_atomically
from .formats import PILLOW_SUFFIXES, TIFF_SUFFIXES
from .images import read_image as _read_plain_image
from .tiff import write_tiff

__all__ = ["read_image", "write_image"]

NIFTI_SUFFIXES = (".nii.gz", ".nii")
# ITU-R BT.601 luma, the rule Pillow's convert("L") uses.
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def _kind(p: Path) -> str:
    name = p.name.lower()
    if any(name.endswith(s) and len(name) > len(s) for s in NIFTI_SUFFIXES):
        return "nifti"
    if any(name.endswith(s) and len(name) > len(s) for s in TIFF_SUFFIXES):
        return "tiff"
    if p.suffix.lower() in PILLOW_SUFFIXES:
        return "pillow"
    raise ValueError(f"unsupported image file {p.name!r}: use .nii/.nii.gz (NIfTI volumes), "
                     f".tif/.tiff, or .png/.jpg (2-D images)")


def read_image(path: str | os.PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read an image and its grid-to-world matrix.

    Parameters
    ----------
    path : str or PathLike
        ``.nii`` / ``.nii.gz``: a NIfTI volume (nibabel), 3-D, or 4-D with a
        single volume (the last axis of length 1 is dropped; other 4-D data
        are refused), or 2-D. ``.tif`` / ``.tiff`` / ``.png`` / ``.jpg`` / ...:
        a 2-D image; an RGB(A) image becomes grey as
        ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, Pillow's rule; alpha
        dropped), a grey+alpha image keeps its grey channel; multi-page
        stacks are refused (store volumes as NIfTI).

    Returns
    -------
    data : float32 array
        In array axis order; NIfTI scaling (``scl_slope``/``scl_inter``)
        applied; integer pixels keep their values (no rescaling to [0, 1]).
    grid2world : (d+1, d+1) float64 array
        Maps an array index (array order, homogeneous) to world coordinates.
        NIfTI: nibabel's ``img.affine`` (sform, else qform), world RAS+ mm
        with the voxel sizes in it; for a 2-D NIfTI the 3x3 made of its first
        two axes. 2-D image files: the identity (world = ``(row, col)``).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {p}")
    if not p.is_file():
        raise ValueError(f"not a regular file: {p}")
    kind = _kind(p)
    if kind == "nifti":
        return _read_nifti(p)
    arr = _read_plain_image(p)
    data = _as_grey(arr, p)
    return data, np.eye(3)


def _read_nifti(p: Path) -> Tuple[np.ndarray, np.ndarray]:
    try:
        img = nib.load(p)
    except Exception as exc:  # nibabel raises several kinds for damaged files
        raise ValueError(f"cannot read NIfTI file {p}: {exc}") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ValueError(f"{p} is not a NIfTI image ({type(img).__name__})")
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    elif len(shape) not in (2, 3):
        raise ValueError(f"{p} has shape {shape}: only 2-D and 3-D images (or 4-D with one volume) "
                         f"are supported; extract one volume first")
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
    except Exception as exc:
        raise ValueError(f"cannot read the voxels of {p}: {exc}") from exc
    affine = np.asarray(img.affine, dtype=np.float64)
    if len(shape) == 2:
        affine = affine[np.ix_([0, 1, 3], [0, 1, 3])]
    _check_grid2world(affine, len(shape), f"the affine of {p}")
    return np.ascontiguousarray(data, dtype=np.float32), affine


def _as_grey(arr: np.ndarray, p: Path) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{p}: pixels of dtype {arr.dtype} are not supported")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3].astype(np.float64)
        grey = rgb @ np.asarray(GREY_WEIGHTS)
        return grey.astype(np.float32)
    if arr.ndim == 3 and arr.shape[-1] == 2:
        return arr[..., 0].astype(np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{p} holds an array of shape {arr.shape}; only 2-D images (grey, or "
                         f"RGB(A) made grey) are read from image files: store volumes as NIfTI")
    return arr.astype(np.float32)


def _check_grid2world(g: np.ndarray, d: int, what: str) -> None:
    if g.shape != (d + 1, d + 1):
        raise ValueError(f"{what} must be {d + 1}x{d + 1} for a {d}-D image, got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError(f"{what} contains NaN or inf")
    if not np.allclose(g[-1], np.eye(d + 1)[-1], rtol=0, atol=1e-12):
        raise ValueError(f"{what} is not affine: its last row is {g[-1].tolist()}")
    if np.linalg.cond(g[:d, :d]) > 1e12:
        raise ValueError(f"{what} is singular; a grid-to-world matrix must be invertible")


def write_image(path: str | os.PathLike, data: Any, grid2world: Any, *,
                overwrite: bool = False) -> Path:
    """Write an image with its grid-to-world matrix, atomically.

    Parameters
    ----------
    path : str or PathLike
        ``.nii`` / ``.nii.gz``: NIfTI-1 (2-D or 3-D, float32); ``grid2world``
        is stored as both the sform and the qform (codes 1, scanner), except
        that a matrix with shears, which a qform cannot hold, is stored as the
        sform only (qform code 0). ``.tif`` / ``.tiff``: a 2-D float32 TIFF;
        ``grid2world`` must be the identity (a TIFF cannot store one).
    data : 2-D or 3-D array
        In array axis order; real, finite for TIFF; written as float32.
    grid2world : (d+1, d+1) array
        Maps an array index (array order, homogeneous) to world coordinates
        (NIfTI: RAS+ mm; 2-D without one: the identity).
    overwrite : bool
        Replace an existing file (only once the new one is complete);
        otherwise FileExistsError.

    Returns
    -------
    Path
        The final path.
    """
    p = Path(path)
    if not isinstance(overwrite, (bool, np.bool_)):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    kind = _kind(p)
    arr = real_array(data, "data")
    if arr.ndim not in (2, 3) or 0 in arr.shape:
        raise ValueError(f"data must be a non-empty 2-D or 3-D array, got shape {arr.shape}")
    d = arr.ndim
    g = real_array(grid2world, "grid2world")
    _check_grid2world(g, d, "grid2world")
    arr32 = np.ascontiguousarray(arr, dtype=np.float32)
    if kind == "pillow":
        raise ValueError(f"{p.name}: write images with a grid2world as NIfTI (.nii, .nii.gz) or "
                         f"float32 TIFF (.tif); 8-bit formats would lose the values")
    if kind == "tiff":
        if d != 2:
            raise ValueError(f"a TIFF holds a 2-D image here, got shape {arr.shape}; write "
                             f"volumes as NIfTI (.nii.gz)")
        if not np.array_equal(g, np.eye(3)):
            raise ValueError("a TIFF cannot store grid2world and it is not the identity; write "
                             "NIfTI (.nii.gz) to keep it")
        return write_tiff(p, arr32, overwrite=bool(overwrite))
    return write_bytes_atomically(p, nifti_bytes(arr32, nifti_affine(g), p), overwrite=bool(overwrite))


def nifti_affine(grid2world: np.ndarray) -> np.ndarray:
    """A (d+1)x(d+1) grid2world as NIfTI's 4x4 affine (a 2-D one leaves z untouched)."""
    if grid2world.shape == (4, 4):
        return grid2world
    out = np.eye(4)
    out[np.ix_([0, 1, 3], [0, 1, 3])] = grid2world
    return out


def nifti_bytes(data: np.ndarray, affine: np.ndarray, path: Path, *, intent: Optional[str] = None) -> bytes:
    """A NIfTI-1 file's bytes (gzip for ``.gz``): ``affine`` as sform and, unless it has shears a
    qform cannot hold, as qform (codes 1, scanner); units mm; ``intent`` e.g. ``"vector"``."""
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=1)
    try:
        img.set_qform(affine, code=1, strip_shears=False)
    except nib.spatialimages.HeaderDataError:
        img.set_qform(None, code=0)
    img.header.set_xyzt_units("mm")
    if intent is not None:
        img.header.set_intent(intent, (), name="")
    blob = img.to_bytes()
    return gzip.compress(blob, compresslevel=6) if path.name.lower().endswith(".gz") else blob

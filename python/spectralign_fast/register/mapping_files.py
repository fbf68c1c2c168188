"""DIPY's ``write_mapping`` / ``read_mapping``: a ``DiffeomorphicMap`` in one 5-D NIfTI.

The layout is DIPY's (``dipy.align``): data of shape ``(X, Y, Z, 3, 2)``, ``[..., 0]`` the forward
and ``[..., 1]`` the backward field (the map's raw attributes, world units), with the map's
``codomain_world2grid`` as the NIfTI affine; reading sets ``is_inverse`` as DIPY does, so a
registration result round-trips and files move between DIPY and this library. ANTs/ITK warp
files are in ``io.displacement_fields``. Writes are atomic (``io.atomic``).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..io.atomic import write_bytes_atomically
from .diffeomorphic_map import DiffeomorphicMap

__all__ = ["read_mapping", "write_mapping"]


def write_mapping(mapping: Any, fname: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """DIPY's ``write_mapping``: the forward and backward fields in one 5-D NIfTI.

    The data have shape ``(X, Y, Z, 3, 2)`` (``[..., 0]`` forward, ``[..., 1]`` backward, the map's
    raw attributes) and the affine is the map's ``codomain_world2grid``, exactly as DIPY writes
    them, so ``dipy.align.read_mapping`` and ``read_mapping`` here read the file. 3-D maps only
    (DIPY's layout has no 2-D form).
    """
    p = Path(fname)
    if mapping.dim != 3:
        raise ValueError("DIPY's mapping layout holds 3-D maps only; write 2-D fields with "
                         "write_displacement_field or write_ants_transforms")
    forward = mapping._field("forward")
    backward = mapping._field("backward")
    data = np.stack([forward, backward], axis=-1).astype(np.float32)
    w2g = mapping.codomain_world2grid
    affine = np.eye(4) if w2g is None else np.asarray(w2g, dtype=np.float64)
    img = nib.Nifti1Image(data, affine)
    blob = img.to_bytes()
    if p.name.lower().endswith(".gz"):
        blob = gzip.compress(blob, compresslevel=6)
    return write_bytes_atomically(p, blob, overwrite=bool(overwrite))


def _image(value: Any, what: str) -> Any:
    if isinstance(value, (str, os.PathLike)):
        return nib.load(str(value))
    if not hasattr(value, "affine") or not hasattr(value, "shape"):
        raise TypeError(f"{what} must be a NIfTI path or a nibabel image")
    return value


def read_mapping(disp: Any, domain_img: Any, codomain_img: Any, *, prealign: Any = None) -> Any:
    """DIPY's ``read_mapping``: a ``DiffeomorphicMap`` from a ``write_mapping`` file.

    Parameters
    ----------
    disp : str, PathLike or nibabel image
        The ``(X, Y, Z, 3, 2)`` file.
    domain_img, codomain_img : str, PathLike or nibabel image
        The static and the moving image (their shapes and affines).
    prealign : (4, 4) array, optional
        The affine pre-alignment used at registration.
    """
    img = _image(disp, "disp")
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim != 5 or data.shape[3:] != (3, 2):
        raise ValueError(f"a DIPY mapping file has shape (X, Y, Z, 3, 2), got {data.shape}")
    dom = _image(domain_img, "domain_img")
    cod = _image(codomain_img, "codomain_img")
    mapping = DiffeomorphicMap(3, data.shape[:3], np.linalg.inv(np.asarray(img.affine, dtype=np.float64)),
                               dom.shape[:3], dom.affine, cod.shape[:3], cod.affine, prealign)
    mapping.forward = np.ascontiguousarray(data[..., 0])
    mapping.backward = np.ascontiguousarray(data[..., 1])
    mapping.is_inverse = True
    return mapping

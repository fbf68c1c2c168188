"""Affine transform files that other tools read: ITK text (``.tfm``), ITK/ANTs binary
(``.mat``) and a plain matrix text file; writes are atomic (``io.atomic``).

Conventions. Images are arrays in array axis order. ``grid2world`` is a homogeneous
``(d+1) x (d+1)`` matrix mapping an array index (array order, homogeneous) to
world coordinates: for NIfTI, nibabel's affine (world = RAS+ millimetres,
points ``(x, y, z)``); for a 2-D image without one, the identity (world =
array index ``(row, col)``).

An ``affine`` here is DIPY's registration result: a ``(d+1) x (d+1)`` matrix
mapping STATIC (fixed) world points to MOVING world points; resampling moving
onto the static grid samples moving at index
``inv(moving_grid2world) @ affine @ static_grid2world @ static_index``.

An ITK transform maps points of the fixed image's physical space to the
moving image's (the direction ``itk::ResampleImageFilter`` uses), the same
direction as ours; only the world differs. ITK's world is LPS with points
``(x, y[, z])``, and ``world`` says what ours is:

- ``"ras"`` (default in 3-D): NIfTI/nibabel RAS+; ITK's matrix is
  ``F @ affine @ F`` with ``F = diag(-1, -1, 1, 1)`` (``diag(-1, -1, 1)`` in 2-D).
- ``"array"`` (default in 2-D): array index order, ``(row, col)`` or
  ``(plane, row, col)``; ITK's world is then that of
  ``SimpleITK.GetImageFromArray(a)`` (unit spacing, zero origin, identity
  direction), whose points are the reversed axes ``(col, row[, plane])``:
  ITK's matrix is ``P @ affine @ P`` with ``P`` the axis reversal.
- ``"lps"``: our world is already ITK's (e.g. grid2world taken from
  SimpleITK's origin, spacing and direction); no conversion.

The plain matrix file holds our matrix as it is (no conversion), with a
``#`` comment header stating the convention and the world.
"""
from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any, List, Optional, Tuple

import numpy as np

from .._validate import real_array
from .atomic import write_bytes_atomically

__all__ = ["read_affine", "write_affine"]

WORLDS = ("ras", "array", "lps")
FORMATS = ("itk", "mat", "matrix")
ITK_HEADER = "#Insight Transform File V1.0"
# Beyond this condition number the linear part is treated as singular.
MAX_CONDITION = 1e12
_NAME = re.compile(r"^([A-Za-z0-9]+?)_(double|float)_([23])_([23])$")
_MATRIX_TAG = "# spectralign_fast affine"


# --------------------------------------------------------------------------- public API

def write_affine(path: str | os.PathLike, affine: Any, *, world: Optional[str] = None,
                 overwrite: bool = False, format: Optional[str] = None) -> Path:
    """Write a ``(d+1) x (d+1)`` affine (d = 2 or 3) to a transform file.

    Parameters
    ----------
    path : str or PathLike
        ``.tfm``: ITK text transform (``AffineTransform_double_d_d``);
        ``.mat``: ITK/ANTs binary (MATLAB v4, as antsRegistration writes);
        anything else (``.txt``, ``.csv``, ...): the plain matrix, whitespace
        separated rows (commas for ``.csv``) under a ``#`` header.
    affine : (d+1, d+1) array
        Maps STATIC (fixed) world points to MOVING world points (DIPY's
        direction; ITK's transforms have the same direction). Resampling
        moving onto the static grid samples moving at index
        ``inv(moving_grid2world) @ affine @ static_grid2world @ static_index``,
        where ``grid2world`` maps an array index (array order) to world
        coordinates. A ``d x (d+1)`` top block is accepted too.
    world : {"ras", "array", "lps"}, optional
        What our world coordinates are (see the module docstring): ``"ras"``
        (NIfTI/nibabel RAS+; ITK matrix ``F A F``, ``F = diag(-1, -1, 1, 1)``),
        ``"array"`` (array index order; ITK sees the reversed axes of
        ``SimpleITK.GetImageFromArray``), ``"lps"`` (ITK's own). Default:
        ``"ras"`` in 3-D, ``"array"`` in 2-D. The plain matrix file is written
        unconverted and records the world in its header.
    overwrite : bool
        Replace an existing file (only once the new one is complete);
        otherwise an existing file is refused with FileExistsError.
    format : {"itk", "mat", "matrix"}, optional
        Override the choice by suffix, e.g. ``format="itk"`` for an ITK text
        transform named ``.txt`` (as ANTs names them).

    Returns
    -------
    Path
        The final path (written under a temporary name and renamed).

    Raises
    ------
    ValueError
        A matrix that is not affine (last row not ``[0, ..., 0, 1]``), not
        finite, singular, or of the wrong size; an unknown ``world``/``format``.
    """
    p = Path(path)
    if not isinstance(overwrite, (bool, np.bool_)):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    A = _as_affine(affine, "affine")
    d = A.shape[0] - 1
    w = _resolve_world(world, d)
    fmt = _format_for(p, format)
    if fmt == "matrix":
        text = _matrix_text(A, w, sep=", " if p.suffix.lower() == ".csv" else " ")
        return _write_text(p, text, overwrite=bool(overwrite))
    name, params, fixed = _itk_parameters(_to_itk(A, w))
    if fmt == "itk":
        lines = [ITK_HEADER, "#Transform 0", f"Transform: {name}",
                 "Parameters: " + " ".join(_num(v) for v in params),
                 "FixedParameters: " + " ".join(_num(v) for v in fixed)]
        return _write_text(p, "\n".join(lines) + "\n", overwrite=bool(overwrite))
    blob = _mat4_vector(name, params) + _mat4_vector("fixed", fixed)
    return write_bytes_atomically(p, blob, overwrite=bool(overwrite))


def read_affine(path: str | os.PathLike, *, world: Optional[str] = None) -> np.ndarray:
    """Read an affine transform file as a ``(d+1) x (d+1)`` float64 matrix (d = 2 or 3).

    Supported ITK transforms: ``AffineTransform``, ``MatrixOffsetTransformBase``,
    ``Rigid3DTransform``, ``TranslationTransform``, ``IdentityTransform``,
    ``ScaleTransform``, ``Euler2DTransform``, ``Rigid2DTransform``,
    ``Similarity2DTransform``, ``Euler3DTransform``, ``VersorTransform``,
    ``VersorRigid3DTransform``, ``Similarity3DTransform`` (double or float),
    and a ``CompositeTransform`` of these in a text file (composed into one
    matrix; ITK applies the last listed first). Anything else (a displacement
    field, a B-spline, ...) is refused with a ValueError naming it.

    Parameters
    ----------
    path : str or PathLike
        ``.tfm`` (ITK text), ``.txt`` starting with ``#Insight Transform File``
        (ITK text), ``.mat`` (ITK/ANTs MATLAB v4 binary), or a plain matrix
        file (any other name or content: ``d+1`` rows of ``d+1`` numbers,
        whitespace or comma separated, ``#`` comments), taken as it is.
    world : {"ras", "array", "lps"}, optional
        What our world coordinates are; ITK's LPS ``(x, y[, z])`` matrix is
        converted into it (see ``write_affine``). Default: ``"ras"`` in 3-D,
        ``"array"`` in 2-D. A plain matrix file is not converted; when its
        header records a different world (as ``write_affine`` writes it), it
        is refused rather than silently misread.

    Returns
    -------
    (d+1, d+1) float64 array
        Maps STATIC (fixed) world points to MOVING world points (DIPY's
        direction, also ITK's): resampling moving onto the static grid samples
        moving at index ``inv(moving_grid2world) @ affine @ static_grid2world
        @ static_index``, ``grid2world`` mapping array indices (array order) to
        world coordinates.

    Raises
    ------
    ValueError
        A malformed file (the message names the problem and the line or
        byte), an unsupported transform type, or a singular, non-finite
        transform.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"transform file not found: {p}")
    if not p.is_file():
        raise ValueError(f"not a regular file: {p}")
    raw = p.read_bytes()
    suffix = p.suffix.lower()
    if suffix == ".mat":
        itk = _itk_from_mat(raw, p)
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError(f"{p}: not a text transform file (not UTF-8 text); ITK binary "
                             f"transforms must be named .mat") from None
        if suffix == ".tfm" or text.lstrip().startswith("#Insight Transform File"):
            itk = _itk_from_text(text, p)
        else:
            return _matrix_from_text(text, p, world)
    d = itk.shape[0] - 1
    A = _from_itk(itk, _resolve_world(world, d))
    _check_linear(A, f"the transform in {p}")
    return A


# --------------------------------------------------------------------------- validation

def _resolve_world(world: Optional[str], d: int) -> str:
    if world is None:
        return "ras" if d == 3 else "array"
    if not isinstance(world, str) or world.lower() not in WORLDS:
        raise ValueError(f"world must be one of {', '.join(map(repr, WORLDS))} or None, got {world!r}")
    return world.lower()


def _format_for(p: Path, format: Optional[str]) -> str:
    if format is not None:
        if not isinstance(format, str) or format.lower() not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))} or None, "
                             f"got {format!r}")
        return format.lower()
    suffix = p.suffix.lower()
    return {".tfm": "itk", ".mat": "mat"}.get(suffix, "matrix")


def _as_affine(affine: Any, what: str) -> np.ndarray:
    A = real_array(affine, what)
    if A.ndim == 2 and A.shape in ((2, 3), (3, 4)):
        A = np.vstack([A, np.eye(A.shape[1])[-1]])
    if A.shape not in ((3, 3), (4, 4)):
        raise ValueError(f"{what} must be a 3x3 (2-D) or 4x4 (3-D) homogeneous matrix, got shape "
                         f"{A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{what} contains NaN or inf")
    _check_last_row(A, what)
    _check_linear(A, what)
    return A


def _check_last_row(A: np.ndarray, what: str) -> None:
    expected = np.eye(A.shape[0])[-1]
    if not np.allclose(A[-1], expected, rtol=0, atol=1e-12):
        raise ValueError(f"{what} is not affine: its last row is {A[-1].tolist()}, not "
                         f"{expected.tolist()}")
    A[-1] = expected


def _check_linear(A: np.ndarray, what: str) -> None:
    L = A[:-1, :-1]
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{what} contains NaN or inf")
    cond = np.linalg.cond(L) if np.any(L) else np.inf
    if not np.isfinite(cond) or cond > MAX_CONDITION:
        raise ValueError(f"{what} is singular (its linear part has condition number {cond:.3g}); "
                         f"a transform must be invertible")


# --------------------------------------------------------------------------- world conversion

def _basis(d: int, world: str) -> np.ndarray:
    """C with p_itk = C @ p_ours (homogeneous); every C here is its own inverse."""
    C = np.eye(d + 1)
    if world == "ras":
        C[0, 0] = C[1, 1] = -1.0
    elif world == "array":
        C[:d, :d] = np.eye(d)[::-1]
    return C


def _to_itk(A: np.ndarray, world: str) -> np.ndarray:
    C = _basis(A.shape[0] - 1, world)
    return C @ A @ C


def _from_itk(H: np.ndarray, world: str) -> np.ndarray:
    C = _basis(H.shape[0] - 1, world)
    out = C @ H @ C
    out[-1] = np.eye(out.shape[0])[-1]
    return out


# --------------------------------------------------------------------------- ITK parameters

def _itk_parameters(H: np.ndarray) -> Tuple[str, np.ndarray, np.ndarray]:
    """An ITK AffineTransform's name, Parameters (matrix row-major, then translation) and
    FixedParameters (centre, here zero) for the homogeneous ITK-world matrix H."""
    d = H.shape[0] - 1
    params = np.concatenate([H[:d, :d].ravel(), H[:d, d]])
    return f"AffineTransform_double_{d}_{d}", params, np.zeros(d)


def _homogeneous(M: np.ndarray, t: np.ndarray, c: np.ndarray) -> np.ndarray:
    """ITK's y = M (x - c) + t + c as a homogeneous matrix."""
    d = M.shape[0]
    H = np.eye(d + 1)
    H[:d, :d] = M
    H[:d, d] = t + c - M @ c
    return H


def _rot2(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _euler3(ax: float, ay: float, az: float, zyx: bool) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx if zyx else Rz @ Rx @ Ry


def _versor(v: np.ndarray, what: str) -> np.ndarray:
    """ITK's versor (the vector part of a unit quaternion) as a rotation matrix."""
    n2 = float(v @ v)
    if n2 > 1.0 + 1e-9:
        raise ValueError(f"{what}: versor {v.tolist()} has norm > 1")
    w = np.sqrt(max(0.0, 1.0 - n2))
    x, y, z = v
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


# kind -> (dimension or None for both, number of parameters as a function of d)
_KINDS = {
    "AffineTransform": (None, lambda d: d * d + d),
    "MatrixOffsetTransformBase": (None, lambda d: d * d + d),
    "Rigid3DTransform": (3, lambda d: 12),
    "TranslationTransform": (None, lambda d: d),
    "IdentityTransform": (None, lambda d: 0),
    "ScaleTransform": (None, lambda d: d),
    "Euler2DTransform": (2, lambda d: 3),
    "Rigid2DTransform": (2, lambda d: 3),
    "Similarity2DTransform": (2, lambda d: 4),
    "Euler3DTransform": (3, lambda d: 6),
    "VersorTransform": (3, lambda d: 3),
    "VersorRigid3DTransform": (3, lambda d: 6),
    "Similarity3DTransform": (3, lambda d: 7),
}


def _parse_name(name: str, where: str) -> Tuple[str, int]:
    m = _NAME.match(name.strip())
    if m is None:
        raise ValueError(f"{where}: unrecognised transform type {name!r} (expected e.g. "
                         f"'AffineTransform_double_3_3')")
    kind, _, din, dout = m.groups()
    if din != dout:
        raise ValueError(f"{where}: transform {name!r} maps {din}-D to {dout}-D points; only "
                         f"square (2-D or 3-D) transforms are supported")
    if kind != "CompositeTransform" and kind not in _KINDS:
        raise ValueError(f"{where}: unsupported transform type {kind!r} in {name!r}; supported: "
                         f"{', '.join(sorted(_KINDS))} (and a CompositeTransform of them)")
    dims = _KINDS[kind][0] if kind in _KINDS else None
    if dims is not None and dims != int(din):
        raise ValueError(f"{where}: {kind} is {dims}-D but the file says {name!r}")
    return kind, int(din)


def _itk_matrix(name: str, params: np.ndarray, fixed: np.ndarray, where: str) -> np.ndarray:
    """The homogeneous ITK-world matrix of one transform from its type, Parameters and
    FixedParameters."""
    kind, d = _parse_name(name, where)
    if kind == "CompositeTransform":
        raise ValueError(f"{where}: a CompositeTransform inside a transform list is not supported")
    n = _KINDS[kind][1](d)
    if params.size != n:
        raise ValueError(f"{where}: {name} needs {n} Parameters, the file has {params.size}")
    if not np.all(np.isfinite(params)) or not np.all(np.isfinite(fixed)):
        raise ValueError(f"{where}: {name} has NaN or inf parameters")
    if kind in ("TranslationTransform", "IdentityTransform"):
        c = np.zeros(d)
    else:
        if fixed.size < d:
            raise ValueError(f"{where}: {name} needs {d} FixedParameters (the centre), the file "
                             f"has {fixed.size}")
        c = fixed[:d]
    t = np.zeros(d)
    if kind in ("AffineTransform", "MatrixOffsetTransformBase", "Rigid3DTransform"):
        M, t = params[:d * d].reshape(d, d), params[d * d:]
    elif kind == "TranslationTransform":
        M, t = np.eye(d), params
    elif kind == "IdentityTransform":
        M = np.eye(d)
    elif kind == "ScaleTransform":
        M = np.diag(params)
    elif kind in ("Euler2DTransform", "Rigid2DTransform"):
        M, t = _rot2(params[0]), params[1:]
    elif kind == "Similarity2DTransform":
        M, t = params[0] * _rot2(params[1]), params[2:]
    elif kind == "Euler3DTransform":
        zyx = fixed.size > 3 and fixed[3] != 0.0
        M, t = _euler3(params[0], params[1], params[2], zyx), params[3:]
    elif kind == "VersorTransform":
        M = _versor(params, where)
    elif kind == "VersorRigid3DTransform":
        M, t = _versor(params[:3], where), params[3:]
    else:  # Similarity3DTransform: versor, translation, scale
        M, t = params[6] * _versor(params[:3], where), params[3:6]
    return _homogeneous(np.asarray(M, dtype=np.float64), np.asarray(t, dtype=np.float64), c)


def _compose(items: List[Tuple[str, np.ndarray, np.ndarray]], where: str) -> np.ndarray:
    """One matrix from a transform file's list: one transform, or a CompositeTransform
    followed by its components (ITK applies the last one first: T = T0 o T1 o ... )."""
    if not items:
        raise ValueError(f"{where}: no transform found")
    first_kind = _parse_name(items[0][0], where)[0]
    if first_kind != "CompositeTransform":
        if len(items) > 1:
            raise ValueError(f"{where}: the file holds {len(items)} separate transforms; give a "
                             f"file with one (or one CompositeTransform)")
        return _itk_matrix(*items[0], where)
    d = _parse_name(items[0][0], where)[1]
    H = np.eye(d + 1)
    for name, params, fixed in items[1:]:
        Hi = _itk_matrix(name, params, fixed, where)
        if Hi.shape != H.shape:
            raise ValueError(f"{where}: a {Hi.shape[0] - 1}-D component in a {d}-D composite")
        H = H @ Hi
    return H


# --------------------------------------------------------------------------- ITK text

def _itk_from_text(text: str, p: Path) -> np.ndarray:
    items: List[Tuple[str, np.ndarray, np.ndarray]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"{p}, line {lineno}: expected 'Name: value', got {line[:60]!r}")
        key, value = key.strip(), value.strip()
        if key == "Transform":
            items.append((value, np.zeros(0), np.zeros(0)))
        elif key in ("Parameters", "FixedParameters"):
            if not items:
                raise ValueError(f"{p}, line {lineno}: {key} before any 'Transform:' line")
            try:
                values = np.array([float(v) for v in value.split()], dtype=np.float64)
            except ValueError:
                raise ValueError(f"{p}, line {lineno}: {key} are not all numbers: "
                                 f"{value[:80]!r}") from None
            name, params, fixed = items[-1]
            items[-1] = (name, values, fixed) if key == "Parameters" else (name, params, values)
        elif key == "ComponentTransformFile":
            raise ValueError(f"{p}, line {lineno}: composite transforms stored in separate "
                             f"component files are not supported")
        else:
            raise ValueError(f"{p}, line {lineno}: unknown tag {key!r} (expected Transform, "
                             f"Parameters or FixedParameters)")
    if not items:
        raise ValueError(f"{p}: no 'Transform:' line found; not an ITK transform file")
    return _compose(items, str(p))


def _num(v: float) -> str:
    """Shortest text that reads back as the same double."""
    f = float(v)
    return "0" if f == 0.0 else repr(f)


# --------------------------------------------------------------------------- MATLAB v4 (.mat)

_MAT4_DTYPES = {0: "f8", 1: "f4", 2: "i4", 3: "i2", 4: "u2", 5: "u1"}


def _mat4_vector(name: str, values: np.ndarray) -> bytes:
    """One MATLAB v4 variable as vnl_matlab_write writes a vector: little-endian doubles,
    ``rows = n``, ``cols = 1``, the name null-terminated."""
    raw = name.encode("ascii") + b"\0"
    head = struct.pack("<5i", 0, values.size, 1, 0, len(raw))
    return head + raw + np.asarray(values, dtype="<f8").tobytes()


def _read_mat4(data: bytes, p: Path) -> List[Tuple[str, np.ndarray]]:
    if data[:10] == b"MATLAB 5.0" or data[:6] == b"MATLAB":
        raise ValueError(f"{p}: a MATLAB v5+ file; ITK/ANTs transform files are MATLAB v4 "
                         f"(scipy.io.savemat(..., format='4') writes one)")
    out: List[Tuple[str, np.ndarray]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 20:
            raise ValueError(f"{p}: truncated MATLAB v4 header at byte {pos}")
        for order, machine in (("<", 0), (">", 1)):
            mopt, rows, cols, imagf, namlen = struct.unpack_from(order + "5i", data, pos)
            if 0 <= mopt < 5000 and mopt // 1000 == machine:
                break
        else:
            raise ValueError(f"{p}: not a MATLAB v4 file (bad header at byte {pos})")
        prec, kind = (mopt // 10) % 10, mopt % 10
        if kind != 0 or prec not in _MAT4_DTYPES:
            raise ValueError(f"{p}: MATLAB v4 variable at byte {pos} is not a numeric matrix "
                             f"(type code {mopt})")
        if imagf:
            raise ValueError(f"{p}: complex MATLAB variable at byte {pos}")
        if rows < 0 or cols < 0 or not 1 <= namlen <= 4096:
            raise ValueError(f"{p}: bad MATLAB v4 header at byte {pos}")
        start = pos + 20 + namlen
        dt = np.dtype(order + _MAT4_DTYPES[prec])
        end = start + rows * cols * dt.itemsize
        if end > len(data):
            raise ValueError(f"{p}: truncated MATLAB v4 file (variable at byte {pos})")
        try:
            name = data[pos + 20:start].split(b"\0")[0].decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"{p}: MATLAB variable name at byte {pos} is not ASCII") from None
        if rows != 1 and cols != 1 and rows * cols:
            raise ValueError(f"{p}: variable {name!r} is a {rows}x{cols} matrix; ITK transform "
                             f"files hold vectors")
        values = np.frombuffer(data, dtype=dt, count=rows * cols, offset=start).astype(np.float64)
        out.append((name, values))
        pos = end
    return out


def _itk_from_mat(data: bytes, p: Path) -> np.ndarray:
    variables = _read_mat4(data, p)
    if not variables:
        raise ValueError(f"{p}: empty file")
    items: List[Tuple[str, np.ndarray, np.ndarray]] = []
    i = 0
    while i < len(variables):
        name, params = variables[i]
        if i + 1 >= len(variables):
            raise ValueError(f"{p}: transform {name!r} has no 'fixed' parameters variable after it")
        items.append((name, params, variables[i + 1][1]))
        i += 2
    return _compose(items, str(p))


# --------------------------------------------------------------------------- plain matrix

def _matrix_text(A: np.ndarray, world: str, sep: str) -> str:
    d = A.shape[0] - 1
    what = {"ras": "RAS+ (NIfTI/nibabel), points (x, y, z) in mm",
            "array": "array index order (row, col) / (plane, row, col)",
            "lps": "LPS (ITK), points (x, y, z)"}[world]
    header = [f"{_MATRIX_TAG} ({d + 1}x{d + 1} homogeneous): maps STATIC (fixed) world points to "
              f"MOVING world points",
              f"# world: {world} = {what}",
              "# moving index = inv(moving_grid2world) @ affine @ static_grid2world @ static_index"]
    rows = [sep.join(_num(v) for v in row) for row in A]
    return "\n".join(header + rows) + "\n"


def _matrix_from_text(text: str, p: Path, world: Optional[str]) -> np.ndarray:
    rows: List[List[float]] = []
    recorded: Optional[str] = None
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#"):
            m = re.match(r"#\s*world:\s*(\w+)", stripped)
            if m:
                recorded = m.group(1).lower()
            continue
        if not stripped:
            continue
        try:
            rows.append([float(v) for v in re.split(r"[,\s]+", stripped.strip(","))])
        except ValueError:
            raise ValueError(f"{p}, line {lineno}: not a row of numbers: {stripped[:80]!r} (a plain "
                             f"matrix file holds d+1 rows of d+1 numbers; ITK text transforms "
                             f"start with {ITK_HEADER!r})") from None
    if not rows:
        raise ValueError(f"{p}: no matrix rows found")
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"{p}: rows have different lengths {[len(r) for r in rows]}")
    A = np.array(rows, dtype=np.float64)
    if A.shape not in ((3, 3), (4, 4)):
        raise ValueError(f"{p}: the matrix is {A.shape[0]}x{A.shape[1]}; expected 3x3 (2-D) or "
                         f"4x4 (3-D) homogeneous")
    w = _resolve_world(world, A.shape[0] - 1)
    if recorded is not None and recorded in WORLDS and recorded != w:
        raise ValueError(f"{p} records world {recorded!r} but world={w!r} was asked for; a plain "
                         f"matrix file is not converted, so read it with world={recorded!r}")
    return _as_affine(A, f"the matrix in {p}")


def _write_text(p: Path, text: str, *, overwrite: bool) -> Path:
    return write_bytes_atomically(p, text.encode("utf-8"), overwrite=overwrite)

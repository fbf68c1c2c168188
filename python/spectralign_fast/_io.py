"""Reading and writing images; writes are atomic (temporary name, then rename)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

_TIFF_SUFFIXES = {".tif", ".tiff"}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it
_PILLOW_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a TIFF (tifffile) or PNG/JPEG/... (Pillow) file as an array."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {p}")
    if not p.is_file():
        raise ValueError(f"not a regular file: {p}")
    suffix = p.suffix.lower()
    try:
        if suffix in _TIFF_SUFFIXES:
            import tifffile

            return np.asarray(tifffile.imread(p))
        from PIL import Image as PILImage

        with PILImage.open(p) as im:
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {p}: {exc}") from exc


def check_output_path(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """The output path, after checking that it can be written (clear errors otherwise).

    Raises FileNotFoundError when the folder is missing, PermissionError when
    it is not writable, and FileExistsError when the path exists and
    ``overwrite`` is false.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {parent}; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder is not writable: {parent}; choose another output path")
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise FileExistsError(f"output already exists: {p}; delete it, choose another path, "
                              f"or pass overwrite=True to replace it")
    return p


def write_atomically(path: str | os.PathLike, write, *, overwrite: bool = True) -> None:
    """Call write(tmp_path) and rename the result to path once it succeeded.

    The temporary file is a hidden sibling, so the rename stays on one file
    system. With ``overwrite=False`` an existing path is refused up front and
    the final step is a hard link, which fails rather than replace a file
    that appeared in the meantime.
    """
    p = check_output_path(path, overwrite=overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part" + p.suffix, dir=p.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes files private; outputs get the usual mode
        if overwrite:
            os.replace(tmp, p)
        else:
            os.link(tmp, p)
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_image(path: str | os.PathLike, data: np.ndarray, quality: int | None = None) -> None:
    """Write a float image: TIFF keeps float32; 8-bit formats map [0, 1] to 0..255."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in _TIFF_SUFFIXES:
        import tifffile

        arr = np.ascontiguousarray(data, dtype=np.float32)
        write_atomically(p, lambda tmp: tifffile.imwrite(tmp, arr))
        return
    if suffix not in _PILLOW_SUFFIXES:
        raise ValueError(f"unsupported image format {suffix!r}: use .tif, .png or .jpg")
    from PIL import Image as PILImage

    arr8 = (np.clip(np.nan_to_num(np.asarray(data, dtype=np.float32)), 0, 1) * 255.99).astype(np.uint8)
    kwargs = {}
    if quality is not None:
        if suffix not in {".jpg", ".jpeg"}:
            raise ValueError("quality applies to JPEG files only")
        kwargs["quality"] = int(quality)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(suffix, suffix[1:].upper())
    write_atomically(p, lambda tmp: PILImage.fromarray(arr8).save(tmp, format=fmt, **kwargs))

"""The one atomic writer: every output is written under a temporary sibling name
and renamed once complete, so a failed or interrupted run (an exception,
Ctrl-C, a full disk) never leaves a half-written file under the final name."""
from __future__ import annotations

import errno
import re
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Callable, List, Optional


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once: os.umask can only be read by setting it


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def temp_owner() -> str:
    """``<pid>@<host>``, embedded in every temporary name this package makes (the host name with
    only its letters and digits kept), so a later run can tell a temporary left by a killed
    process of this machine from one still being written."""
    return f"{os.getpid()}@{_host()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # someone else's process, or not a pid
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike, kind: str) -> List[Path]:
    """Remove the temporaries of ``path`` left by killed processes (SIGKILL, power loss) of this
    machine; returns what was removed.

    Only names made by this package for exactly this output are considered (``kind="file"``:
    ``.<name>.<pid>@<host>.<random>.part<suffix>`` files from ``write_atomically``;
    ``kind="dir"``: ``<name>.partial-<pid>@<host>-<random>`` folders from the OME-Zarr writers),
    and of those only the ones whose host is this one and whose process no longer exists. A
    temporary of a live process, of another machine, or anything else is never touched.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    host = re.escape(_host())
    if kind == "file":
        pattern = re.compile(rf"\.{re.escape(p.name)}\.(\d+)@{host}\.[a-z0-9_]{{8}}\.part{re.escape(p.suffix)}")
    elif kind == "dir":
        pattern = re.compile(rf"{re.escape(p.name)}\.partial-(\d+)@{host}-[a-z0-9_]{{8}}")
    else:
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    removed: List[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        target = parent / entry.name
        try:
            if kind == "file" and entry.is_file(follow_symlinks=False):
                os.unlink(target)
            elif kind == "dir" and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(target)
            else:
                continue
        except OSError:
            continue  # removed by someone else meanwhile, or not ours to remove after all
        removed.append(target)
    return removed


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


def disk_full(exc: BaseException, path: Path) -> Optional[OSError]:
    """An OSError that says the disk is full, when ``exc`` is that; else None."""
    # numpy's tofile (under tifffile) reports a short write as "N requested and M written",
    # with no errno; a short write to a local file means the device is full.
    short_write = isinstance(exc, OSError) and exc.errno is None and re.search(r"requested and \d+ written",
                                                                                str(exc))
    if isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or short_write):
        err = OSError(errno.ENOSPC, f"no space left on the device while writing {path}; "
                                    f"nothing was left under that name: free some space and "
                                    f"run again")
        err.__cause__ = exc
        return err
    return None


def write_atomically(path: str | os.PathLike, write: Callable[[str], object], *, overwrite: bool = True) -> Path:
    """Call write(tmp_path) and rename the result to path once it succeeded.

    The temporary file is a hidden sibling, so the rename stays on one file
    system. With ``overwrite=False`` an existing path is refused up front and
    the final step is a hard link, which fails rather than replace a file
    that appeared in the meantime. Temporaries of the same path left by a
    killed process are removed first (``remove_stale_temporaries``). A full disk is reported as an OSError
    that says so. Returns the final path.
    """
    p = check_output_path(path, overwrite=overwrite)
    remove_stale_temporaries(p, "file")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.{temp_owner()}.", suffix=".part" + p.suffix, dir=p.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes files private; outputs get the usual mode
        if overwrite:
            os.replace(tmp, p)
        else:
            os.link(tmp, p)
            os.unlink(tmp)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        full = disk_full(exc, p)
        if full is not None:
            raise full from exc
        raise
    return p


def write_bytes_atomically(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` through ``write_atomically``, synced to disk before the rename."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return write_atomically(path, write, overwrite=overwrite)

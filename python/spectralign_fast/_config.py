"""Build and runtime configuration."""
from __future__ import annotations

import atexit
import os
import platform
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TextIO

from . import _core
from ._version import __version__
from .io.atomic import write_atomically


@dataclass
class _WisdomCache:
    """FFTW wisdom cache: the planner's measured choices, kept between processes."""

    path: Optional[Path] = None
    loaded: bool = False
    forgotten: bool = False


_wisdom = _WisdomCache()


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo where there is one), for wisdom files and benchmark reports."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def wisdom_path() -> Optional[Path]:
    """Where FFTW wisdom is cached: ``$SPECTRALIGN_FFTW_WISDOM`` (empty: no cache), else
    ``$XDG_CACHE_HOME`` or ``~/.cache``, per FFTW version and CPU model."""
    env = os.environ.get("SPECTRALIGN_FFTW_WISDOM")
    if env is not None:
        return Path(env) if env else None
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except (RuntimeError, KeyError, OSError):  # no home directory: no cache
        return None
    tag = "".join(c if c.isalnum() else "-" for c in f"{_core.config.fftw_version()}-{cpu_name()}")
    return base / "spectralign-fast" / f"fftwf-wisdom-{tag}.txt"


def load_wisdom() -> bool:
    """Import the cached FFTW wisdom, if any (called on import; an unreadable or foreign
    file is ignored: wisdom only saves planning time, it never changes what is computed)."""
    try:
        path = wisdom_path()
    except OSError:  # e.g. /proc unreadable in a sandbox
        path = None
    _wisdom.path = path
    if path is None or not path.is_file():
        return False
    try:
        text = path.read_text()
    except OSError:
        return False
    except (UnicodeDecodeError, ValueError):
        text = None
    _wisdom.loaded = text is not None and _core.config.import_fft_wisdom(text)
    if not _wisdom.loaded:
        # Wisdom only saves planning time: a damaged file is replaced at exit, never fatal.
        warnings.warn(f"ignoring the damaged FFTW wisdom file {path}; it will be rewritten", RuntimeWarning,
                      stacklevel=2)
    return bool(_wisdom.loaded)


def _save_wisdom() -> None:
    path = _wisdom.path
    if path is None or _wisdom.forgotten or _core.config.cached_plan_count() == 0:
        return
    if _core.config.fft_planning() == "estimate":
        return
    try:
        text = _core.config.export_fft_wisdom()
        if not text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.read_bytes() == text.encode():
            return
        write_atomically(path, lambda tmp: Path(tmp).write_text(text))
    except OSError:
        pass  # a read-only home only costs the next process its planning time


atexit.register(_save_wisdom)


def config() -> dict[str, Any]:
    """The build configuration as a dict (FFTW source and version, threads, ...)."""
    return {
        "fftw_source": _core.config.fftw_source,
        "fftw_version": _core.config.fftw_version(),
        "fft_planning": _core.config.fft_planning(),
        "fft_wisdom": (str(_wisdom.path) + (" (loaded)" if _wisdom.loaded else "")
                       if _wisdom.path is not None else "off"),
        "eigen_version": _core.config.eigen_version,
        "cholmod": _core.config.has_cholmod,
        "compiler": _core.config.compiler,
        "default_threads": _core.config.default_threads(),
        "python": sys.version.split()[0],
    }


def show_config(file: Optional[TextIO] = None) -> None:
    """Print which FFTW is linked, its version, Eigen, and the thread count.

    ``threads=0`` anywhere in the API means ``default_threads`` threads.
    """
    out = file if file is not None else sys.stdout
    print(f"spectralign_fast {__version__}", file=out)
    for key, value in config().items():
        print(f"  {key:16s} {value}", file=out)


def set_fft_planning(rigor: str) -> None:
    """How hard FFTW searches for fast plans created from now on.

    ``"measure"`` (default) times candidate algorithms once per window shape
    (a fraction of a second for typical sizes); ``"estimate"`` plans instantly
    with a heuristic (slower transforms); ``"patient"`` searches longer: about
    1 s for a 256 px window, 2 s for 512 and 3 s for 1024 the first time
    (then kept as wisdom), for matching measured 0-5% faster than with
    ``"measure"`` at those sizes, and more for windows under 192 px, which use
    2-D transforms (bench/RESULTS.md). Worth it for long production runs.
    Plans are cached per shape for the life of the process, and measured
    choices are kept between processes in an FFTW wisdom file (see
    ``config()["fft_wisdom"]``; ``SPECTRALIGN_FFTW_WISDOM=`` empty turns it off).

    Different FFT algorithms round differently (about 1e-6 px in a match),
    and measuring picks them by timing, so two processes may differ in the
    last bits. ``"estimate"`` also drops the loaded wisdom, so every process
    plans the same way: use it where results must be bit for bit identical
    across processes (e.g. a Dask cluster against a local run).
    """
    if not isinstance(rigor, str):
        raise TypeError("rigor must be 'estimate', 'measure' or 'patient'")
    _core.config.set_fft_planning(rigor)
    if rigor == "estimate":
        _core.config.forget_fft_wisdom()
        _wisdom.forgotten = True

"""Build and runtime configuration."""
from __future__ import annotations

import sys

from . import _core


def config() -> dict:
    """The build configuration as a dict (FFTW source and version, threads, ...)."""
    return {
        "fftw_source": _core.fftw_source,
        "fftw_version": _core.fftw_version(),
        "fft_planning": _core.fft_planning(),
        "eigen_version": _core.eigen_version,
        "cholmod": _core.has_cholmod,
        "compiler": _core.compiler,
        "default_threads": _core.default_threads(),
        "python": sys.version.split()[0],
    }


def show_config(file=None) -> None:
    """Print which FFTW is linked, its version, Eigen, and the thread count.

    ``threads=0`` anywhere in the API means ``default_threads`` threads.
    """
    out = file if file is not None else sys.stdout
    from . import __version__

    print(f"spectralign_fast {__version__}", file=out)
    for key, value in config().items():
        print(f"  {key:16s} {value}", file=out)


def set_fft_planning(rigor: str) -> None:
    """How hard FFTW searches for fast plans created from now on.

    ``"measure"`` (default) times candidate algorithms once per window shape
    (a fraction of a second for typical sizes); ``"estimate"`` plans instantly
    with a heuristic (slower transforms); ``"patient"`` searches longer.
    Plans are cached per shape for the life of the process.
    """
    if not isinstance(rigor, str):
        raise TypeError("rigor must be 'estimate', 'measure' or 'patient'")
    _core.set_fft_planning(rigor)

"""The command line: ``spectralign-fast montage | stack | demo`` (see ``cli.main``)."""
from __future__ import annotations

from .main import UsageError, main, parser

__all__ = ["UsageError", "main", "parser"]

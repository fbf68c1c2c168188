"""Whole jobs: ``montage`` (a grid of tiles) and ``align_stack`` (serial sections), and their result."""
from __future__ import annotations

from .montage import montage, write_report
from .result import MontageResult
from .sections import align_stack

__all__ = ["MontageResult", "align_stack", "montage", "write_report"]

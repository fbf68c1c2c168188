"""Rendering: tiles into a canvas (``Renderer``), overviews, rendered outputs."""
from __future__ import annotations

from .renderer import Renderer

__all__ = ["Renderer"]

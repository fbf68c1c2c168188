"""Rendering: tiles into a canvas (``Renderer``), the N-D warp core (``warp``), overviews, rendered outputs."""
from __future__ import annotations

from .renderer import Renderer
from .warp import warp

__all__ = ["Renderer", "warp"]

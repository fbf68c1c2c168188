"""Placement: every tile's transform in model space from the matches (sparse least squares)."""
from __future__ import annotations

from .placement import Match, Placement, PlacementResiduals

__all__ = ["Match", "Placement", "PlacementResiduals"]

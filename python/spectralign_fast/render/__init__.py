"""Resampling of whole images (the N-D warp core)."""
from .warp import warp

__all__ = ["warp"]

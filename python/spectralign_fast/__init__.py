"""spectralign_fast: fast, dependable image alignment for microscopy.

spectralign's API (Image, Affine, Matcher, ...) on a C++17 core: FFTW for the
whitened cross-correlation, multithreaded batches with the GIL released.

Conventions: points are (x, y) = (column, row); a shift is positive when the
second image's content lies right of / below the first's. Stack registration
(CrossCorr) keeps thunder-registration's convention instead: displacements in
array axis order, positive when a frame's content lies further along the axis
than the reference's.
"""
from __future__ import annotations

from ._config import config, load_wisdom as _load_wisdom, set_fft_planning, show_config
from .affine import Affine
from .image import Image
from .matcher import BatchRefinementStats, Matcher, RefinementStats
from .montage import MontageResult, montage
from .placement import Match, Placement, PlacementResiduals
from .registration import CrossCorr, Displacement, LocalDisplacement, RegistrationModel
from .renderer import Renderer
from .render import warp
from .stack import align_stack
from ._pairs import PairMatches

__version__ = "0.1.0"

_load_wisdom()

__all__ = [
    "Affine",
    "BatchRefinementStats",
    "CrossCorr",
    "Displacement",
    "Image",
    "LocalDisplacement",
    "Match",
    "Matcher",
    "MontageResult",
    "PairMatches",
    "Placement",
    "PlacementResiduals",
    "RefinementStats",
    "RegistrationModel",
    "Renderer",
    "align_stack",
    "config",
    "montage",
    "set_fft_planning",
    "show_config",
    "warp",
    "__version__",
]

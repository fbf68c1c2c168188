"""spectralign_fast: fast, dependable image alignment for microscopy.

spectralign's API (Image, Affine, Matcher, ...) on a C++17 core: FFTW for the
whitened cross-correlation, multithreaded batches with the GIL released.

Conventions: points are (x, y) = (column, row); a shift is positive when the
second image's content lies right of / below the first's. Stack registration
(CrossCorr) keeps thunder-registration's convention instead: displacements in
array axis order, positive when a frame's content lies further along the axis
than the reference's.

Layout (one subpackage per area; this module re-exports the public names):
``transforms`` (Affine and the rule for (x, y) vs array order), ``io``
(image files, tile stores, OME-Zarr, TIFF, JSON; one atomic writer), ``match``
(Matcher, pair and level matching), ``place`` (Placement), ``render``
(Renderer, overviews, rendered outputs), ``register`` (CrossCorr stack
registration, NonRigidCrossCorr block-wise motion correction), ``workflows`` (montage, align_stack, MontageResult),
``execute`` (local and Dask executors), ``cli``.
"""
from __future__ import annotations

from ._config import config, load_wisdom as _load_wisdom, set_fft_planning, show_config
from ._version import __version__
from .image import Image
from .match.matcher import BatchRefinementStats, Matcher, RefinementStats
from .match.pairs import PairMatches
from .place.placement import Match, Placement, PlacementResiduals
from .register.crosscorr import CrossCorr, Displacement, LocalDisplacement, RegistrationModel
from .register.nonrigid import NonRigidCrossCorr, NonRigidModel
from .render.renderer import Renderer
from .render.warp import warp
from .transforms.affine import Affine
from .transforms.nd import AffineTransform, DisplacementField
from .transforms.points import affine_from_points
from .workflows.montage import montage, write_report
from .workflows.result import MontageResult
from .workflows.sections import align_stack

_load_wisdom()

__all__ = [
    "Affine",
    "AffineTransform",
    "BatchRefinementStats",
    "CrossCorr",
    "Displacement",
    "DisplacementField",
    "Image",
    "LocalDisplacement",
    "Match",
    "Matcher",
    "NonRigidCrossCorr",
    "NonRigidModel",
    "MontageResult",
    "PairMatches",
    "Placement",
    "PlacementResiduals",
    "RefinementStats",
    "RegistrationModel",
    "Renderer",
    "affine_from_points",
    "align_stack",
    "config",
    "montage",
    "set_fft_planning",
    "show_config",
    "warp",
    "write_report",
    "__version__",
]

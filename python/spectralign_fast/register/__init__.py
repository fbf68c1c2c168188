"""Registration.

* ``register.crosscorr``: thunder-registration's ``CrossCorr`` stack registration;
  ``register.zdrift``: which plane of a reference z-stack each frame shows (``estimate_z_positions``).
* ``register.nonrigid``: ``NonRigidCrossCorr``, block-wise (piecewise-rigid) motion correction
  of movies (suite2p's "nonrigid"), and its ``NonRigidModel``.
* Intensity-based affine registration in 2-D and 3-D with DIPY's names and conventions
  (``dipy.align.imaffine`` / ``dipy.align.transforms``): ``AffineRegistration``, ``AffineMap``,
  ``MutualInformationMetric``, the transforms, ``transform_centers_of_mass``; plus
  ``CorrelationMetric``, the global initialiser ``initial_affine`` (Fourier-Mellin, principal
  axes, angle sweep; no ``params0`` needed) and the one-call ``register_affine``.
* Symmetric diffeomorphic registration (``dipy.align.imwarp`` / ``dipy.align.metrics``):
  ``SymmetricDiffeomorphicRegistration``, ``DiffeomorphicMap``, ``CCMetric``, ``SSDMetric``,
  ``EMMetric``; plus ``ParzenMIMetric`` for images of different modalities.
* LDDMM with an affine part and a contrast model (STalign's energy): ``LDDMM`` (defaults from
  the images, adapted steps, a stopping rule) and its ``LddmmResult`` / ``LddmmTransform``;
  STalign's own function names live in ``spectralign_fast.stalign``.
"""
from __future__ import annotations

from .affine import AffineRegistration, LevelReport, VerbosityLevels
from .affine_map import (AffineInversionError, AffineMap, transform_centers_of_mass,
                         transform_geometric_centers, transform_origins)
from .deformable import SYN_METRICS, SynResult, register_syn
from .diffeomorphic_map import DiffeomorphicMap
from .figures import deformation_report, deformed_grid_lines
from .lddmm import LDDMM
from .lddmm_map import LddmmResult, LddmmTransform
from .mapping_files import read_mapping, write_mapping
from .syn import RegistrationStages, SymmetricDiffeomorphicRegistration, SynLevelReport
from .syn_metrics import CCMetric, EMMetric, ParzenMIMetric, SimilarityMetric, SSDMetric
from .crosscorr import CrossCorr, Displacement, LocalDisplacement, RegistrationModel
from .nonrigid import NonRigidCrossCorr, NonRigidModel
from .zdrift import ZPositions, estimate_z_positions
from .initialise import InitialAlignment, initial_affine
from .metrics import CorrelationMetric, Metric, MutualInformationMetric
from .pipeline import METRICS, MODELS, AffineResult, StageReport, register_affine
from .parametric import (AffineTransform2D, AffineTransform3D, RigidIsoScalingTransform2D,
                         RigidIsoScalingTransform3D, RigidScalingTransform2D, RigidScalingTransform3D,
                         RigidTransform2D, RigidTransform3D, RotationTransform2D, RotationTransform3D,
                         ScalingTransform2D, ScalingTransform3D, Transform, TranslationTransform2D,
                         TranslationTransform3D, transform_for)

__all__ = ["read_mapping", "write_mapping", "LDDMM", "LddmmResult", "LddmmTransform",
    "CrossCorr", "Displacement", "LocalDisplacement", "RegistrationModel", "NonRigidCrossCorr", "NonRigidModel",
    "ZPositions", "estimate_z_positions",
    "AffineRegistration", "LevelReport", "VerbosityLevels", "AffineMap", "AffineInversionError",
    "transform_centers_of_mass", "transform_geometric_centers", "transform_origins",
    "Metric", "MutualInformationMetric", "CorrelationMetric",
    "Transform", "TranslationTransform2D", "TranslationTransform3D", "RotationTransform2D",
    "RotationTransform3D", "RigidTransform2D", "RigidTransform3D", "RigidIsoScalingTransform2D",
    "RigidIsoScalingTransform3D", "RigidScalingTransform2D", "RigidScalingTransform3D",
    "ScalingTransform2D", "ScalingTransform3D", "AffineTransform2D", "AffineTransform3D",
    "transform_for", "SymmetricDiffeomorphicRegistration", "DiffeomorphicMap", "RegistrationStages",
    "SynLevelReport", "SimilarityMetric", "CCMetric", "SSDMetric", "EMMetric", "ParzenMIMetric",
    "register_syn", "SynResult", "SYN_METRICS", "deformation_report", "deformed_grid_lines",
    "InitialAlignment", "initial_affine", "register_affine", "AffineResult", "StageReport", "MODELS", "METRICS",
]

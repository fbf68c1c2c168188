"""Registration: thunder-registration's ``CrossCorr`` stack registration (``register.crosscorr``) and
the global affine initialiser (``register.initialise``)."""
from __future__ import annotations

from .crosscorr import CrossCorr, Displacement, LocalDisplacement, RegistrationModel
from .initialise import InitialAlignment, initial_affine

__all__ = ["CrossCorr", "Displacement", "InitialAlignment", "LocalDisplacement", "RegistrationModel",
           "initial_affine"]

"""Registration: thunder-registration's ``CrossCorr`` stack registration (``register.crosscorr``)."""
from __future__ import annotations

from .crosscorr import CrossCorr, Displacement, LocalDisplacement, RegistrationModel

__all__ = ["CrossCorr", "Displacement", "LocalDisplacement", "RegistrationModel"]

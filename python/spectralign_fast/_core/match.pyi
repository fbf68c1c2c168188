"""The matcher (SWiFT-IR's swim): MatcherCore and its results."""
from collections.abc import Sequence
from typing import Never, type_check_only

import numpy as np
import numpy.typing as npt

@type_check_only
class _Pybind11Type(type):
    """The metaclass of every class pybind11 binds (pybind11_builtins.pybind11_type)."""

class RefineManyResult(metaclass=_Pybind11Type):
    """What MatcherCore.refine_many returns: one row per pair of points."""
    def __init__(self, *args: Never, **kwargs: Never) -> None:
        """Not constructible from Python (pybind11 raises TypeError); made by the core only."""
    @property
    def p1(self) -> npt.NDArray[np.float64]: ...
    @property
    def p2(self) -> npt.NDArray[np.float64]: ...
    @property
    def shift(self) -> npt.NDArray[np.float64]: ...
    @property
    def peakwidth(self) -> npt.NDArray[np.float64]: ...
    @property
    def snr(self) -> npt.NDArray[np.float64]: ...
    @property
    def niters(self) -> npt.NDArray[np.int32]: ...

class MatcherCore(metaclass=_Pybind11Type):
    def __init__(self, image1: npt.ArrayLike, image2: npt.ArrayLike) -> None: ...
    def refine(
        self,
        p1: Sequence[float],
        p2: Sequence[float],
        width: int,
        height: int,
        iters: int,
        tolerance: float,
        whiten: float,
        peak_radius: int,
        apodize_both: bool,
    ) -> tuple[tuple[float, float], tuple[float, float], npt.NDArray[np.float64]]: ...
    def refine_many(
        self,
        P1: npt.ArrayLike,
        P2: npt.ArrayLike,
        width: int,
        height: int,
        iters: int,
        tolerance: float,
        whiten: float,
        peak_radius: int,
        apodize_both: bool,
        threads: int,
    ) -> RefineManyResult: ...

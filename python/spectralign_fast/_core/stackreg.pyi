"""Stack registration: StackRegCore and frame shifting (2-D frames or 3-D volumes); ZStackCore (z positions)."""
from collections.abc import Sequence
from typing import type_check_only

import numpy as np
import numpy.typing as npt

@type_check_only
class _Pybind11Type(type):
    """The metaclass of every class pybind11 binds (pybind11_builtins.pybind11_type)."""

class StackRegCore(metaclass=_Pybind11Type):
    def __init__(
        self,
        references: npt.ArrayLike,
        whiten: float,
        subpixel: bool,
        max_shift: Sequence[int],
        refine: bool = False,
        reference_box: Sequence[int] = ...,
        taper: float = 0.0,
    ) -> None: ...
    def fit(
        self,
        frames: npt.ArrayLike,
        first_plane: int,
        threads: int,
        self_weight: float = 0.0,
        self_deltas: npt.ArrayLike | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]: ...
    def refine(
        self,
        frames: npt.ArrayLike,
        start: npt.ArrayLike,
        first_plane: int,
        threads: int,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]: ...
    @property
    def shape(self) -> list[int]: ...
    @property
    def planes(self) -> int: ...

def accumulate_shifted(
    frames: npt.ArrayLike,
    deltas: npt.ArrayLike,
    threads: int,
    sum: npt.NDArray[np.float64],
) -> None: ...

def shift_frames(
    frames: npt.ArrayLike,
    deltas: npt.ArrayLike,
    interpolation: str,
    threads: int,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]: ...

def shift_frames_integer(
    frames: npt.NDArray[np.generic],
    deltas: npt.ArrayLike,
    threads: int,
    out: npt.NDArray[np.generic] | None = None,
) -> npt.NDArray[np.generic]: ...

class BlockRegCore(metaclass=_Pybind11Type):
    def __init__(
        self,
        reference: npt.ArrayLike,
        starts: Sequence[Sequence[int]],
        block: Sequence[int],
        whiten: float,
        max_shift: Sequence[int],
        taper: float,
        taper_frames: bool = True,
    ) -> None: ...
    def fit(
        self,
        frames: npt.ArrayLike,
        prior: npt.ArrayLike | None,
        threads: int,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32], npt.NDArray[np.int8]]: ...
    @property
    def blocks(self) -> int: ...

def block_field(
    grid: npt.ArrayLike,
    centers: Sequence[Sequence[float]],
    shape: Sequence[int],
    upsampling: str,
) -> npt.NDArray[np.float32]: ...
def warp_blocks(
    frames: npt.ArrayLike,
    grids: npt.ArrayLike,
    centers: Sequence[Sequence[float]],
    upsampling: str,
    interpolation: str,
    threads: int,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]: ...

class ZStackCore(metaclass=_Pybind11Type):
    def __init__(self, planes: npt.ArrayLike, whiten: float, taper: float, max_shift: Sequence[int]) -> None: ...
    def correlate(self, frames: npt.ArrayLike, threads: int) -> npt.NDArray[np.float32]: ...
    @property
    def planes(self) -> int: ...

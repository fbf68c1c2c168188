"""Rendering tiles (uint8, uint16 or float32) into a canvas."""
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

_Pixels: TypeAlias = npt.NDArray[np.uint8 | np.uint16 | np.float32]

def render_canvas(
    images: list[_Pixels],
    transforms: npt.ArrayLike,
    x0: float,
    y0: float,
    width: int,
    height: int,
    interpolation: str,
    blend: float,
    fill: float,
    threads: int,
    coverage: bool,
    dtype: str,
    window: tuple[int, int, int, int] | None = None,
    coverage_bits: bool = False,
) -> tuple[_Pixels, npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | None]: ...
def accumulate_tile(
    image: _Pixels,
    transform: npt.ArrayLike,
    x0: float,
    y0: float,
    width: int,
    height: int,
    interpolation: str,
    blend: float,
    num: npt.NDArray[np.float64],
    den: npt.NDArray[np.float32],
    threads: int,
) -> None: ...
def finalize_canvas(
    num: npt.NDArray[np.float64],
    den: npt.NDArray[np.float32],
    hard: bool,
    fill: float,
    dtype: str,
    threads: int,
    coverage: bool,
) -> tuple[_Pixels, npt.NDArray[np.bool_] | None]: ...
def tile_coverage(
    transforms: npt.ArrayLike,
    sizes: npt.ArrayLike,
    x0: float,
    y0: float,
    width: int,
    height: int,
    all_tiles: bool,
    threads: int,
) -> npt.NDArray[np.bool_]: ...

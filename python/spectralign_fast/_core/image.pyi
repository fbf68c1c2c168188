"""Window extraction, apodization, affine warps, finiteness checks (float32 images)."""
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

def straight_window(
    image: npt.ArrayLike, cx: float, cy: float, width: int, height: int, border: float | None = None
) -> npt.NDArray[np.float32]: ...
def transformed_window(
    image: npt.ArrayLike,
    cx: float,
    cy: float,
    linear: Sequence[float],
    width: int,
    height: int,
    border: float | None = None,
) -> npt.NDArray[np.float32]: ...
def apodized(image: npt.ArrayLike, gray: float | None = None) -> npt.NDArray[np.float32]: ...
def warp_affine(
    image: npt.ArrayLike,
    inverse: Sequence[float],
    x0: float,
    y0: float,
    width: int,
    height: int,
    border: float = 0.0,
) -> npt.NDArray[np.float32]: ...
def all_finite(image: npt.ArrayLike) -> bool: ...

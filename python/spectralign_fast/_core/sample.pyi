"""The N-D warp core (scipy.ndimage conventions); ``spectralign_fast.warp`` is its public face."""
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

def warp_affine(
    image: npt.NDArray[np.generic],
    matrix: npt.ArrayLike,
    output_shape: Sequence[int],
    kernel: str,
    mode: str,
    cval: float,
    threads: int,
) -> npt.NDArray[np.generic]: ...
def warp_field(
    image: npt.NDArray[np.generic],
    field: npt.NDArray[np.float32],
    kernel: str,
    mode: str,
    cval: float,
    threads: int,
) -> npt.NDArray[np.generic]: ...
def bspline_coefficients(image: npt.NDArray[np.generic], mode: str, threads: int) -> tuple[npt.NDArray[np.float32], int]: ...

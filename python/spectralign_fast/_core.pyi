"""Type stubs for the private C++ extension (use the public classes instead)."""
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

fftw_source: str
eigen_version: str
compiler: str
has_cholmod: bool

def fftw_version() -> str: ...
def default_threads() -> int: ...
def set_fft_planning(rigor: str) -> None: ...
def fft_planning() -> str: ...
def cached_plan_count() -> int: ...
def export_fft_wisdom() -> str: ...
def import_fft_wisdom(text: str) -> bool: ...
def forget_fft_wisdom() -> None: ...
def fft_floor(rows: int, cols: int, repeats: int, r2c: int = 2, packed: bool = False,
              threads: int = 1) -> float: ...
def _set_fused_min_pixels(pixels: int) -> int: ...
def _set_team_min_pixels(pixels: int) -> int: ...
def _set_team_wait_limit(fraction: float) -> float: ...
def straight_window(
    image: npt.ArrayLike, cx: float, cy: float, width: int, height: int, border: Optional[float] = None
) -> npt.NDArray[np.float32]: ...
def transformed_window(
    image: npt.ArrayLike,
    cx: float,
    cy: float,
    linear: Sequence[float],
    width: int,
    height: int,
    border: Optional[float] = None,
) -> npt.NDArray[np.float32]: ...
def apodized(image: npt.ArrayLike, gray: Optional[float] = None) -> npt.NDArray[np.float32]: ...
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

class MatcherCore:
    def __init__(self, image1: npt.ArrayLike, image2: npt.ArrayLike) -> None: ...
    def refine(
        self,
        p1: Tuple[float, float],
        p2: Tuple[float, float],
        width: int,
        height: int,
        iters: int,
        tolerance: float,
        whiten: float,
        peak_radius: int,
        apodize_both: bool,
    ) -> Tuple[Tuple[float, float], Tuple[float, float], npt.NDArray[np.float64]]: ...
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
    ) -> dict[str, np.ndarray]: ...

def placement_components(n_tiles: int, t1: npt.ArrayLike, t2: npt.ArrayLike) -> Tuple[npt.NDArray[np.int64], int]: ...
def place(
    n_tiles: int, t1: npt.ArrayLike, t2: npt.ArrayLike, p1: npt.ArrayLike, p2: npt.ArrayLike,
    w: npt.ArrayLike, affine: bool, fix: int = -1, separate: bool = False, solver: str = "auto",
    preconditioner: str = "jacobi", tol: float = 1e-12, maxiter: int = 0, auto_limit: int = 0,
) -> dict[str, Any]: ...
def place_similarity(
    n_tiles: int, t1: npt.ArrayLike, t2: npt.ArrayLike, p1: npt.ArrayLike, p2: npt.ArrayLike,
    w: npt.ArrayLike, fix: int,
) -> dict[str, Any]: ...

def render_canvas(
    images: Sequence[npt.NDArray],
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
) -> Tuple[npt.NDArray, Optional[npt.NDArray[np.bool_]]]: ...
def render_accumulate(
    image: npt.NDArray,
    transform: npt.ArrayLike,
    x0: float,
    y0: float,
    width: int,
    height: int,
    interpolation: str,
    blend: float,
    num: npt.NDArray[np.float32],
    den: npt.NDArray[np.float32],
    threads: int,
) -> None: ...
def render_finalize(
    num: npt.NDArray[np.float32],
    den: npt.NDArray[np.float32],
    hard: bool,
    fill: float,
    dtype: str,
    threads: int,
    coverage: bool,
) -> Tuple[npt.NDArray, Optional[npt.NDArray[np.bool_]]]: ...
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

class StackRegCore:
    def __init__(self, references: npt.ArrayLike, whiten: float, subpixel: bool, max_shift: Sequence[int]) -> None: ...
    def fit(
        self,
        frames: npt.ArrayLike,
        first_plane: int,
        threads: int,
        self_weight: float = 0.0,
        self_deltas: Optional[npt.ArrayLike] = None,
    ) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]: ...
    @property
    def shape(self) -> list[int]: ...
    @property
    def planes(self) -> int: ...

def stack_shift(
    frames: npt.ArrayLike,
    deltas: npt.ArrayLike,
    interpolation: str,
    threads: int,
    out: Optional[npt.NDArray[np.float32]] = None,
) -> npt.NDArray[np.float32]: ...

# --- _core.sample: the N-D warp core (spectralign_fast.warp is the public face) ---
class _SampleModule:
    @staticmethod
    def warp_affine(
        image: npt.NDArray,
        matrix: npt.ArrayLike,
        output_shape: Sequence[int],
        kernel: str,
        mode: str,
        cval: float,
        threads: int,
    ) -> npt.NDArray: ...
    @staticmethod
    def warp_field(
        image: npt.NDArray,
        field: npt.NDArray[np.float32],
        kernel: str,
        mode: str,
        cval: float,
        threads: int,
    ) -> npt.NDArray: ...
    @staticmethod
    def bspline_coefficients(image: npt.NDArray, mode: str, threads: int) -> Tuple[npt.NDArray[np.float32], int]: ...

sample: _SampleModule

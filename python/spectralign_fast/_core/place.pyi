"""Sparse least-squares placement of tiles."""
from typing import Never, type_check_only

import numpy as np
import numpy.typing as npt

@type_check_only
class _Pybind11Type(type):
    """The metaclass of every class pybind11 binds (pybind11_builtins.pybind11_type)."""

class SolveTimings(metaclass=_Pybind11Type):
    """Wall-clock seconds of one placement call's stages."""
    def __init__(self, *args: Never, **kwargs: Never) -> None:
        """Not constructible from Python (pybind11 raises TypeError); made by the core only."""
    @property
    def assemble(self) -> float: ...
    @property
    def analyze(self) -> float: ...
    @property
    def factor(self) -> float: ...
    @property
    def solve(self) -> float: ...
    @property
    def refine(self) -> float: ...

class Refinement(metaclass=_Pybind11Type):
    """Iterative refinement after a direct solve."""
    def __init__(self, *args: Never, **kwargs: Never) -> None:
        """Not constructible from Python (pybind11 raises TypeError); made by the core only."""
    @property
    def steps(self) -> int: ...
    @property
    def residual_initial(self) -> float: ...
    @property
    def residual_final(self) -> float: ...

class PlacementSolution(metaclass=_Pybind11Type):
    """What solve returns."""
    def __init__(self, *args: Never, **kwargs: Never) -> None:
        """Not constructible from Python (pybind11 raises TypeError); made by the core only."""
    @property
    def params(self) -> npt.NDArray[np.float64]: ...
    @property
    def component(self) -> npt.NDArray[np.int64]: ...
    @property
    def n_components(self) -> int: ...
    @property
    def unknowns(self) -> int: ...
    @property
    def nonzeros(self) -> int: ...
    @property
    def solver(self) -> str: ...
    @property
    def cg_iterations(self) -> int: ...
    @property
    def cg_error(self) -> float: ...
    @property
    def pivot_ratio(self) -> float: ...
    @property
    def refinement(self) -> Refinement: ...
    @property
    def timings(self) -> SolveTimings: ...

class SimilaritySolution(metaclass=_Pybind11Type):
    """What solve_similarity returns."""
    def __init__(self, *args: Never, **kwargs: Never) -> None:
        """Not constructible from Python (pybind11 raises TypeError); made by the core only."""
    @property
    def params(self) -> npt.NDArray[np.float64]: ...
    @property
    def unknowns(self) -> int: ...
    @property
    def nonzeros(self) -> int: ...
    @property
    def solver(self) -> str: ...
    @property
    def pivot_ratio(self) -> float: ...
    @property
    def refinement(self) -> Refinement: ...
    @property
    def timings(self) -> SolveTimings: ...

def connected_components(
    n_tiles: int, t1: npt.ArrayLike, t2: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], int]: ...
def solve(
    n_tiles: int,
    t1: npt.ArrayLike,
    t2: npt.ArrayLike,
    p1: npt.ArrayLike,
    p2: npt.ArrayLike,
    w: npt.ArrayLike,
    affine: bool,
    fix: int = -1,
    separate: bool = False,
    solver: str = "auto",
    preconditioner: str = "jacobi",
    tol: float = 1e-12,
    maxiter: int = 0,
    auto_limit: int = 0,
    regularize: float = 0.0,
    prior: npt.ArrayLike | None = None,
    refine: int = 3,
    prior_centre: float = 1.0,
    prior_linear: float = 1.0,
) -> PlacementSolution: ...
def solve_similarity(
    n_tiles: int,
    t1: npt.ArrayLike,
    t2: npt.ArrayLike,
    p1: npt.ArrayLike,
    p2: npt.ArrayLike,
    w: npt.ArrayLike,
    fix: int,
    solver: str = "auto",
    refine: int = 3,
    reference: int = -1,
) -> SimilaritySolution: ...

class MeshSolution:
    """What solve_mesh returns."""
    @property
    def displacement(self) -> npt.NDArray[np.float64]: ...
    @property
    def residual(self) -> npt.NDArray[np.float64]: ...
    @property
    def inverted(self) -> npt.NDArray[np.int64]: ...
    @property
    def unknowns(self) -> int: ...
    @property
    def nonzeros(self) -> int: ...
    @property
    def solver(self) -> str: ...
    @property
    def cg_iterations(self) -> int: ...
    @property
    def cg_error(self) -> float: ...
    @property
    def assemble_s(self) -> float: ...
    @property
    def factor_s(self) -> float: ...
    @property
    def solve_s(self) -> float: ...

def solve_mesh(
    n_sections: int,
    ny: int,
    nx: int,
    spacing: float,
    origin_x: float,
    origin_y: float,
    za: npt.ArrayLike,
    zb: npt.ArrayLike,
    pa: npt.ArrayLike,
    pb: npt.ArrayLike,
    w: npt.ArrayLike,
    stiffness: float,
    pull: float,
    solver: str = "auto",
    auto_limit: int = 0,
    tol: float = 1e-10,
    maxiter: int = 0,
) -> MeshSolution: ...
def mesh_interpolate(
    displacement: npt.ArrayLike, spacing: float, origin_x: float, origin_y: float, points: npt.ArrayLike
) -> npt.NDArray[np.float64]: ...
def mesh_inverse(
    displacement: npt.ArrayLike, spacing: float, origin_x: float, origin_y: float, points: npt.ArrayLike
) -> npt.NDArray[np.float64]: ...
def mesh_field(
    displacement: npt.ArrayLike,
    spacing: float,
    origin_x: float,
    origin_y: float,
    row0: int,
    col0: int,
    h: int,
    w: int,
    matrix: npt.ArrayLike,
    threads: int,
) -> npt.NDArray[np.float32]: ...

"""What a workflow asks of the machine(s) it runs on: the ``Executor`` interface.

``montage``, ``align_stack`` and ``MontageResult.write`` are written once
against this interface; ``LocalExecutor`` runs the work on this process's
threads and ``DaskExecutor`` as tasks on a Dask cluster, with the same
results bit for bit (see ``execute.dask``). Coordinates: points are
(x, y) = (column, row); transforms map tile pixels to model space.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar

import numpy as np
from tqdm.auto import tqdm

from .._types import TileKey
from ..match.flow import SectionFlow
from ..match.pairs import MatchSettings, PairJob, PairMatches
from ..render.elastic import ElasticRenderer
from ..render.renderer import Renderer
from ..transforms.affine import Affine

T = TypeVar("T")

# One section's overview: (model pixels per overview pixel, image, model point of pixel (0, 0)).
Overview = Tuple[float, np.ndarray, Tuple[float, float]]


def progress_bar(iterable: Iterable[T], *, total: int, desc: str, enabled: bool) -> Iterable[T]:
    """``iterable``, with a tqdm bar when ``enabled``."""
    if not enabled:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="pair" if "match" in desc else "it",
                leave=False, dynamic_ncols=True)


class Executor(ABC):
    """The per-pair, per-level and per-chunk work of a workflow.

    Attributes
    ----------
    threads : int
        Threads each piece of work uses (matching, rendering).
    sizes, dtypes : dict
        ``{tile: (width, height)}`` and ``{tile: numpy dtype}`` of every tile read so far.
    """

    threads: int
    sizes: Dict[TileKey, Tuple[int, int]]
    dtypes: Dict[TileKey, np.dtype]

    @abstractmethod
    def check_output(self, output: Any, overwrite: bool) -> Optional[Path]:
        """The output path after checking it up front (before any work), or None."""

    @abstractmethod
    def match(self, pairs: List[PairJob], settings: MatchSettings, *,
              progress: bool) -> List[PairMatches]:
        """``match_pair`` for every (tile a, tile b, kind[, offset guess]), in order."""

    @abstractmethod
    def probe(self, tiles: Sequence[TileKey]) -> None:
        """Record the size and dtype of every tile not yet read."""

    @abstractmethod
    def rematch(self, items: List[Tuple[PairMatches, MatchSettings]], transforms: Mapping[TileKey, Affine], *,
                progress: bool) -> List[PairMatches]:
        """The second pass (``rematch_pair``) for every pair with kept matches; others unchanged."""

    @abstractmethod
    def overviews(self, parts: List[Tuple[Dict[TileKey, Affine], Dict[TileKey, Tuple[int, int]]]], *,
                  max_side: int = 1024, factor: Optional[int] = None) -> List[Overview]:
        """``render.overview`` of each (transforms, sizes) part, as float32."""

    @abstractmethod
    def match_levels(self, level_keys: Sequence[Sequence[TileKey]], tf: Mapping[TileKey, Affine],
                     sizes: Mapping[TileKey, Tuple[int, int]], settings: MatchSettings,
                     overviews: Mapping[int, Overview], *, progress: bool) -> List[PairMatches]:
        """``match.levels.match_levels`` for every pair of neighbouring levels, in order."""

    @abstractmethod
    def render(self, r: Renderer, tiles: Sequence[TileKey], dtype: np.dtype, *, output: Optional[Path],
               overwrite: bool, chunk: int, progress: bool,
               levels: Optional[Sequence[Sequence[TileKey]]]) -> Optional[np.ndarray]:
        """Render ``tiles`` through ``r`` (each level of ``levels`` as one plane of a stack) into
        ``output``, or return the image (or (z, y, x) stack) when ``output`` is None."""

    @abstractmethod
    def section_flows(self, er: ElasticRenderer, *, size: int, step: float, settings: MatchSettings,
                      progress: bool) -> List[SectionFlow]:
        """``match.flow.stack_flows`` between every pair of neighbouring sections of ``er``, in order."""

    @abstractmethod
    def render_elastic(self, er: ElasticRenderer, dtype: np.dtype, *, output: Optional[Path], overwrite: bool,
                       chunk: int, progress: bool) -> Optional[np.ndarray]:
        """Every section through its mesh (``ElasticRenderer``) into ``output``, or the (z, y, x)
        stack when ``output`` is None."""

    @abstractmethod
    def source_name(self, tile: TileKey) -> Optional[str]:
        """The path a tile was given as, or None for arrays and loaders."""

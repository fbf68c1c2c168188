"""The work of a workflow on this process's threads (``client=None``)."""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

import numpy as np

from .._types import TileKey, TileKeyT
from ..io.atomic import check_output_path
from ..io.formats import output_kind
from ..io.tiles import TileStore
from ..match.flow import SectionFlow, stack_flows
from ..match.levels import match_levels
from ..match.pairs import MatchSettings, PairJob, PairMatches, match_pair, rematch_pair
from ..render.elastic import ElasticRenderer
from ..render.output import write_rendered, write_stack
from ..render.overview import overview
from ..render.renderer import Renderer
from ..transforms.affine import Affine
from .._validate import resolve_threads
from .base import Executor, Overview, progress_bar

T = TypeVar("T")


class LocalExecutor(Executor):
    """Tiles read on demand through one ``TileStore`` (the ``capacity`` most recent kept);
    each pair matched and each block rendered with ``threads`` threads (0 = all cores)."""

    def __init__(self, sources: Mapping[TileKeyT, Any], threads: int, *, capacity: int = 16) -> None:
        self.store = TileStore(sources, capacity=capacity)
        self.threads = threads
        self.sizes = self.store.sizes
        self.dtypes = self.store.dtypes

    def check_output(self, output: Any, overwrite: bool) -> Optional[Path]:
        if output is None:
            return None
        path = Path(output)
        output_kind(path)
        check_output_path(path, overwrite=overwrite)
        return path

    def _pairs_in_parallel(self, fn: Callable[[Any], T], items: Sequence[Any], *, desc: str,
                           progress: bool) -> List[T]:
        """fn over items, one item per thread: the coarse match of a pair is one FFT window
        (one thread), so pairs side by side are what fill the cores. Each pair's result does
        not depend on the thread count, so neither does the list."""
        nthreads = min(resolve_threads(self.threads), len(items))
        if nthreads <= 1:
            return [fn(it) for it in progress_bar(items, total=len(items), desc=desc, enabled=progress)]
        with ThreadPoolExecutor(max_workers=nthreads, thread_name_prefix="spectralign-match") as pool:
            return list(progress_bar(pool.map(fn, items), total=len(items), desc=desc, enabled=progress))

    def match(self, pairs: List[PairJob], settings: MatchSettings, *,
              progress: bool) -> List[PairMatches]:
        image = self.store.image
        one = dataclasses.replace(settings, threads=1) if resolve_threads(self.threads) > 1 else settings

        def run(pair: PairJob) -> PairMatches:
            a, b, kind, *rest = pair
            return match_pair(image(a), image(b), a, b, kind, one, *rest)

        return self._pairs_in_parallel(run, pairs, desc="matching", progress=progress)

    def probe(self, tiles: Sequence[TileKey]) -> None:
        for t in tiles:
            if t not in self.sizes:
                self.store.image(t)

    def rematch(self, items: List[Tuple[PairMatches, MatchSettings]], transforms: Mapping[TileKey, Affine], *,
                progress: bool) -> List[PairMatches]:
        image = self.store.image
        single = resolve_threads(self.threads) > 1

        def run(item: Tuple[PairMatches, MatchSettings]) -> PairMatches:
            pm, s = item
            if not pm.kept.any():
                return pm
            s = dataclasses.replace(s, threads=1) if single else s
            return rematch_pair(image(pm.tile1), image(pm.tile2), pm, transforms[pm.tile1], transforms[pm.tile2], s)

        return self._pairs_in_parallel(run, items, desc="matching (pass 2)", progress=progress)

    def overviews(self, parts: List[Tuple[Dict[TileKey, Affine], Dict[TileKey, Tuple[int, int]]]], *,
                  max_side: int = 1024, factor: Optional[int] = None) -> List[Overview]:
        out = []
        for tf, sizes in parts:
            img, k, org = overview(tf, sizes, self.store.sources, max_side=max_side, factor=factor,
                                   threads=self.threads)
            out.append((k, np.asarray(img, np.float32), org))
        return out

    def match_levels(self, level_keys: Sequence[Sequence[TileKey]], tf: Mapping[TileKey, Affine],
                     sizes: Mapping[TileKey, Tuple[int, int]], settings: MatchSettings,
                     overviews: Mapping[int, Overview], *, progress: bool) -> List[PairMatches]:
        out: List[PairMatches] = []
        n = len(level_keys) - 1
        for z in progress_bar(range(n), total=n, desc="matching levels", enabled=progress):
            out.extend(match_levels(self.store, level_keys[z], level_keys[z + 1], tf, sizes, z, settings,
                                    overviews))
        return out

    def render(self, r: Renderer, tiles: Sequence[TileKey], dtype: np.dtype, *, output: Optional[Path],
               overwrite: bool, chunk: int, progress: bool,
               levels: Optional[Sequence[Sequence[TileKey]]]) -> Optional[np.ndarray]:
        loaders = {t: self.store.loader(t) for t in tiles}
        if output is not None:
            write_rendered(output, r, loaders, dtype, levels=levels, overwrite=overwrite, chunk=chunk,
                           threads=self.threads, progress=progress)
            return None
        if levels is None:
            return r.render_all(loaders)
        h, w = r.shape
        stack = np.empty((len(levels), h, w), dtype)
        for z, lv in enumerate(progress_bar(levels, total=len(levels), desc="rendering", enabled=progress)):
            stack[z] = r.render_region(r.rect, {t: loaders[t] for t in lv})
        return stack

    def section_flows(self, er: ElasticRenderer, *, size: int, step: float, settings: MatchSettings,
                      progress: bool) -> List[SectionFlow]:
        tiles = {t: self.store.loader(t) for lv in er.levels for t in lv}
        n = len(er.levels) - 1
        zs = progress_bar(range(n), total=n, desc="section flow", enabled=progress)
        return stack_flows(er, tiles, zs, size=size, step=step, settings=settings)

    def render_elastic(self, er: ElasticRenderer, dtype: np.dtype, *, output: Optional[Path], overwrite: bool,
                       chunk: int, progress: bool) -> Optional[np.ndarray]:
        tiles = {t: self.store.loader(t) for lv in er.levels for t in lv}
        fns = er.region_fns(tiles, dtype, threads=self.threads)
        if output is not None:
            write_stack(output, er.shape, dtype, fns, overwrite=overwrite, chunk=chunk, progress=progress)
            return None
        h, w = er.shape
        stack = np.empty((len(fns), h, w), dtype)
        for z in progress_bar(range(len(fns)), total=len(fns), desc="rendering", enabled=progress):
            stack[z] = fns[z](0, 0, h, w)
        return stack

    def source_name(self, tile: TileKey) -> Optional[str]:
        return self.store.source_name(tile)

"""Where a workflow's work runs: this machine's threads or a Dask cluster.

``executor_for(client, sources, threads)`` gives a ``LocalExecutor`` for
``client=None`` and a ``DaskExecutor`` otherwise; both implement
``Executor`` (``execute.base``), so each workflow is written once.
Nothing here imports a workflow.
"""
from __future__ import annotations

from typing import Any, Mapping

from .._types import TileKeyT
from .base import Executor, progress_bar
from .dask import DaskExecutor, check_client, connect
from .local import LocalExecutor


def executor_for(client: Any, sources: Mapping[TileKeyT, Any], threads: int, *,
                 capacity: int = 16) -> Executor:
    """A ``LocalExecutor`` (``client`` None; ``capacity`` tiles kept in memory) or a
    ``DaskExecutor`` on ``client`` (checked to be a live ``dask.distributed.Client``)."""
    if client is None:
        return LocalExecutor(sources, threads, capacity=capacity)
    return DaskExecutor(client, sources, threads)


__all__ = ["DaskExecutor", "Executor", "LocalExecutor", "check_client", "connect", "executor_for", "progress_bar"]

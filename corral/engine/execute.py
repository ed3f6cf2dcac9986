"""Run a job's graph on its executor: the local pool (the default) or a Beam runner, with its
progress line shown while it runs. Every job (build, dedup, tokenize, export) runs through here.
"""

from __future__ import annotations

import contextlib

from corral.engine import on_beam
from corral.engine.graph import Graph
from corral.engine.pool import LocalPool
from corral.engine.progress import Progress
from corral.engine.runners import Executor


def execute(graph: Graph, how: Executor, progress: Progress | None = None) -> None:
    """Run every phase of the graph. The pool's workers are forked before the progress thread
    starts (a fork copies only the thread that makes it)."""
    watch = progress if progress is not None else contextlib.nullcontext()
    if how.runner is None:
        with LocalPool(how.workers) as pool, watch:
            pool.run(graph)
    else:
        with watch:
            on_beam.execute(graph, how.runner, how.options)

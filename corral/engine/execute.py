"""Run a job's graph on its executor: the local pool (the default) or a Beam runner, with its
progress line shown while it runs. Every job (build, dedup, tokenize, export) runs through here;
`run_each` is the whole of a job that is one task over each unit's items (tokenize, export).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import replace

from corral.core.errors import Failure
from corral.engine.graph import Graph, Item, Ledger, Summary, Task
from corral.engine.pool import LocalPool
from corral.engine.progress import Progress
from corral.engine.records import read_done, summary_of
from corral.engine.runners import Executor


def execute(graph: Graph, how: Executor, progress: Progress | None = None) -> None:
    """Run every phase of the graph. The pool's workers are forked before the progress thread
    starts (a fork copies only the thread that makes it). Every phase's ledger is stamped with this
    run, so that what a worker process remembers of a bucket's records serves this job only."""
    run = uuid.uuid4().hex
    for ph in graph.phases:
        ph.ledger = replace(ph.ledger, run=run)
    watch = progress if progress is not None else contextlib.nullcontext()
    if how.runner is None:
        with LocalPool(how.workers) as pool, watch:
            pool.run(graph)
    else:
        from corral.engine import on_beam  # here: a local run never imports Beam (about 0.5 s)

        with watch:
            on_beam.execute(graph, how.runner, how.options)


def run_each(task: Task, units: dict[Ledger, list[Item]], how: Executor, job: str) -> dict[str, list[Summary]]:
    """`task` over each unit's items, a phase per unit, with the `job`'s progress line; each unit's
    summaries in item order, `reused` where an earlier run's record answered (that record is the
    same one after the run: an item run again is recorded anew, with the time it was written)."""
    before = {(at.unit, i.key): read_done(at, task.phase, i.key) for at, items in units.items() for i in items}
    graph = Graph()
    for ledger, items in units.items():
        graph.add(f"{job}/{ledger.unit}", task, ledger, items=items, inputs=True)
    execute(graph, how, Progress(graph, job))
    found: dict[str, list[Summary]] = {}
    for ledger, items in units.items():
        found[ledger.unit] = []
        for item in items:
            summary = summary_of(ledger, task, item, check=False)  # just run or checked by the run
            if summary is None:
                raise Failure(f"{job} {ledger.unit}: item {item.key} left no completion record")
            was = before[(ledger.unit, item.key)]
            summary.reused = was is not None and was == read_done(ledger, task.phase, item.key)
            found[ledger.unit].append(summary)
    return found

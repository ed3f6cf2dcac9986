"""Phases over files: the build's execution model (docs/design.md).

A phase is a kind of task run over a list of work items — an input file, a group of staged files,
a partition of dedup keys, a language's side model. A task reads and writes files under OUT and
returns a small JSON summary; nothing else leaves it. Each finished item leaves a completion record,
`OUT/_build/<source>/done/<phase>/<key>.json`, holding the item's fingerprint and its summary, so a
rerun after a kill returns the recorded summary of every finished item without redoing it.

All phases of a build go into one Beam pipeline (worker processes start once): each phase is
`Create(items) | Reshuffle | ParDo(task)`, or, when its items depend on an earlier phase's
summaries, `Create(seeds) | FlatMap(plan, AsList(earlier))` first. A phase waits for another by
taking its summaries as a side input. These are the transforms every runner translates, Beam
2.77's DaskRunner included (Create, ParDo, GroupByKey, Flatten, side inputs); only paths and
summaries cross its shuffles.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

import apache_beam as beam

from corral import fs

BUILD_DIR = "_build"
PLAN_SLOTS = 32  # a planned phase's items are dealt into this many seeds, so that runners which keep
                 # a collection's partitioning (the DaskRunner) spread them as they spread given items


def work_dir(out: str, source: str) -> str:
    """A source's working folder under OUT (staged shards, key files, decisions, completion records)."""
    return fs.join(out, f"{BUILD_DIR}/{source}")


def done_path(out: str, source: str, phase: str, key: str) -> str:
    return fs.join(work_dir(out, source), f"done/{phase}/{key}.json")


def read_done(out: str, source: str, phase: str, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(fs.read_bytes(done_path(out, source, phase, key)))
    except (OSError, ValueError):
        return None


def recorded_summaries(out: str, source: str, phase: str) -> list[dict[str, Any]]:
    """Every completion record's summary of a phase, in key order."""
    folder = fs.join(work_dir(out, source), f"done/{phase}")
    found = []
    for path in fs.list_files(folder):
        if path.endswith(".json") and fs.TMP_MARK not in path:
            try:
                found.append(json.loads(fs.read_bytes(path))["summary"])
            except (OSError, ValueError, KeyError):
                continue
    return found


class Task:
    """One kind of work. Subclasses set `phase` and implement `run(item) -> summary`; `setup` loads
    what a worker needs once (models are loaded there or lazily, never pickled with the task).

    An item is a JSON-able dict with at least `source`, `key` (unique within the phase, a file name)
    and `fingerprint` (what its outputs depend on: a changed one is redone)."""

    phase = "task"

    def setup(self) -> None:
        pass

    def run(self, item: dict[str, Any], *earlier: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError


class _RunTask(beam.DoFn):
    """Run a task on each item unless its completion record (same fingerprint) says it is done."""

    def __init__(self, task: Task, out: str, n_earlier: int):
        self.task, self.out, self.n_earlier = task, out, n_earlier

    def setup(self):
        self.task.setup()

    def process(self, item, *sides):
        earlier, _waits = sides[:self.n_earlier], sides[self.n_earlier:]
        src, phase, key = item["source"], self.task.phase, item["key"]
        done = read_done(self.out, src, phase, key)
        if done is not None and done.get("fingerprint") == item["fingerprint"]:
            yield {**done["summary"], "reused": True}
            return
        summary = {**self.task.run(item, *earlier), "phase": phase}
        record = {"fingerprint": item["fingerprint"], "item": item, "summary": summary}
        fs.atomic_write_bytes(done_path(self.out, src, phase, key),
                              json.dumps(record, ensure_ascii=False).encode("utf-8"))
        yield summary


def run_phase(p: beam.Pipeline, label: str, task: Task, out: str,
              items: list[dict[str, Any]] | None = None,
              plan: Callable[..., Iterable[dict[str, Any]]] | None = None,
              earlier: Iterable[Any] = (), waits: Iterable[Any] = ()):
    """Add one phase to the pipeline; return the PCollection of its summaries.

    Items are given (`items`) or planned from earlier phases' summaries (`plan(*lists)`, with the
    same lists handed to the task's `run` after the item). `waits` are PCollections this phase
    waits for without reading them."""
    earlier, waits = list(earlier), list(waits)
    if plan is None:
        src = p | f"{label}/Items" >> beam.Create(items or [], reshuffle=False)
    else:
        src = (p | f"{label}/Seed" >> beam.Create(list(range(PLAN_SLOTS)), reshuffle=False)
               | f"{label}/Plan" >> beam.FlatMap(_dealt, plan, *[beam.pvalue.AsList(e) for e in earlier]))
    sides = [beam.pvalue.AsList(e) for e in earlier] + [beam.pvalue.AsList(w) for w in waits]
    return (src
            | f"{label}/Spread" >> beam.Reshuffle()
            | f"{label}/Run" >> beam.ParDo(_RunTask(task, out, len(earlier)), *sides))


def merged(label: str, pcolls: list[Any]):
    """Several phases' summaries as one PCollection (each summary names its `phase`)."""
    return tuple(pcolls) | label >> beam.Flatten()


def of_phase(summaries: list[dict[str, Any]], phase: str) -> list[dict[str, Any]]:
    return [s for s in summaries if s.get("phase") == phase]


def _dealt(slot: int, plan, *lists) -> list[dict[str, Any]]:
    """The planned items that fall to one seed."""
    return [item for i, item in enumerate(plan(*lists)) if i % PLAN_SLOTS == slot]


def finish(p: beam.Pipeline, ends: list[Any]) -> None:
    """One last step that waits for every phase: Beam 2.77's DaskRunner computes only the graph
    behind a pipeline's last transform and would skip branches that lead nowhere else."""
    (p | "Finish/Seed" >> beam.Create([None], reshuffle=False)
     | "Finish" >> beam.Map(lambda _, *waits: None, *[beam.pvalue.AsList(e) for e in ends]))

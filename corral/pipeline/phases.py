"""Phases over files: the build's execution model (docs/design.md).

A phase is a kind of task run over a list of work items — an input file, a group of staged files,
a partition of dedup keys, a language's side model. A task reads and writes files under OUT and
returns a small JSON summary; nothing else leaves it. Each finished item leaves a completion record,
`OUT/_build/<source>/done/<phase>/<key>.json`, holding the item's fingerprint and its summary, so a
rerun after a kill returns the recorded summary of every finished item without redoing it.

The sources add their phases to a `Graph`; `execute` runs it. By default all phases go into one
Beam pipeline (worker processes start once): each phase is `Create(items) | Reshuffle |
ParDo(task)` (Spread: a GroupByKey on a small key), or, when its items depend on an earlier phase's summaries, `Create(seeds) |
FlatMap(plan, AsList(earlier))` first; a phase waits for another by taking its summaries as a side
input. On the DaskRunner the graph runs level by level instead, one pipeline per level. These are the transforms every runner translates, Beam
2.77's DaskRunner included (Create, ParDo, GroupByKey, Flatten, side inputs); only paths and
summaries cross its shuffles.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
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
    """Run a task on each item unless its completion record (same fingerprint) says it is done.
    The earlier phases' summaries come as side inputs, or, run wave by wave, with the DoFn."""

    def __init__(self, task: Task, out: str, n_earlier: int, given: list[list[dict[str, Any]]] | None = None):
        self.task, self.out, self.n_earlier, self.given = task, out, n_earlier, given

    def setup(self):
        self.task.setup()

    def process(self, item, *sides):
        earlier = self.given if self.given is not None else sides[:self.n_earlier]
        src, phase, key = item["source"], self.task.phase, item["key"]
        done = read_done(self.out, src, phase, key)
        if done is not None and done.get("fingerprint") == item["fingerprint"]:
            yield {**done["summary"], "reused": True}
            return
        summary = {**self.task.run(item, *earlier), "phase": phase}
        record = {"fingerprint": item["fingerprint"], "item": item, "summary": summary}
        fs.atomic_write_bytes(done_path(self.out, src, phase, key),
                              json.dumps(record, ensure_ascii=False).encode("utf-8"), durable=False)
        yield summary


@dataclass
class Phase:
    label: str
    task: Task
    out: str
    items: list[dict[str, Any]] | None
    plan: Callable[..., Iterable[dict[str, Any]]] | None
    earlier: list["Handle"]
    waits: list["Handle"]
    level: int = 0


@dataclass
class Handle:
    """The summaries of one phase, or of several merged."""

    phases: list[Phase]
    label: str


class Graph:
    """The phases of a build, in the order they were added (each after those it reads or waits for)."""

    def __init__(self):
        self.phases: list[Phase] = []


def run_phase(g: Graph, label: str, task: Task, out: str,
              items: list[dict[str, Any]] | None = None,
              plan: Callable[..., Iterable[dict[str, Any]]] | None = None,
              earlier: Iterable[Handle] = (), waits: Iterable[Handle] = ()) -> Handle:
    """Add one phase; return a handle on its summaries.

    Items are given (`items`) or planned from earlier phases' summaries (`plan(*lists)`, with the
    same lists handed to the task's `run` after the item). `waits` are phases this one waits for
    without reading them."""
    earlier, waits = list(earlier), list(waits)
    level = 1 + max((ph.level for h in earlier + waits for ph in h.phases), default=-1)
    phase = Phase(label, task, out, items, plan, earlier, waits, level)
    g.phases.append(phase)
    return Handle([phase], label)


def merged(label: str, handles: list[Handle]) -> Handle:
    """Several phases' summaries as one list (each summary names its `phase`)."""
    return Handle([ph for h in handles for ph in h.phases], label)


def of_phase(summaries: list[dict[str, Any]], phase: str) -> list[dict[str, Any]]:
    return [s for s in summaries if s.get("phase") == phase]


SPREAD_KEYS = 64  # groups the items of a phase are dealt into before its tasks run


class Spread(beam.PTransform):
    """Deal work items over the workers: a GroupByKey on a small key from each item's `key`. (Beam's
    Reshuffle left every item on one worker process of the local runner; its GroupByKey output is
    dealt to the workers key by key.)"""

    def expand(self, items):
        return (items
                | "Key" >> beam.Map(lambda item: (zlib.crc32(item["key"].encode()) % SPREAD_KEYS, item))
                | "Group" >> beam.GroupByKey()
                | "Items" >> beam.FlatMap(lambda kv: kv[1]))


def _dealt(slot: int, plan, slots: int, *lists) -> list[dict[str, Any]]:
    """The planned items that fall to one seed."""
    return [item for i, item in enumerate(plan(*lists)) if i % slots == slot]


def execute(g: Graph, runner, options, waves: bool = False) -> None:
    """Run every phase: in one pipeline, phases linked by side inputs; or, with `waves`, one
    pipeline per level of the graph, each phase's items planned by the driver from the completion
    records of the levels before. Waves are for Beam 2.77's DaskRunner, which computes a side input
    again inside every task that reads it (a whole upstream graph each time)."""
    if waves:
        _execute_waves(g, runner, options)
        return
    from apache_beam.options.pipeline_options import DirectOptions

    # One in-process worker: nothing to deal out, so no Spread shuffles and one plan seed.
    alone = type(runner).__name__ == "FnApiRunner" and options.view_as(DirectOptions).direct_num_workers == 1

    seeds = [0] if alone else list(range(PLAN_SLOTS))
    with beam.Pipeline(runner=runner, options=options) as p:
        made: dict[int, Any] = {}

        def pcoll(h: Handle):
            cols = [made[id(ph)] for ph in h.phases]
            return cols[0] if len(cols) == 1 else tuple(cols) | f"{h.label}/Merge" >> beam.Flatten()

        merges: dict[str, Any] = {}

        def side(h: Handle):
            if h.label not in merges:
                merges[h.label] = pcoll(h)
            return beam.pvalue.AsList(merges[h.label])

        for ph in g.phases:
            if ph.plan is None:
                src = p | f"{ph.label}/Items" >> beam.Create(ph.items or [], reshuffle=False)
            else:
                src = (p | f"{ph.label}/Seed" >> beam.Create(seeds, reshuffle=False)
                       | f"{ph.label}/Plan" >> beam.FlatMap(_dealt, ph.plan, len(seeds), *[side(e) for e in ph.earlier]))
            sides = [side(e) for e in ph.earlier] + [side(w) for w in ph.waits]
            if not alone:
                src = src | f"{ph.label}/Spread" >> Spread()
            made[id(ph)] = (src | f"{ph.label}/Run" >> beam.ParDo(_RunTask(ph.task, ph.out, len(ph.earlier)), *sides))
        # One last step that waits for every phase: the DaskRunner (and any runner that computes
        # only what the last transform needs) would otherwise skip branches that lead nowhere else.
        (p | "Finish/Seed" >> beam.Create([None], reshuffle=False)
         | "Finish" >> beam.Map(lambda _, *waits: None, *[beam.pvalue.AsList(c) for c in made.values()]))


def _execute_waves(g: Graph, runner, options) -> None:
    done: dict[int, list[dict[str, Any]]] = {}

    def summaries(h: Handle) -> list[dict[str, Any]]:
        return [s for ph in h.phases for s in done[id(ph)]]

    for level in sorted({ph.level for ph in g.phases}):
        wave = [ph for ph in g.phases if ph.level == level]
        planned = []
        for ph in wave:
            lists = [summaries(e) for e in ph.earlier]
            items = list(ph.items or []) if ph.plan is None else list(ph.plan(*lists))
            planned.append((ph, items, lists))
        if any(items for _, items, _ in planned):
            with beam.Pipeline(runner=runner, options=options) as p:
                outs = [p | f"{ph.label}/Items" >> beam.Create(items, reshuffle=False)
                        | f"{ph.label}/Spread" >> Spread()
                        | f"{ph.label}/Run" >> beam.ParDo(_RunTask(ph.task, ph.out, len(lists), given=lists))
                        for ph, items, lists in planned if items]
                tuple(outs) | "Wave" >> beam.Flatten()  # the last transform: every phase of the wave behind it
        for ph, items, _ in planned:
            found = []
            for item in items:
                rec = read_done(ph.out, item["source"], ph.task.phase, item["key"])
                if rec is None:
                    raise RuntimeError(f"{ph.label}: item {item['key']} left no completion record")
                found.append(rec["summary"])
            done[id(ph)] = found

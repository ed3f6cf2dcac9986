"""The phase graph as Beam pipelines, for any Beam runner (corral.engine.graph).

All phases go into one pipeline (worker processes start once): each phase is `Create(items) |
Spread | ParDo(task)`, or, when its items depend on an earlier phase's summaries, `Create(seeds) |
FlatMap(plan, AsList(earlier))` first; a phase waits for another by taking its summaries as a side
input. On the DaskRunner the graph runs level by level instead, one pipeline per level, each
level's items planned by the driver from the completion records of the levels before. These are the
transforms every runner translates, Beam 2.77's DaskRunner included (Create, ParDo, GroupByKey,
Flatten, side inputs); only paths and summaries cross its shuffles.
"""

from __future__ import annotations

import zlib
from typing import Any

import apache_beam as beam

from corral.engine.graph import Graph, Handle, Ledger, Summary, Task, planned_items
from corral.engine.records import read_done, run_item, typed

SPREAD_KEYS = 64  # groups the items of a phase are dealt into before its tasks run
PLAN_SLOTS = 32  # a planned phase's items are dealt into this many seeds, so that runners which keep
# a collection's partitioning (the DaskRunner) spread them as they spread given items


class _RunTask(beam.DoFn):
    """Run a task on each item (corral.engine.records.run_item). The earlier phases' summaries
    come as side inputs, or, run wave by wave, with the DoFn."""

    def __init__(self, task: Task, ledger: Ledger, n_earlier: int, given: list[list[Summary]] | None = None):
        self.task, self.ledger, self.n_earlier, self.given = task, ledger, n_earlier, given

    def setup(self):
        self.task.setup()

    def process(self, item, *sides):
        earlier = self.given if self.given is not None else sides[: self.n_earlier]
        yield run_item(self.task, self.ledger, item, earlier)


class Spread(beam.PTransform):
    """Deal work items over the workers: a GroupByKey on a small key from each item's key. (Beam's
    Reshuffle left every item on one worker process of the local runner; its GroupByKey output is
    dealt to the workers key by key.)"""

    def expand(self, items):
        return (
            items
            | "Key" >> beam.Map(lambda item: (zlib.crc32(item.key.encode()) % SPREAD_KEYS, item))
            | "Group" >> beam.GroupByKey()
            | "Items" >> beam.FlatMap(lambda kv: kv[1])
        )


def _dealt(slot: int, plan, slots: int, *lists) -> list[Any]:
    """The planned items that fall to one seed."""
    return [item for i, item in enumerate(plan(*lists)) if i % slots == slot]


def execute(graph: Graph, runner, options, waves: bool | None = None) -> None:
    """Run every phase on a Beam runner: in one pipeline, phases linked by side inputs; or, with
    `waves` (the default on the DaskRunner), one pipeline per level of the graph. Waves are for Beam
    2.77's DaskRunner, which computes a side input again inside every task that reads it (a whole
    upstream graph each time)."""
    if waves is None:
        waves = type(runner).__name__ == "DaskRunner"
    if waves:
        _execute_waves(graph, runner, options)
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

        for ph in graph.phases:
            if ph.plan is None:
                src = p | f"{ph.label}/Items" >> beam.Create(ph.items or [], reshuffle=False)
            else:
                src = (
                    p
                    | f"{ph.label}/Seed" >> beam.Create(seeds, reshuffle=False)
                    | f"{ph.label}/Plan" >> beam.FlatMap(_dealt, ph.plan, len(seeds), *[side(e) for e in ph.earlier])
                )
            sides = [side(e) for e in ph.earlier] + [side(w) for w in ph.waits]
            if not alone:
                src = src | f"{ph.label}/Spread" >> Spread()
            made[id(ph)] = src | f"{ph.label}/Run" >> beam.ParDo(_RunTask(ph.task, ph.ledger, len(ph.earlier)), *sides)
        # One last step that waits for every phase: the DaskRunner (and any runner that computes
        # only what the last transform needs) would otherwise skip branches that lead nowhere else.
        (
            p
            | "Finish/Seed" >> beam.Create([None], reshuffle=False)
            | "Finish" >> beam.Map(lambda _, *waits: None, *[beam.pvalue.AsList(c) for c in made.values()])
        )


def _execute_waves(graph: Graph, runner, options) -> None:
    done: dict[int, list[Summary]] = {}

    def summaries(h: Handle) -> list[Summary]:
        return [s for ph in h.phases for s in done[id(ph)]]

    for level in sorted({ph.level for ph in graph.phases}):
        wave = [ph for ph in graph.phases if ph.level == level]
        planned = []
        for ph in wave:
            lists = [summaries(e) for e in ph.earlier]
            planned.append((ph, planned_items(ph, lists), lists))
        if any(items for _, items, _ in planned):
            with beam.Pipeline(runner=runner, options=options) as p:
                outs = [
                    p
                    | f"{ph.label}/Items" >> beam.Create(items, reshuffle=False)
                    | f"{ph.label}/Spread" >> Spread()
                    | f"{ph.label}/Run" >> beam.ParDo(_RunTask(ph.task, ph.ledger, len(lists), given=lists))
                    for ph, items, lists in planned
                    if items
                ]
                tuple(outs) | "Wave" >> beam.Flatten()  # the last transform: every phase of the wave behind it
        for ph, items, _ in planned:
            found = []
            for item in items:
                rec = read_done(ph.ledger, ph.task.phase, item.key)
                if rec is None:
                    raise RuntimeError(f"{ph.label}: item {item.key} left no completion record")
                found.append(typed(ph.task.summary, rec["summary"]))
            done[id(ph)] = found

"""Phases over work items: the graph every job builds and every executor runs (docs/design.md).

A phase is one kind of task run over a list of work items: an input file, a group of staged files,
a partition of keys, a document shard. A task reads and writes files and returns a small summary;
nothing else leaves it. Items and summaries are dataclasses (subclasses of `Item` and `Summary`),
written as JSON in the phase's completion records (corral.engine.records), so a rerun returns the
recorded summary of every finished item without redoing it.

A job adds its phases to a `Graph`; `corral.engine.execute` runs the graph on the local pool
(corral.engine.pool) or on any Beam runner (corral.engine.on_beam). Both run every item through
`corral.engine.records.run_item`, so they write the same files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Item:
    """One work item. `key` names it within its phase (it is a file name); subclasses add what
    their task needs. Items are JSON-able: the executors pass them between processes and machines."""

    key: str


@dataclass
class Summary:
    """What a task returns for one item. Subclasses add their own fields; these are the engine's:
    `records` and `input_bytes` (input records and bytes the item read, for progress; the engine
    takes an item's own `input_bytes` where the task gives none), `examples` (what a task dropped, a
    few of each reason, kept for the report: written to a file of their own, never passed on),
    `seconds` and `reused` (set by the engine: the task's time, and whether a completion record
    answered instead)."""

    records: int = 0
    input_bytes: int = 0
    examples: dict[str, list[list[str]]] | None = None
    seconds: float = 0.0
    reused: bool = False


class Task:
    """One kind of work. Subclasses set `phase` (its records' folder name) and `summary` (the
    Summary subclass `run` returns) and implement `run(item, *earlier)`, where `earlier` are the
    summaries of the phases it reads. `setup` loads what a worker needs once (models are loaded
    there or lazily, never pickled with the task). `still_done` may refuse a recorded summary whose
    outputs have gone since (the item is then run again)."""

    phase = "task"
    summary: type[Summary] = Summary

    def setup(self) -> None:
        pass

    def run(self, item: Item, *earlier: list[Summary]) -> Summary:
        raise NotImplementedError

    def still_done(self, item: Item, summary: Summary) -> bool:
        return True


@dataclass(frozen=True)
class Ledger:
    """Where a phase's completion records go and what they must match: `root/unit/done/<phase>/`,
    with the unit's fingerprint (the settings and inputs its outputs depend on)."""

    root: str
    unit: str
    fingerprint: str
    fresh: bool = False  # the unit had no records when the job started: none is looked for
    run: str = ""  # the job running it (set by corral.engine.execute): what a process's listings belong to


@dataclass
class Phase:
    label: str
    task: Task
    ledger: Ledger
    items: list[Item] | None
    plan: Callable[..., Iterable[Item]] | None
    earlier: list[Handle]
    waits: list[Handle]
    level: int = 0
    inputs: bool = False  # its items are the job's inputs: progress counts them


@dataclass
class Handle:
    """The summaries of one phase, or of several merged."""

    phases: list[Phase]
    label: str


@dataclass
class Graph:
    """The phases of a job, in the order they were added (each after those it reads or waits for)."""

    phases: list[Phase] = field(default_factory=list)

    def add(
        self,
        label: str,
        task: Task,
        ledger: Ledger,
        *,
        items: list[Item] | None = None,
        plan: Callable[..., Iterable[Item]] | None = None,
        earlier: Iterable[Handle] = (),
        waits: Iterable[Handle] = (),
        inputs: bool = False,
    ) -> Handle:
        """Add one phase; return a handle on its summaries.

        Items are given (`items`) or planned from earlier phases' summaries (`plan(*lists)`, the
        same lists handed to the task's `run` after the item). `waits` are phases this one waits
        for without reading them; `inputs` marks a phase whose items are the job's input files."""
        earlier, waits = list(earlier), list(waits)
        level = 1 + max((ph.level for h in earlier + waits for ph in h.phases), default=-1)
        phase = Phase(
            label, task, ledger, items=items, plan=plan, earlier=earlier, waits=waits, level=level, inputs=inputs
        )
        self.phases.append(phase)
        return Handle([phase], label)


def merged(label: str, handles: list[Handle]) -> Handle:
    """Several phases' summaries as one list."""
    return Handle([ph for h in handles for ph in h.phases], label)


def of_type(summaries: list[Any], kind: type) -> list[Any]:
    """The summaries of one kind among a merged list."""
    return [s for s in summaries if isinstance(s, kind)]


def planned_items(phase: Phase, lists: list[list[Summary]]) -> list[Item]:
    """A phase's work items: given, or planned from the earlier phases' summaries."""
    return list(phase.items or []) if phase.plan is None else list(phase.plan(*lists))

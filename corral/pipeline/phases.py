"""Phases over files: the build's execution model (docs/design.md).

A phase is a kind of task run over a list of work items — an input file, a group of staged files,
a partition of dedup keys, a language's side model. A task reads and writes files under OUT and
returns a small JSON summary; nothing else leaves it. Each finished item leaves a completion record,
`OUT/_build/<source>/done/<phase>/<key>.json`, holding the item's fingerprint and its summary, so a
rerun after a kill returns the recorded summary of every finished item without redoing it.

The sources add their phases to a `Graph`. Two executors run it: `corral.pipeline.pool` on this
machine (a pool of worker processes, or this process alone), and `corral.pipeline.on_beam` on any
Beam runner (the FnApiRunner, the DaskRunner, Flink, Spark, Dataflow). Both run the same tasks
through `run_item`, so they write the same files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from corral import fs

BUILD_DIR = "_build"
EXAMPLES = "examples"  # OUT/_build/<source>/examples/<phase>--<key>.json: a task's dropped examples


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


class FolderTask(Task):
    """A task that reads and writes under the build folder OUT."""

    def __init__(self, out: str):
        self.out = out


class SourceTask(FolderTask):
    """A task of one source's phases: the build folder and the source's stage options."""

    def __init__(self, out: str, stages: dict[str, Any]):
        super().__init__(out)
        self.stages = stages


def run_item(task: Task, out: str, item: dict[str, Any], earlier: tuple | list) -> dict[str, Any]:
    """Run a task on one item unless its completion record (same fingerprint) says it is done;
    record it when it finishes. Returns the item's summary (`reused` when recorded before)."""
    src, phase, key = item["source"], task.phase, item["key"]
    done = read_done(out, src, phase, key)
    if done is not None and done.get("fingerprint") == item["fingerprint"]:
        return {**done["summary"], "reused": True}
    t0 = time.perf_counter()
    summary = {**task.run(item, *earlier), "phase": phase}
    summary["seconds"] = round(time.perf_counter() - t0, 4)
    examples = summary.pop("examples", None)
    if examples:  # texts never cross a shuffle: the dropped examples go to a file of their own
        fs.atomic_write_bytes(
            fs.join(work_dir(out, src), f"{EXAMPLES}/{phase}--{key}.json"),
            json.dumps(examples, ensure_ascii=False).encode("utf-8"),
            durable=False,
        )
    record = {"fingerprint": item["fingerprint"], "item": item, "summary": summary}
    fs.atomic_write_bytes(
        done_path(out, src, phase, key), json.dumps(record, ensure_ascii=False).encode("utf-8"), durable=False
    )
    return summary


def planned_items(phase: Phase, lists: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A phase's work items: given, or planned from the earlier phases' summaries."""
    return list(phase.items or []) if phase.plan is None else list(phase.plan(*lists))


@dataclass
class Phase:
    label: str
    task: Task
    out: str
    items: list[dict[str, Any]] | None
    plan: Callable[..., Iterable[dict[str, Any]]] | None
    earlier: list[Handle]
    waits: list[Handle]
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


def run_phase(
    g: Graph,
    label: str,
    task: Task,
    out: str,
    items: list[dict[str, Any]] | None = None,
    plan: Callable[..., Iterable[dict[str, Any]]] | None = None,
    earlier: Iterable[Handle] = (),
    waits: Iterable[Handle] = (),
) -> Handle:
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

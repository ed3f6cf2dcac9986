"""Completion records: what a finished work item leaves, so that a rerun redoes only the rest.

Every finished item leaves `<root>/<unit>/done/<phase>/<key>.json`: the unit's fingerprint, the
item and the task's summary, as JSON. While an item runs, the input bytes its task has read so far
(`read_so_far`, called by the readers) go to `<root>/<unit>/running/<phase>--<key>.json` at most
once a second, for the progress line inside one big file. `run_item` returns the recorded summary instead of running an
item again when the record's fingerprint and item are the same and the task says its outputs are
still there. Items and summaries are dataclasses; `plain` and `typed` turn them into JSON values
and back.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
import types
import typing
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from typing import Any

from corral.core import fs
from corral.engine.graph import Item, Ledger, Summary, Task

EXAMPLES = "examples"  # <root>/<unit>/examples/<phase>--<key>.json: a task's dropped examples
RUNNING = "running"  # <root>/<unit>/running/<phase>--<key>.json: a running item's input bytes so far
REPORT_EVERY_S = 1.0  # seconds between two writes of a running item's bytes
REPORT_EVERY_REMOTE_S = 5.0  # the same where the records are in a bucket (a request each)
READ_THREADS = 16  # records of one phase read at once from a bucket
_running = threading.local()  # the item this thread runs: where its bytes go, how many, when last written
_listed: dict[tuple[str, str], set[str]] = {}  # (job, remote phase folder) → its records when first listed
_memo: dict[str, list[dict[str, Any]]] | None = None  # a phase folder → its records, inside `read_once`


def plain(obj: Any) -> Any:
    """A dataclass (and what it holds) as JSON values: objects, lists, strings, numbers."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def typed(cls: type, data: dict[str, Any]) -> Any:
    """The dataclass `cls` from its `plain` form (nested dataclasses and lists of them too)."""
    return cls(**{name: _value(hint, data[name]) for name, hint in _field_hints(cls) if name in data})


@functools.cache
def _field_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, resolved type) of each field of a dataclass, once per class (get_type_hints evaluates
    every annotation string of the class and its bases: ~0.2 ms a call)."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in fields(cls))


def _value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if is_dataclass(hint):
        return typed(hint, value)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return _value(args[0], value)
    if typing.get_origin(hint) is list and args and is_dataclass(args[0]):
        return [typed(args[0], v) for v in value]
    if typing.get_origin(hint) is tuple and args and is_dataclass(args[0]):
        return tuple(typed(args[0], v) for v in value)
    if typing.get_origin(hint) is tuple:
        return tuple(value)
    return value


def folder(ledger: Ledger) -> str:
    """A unit's folder: its completion records and whatever its tasks keep beside them."""
    return fs.join(ledger.root, ledger.unit)


def done_path(ledger: Ledger, phase: str, key: str) -> str:
    return fs.join(folder(ledger), f"done/{phase}/{key}.json")


def read_done(ledger: Ledger, phase: str, key: str) -> dict[str, Any] | None:
    """An item's completion record as written, or None."""
    try:
        return json.loads(fs.read_bytes(done_path(ledger, phase, key)))
    except (OSError, ValueError):
        return None


def _read_record(path: str) -> dict[str, Any] | None:
    try:
        return json.loads(fs.read_bytes(path))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def read_once():
    """Inside it, each phase's records are read once (a job's collection, after its phases have
    run, reads the same records for several purposes: in a bucket each is a request)."""
    global _memo
    _memo = {}
    try:
        yield
    finally:
        _memo = None


def records(ledger: Ledger, phase: str) -> Iterator[dict[str, Any]]:
    """Every completion record of a phase as written, in key order (one that cannot be read is passed over)."""
    where = fs.join(folder(ledger), f"done/{phase}")
    if _memo is not None and where in _memo:
        yield from _memo[where]
        return
    paths = [p for p in fs.list_files(where) if p.endswith(".json") and fs.TMP_MARK not in p]
    if fs.is_remote(where) and len(paths) > 1:  # a request each: several in flight at once
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(READ_THREADS) as pool:
            found = [r for r in pool.map(_read_record, paths) if r is not None]
    else:
        found = [r for r in map(_read_record, paths) if r is not None]
    if _memo is not None:
        _memo[where] = found
    yield from found


def recorded(ledger: Ledger, phase: str, kind: type[Summary]) -> list[Any]:
    """Every completion record's summary of a phase, in key order, as `kind`."""
    found = []
    for rec in records(ledger, phase):
        try:
            found.append(typed(kind, rec["summary"]))
        except (KeyError, TypeError):
            continue
    return found


def record_of(ledger: Ledger, item: Item, summary: Summary) -> dict[str, Any]:
    """The completion record of an item and its summary, as `run_item` writes it: with the time it
    was written, so that a record written anew never equals the one it replaces (a rerun can take
    the very same time, to the 0.1 ms its summary keeps)."""
    return {
        "fingerprint": ledger.fingerprint,
        "item": plain(item),
        "summary": plain(summary),
        "written_ns": time.time_ns(),
    }


def _may_be_done(ledger: Ledger, phase: str, key: str) -> bool:
    """Whether an item may have a record: always on disk (a GET of a missing file costs nothing);
    in a bucket, whether its phase's folder listed it when this process first looked, so that a new
    build's items cost one listing per phase and process, not a request each. (A record another
    process writes later in the same job is not seen: that item is run again, to the same result.)
    Listings belong to one job (`Ledger.run`): a process that runs another job lists again."""
    if ledger.fresh:
        return False
    path = done_path(ledger, phase, key)
    if not fs.is_remote(path):
        return True
    key = (ledger.run, path.rsplit("/", 1)[0])
    if key not in _listed:
        if any(run != ledger.run for run, _ in _listed):
            _listed.clear()  # another job's
        _listed[key] = set(fs.list_files(key[1]))
    return path in _listed[key]


def summary_of(ledger: Ledger, task: Task, item: Item, *, check: bool = True) -> Summary | None:
    """The recorded summary of an item that finished with these settings and (unless `check` is
    off: a job reading back what it has just run) whose outputs are still there."""
    if check and not _may_be_done(ledger, task.phase, item.key):
        return None
    done = read_done(ledger, task.phase, item.key)
    if done is None or done.get("fingerprint") != ledger.fingerprint or done.get("item") != plain(item):
        return None
    try:
        summary = typed(task.summary, done["summary"])
    except (KeyError, TypeError):
        return None
    return summary if not check or task.still_done(item, summary) else None


def read_so_far(n: int) -> None:
    """Count `n` more input bytes read by the item this thread runs (nothing outside one); written
    for the progress line at most once a second (every REPORT_EVERY_REMOTE_S in a bucket)."""
    meter = getattr(_running, "meter", None)
    if meter is None:
        return
    meter[1] += n
    now = time.monotonic()
    if now - meter[2] >= (REPORT_EVERY_REMOTE_S if fs.is_remote(meter[0]) else REPORT_EVERY_S):
        meter[2], meter[3] = now, True
        fs.atomic_write_bytes(meter[0], b'{"input_bytes": %d}' % meter[1], durable=False)


def running_path(ledger: Ledger, phase: str, key: str) -> str:
    return fs.join(folder(ledger), f"{RUNNING}/{phase}--{key}.json")


def _run(task: Task, ledger: Ledger, item: Item, earlier) -> Summary:
    """task.run, with the bytes its readers report written beside the records (removed after it,
    when it was written: an item shorter than a report's interval costs no request for it)."""
    meter = _running.meter = [running_path(ledger, task.phase, item.key), 0, time.monotonic(), False]
    try:
        return task.run(item, *earlier)
    finally:
        _running.meter = None
        if meter[3]:
            fs.remove([meter[0]])


def run_item(task: Task, ledger: Ledger, item: Item, earlier: tuple | list) -> Summary:
    """Run a task on one item unless its completion record says it is done; record it when it
    finishes. Returns the item's summary (`reused` when a record answered)."""
    summary = summary_of(ledger, task, item)
    if summary is not None:
        summary.reused = True
        return summary
    t0 = time.perf_counter()
    summary = _run(task, ledger, item, earlier)
    summary.seconds = round(time.perf_counter() - t0, 4)
    summary.input_bytes = summary.input_bytes or getattr(item, "input_bytes", 0)  # an item may say its size
    examples, summary.examples = summary.examples, None
    if examples:  # texts never cross a shuffle: the dropped examples go to a file of their own
        fs.atomic_write_bytes(
            fs.join(folder(ledger), f"{EXAMPLES}/{task.phase}--{item.key}.json"),
            json.dumps(examples, ensure_ascii=False).encode("utf-8"),
            durable=False,
        )
    record = json.dumps(record_of(ledger, item, summary), ensure_ascii=False).encode("utf-8")
    fs.atomic_write_bytes(done_path(ledger, task.phase, item.key), record, durable=False)
    return summary

"""A job's progress, read from the completion records as they appear (corral.engine.records).

On a terminal: one live line, rewritten in place; otherwise (a log, CI): a plain line every
LOG_EVERY seconds, through the job's logger. Per unit (the folder its records go to) it shows the phase it is
in with the items done, and overall the inputs read out of those planned (the items of the phases
marked `inputs`), the input bytes they read out of those planned (items that say their
`input_bytes`: a piece of a big file), MB/s, records/s and an ETA, by bytes where they are known.
Running items count too, by the bytes their readers report (corral.engine.records.read_so_far): a
task inside one big file moves the line, and a pass over a file before its pieces (`prepare`)
shows the MB it has read beside its phase. In a bucket, each unit's running items and records are
listed (a request per 1,000 objects) at most every REMOTE_POLL seconds and not read: a finished
input item counts the bytes its item planned, and the line leaves out records/s.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field

from corral.core import fs
from corral.engine.graph import Graph, Ledger
from corral.engine.records import RUNNING, folder

POLL = 0.5  # seconds between looks at the completion records
REMOTE_POLL = 5.0  # the same where they are in a bucket
LOG_EVERY = 10.0  # seconds between plain progress lines


MB = 1e6


@dataclass
class _Unit:
    ledger: Ledger
    input_phases: set[str]
    planned: int
    planned_bytes: int = 0
    phases: tuple[str, ...] = ()  # its phases, in the graph's order
    sizes: dict = field(default_factory=dict)  # (phase, item key) → the input bytes its item planned


def _units(graph: Graph) -> dict[str, _Unit]:
    """Each unit's records, the phases that read its inputs and how many inputs they plan."""
    units: dict[str, _Unit] = {}
    for ph in graph.phases:
        unit = units.setdefault(ph.ledger.unit, _Unit(ph.ledger, set(), 0))
        unit.phases = (*unit.phases, ph.task.phase) if ph.task.phase not in unit.phases else unit.phases
        if ph.inputs:
            unit.input_phases.add(ph.task.phase)
            unit.planned += len(ph.items or [])
            unit.planned_bytes += sum(getattr(item, "input_bytes", 0) for item in ph.items or [])
            unit.sizes.update({(ph.task.phase, item.key): getattr(item, "input_bytes", 0) for item in ph.items or []})
    return units


class Progress:
    """The progress line of a job (`name`: build, tokenize, …) while its graph runs."""

    def __init__(self, graph: Graph, name: str, enabled: bool | None = None, stream=None):
        self.units, self.name = _units(graph), name
        self.log = logging.getLogger(f"corral.{name}")
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.remote = any(fs.is_remote(u.ledger.root) for u in self.units.values())
        self.enabled = True if enabled is None else enabled
        self.poll = REMOTE_POLL if self.remote else POLL
        self.last_scan, self.where = -REMOTE_POLL, {}
        self.seen: set[str] = set()
        self.records = 0
        self.read = 0
        self.bytes = 0
        self.live, self.passes = 0, {}
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self):
        if self.enabled:
            self.t0 = time.monotonic()
            self.thread = threading.Thread(target=self._loop, name="corral-progress", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.thread is not None:
            self.stop.set()
            self.thread.join()
            if exc[0] is not None:  # interrupted or failed: the command says so in one line of its own
                return False
            self.last_scan = -self.poll  # the last line from the records as they are now
            line = self.line()
            if self.live:
                self.stream.write("\r" + line + "\n")
                self.stream.flush()
            else:
                self.log.info("%s", line)
        return False

    def _loop(self):
        last_log = time.monotonic()
        while not self.stop.wait(POLL):
            line = self.line()
            if self.live:
                self.stream.write("\r" + line[:200].ljust(80))
                self.stream.flush()
            elif time.monotonic() - last_log >= LOG_EVERY:
                self.log.info("%s", line)
                last_log = time.monotonic()

    def _running(self, unit: _Unit) -> tuple[int, int]:
        """(bytes read so far by the unit's running input items, by its other running items)."""
        inputs = others = 0
        for path in fs.list_files(fs.join(folder(unit.ledger), RUNNING)):
            name = path.rsplit("/", 1)[1]
            try:
                n = int(json.loads(fs.read_bytes(path))["input_bytes"])
            except (OSError, ValueError, KeyError):
                continue
            if name.split("--", 1)[0] in unit.input_phases:
                inputs += n
            else:
                others += n
        return inputs, others

    def _scan(self) -> dict[str, tuple[str, int]]:
        """Per unit: (its latest phase with records, how many); the running items' bytes are
        counted in `self.live` (inputs) and `self.passes` (other phases, per unit)."""
        where = {}
        self.live, self.passes = 0, {}
        for name, unit in self.units.items():
            live, other = self._running(unit)
            self.live += live
            if other:
                self.passes[name] = other
            done = fs.join(folder(unit.ledger), "done")
            by_phase: dict[str, list[str]] = {}  # one listing of the unit's records (a request in a bucket)
            for p in fs.walk_files(done):
                phase, _, record = p[len(done) + 1 :].partition("/")
                if record.endswith(".json") and fs.TMP_MARK not in record and "/" not in record:
                    by_phase.setdefault(phase, []).append(p)
            latest = None
            for phase in fs.list_entries(done) if not fs.is_remote(done) else sorted(by_phase):
                paths = by_phase.get(phase, [])
                order = unit.phases.index(phase) if phase in unit.phases else -1
                if latest is None or order >= latest[2]:
                    latest = (phase, len(paths), order)
                if phase in unit.input_phases:
                    for p in paths:
                        self._count(p, unit.sizes.get((phase, p.rsplit("/", 1)[1][: -len(".json")]), 0))
            if latest:
                where[name] = latest[:2]
        return where

    def _count(self, path: str, planned: int) -> None:
        if path in self.seen:
            return
        self.seen.add(path)
        if fs.is_remote(path):  # not read: a request each
            self.read += 1
            self.bytes += planned
            return
        try:
            summary = json.loads(fs.read_bytes(path))["summary"]
        except (OSError, ValueError, KeyError):
            return
        self.read += 1
        self.records += int(summary.get("records", 0))
        self.bytes += int(summary.get("input_bytes", 0))

    def line(self) -> str:
        if time.monotonic() - self.last_scan >= self.poll:
            self.last_scan = time.monotonic()
            try:
                self.where = self._scan()
            except OSError:
                self.where = {}
        where = self.where
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        total = sum(u.planned for u in self.units.values())
        total_bytes = sum(u.planned_bytes for u in self.units.values())
        read = min(self.bytes + self.live, total_bytes)
        done, todo = (read, total_bytes) if total_bytes else (self.read, total)
        eta = ""
        if 0 < done < todo and self.read < total:
            left = (todo - done) * elapsed / done
            eta = f" · ETA {int(left // 60)}:{int(left % 60):02d}"
        size = f" · {read / MB:,.0f}/{total_bytes / MB:,.0f} MB, {read / MB / elapsed:,.1f} MB/s" if total_bytes else ""
        phases = ", ".join(
            f"{s} {ph} {n}" + (f" ({self.passes[s] / MB:,.0f} MB read)" if s in self.passes else "")
            for s, (ph, n) in sorted(where.items())
        )
        rate = "" if self.remote else f" · {self.records / elapsed:,.0f} records/s"  # none read in a bucket
        return f"[{self.name}] inputs {self.read}/{total}{size}{rate} · {elapsed:.0f} s{eta}" + (
            f" · {phases}" if phases else ""
        )

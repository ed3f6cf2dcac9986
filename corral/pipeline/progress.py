"""A build's progress, read from the completion records as they appear under OUT/_build.

On a terminal: one live line, rewritten in place; otherwise (a log, CI): a plain line every
LOG_EVERY seconds, through the `corral.build` logger. Per source it shows the phase it is in with
the items done, and overall the input files read out of those planned, records/s and an ETA.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time

from corral import fs
from corral.pipeline.phases import work_dir

LOG = logging.getLogger("corral.build")
POLL = 0.5  # seconds between looks at the completion records
LOG_EVERY = 10.0  # seconds between plain progress lines
FIRST_PHASES = ("stage", "cc-read")  # the phases that read the input files


class Progress:
    def __init__(self, out: str, files: dict[str, int], enabled: bool | None = None, stream=None):
        self.out, self.files = out, files
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = (not fs.is_remote(out)) if enabled is None else enabled
        self.seen: set[str] = set()
        self.records = 0
        self.read_files = 0
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
            line = self.line()
            if self.live:
                self.stream.write("\r" + line + "\n")
                self.stream.flush()
            else:
                LOG.info("%s", line)
        return False

    def _loop(self):
        last_log = time.monotonic()
        while not self.stop.wait(POLL):
            line = self.line()
            if self.live:
                self.stream.write("\r" + line[:200].ljust(80))
                self.stream.flush()
            elif time.monotonic() - last_log >= LOG_EVERY:
                LOG.info("%s", line)
                last_log = time.monotonic()

    def _scan(self) -> dict[str, tuple[str, int]]:
        """Per source: (its latest phase with records, how many)."""
        where = {}
        for source in self.files:
            done = os.path.join(fs.local_path(work_dir(self.out, source)), "done")
            if not os.path.isdir(done):
                continue
            latest = None
            for phase in os.listdir(done):
                folder = os.path.join(done, phase)
                names = [n for n in os.listdir(folder) if n.endswith(".json") and fs.TMP_MARK not in n]
                mtime = os.path.getmtime(folder)
                if latest is None or mtime >= latest[2]:
                    latest = (phase, len(names), mtime)
                if phase in FIRST_PHASES:
                    for n in names:
                        path = os.path.join(folder, n)
                        if path not in self.seen:
                            self.seen.add(path)
                            self._count(path)
            if latest:
                where[source] = latest[:2]
        return where

    def _count(self, path: str) -> None:
        try:
            s = json.loads(open(path, "rb").read())["summary"]
        except (OSError, ValueError, KeyError):
            return
        self.read_files += 1
        self.records += int(s.get("records", s.get("rows", 0))) + sum(c[-1] for c in s.get("counts", []))

    def line(self) -> str:
        try:
            where = self._scan()
        except OSError:
            where = {}
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        total = sum(self.files.values())
        rate = self.records / elapsed
        eta = ""
        if 0 < self.read_files < total:
            left = (total - self.read_files) * elapsed / self.read_files
            eta = f" · ETA {int(left // 60)}:{int(left % 60):02d}"
        phases = ", ".join(f"{s} {ph} {n}" for s, (ph, n) in sorted(where.items()))
        return f"[build] files {self.read_files}/{total} · {rate:,.0f} records/s · {elapsed:.0f} s{eta}" + (
            f" · {phases}" if phases else ""
        )

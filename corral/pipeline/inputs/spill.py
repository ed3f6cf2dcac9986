"""Records dealt into a fixed number of buckets in bounded memory, and read back one bucket at a time.

A reader that must group a whole file's records by key (StackExchange's posts by question) deals
each record, pickled, into the bucket of its key. Buckets are held in memory up to a bound, then
written out as one *run*: `<folder>/run-NNNNN.bin`, the buckets' records one after another, and
`run-NNNNN.idx`, where each bucket starts (little-endian int64s, one more than there are buckets).
A bucket is read back from every run in the order its records were added, so a task holds one
bucket at a time, and tasks can read disjoint bucket ranges of the same runs in parallel. Runs are
written atomically on any filesystem (corral.core.fs), so a deal that finished can be read from
another machine.
"""

from __future__ import annotations

import io
import itertools
import pickle
import struct
import tempfile
from collections.abc import Iterator
from typing import Any

from corral.core import fs

RUN_BYTES = 64 << 20  # pickled record bytes held before they are written as a run (corral's choice)


class BucketRuns:
    """Records dealt into `buckets` buckets; runs go to `folder` (a temporary one by default)."""

    def __init__(self, buckets: int, folder: str | None = None, limit: int | None = None):
        self.buckets, self.limit = buckets, limit or RUN_BYTES
        self.held = [bytearray() for _ in range(buckets)]
        self.size = 0
        self.runs = 0
        self._temp = None
        self.folder = folder

    def add(self, bucket: int, record: Any) -> None:
        data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        self.held[bucket] += data
        self.size += len(data)
        if self.size >= self.limit:
            self.flush()

    def flush(self) -> None:
        """Write what is held as one run (nothing when nothing is held)."""
        if not self.size:
            return
        if self.folder is None:
            self._temp = tempfile.TemporaryDirectory(prefix="corral-buckets-")
            self.folder = self._temp.name
        offsets, at = [0], 0
        for part in self.held:
            at += len(part)
            offsets.append(at)
        name = fs.join(self.folder, f"run-{self.runs:05d}")
        out = fs.AtomicFile(f"{name}.bin", durable=False)
        try:
            for part in self.held:
                out.raw.write(part)
                part.clear()  # released as written: the run is never held twice
            out.commit()
        except BaseException:
            out.abort()
            raise
        fs.atomic_write_bytes(f"{name}.idx", struct.pack(f"<{len(offsets)}q", *offsets), durable=False)
        self.runs += 1
        self.held = [bytearray() for _ in range(self.buckets)]
        self.size = 0

    def each(self) -> Iterator[Iterator[Any]]:
        """Every bucket in order, one at a time: the records of every run written, then those
        still held (each run's offsets are read once)."""
        runs = [fs.join(self.folder, f"run-{i:05d}") for i in range(self.runs)]
        for b, written in enumerate(read_buckets(runs, 0, self.buckets)):
            yield itertools.chain(written, _records(bytes(self.held[b])))

    def close(self) -> None:
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None


def run_names(folder: str) -> list[str]:
    """The runs a finished deal left in `folder` (without their .bin/.idx suffix), in order."""
    return [p[: -len(".idx")] for p in fs.list_files(folder) if p.endswith(".idx") and fs.TMP_MARK not in p]


def read_buckets(runs: list[str], start: int, end: int) -> Iterator[Iterator[Any]]:
    """Buckets [start, end) of some runs, one at a time: each an iterator of its records from every
    run in order. Each run's offsets for the range are read once; a bucket's bytes when it comes."""
    offsets = []
    for run in runs:
        with fs.open_range(f"{run}.idx", 8 * start, 8 * (end + 1)) as f:
            offsets.append(struct.unpack(f"<{end - start + 1}q", f.read(8 * (end - start + 1))))
    for i in range(end - start):
        yield _bucket_of_runs(runs, offsets, i)


def _bucket_of_runs(runs: list[str], offsets: list[tuple[int, ...]], i: int) -> Iterator[Any]:
    for run, at in zip(runs, offsets, strict=True):
        if at[i + 1] > at[i]:
            with fs.open_range(f"{run}.bin", at[i], at[i + 1]) as f:
                yield from _records(f.read())


def _records(data: bytes) -> Iterator[Any]:
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        yield pickle.load(stream)

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

    def bucket(self, b: int) -> Iterator[Any]:
        """The records of bucket `b`: those of every run written, then those still held."""
        for i in range(self.runs):
            yield from read_bucket(fs.join(self.folder, f"run-{i:05d}"), b)
        yield from _records(bytes(self.held[b]))

    def close(self) -> None:
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None


def run_names(folder: str) -> list[str]:
    """The runs a finished deal left in `folder` (without their .bin/.idx suffix), in order."""
    return [p[: -len(".idx")] for p in fs.list_files(folder) if p.endswith(".idx") and fs.TMP_MARK not in p]


def read_bucket(run: str, b: int) -> Iterator[Any]:
    """Bucket `b`'s records in one run."""
    with fs.open_range(f"{run}.idx", 8 * b, 8 * b + 16) as f:
        start, end = struct.unpack("<2q", f.read(16))
    if end > start:
        with fs.open_range(f"{run}.bin", start, end) as f:
            yield from _records(f.read())


def _records(data: bytes) -> Iterator[Any]:
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        yield pickle.load(stream)

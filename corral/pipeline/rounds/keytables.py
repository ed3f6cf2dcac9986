"""Round tables: one file's keys for one dedup round, sorted by key, so that a round's partition
reads only its share of each file.

A round's partitions split the 64-bit key space into equal ranges (partition p of n holds the keys
in [p·2⁶⁴/n, (p+1)·2⁶⁴/n)). Each staged file's key file (`<folder>/<file>.npz`, uncompressed) holds,
beside its key arrays, a member `table.<round>` per round it takes part in: a structured array of
the key, the document's row in the file and the columns the round ranks by, sorted by key. A
partition finds its range by binary search and copies only that slice; on a local filesystem the
member is memory-mapped inside the key file, so a partition reads about 1/n of it; on remote
storage the member alone is read, by ranged reads, then sliced. One file per staged file, not one
per round: on a local disk each file created costs about a millisecond, on a bucket a request.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable, Mapping

import numpy as np

from corral.core import fs

# The rounds whose partitions read round tables: (key file folder, key array, the columns kept
# beside each key, the array's shape): `one` key per document, a `row` of keys per document (n × b
# MinHash band keys), or a `run` of keys per document (delimited by the key file's `offsets`).
# `url` is CommonCrawl's URL + digest among the records its first pass read (first occurrence
# stays); `c4url` is C4's normalised URL (largest text md5 stays); `unique` is the id (latest
# timestamp, then larger md5); `exact` is the content key (smallest id, read from the staged texts);
# `near` the band keys (each with its document's key); `c4lines` C4's line keys (each with its
# page's URL md5, the smallest of which owns the line); `cclines` a CommonCrawl file's distinct line
# hashes (each with its owner and whether the file repeats it), for its hash group's duplicates.
ROUND_TABLES: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "unique": ("keys", "id_key", ("ts", "md5"), "one"),
    "exact": ("keys", "exact", (), "one"),
    "url": ("ccread-keys", "id_key", (), "one"),
    "c4url": ("c4read-keys", "url_key", ("md5",), "one"),
    "near": ("keys", "bands", ("doc",), "row"),
    "c4lines": ("clean-keys", "lines", ("rank",), "run"),
    "cclines": ("ccread-keys", "lh", ("lo", "lr"), "one"),
}


TABLE_PREFIX = "table."  # a key file's members that are round tables, not key arrays


def round_tables(key_file: str, arrays: Mapping[str, np.ndarray], rounds: Iterable[str] | None = None) -> dict:
    """The round tables that a key file's arrays feed (by the key file's folder), or only those
    of `rounds`, named as the key file's members."""
    folder = key_file.rstrip("/").split("/")[-2]
    wanted = None if rounds is None else set(rounds)
    tables = {}
    for round_, (f, key, ranks, shape) in ROUND_TABLES.items():
        if f != folder or key not in arrays or (wanted is not None and round_ not in wanted):
            continue
        keys, rows = _keys_and_rows(arrays, key, shape)
        order = np.argsort(keys, kind="stable")
        dtype = [("key", np.uint64), ("row", np.int64)] + [(r, arrays[r].dtype) for r in ranks]
        table = np.empty(len(keys), dtype=dtype)
        table["key"] = keys[order]
        table["row"] = rows[order]
        for r in ranks:
            table[r] = arrays[r][table["row"]]
        tables[TABLE_PREFIX + round_] = table
    return tables


def _keys_and_rows(arrays: Mapping[str, np.ndarray], key: str, shape: str) -> tuple[np.ndarray, np.ndarray]:
    """A key array flattened to one key per entry, with the document row of each."""
    keys = np.asarray(arrays[key], dtype=np.uint64)
    if shape == "row":
        return keys.reshape(-1), np.repeat(np.arange(len(keys), dtype=np.int64), keys.shape[1] if keys.ndim == 2 else 0)
    if shape == "run":
        counts = np.diff(arrays["offsets"])
        return keys, np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return keys, np.arange(len(keys), dtype=np.int64)


def bounds(p: int, n: int) -> tuple[int, int | None]:
    """The key range of partition p of n: [lo, hi), hi None for the last."""
    lo = -(-(p << 64) // n)  # ceil(p·2⁶⁴/n)
    return lo, (None if p + 1 == n else -(-((p + 1) << 64) // n))


def partition_of(keys: np.ndarray, n: int) -> np.ndarray:
    """The partition of each key (the p whose range holds it)."""
    edges = np.array([bounds(p, n)[0] for p in range(1, n)], dtype=np.uint64)
    return np.searchsorted(edges, keys, side="right")


def by_partition(values: np.ndarray, n: int, fn, missing) -> np.ndarray:
    """fn(p, the values in partition p) for each of n partitions holding some of `values`, put back
    in the values' order (`missing` where n is 0). Lets a task look its keys up in one partition's
    decision each, memory-mapped, instead of reading every partition whole."""
    out = np.full(len(values), missing)
    part = partition_of(values, max(n, 1))
    for p in range(n):
        m = part == p
        if m.any():
            out[m] = fn(p, values[m])
    return out


def _member_layout(f, header_offset: int) -> tuple[int, tuple, bool, np.dtype]:
    """(offset of its data in the file, shape, Fortran order, dtype) of a stored .npz member whose
    zip local header is at `header_offset` of a seekable file: read from that header and the .npy
    header (numpy's own readers)."""
    f.seek(header_offset)
    local = f.read(30)  # the zip local file header: name and extra field lengths at bytes 26–29
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    f.seek(header_offset + 30 + name_len + extra_len)
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    return f.tell(), shape, fortran, dtype


def mapped_member(path: str, name: str) -> np.ndarray:
    """A member of an uncompressed .npz (a local path), memory-mapped where it lies in the file."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:
        with np.load(path) as z:
            return z[name]
    with open(path, "rb") as f:
        offset, shape, fortran, dtype = _member_layout(f, info.header_offset)
    if not shape or shape[0] == 0:
        return np.empty(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


TAIL = 1 << 16  # bytes of a remote key file read first: its zip directory, or all of a small file


class _Tail(io.RawIOBase):
    """A remote file as zipfile reads it: the tail already read serves the directory; any other
    read is one ranged request."""

    def __init__(self, path: str, tail: bytes, total: int):
        self.path, self.tail, self.total, self.pos = path, tail, total, 0
        self.start = total - len(tail)

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: 0, 1: self.pos, 2: self.total}[whence] + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.total if n is None or n < 0 else min(self.total, self.pos + n)
        if self.pos >= self.start:
            data = self.tail[self.pos - self.start : end - self.start]
        else:
            data = fs.read_range(self.path, self.pos, end)
        self.pos += len(data)
        return data


def _ranged_members(path: str, names: tuple[str, ...]) -> list[np.ndarray]:
    """Members of an uncompressed .npz on remote storage: the file's tail (its zip directory, or
    the whole of a small file) in one read, then each member's header and bytes in one ranged read."""
    tail, total = fs.read_tail(path, TAIL)
    if len(tail) == total:
        with np.load(io.BytesIO(tail)) as z:
            return [z[name] for name in names]
    f = _Tail(path, tail, total)
    out = []
    with zipfile.ZipFile(f) as z:
        for name in names:
            info = z.getinfo(name + ".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with z.open(info) as member:
                    out.append(np.load(io.BytesIO(member.read())))
                continue
            # the local header, the .npy header and the data, with room for the headers' variable parts
            end = min(total, info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size + 512)
            head = info.header_offset
            blob = io.BytesIO(fs.read_range(path, head, end))
            offset, shape, fortran, dtype = _member_layout(blob, 0)
            n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            data = blob.getbuffer()[offset : offset + n]
            if len(data) < n:  # headers longer than the room left: read the data exactly
                data = fs.read_range(path, head + offset, head + offset + n)
            out.append(np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order="F" if fortran else "C"))
    return out


def read_members(path: str, *names: str) -> list[np.ndarray]:
    """Members of an uncompressed .npz: memory-mapped where the file is local (`mapped_member`);
    on remote storage, the file's tail, then each member by one ranged read (`_ranged_members`)."""
    if fs.is_remote(path):
        return _ranged_members(path, names)
    return [mapped_member(fs.local_path(path), name) for name in names]


def read_partition(key_file: str, round_: str, p: int, n: int) -> np.ndarray:
    """The rows of a key file's round table whose key falls in partition p of n (a copy, sorted by key)."""
    (table,) = read_members(key_file, TABLE_PREFIX + round_)
    return partition_rows(table, p, n)


def partition_rows(table: np.ndarray, p: int, n: int) -> np.ndarray:
    """The rows of a round table (sorted by key) whose key falls in partition p of n, as a copy."""
    keys = table["key"]
    lo, hi = bounds(p, n)
    a = int(np.searchsorted(keys, np.uint64(lo))) if lo else 0
    b = int(np.searchsorted(keys, np.uint64(hi))) if hi is not None else len(keys)
    return np.array(table[a:b])

"""Arrow shards: atomic, checksummed, bounded writes; memory-mapped, zero-copy reads.

A shard is an Arrow IPC *file* (random access, footer at the end). Writing goes to a temporary
name beside the final one; the file is fsynced and renamed only when complete, so a crash mid-write
never leaves a partial shard under its final name. The sha256 is computed from the bytes as they are
written (no second read). Paths may be local or any Beam filesystem (gs://, s3://, hdfs://): local
ones get fsync + rename, remote ones Beam's create + rename.

Document shards may be compressed (zstd). Token shards never are, and each is one record batch, so
its `tokens` values are one contiguous uint16 buffer that a reader maps and hands out as a numpy view
without copying.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from corral.core.errors import Failure
from corral.core.fs import AtomicFile, is_remote, read_bytes
from corral.core.fs import local_path as _local
from corral.core.schema import DOC_SCHEMA, TOKEN_SCHEMA, records_to_batch

DEFAULT_MAX_ROWS = 100_000  # rows per document shard before rolling over
DEFAULT_MAX_BYTES = 256 * 1024**2  # in-memory Arrow bytes per shard before rolling over
MAX_SHARD_BYTES = 2**31 - 1  # string/list offsets are int32: one batch must stay below 2 GiB
BATCH_ROWS = 1024  # rows buffered before they become one record batch
BATCH_BYTES = 16 * 1024**2  # bytes buffered before they become one record batch
DOC_COMPRESSION = "zstd"  # document shards: compressed (docs/design.md#contracts)
SHARD_SUFFIX = ".arrow"


class ShardError(Failure):
    """A shard could not be written or read as the contract says."""


@dataclass(frozen=True)
class ShardInfo:
    """One written shard, as the build manifest records it."""

    path: str
    sha256: str
    documents: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HashingSink(io.RawIOBase):
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, raw, hashing: bool = True):
        self._raw = raw
        self.sha256 = hashlib.sha256() if hashing else None
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        mv = memoryview(b)
        if self.sha256 is not None:
            self.sha256.update(mv)
        self.size += mv.nbytes
        self._raw.write(mv)
        return mv.nbytes

    def tell(self) -> int:  # writers that ask where they are (Parquet's) get the bytes written
        return self.size


def write_shard(
    path: str,
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema = DOC_SCHEMA,
    compression: str | None = DOC_COMPRESSION,
) -> ShardInfo:
    """Write record batches as one shard at `path`, atomically; return its checksum and counts.

    If anything fails (including the batches iterator itself), nothing appears under `path`.
    """
    shard = _OpenShard(path, schema, compression)
    try:
        for batch in batches:
            if not batch.schema.equals(schema, check_metadata=False):
                raise ShardError(f"{path}: batch schema {batch.schema} is not the shard's {schema}")
            shard.write(batch)
    except BaseException:
        shard.abort()
        raise
    return shard.commit()


def shard_name(prefix: str, index: int, part: int | None = None) -> str:
    """Deterministic shard file names: `part-00003.arrow`, or `part-00003-0001.arrow` per bucket part."""
    return f"{prefix}-{index:05d}{'' if part is None else f'-{part:04d}'}{SHARD_SUFFIX}"


class ShardWriter:
    """Write records into a series of bounded shards `<out_dir>/<prefix>-NNNNN.arrow`.

    A shard rolls over before it would exceed `max_rows` rows or `max_bytes` bytes of Arrow data (a
    single record larger than `max_bytes` gets a shard of its own). Memory holds at most one pending
    record batch (`BATCH_ROWS` rows / `BATCH_BYTES` bytes) plus Arrow's writer state.

    `name_fn(i)` gives the i-th shard's file name (default `shard_name(prefix, i)`). A shard that is
    not `durable` is a working file: not fsynced, and its sha256 not computed (ShardInfo's is "").
    """

    def __init__(
        self,
        out_dir: str,
        *,
        prefix: str = "part",
        schema: pa.Schema = DOC_SCHEMA,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        compression: str | None = DOC_COMPRESSION,
        name_fn=None,
        durable: bool = True,
    ):
        if max_rows < 1:
            raise ValueError("max_rows must be ≥ 1")
        if not 1 <= max_bytes <= MAX_SHARD_BYTES:
            raise ValueError(f"max_bytes must be in 1..{MAX_SHARD_BYTES}")
        self.out_dir = out_dir.rstrip("/")
        self.schema = schema
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.compression = compression
        self.name_fn = name_fn or (lambda i: shard_name(prefix, i))
        self.durable = durable
        self.shards: list[ShardInfo] = []
        self._pending: list[Mapping[str, Any]] = []
        self._pending_bytes = 0
        self._current: _OpenShard | None = None

    # records --------------------------------------------------------------------------------
    def write(self, record: Mapping[str, Any]) -> None:
        self._pending.append(record)
        self._pending_bytes += _record_size(record)
        if len(self._pending) >= BATCH_ROWS or self._pending_bytes >= BATCH_BYTES:
            self._flush_pending()

    def write_all(self, records: Iterable[Mapping[str, Any]]) -> ShardWriter:
        for r in records:
            self.write(r)
        return self

    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Write a batch, splitting it across shards as the bounds require."""
        self._flush_pending()
        self._write_batch(batch)

    # internals ------------------------------------------------------------------------------
    def _flush_pending(self) -> None:
        if not self._pending:
            return
        batch = records_to_batch(self._pending, self.schema)
        self._pending, self._pending_bytes = [], 0
        self._write_batch(batch)

    def _write_batch(self, batch: pa.RecordBatch) -> None:
        offset = 0
        n = batch.num_rows
        while offset < n:
            if self._current is None:
                self._current = _OpenShard(self._path(len(self.shards)), self.schema, self.compression, self.durable)
            cur = self._current
            room_rows = self.max_rows - cur.rows
            take = min(room_rows, n - offset)
            piece = batch.slice(offset, take)
            # Shrink the piece until it fits the byte bound (an empty shard takes at least one row).
            while take > 1 and cur.bytes + piece.nbytes > self.max_bytes:
                take = max(1, take // 2)
                piece = batch.slice(offset, take)
            if cur.rows > 0 and cur.bytes + piece.nbytes > self.max_bytes:
                self._close_current()
                continue
            cur.write(piece)
            offset += take
            if cur.rows >= self.max_rows or cur.bytes >= self.max_bytes:
                self._close_current()

    def _path(self, index: int) -> str:
        return f"{self.out_dir}/{self.name_fn(index)}"

    def _close_current(self) -> None:
        if self._current is not None:
            self.shards.append(self._current.commit())
            self._current = None

    def close(self) -> list[ShardInfo]:
        self._flush_pending()
        self._close_current()
        return self.shards

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()
            self._current = None
        self._pending = []

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _OpenShard:
    def __init__(self, path: str, schema: pa.Schema, compression: str | None, durable: bool = True):
        self.path = path
        self.target = AtomicFile(path, durable)
        self.sink = HashingSink(self.target.raw, hashing=durable)  # a working file's digest is never read
        opts = ipc.IpcWriteOptions(compression=compression)
        self.writer = ipc.new_file(pa.PythonFile(self.sink, mode="w"), schema, options=opts)
        self.rows = 0
        self.bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch)
        self.rows += batch.num_rows
        self.bytes += batch.nbytes

    def commit(self) -> ShardInfo:
        try:
            self.writer.close()
            self.target.commit()
        except BaseException:
            self.target.abort()
            raise
        digest = self.sink.sha256.hexdigest() if self.sink.sha256 is not None else ""
        return ShardInfo(self.path, digest, self.rows, self.sink.size)

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass
        self.target.abort()


def _record_size(record: Mapping[str, Any]) -> int:
    size = 64
    for v in record.values():
        if isinstance(v, str):
            size += len(v)  # characters: a cheap lower bound on UTF-8 bytes
    return size


# --- token shards -----------------------------------------------------------------------------


def token_batch(ids: Sequence[str], docs: Sequence[np.ndarray]) -> pa.RecordBatch:
    """One record batch of TOKEN_SCHEMA whose values are one contiguous uint16 array."""
    if len(ids) != len(docs):
        raise ValueError("ids and token arrays differ in length")
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    values = np.empty(int(lengths.sum()), dtype=np.uint16)
    start = 0
    for d in docs:
        arr = np.asarray(d)
        if arr.size and (arr.min() < 0 or arr.max() > 0xFFFF):
            raise ShardError("token ids must fit uint16 (vocabulary ≤ 65536)")
        values[start : start + arr.size] = arr
        start += arr.size
    return token_batch_flat(ids, lengths, values)


def token_batch_flat(ids: Sequence[str] | pa.Array, lengths: np.ndarray, values: np.ndarray) -> pa.RecordBatch:
    """TOKEN_SCHEMA batch from every document's uint16 tokens back to back and each one's length
    (no per-document copy: the values array becomes the shard's buffer as it is); `ids` as strings,
    or a document shard's id column, used as it is."""
    if len(ids) != len(lengths):
        raise ValueError("ids and lengths differ in length")
    if values.dtype != np.uint16:
        raise ShardError(f"token values must be uint16, not {values.dtype}")
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] != len(values):
        raise ValueError(f"lengths sum to {offsets[-1]}, values hold {len(values)}")
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ShardError("a token shard holds at most 2^31-1 tokens")
    tokens = pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32)),
        pa.array(values, type=pa.uint16()),
        type=TOKEN_SCHEMA.field("tokens").type,
    )
    id_column = ids if isinstance(ids, pa.Array) else pa.array(list(ids), pa.string())
    return pa.RecordBatch.from_arrays([id_column, tokens], schema=TOKEN_SCHEMA)


def write_token_shard(path: str, ids: Sequence[str], docs: Sequence[np.ndarray]) -> ShardInfo:
    """Write one uncompressed single-batch token shard atomically."""
    return write_shard(path, [token_batch(ids, docs)], schema=TOKEN_SCHEMA, compression=None)


@dataclass
class TokenShard:
    """A token shard read without copying: `tokens` is a view into the memory-mapped file."""

    ids: pa.Array
    offsets: np.ndarray  # int32, len(ids) + 1; document i is tokens[offsets[i]:offsets[i+1]]
    tokens: np.ndarray  # uint16, every document's tokens back to back
    source_buffer: pa.Buffer  # the mapped file (keeps the mapping alive; tests check views lie in it)

    def __len__(self) -> int:
        return len(self.ids)

    def document(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]


# --- reading ----------------------------------------------------------------------------------


def _open_buffer(path: str) -> pa.Buffer:
    """The whole file as an Arrow buffer: memory-mapped when local, read into memory otherwise."""
    if is_remote(path):
        return pa.py_buffer(read_bytes(path))
    with pa.memory_map(_local(path), "r") as mm:
        return mm.read_buffer()


def open_shard(path: str) -> ipc.RecordBatchFileReader:
    """An IPC file reader over the memory-mapped shard."""
    try:
        return ipc.open_file(pa.BufferReader(_open_buffer(path)))
    except (pa.ArrowInvalid, OSError) as e:
        raise ShardError(f"{path}: not a readable Arrow shard ({e})") from e


def read_shard(path: str) -> pa.Table:
    """The whole shard as a table (zero-copy for uncompressed shards)."""
    return open_shard(path).read_all()


def iter_batches(path: str) -> Iterator[pa.RecordBatch]:
    reader = open_shard(path)
    for i in range(reader.num_record_batches):
        yield reader.get_batch(i)


def iter_records(path: str) -> Iterator[dict[str, Any]]:
    for batch in iter_batches(path):
        yield from batch.to_pylist()


def count_rows(path: str) -> int:
    reader = open_shard(path)
    return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def read_token_shard(path: str) -> TokenShard:
    """Map a token shard and return numpy views of its offsets and tokens (no copy)."""
    buf = _open_buffer(path)
    reader = ipc.open_file(pa.BufferReader(buf))
    if not reader.schema.equals(TOKEN_SCHEMA, check_metadata=False):
        raise ShardError(f"{path}: not a token shard (schema {reader.schema})")
    if reader.num_record_batches != 1:
        raise ShardError(f"{path}: a token shard must be one record batch, found {reader.num_record_batches}")
    batch = reader.get_batch(0)
    lists: pa.ListArray = batch.column(1)
    offsets = lists.offsets.to_numpy(zero_copy_only=True)
    values = lists.values
    tokens = values.to_numpy(zero_copy_only=True)
    if values.offset or offsets[0] != 0:
        tokens = tokens[offsets[0] :]
        offsets = offsets - offsets[0]
    return TokenShard(ids=batch.column(0), offsets=offsets, tokens=tokens, source_buffer=buf)

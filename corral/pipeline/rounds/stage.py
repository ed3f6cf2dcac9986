"""Staged documents and their key files: what a per-file task leaves for the phases after it.

A task that reads (or re-reads) one input file writes, under the source's working folder
OUT/_build/<source>:
  stage/<file>-<part>.arrow   its kept documents so far, in input order, with every signal column
                              (uncompressed Arrow: written once, read back a batch at a time)
  keys/<file>.npz             compact keys of those documents, one entry per row: the id's key and
                              rank (timestamp, text md5) for unique ids; the content key for exact
                              dedup; MinHash band keys for near dedup; the group of each row when the
                              source groups its records (a StackExchange site)
  shingles/<file>.npz         with near dedup's verification on: each document's distinct shingles
  errors/<file>.jsonl         its dead letters (reason, where, detail)
and returns a `StagedSummary`: counts per (status, reason, group), rows per group, its parts and
their rows. Documents are named by locators (corral.dedup.keys.loc): file index and row across the
file's parts.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from corral.core import fs
from corral.core.outcome import ERROR, is_kept
from corral.core.schema import DOC_SCHEMA
from corral.core.shards import MAX_SHARD_BYTES, ShardWriter, open_shard
from corral.dedup import minhash
from corral.dedup.clusters import doc_key
from corral.dedup.exact import text_md5, timestamp_rank
from corral.dedup.keys import ROW_BITS, hex64, key64
from corral.engine.folders import BUILD_DIR
from corral.engine.graph import Item, Ledger, Summary
from corral.engine.records import folder, read_done, typed
from corral.pipeline.rounds.keytables import TABLE_PREFIX, round_tables

STAGE_ROWS = 1 << 31  # rows of one staged part: effectively unbounded (parts roll over by bytes)
EXAMPLES_PER_REASON = 3  # dropped documents a task keeps per reason for the report (corral's choice)
EXAMPLE_CHARS = 400  # characters of each example's text
SIGN_BATCH = 256  # documents whose MinHash signatures are computed together (corral.dedup.minhash.signatures)


def ledger(out: str, source: str, fingerprint: str = "", fresh: bool = False) -> Ledger:
    """Where a source's phases keep their completion records: OUT/_build/<source>/done/…"""
    return Ledger(fs.join(out, BUILD_DIR), source, fingerprint, fresh)


def work_dir(out: str, source: str) -> str:
    """A source's working folder under OUT: staged parts, key files, decisions, completion records."""
    return folder(ledger(out, source))


def file_key(index: int) -> str:
    return f"{index:06d}"


@dataclass(frozen=True)
class StagedFile:
    """Where one input file's staged parts, key files and dead letters go."""

    out: str
    source: str
    index: int

    def folder(self, name: str = "stage") -> str:
        return fs.join(work_dir(self.out, self.source), name)

    def key_path(self, name: str = "keys") -> str:
        return fs.join(work_dir(self.out, self.source), f"{name}/{file_key(self.index)}.npz")


@dataclass(frozen=True)
class Part:
    """One staged Arrow part of a file."""

    path: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class FileItem(Item):
    """A staged file as a work item of a later pass over it: its index and its staged parts."""

    index: int = 0
    parts: tuple[Part, ...] = ()


@dataclass
class StagedSummary(Summary):
    """A task that staged one input file: its rows and parts, the counts of what it dropped
    ([status, reason, group, n]), the rows read per group and the bytes of its key files."""

    index: int = 0
    rows: int = 0
    parts: list[Part] = field(default_factory=list)
    counts: list[list[Any]] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)
    key_bytes: int = 0


def file_items(summaries: Iterable[StagedSummary]) -> list[FileItem]:
    """A later pass's items: every staged file of the summaries, with its parts."""
    return [FileItem(file_key(s.index), s.index, tuple(s.parts)) for s in summaries]


def save_arrays(path: str, arrays: Mapping[str, np.ndarray]) -> int:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    fs.atomic_write_bytes(path, data, durable=False)
    return len(data)


def save_keys(path: str, arrays: Mapping[str, np.ndarray], rounds=None) -> int:
    """A file's key file: its arrays and, inside it, the round tables they feed, or those of
    `rounds` (corral.pipeline.rounds.keytables); the bytes written."""
    return save_arrays(path, {**arrays, **round_tables(path, arrays, rounds)})


def load_arrays(path: str) -> dict[str, np.ndarray]:
    """A key file's arrays (its round tables are read by partition, not here)."""
    source = io.BytesIO(fs.read_bytes(path)) if fs.is_remote(path) else fs.local_path(path)
    with np.load(source) as z:
        return {k: z[k] for k in z.files if not k.startswith(TABLE_PREFIX)}


class StagedWriter:
    """Kept records of one file → uncompressed staged parts `<folder>/<file>-<part>.arrow`."""

    def __init__(self, target: StagedFile, name: str = "stage", schema: pa.Schema = DOC_SCHEMA):
        self.writer = ShardWriter(
            target.folder(name),
            schema=schema,
            max_rows=STAGE_ROWS,
            max_bytes=MAX_SHARD_BYTES,
            compression=None,
            name_fn=lambda part: f"{file_key(target.index)}-{part:04d}.arrow",
            durable=False,
        )
        self.rows = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self.writer.write(record)
        self.rows += 1

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.writer.write_batch(batch)
            self.rows += batch.num_rows

    def close(self) -> list[Part]:
        return [Part(s.path, s.documents, s.bytes) for s in self.writer.close()]

    def abort(self) -> None:
        self.writer.abort()


def iter_staged(parts: Iterable[Part], columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The record batches of a file's staged parts (or of any document shards), in order. A local
    part is read a batch at a time (not memory-mapped: the mapped pages of a whole part would stay
    resident while it is read); with `columns`, only their buffers are read and decompressed."""
    for part in parts:
        if fs.is_remote(part.path):
            reader = open_shard(part.path)
        else:
            options = None
            if columns:
                with pa.OSFile(fs.local_path(part.path)) as f:
                    schema = ipc.open_file(f).schema
                options = ipc.IpcReadOptions(included_fields=[schema.get_field_index(c) for c in columns])
            reader = ipc.open_file(pa.OSFile(fs.local_path(part.path)), options=options)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            yield batch.select(columns) if columns else batch


class StagedRows:
    """Staged documents' values by locator (verification, representatives, training samples)."""

    def __init__(self, parts_of: Mapping[int, list[Part]]):
        self.parts_of = parts_of

    def values(self, locators: Sequence[int] | np.ndarray, column: str) -> list[Any]:
        """The column's value at each locator, in the locators' order: each file's column read once,
        a batch at a time, keeping only the values asked for (never a file's, nor the corpus's,
        texts at once)."""
        at = np.asarray(locators, dtype=np.int64)
        out: list[Any] = [None] * len(at)
        by_place = np.argsort(at, kind="stable")  # by file, then by row: one sort
        files, rows = at[by_place] >> ROW_BITS, at[by_place] & ((1 << ROW_BITS) - 1)
        starts = np.flatnonzero(np.concatenate([[True], files[1:] != files[:-1]])) if len(at) else []
        for a, b in zip(starts, [*starts[1:], len(at)]):
            where, wanted, first = by_place[a:b], rows[a:b], 0
            for batch in iter_staged(self.parts_of.get(int(files[a]), []), [column]):
                lo, hi = np.searchsorted(wanted, [first, first + batch.num_rows])
                if hi > lo:
                    values = batch.column(0).take(pa.array(wanted[lo:hi] - first)).to_pylist()
                    for j, v in zip(where[lo:hi].tolist(), values):
                        out[j] = v
                first += batch.num_rows
                if first > wanted[-1]:
                    break
        return out


class KeyCollector:
    """The key arrays of one file's staged documents, gathered as they are written."""

    def __init__(self, stages: Mapping[str, Any], content_key: Callable[[Mapping[str, Any]], str] = text_md5):
        self.exact = stages["exact_dedup"]["enabled"]
        m = stages["minhash"]
        self.minhash = m["enabled"]
        self.content_key = content_key
        if self.minhash:
            self.params = minhash.derive_lsh(m["threshold"], m["num_perm"], m["verify"])
            self.ngram, self.verify = m["ngram"], m["verify"]
        self.id_key, self.ts, self.md5, self.exact_key, self.sigs, self.docs = [], [], [], [], [], []
        self.shingle_sets: list[np.ndarray] = []  # when verifying: each document's distinct shingles
        self.unsigned: list[np.ndarray] = []  # shingles of the documents not yet signed
        self.group_names: dict[str, int] = {}  # the groups of the rows (codes in first-seen order)
        self.group_codes: list[int] = []

    def _sign(self) -> None:
        if self.unsigned:
            self.sigs.append(minhash.signatures(self.unsigned, self.params.num_perm))
            self.unsigned = []

    def add(self, record: Mapping[str, Any], group: str | None = None) -> None:
        self.id_key.append(key64(record["id"]))
        meta = record.get("meta")
        self.ts.append(timestamp_rank(json.loads(meta).get("timestamp")) if meta and '"timestamp"' in meta else 0)
        md5 = text_md5(record)
        self.md5.append(hex64(md5))
        if self.exact:
            self.exact_key.append(key64(md5 if self.content_key is text_md5 else self.content_key(record)))
        if self.minhash:
            sh = minhash.shingles(record["text"], self.ngram, unique=self.verify)
            if self.verify:
                self.shingle_sets.append(sh)
            self.unsigned.append(sh)
            if len(self.unsigned) >= SIGN_BATCH:
                self._sign()
            self.docs.append(doc_key(record["id"]))
        if group or self.group_names:
            if not self.group_names:  # the first grouped row: the rows before it have no group
                self.group_codes = [-1] * (len(self.id_key) - 1)
            self.group_codes.append(self.group_names.setdefault(group, len(self.group_names)) if group else -1)

    def shingle_arrays(self) -> dict[str, np.ndarray] | None:
        """The distinct shingles of every document (flat, with offsets), for verification to read
        instead of hashing the texts again; None when the source does not verify."""
        if not (self.minhash and self.verify):
            return None
        lens = [len(x) for x in self.shingle_sets]
        flat = np.concatenate(self.shingle_sets) if self.shingle_sets else np.empty(0, np.uint64)
        return {"shingles": flat, "offsets": np.cumsum([0] + lens, dtype=np.int64)}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {
            "id_key": np.array(self.id_key, dtype=np.uint64),
            "ts": np.array(self.ts, dtype=np.int64),
            "md5": np.array(self.md5, dtype=np.uint64),
        }
        if self.exact:
            out["exact"] = np.array(self.exact_key, dtype=np.uint64)
        if self.minhash:
            self._sign()
            out["bands"] = (
                minhash.band_keys_many(np.concatenate(self.sigs), self.params).astype(np.uint64)
                if self.sigs
                else np.empty((0, self.params.bands), dtype=np.uint64)
            )
            out["doc"] = np.array(self.docs, dtype=np.int64)
        if self.group_names:
            out["group"] = np.array(self.group_codes, dtype=np.int32)
            out["group_names"] = np.array(list(self.group_names), dtype=str)
        return out


def staged_parts(out: str, source: str, phase: str, indices: Iterable[int]) -> dict[int, list[Part]]:
    """The staged parts of some files, from the completion records of the phase that staged them."""
    found = {}
    for i in indices:
        done = read_done(ledger(out, source), phase, file_key(i))
        if done is not None:
            found[i] = [typed(Part, p) for p in done["summary"]["parts"]]
    return found


def row_groups(target: StagedFile) -> np.ndarray:
    """The group of every staged row of a file ('' where none), from its key file (whose `group`
    array a source that groups its records writes through KeyCollector)."""
    a = load_arrays(target.key_path())
    if "group" not in a:
        return np.full(len(a["id_key"]), "", dtype=object)
    names = np.append(a["group_names"].astype(object), "")
    return names[a["group"]]


class Tally:
    """Counts per (status, reason, group), the dead letters of one task, and the first few dropped
    documents of each reason (their id and the start of their text, for the report)."""

    def __init__(self):
        self.counts: dict[tuple[str, str | None, str], int] = {}
        self.errors: list[str] = []
        self.examples: dict[str, list[list[str]]] = {}

    def add(self, outcome: Mapping[str, Any], n: int = 1) -> None:
        k = (outcome["status"], outcome["reason"], outcome.get("group") or "")
        self.counts[k] = self.counts.get(k, 0) + n
        if outcome["status"] == ERROR:
            self.errors.append(
                json.dumps({k2: outcome.get(k2) for k2 in ("reason", "where", "detail")}, ensure_ascii=False)
            )
        elif outcome.get("example"):
            self.example(outcome["reason"], *outcome["example"])

    def reason(self, status: str, reason: str | None, n: int = 1, example: tuple[str, str] | None = None) -> None:
        if n:
            self.counts[(status, reason, "")] = self.counts.get((status, reason, ""), 0) + n
            if example is not None:
                self.example(reason, *example)

    def example(self, reason: str | None, doc_id: str, text: str) -> None:
        kept = self.examples.setdefault(reason or "", [])
        if len(kept) < EXAMPLES_PER_REASON:
            kept.append([str(doc_id), text[:EXAMPLE_CHARS]])

    def wants_example(self, reason: str) -> bool:
        return len(self.examples.get(reason, ())) < EXAMPLES_PER_REASON

    def rows(self) -> list[list[Any]]:
        return [
            [s, r, g, n]
            for (s, r, g), n in sorted(self.counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2]))
        ]

    def save_errors(self, target: StagedFile) -> None:
        if self.errors:
            fs.atomic_write_bytes(
                fs.join(target.folder("errors"), f"{file_key(target.index)}.jsonl"),
                ("\n".join(self.errors) + "\n").encode("utf-8"),
                durable=False,
            )


def kept_records(outcomes: Iterable[dict[str, Any]], tally: Tally) -> Iterator[dict[str, Any]]:
    """The records of the kept outcomes; every dropped or failed one is counted in `tally`."""
    for o in outcomes:
        if is_kept(o):
            yield o["record"]
        else:
            tally.add(o)


def summarize(kind: type[StagedSummary], target: StagedFile, parts: list[Part], tally: Tally, **fields: Any):
    """The summary of a task that staged one input file: its rows and parts, the counts and examples
    of what it dropped, and `fields` of `kind` (key_bytes, groups, …)."""
    rows = sum(p.rows for p in parts)
    counts = tally.rows()
    return kind(
        index=target.index,
        rows=rows,
        parts=parts,
        counts=counts,
        examples=tally.examples,
        records=rows + sum(c[3] for c in counts),
        **fields,
    )


def stage_outcomes(
    target: StagedFile,
    outcomes: Iterable[Mapping[str, Any]],
    stages: Mapping[str, Any],
    content_key: Callable[[Mapping[str, Any]], str] = text_md5,
) -> StagedSummary:
    """Write a file's kept outcomes as staged parts with their key file; count the others.
    Returns the file's summary."""
    tally = Tally()
    writer = StagedWriter(target)
    keys = KeyCollector(stages, content_key)
    groups: dict[str, int] = {}
    try:
        for o in outcomes:
            if o.get("group"):
                groups[o["group"]] = groups.get(o["group"], 0) + 1
            if is_kept(o):
                writer.write(o["record"])
                keys.add(o["record"], o.get("group"))
            else:
                tally.add(o)
    except BaseException:
        writer.abort()
        raise
    parts = writer.close()
    key_bytes = save_keys(target.key_path(), keys.arrays())
    shingles = keys.shingle_arrays()
    if shingles is not None:
        save_arrays(target.key_path("shingles"), shingles)
    tally.save_errors(target)
    return summarize(StagedSummary, target, parts, tally, key_bytes=key_bytes, groups=groups)

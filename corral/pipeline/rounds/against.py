"""Near dedup against earlier outputs: the band tables an output keeps, and how a later job reads them.

Every output that ran near dedup keeps, beside its document shards, the MinHash band keys of the
documents it kept, in OUT/near/<source>/ for a build and OUT/near/ for `corral dedup`:
  part-<first file>.npz   one per select item, uncompressed so that its table is memory-mapped:
                          `table.near` (band key, row) sorted by key, rows counted across the item's
                          shards in order; `doc` the node key of each row (its id's key)
  index.json              the LSH settings the keys were made with, and every table with its shards
                          (paths relative to OUT) and their rows; written when the source is finished
A later job given that output (`corral dedup --against`, a source's `minhash.against`) reads, in each
LSH partition, the same key range of every earlier table beside its own. Earlier documents take part
in buckets and in verification (their texts read from their shards) but are never dropped: a
component that holds one drops each of its new members as `duplicate_of_existing`, naming the
earlier document (the component's smallest earlier id). The earlier output is only read.

Earlier documents are named by locators from file index EARLIER_BASE on (EARLIER_BASE + t for the
t-th earlier table, the earlier outputs in the order of their paths), as nodes by their negated
locators, and ranked by their id's key − NODE_SHIFT: in a bucket they come before every new document
(ranked by its id's key), and no node of theirs meets another document's, whatever their ids.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from corral.core import fs
from corral.core.errors import UsageError
from corral.dedup import minhash
from corral.dedup.keys import ROW_BITS
from corral.pipeline.rounds.keytables import TABLE_PREFIX, partition_rows, read_members
from corral.pipeline.rounds.stage import Part

EARLIER_BASE = 1 << 30  # file index of the first earlier table (a job's own files count from 0)
EARLIER_LOC = EARLIER_BASE << ROW_BITS  # the smallest locator of an earlier document
NODE_SHIFT = 1 << 62  # taken from an earlier document's rank (ids' keys are below 2⁶⁰)
NEAR = "near"  # OUT/near: the band tables of the documents an output kept
INDEX = "index.json"  # the tables of one source and the settings they were made with
TABLE_FORMAT = 1  # the band keys' hashing and the tables' layout: changed, earlier tables cannot be read
TABLE_SETTINGS = ("format", "ngram", "num_perm", "bands", "rows", "seed")  # what a band key depends on
TABLE_DTYPE = np.dtype([("key", np.uint64), ("row", np.uint32)])  # 12 bytes a band key


class AgainstError(UsageError):
    """An earlier output cannot be deduplicated against (no band tables, or other settings)."""


def lsh_settings(minhash_stage: dict[str, Any]) -> dict[str, Any]:
    """The settings a source's band keys are made with (what an index records and a later job checks)."""
    p = minhash.derive_lsh(minhash_stage["threshold"], minhash_stage["num_perm"], minhash_stage["verify"])
    return {
        "threshold": minhash_stage["threshold"],
        "ngram": minhash_stage["ngram"],
        "num_perm": p.num_perm,
        "bands": p.bands,
        "rows": p.rows,
        "seed": minhash.SEED,
        "format": TABLE_FORMAT,
    }


def table_path(folder: str, first: int) -> str:
    return fs.join(folder, f"part-{first:06d}.npz")


def save_table(path: str, bands: np.ndarray, docs: np.ndarray) -> dict[str, Any]:
    """A select item's band table: (n, b) band keys of its kept documents in output order, and their
    node keys. Written atomically, as part of the output; returns its path, sha256 and bytes."""
    n, b = bands.shape
    keys = np.asarray(bands, dtype=np.uint64).reshape(-1)
    order = np.argsort(keys, kind="stable")
    table = np.empty(len(keys), dtype=TABLE_DTYPE)
    table["key"] = keys[order]
    table["row"] = (order // max(b, 1)).astype(np.uint32)
    buf = io.BytesIO()
    np.savez(buf, **{TABLE_PREFIX + NEAR: table, "doc": np.asarray(docs, dtype=np.int64)})
    data = buf.getvalue()
    return {"path": path, "sha256": fs.atomic_write_bytes(path, data), "bytes": len(data)}


def _relative(path: str, out: str) -> str:
    prefix = out.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def write_index(out: str, folder: str, settings: dict[str, Any], tables: list[dict[str, Any]]) -> None:
    """`folder`/index.json from the select items' table records ({path, sha256, bytes, shards, rows},
    paths absolute); `corral verify` checks the tables against it."""
    levels = len(_relative(folder, out).strip("/").split("/"))
    entries = [
        {**t, "path": _relative(t["path"], out), "shards": [_relative(s, out) for s in t["shards"]]}
        for t in sorted(tables, key=lambda t: t["path"])
    ]
    index = {"settings": settings, "levels": levels, "documents": sum(sum(t["rows"]) for t in entries)}
    data = json.dumps({**index, "tables": entries}, indent=1).encode("utf-8")
    fs.atomic_write_bytes(fs.join(folder, INDEX), data)


def _describe(s: dict[str, Any]) -> str:
    shingles = f"{s['ngram']}-gram shingles, {s['num_perm']} permutations"
    return f"{shingles}, {s['bands']} bands × {s['rows']} rows, seed {s['seed']}, table format {s.get('format')}"


def folder_of(path: str) -> str:
    """A folder as one spelling: local paths absolute with links resolved, remote ones as given."""
    return path.rstrip("/") if fs.is_remote(path) else os.path.realpath(fs.local_path(path))


def overlaps(a: str, b: str) -> bool:
    """Whether one folder is the other or inside it."""
    a, b = folder_of(a) + "/", folder_of(b) + "/"
    return a.startswith(b) or b.startswith(a)


def resolve(paths: list[str], source: str | None, settings: dict[str, Any], field: str, out: str) -> tuple[str, ...]:
    """The index of each earlier output's band tables (PATH/near/<source> for a build's source,
    PATH/near for `corral dedup`'s, or PATH itself when it is such a folder), sorted by path (the
    order they are given in does not matter); an AgainstError naming `field` when one overlaps this
    job's `out` (which the job clears), has no tables, or was made with other settings (its band
    keys would not meet this job's)."""
    found = set()
    for given in paths:
        path = folder_of(given)
        if overlaps(path, out):
            raise AgainstError(f"{field}: {given} overlaps this job's output folder {out}; give an earlier output")
        tries = [fs.join(path, f"{NEAR}/{source}/{INDEX}")] if source else []
        tries += [fs.join(path, f"{NEAR}/{INDEX}"), fs.join(path, INDEX)]
        index = next((p for p in tries if fs.exists(p)), None)
        if index is None:
            where = " or ".join(t[len(path.rstrip("/")) + 1 :] for t in tries[:-1])
            raise AgainstError(
                f"{field}: {path} has no near-dup band tables ({where}): give the folder of a finished "
                f"`corral dedup`, or a build's {NEAR}/<source> folder, that ran MinHash near dedup"
            )
        try:
            theirs = json.loads(fs.read_bytes(index))["settings"]
            differ = [k for k in TABLE_SETTINGS if theirs.get(k) != settings[k]]
        except (ValueError, KeyError, TypeError) as e:
            raise AgainstError(f"{index}: not a band-table index ({e})") from e
        if differ:
            raise AgainstError(
                f"{field}: {index}: its band tables were made with {_describe(theirs)}; "
                f"this job's are {_describe(settings)}: "
                f"use the settings it was built with (threshold {theirs.get('threshold')}, ngram {theirs['ngram']}, "
                f"num_perm {theirs['num_perm']}), or leave it out"
            )
        found.add(index)
    return tuple(sorted(found))


def index_digest(indexes: tuple[str, ...]) -> list[str]:
    """What a job's resume fingerprint covers of its earlier outputs: each index's bytes, hashed."""
    import hashlib

    return [hashlib.sha256(fs.read_bytes(p)).hexdigest() for p in indexes]


@dataclass(frozen=True)
class EarlierTable:
    """One table of an earlier output: its file, its documents' shards and their total rows."""

    path: str
    parts: tuple[Part, ...]
    rows: int


def earlier_tables(indexes: tuple[str, ...]) -> tuple[EarlierTable, ...]:
    """Every table of the earlier outputs' indexes, in order (table t's documents at file EARLIER_BASE + t),
    read from the indexes each time (small files; a long-lived worker never holds a stale list)."""
    tables = []
    for index in indexes:
        data = json.loads(fs.read_bytes(index))
        root = index.rsplit("/", 1 + data["levels"])[0]
        for t in data["tables"]:
            parts = tuple(Part(fs.join(root, s), n, 0) for s, n in zip(t["shards"], t["rows"]))
            tables.append(EarlierTable(fs.join(root, t["path"]), parts, sum(t["rows"])))
    return tuple(tables)


def earlier_rows(indexes: tuple[str, ...]) -> int:
    return sum(t.rows for t in earlier_tables(indexes))


def earlier_parts(indexes: tuple[str, ...]) -> dict[int, list[Part]]:
    """The shards of each earlier table by its file index (for corral.pipeline.rounds.stage.StagedRows)."""
    return {EARLIER_BASE + t: list(e.parts) for t, e in enumerate(earlier_tables(indexes))}


def earlier_partition(table: EarlierTable, t: int, p: int, n: int) -> np.ndarray:
    """(band key, rank, node) rows of an earlier table's entries in partition p of n, as
    corral.dedup.clusters.bucket_edges takes them."""
    whole, docs = read_members(table.path, TABLE_PREFIX + NEAR, "doc")  # one read of the file's directory
    part = partition_rows(whole, p, n)
    rows = part["row"].astype(np.int64)
    ranks = np.asarray(docs[rows], dtype=np.int64) - NODE_SHIFT
    nodes = -((np.int64(EARLIER_BASE + t) << np.int64(ROW_BITS)) + rows)
    return np.stack([part["key"].view(np.int64), ranks, nodes], axis=1)

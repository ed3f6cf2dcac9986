"""cc_net's first pass over files (docs/recipe/commoncrawl.md#order-of-stages):

cc-read   per WET (or WARC) file, or run of small ones (SMALL_FILES): read its records
          (corral.pipeline.sources.commoncrawl.warc), stage them, and hash every line (cc_net's
          `hashes` step); the file's distinct (line hash, document) pairs go to its key file, with
          the URL + digest key of each record
url       (url_dedup) one record per URL + digest, the first read              → duplicate_url_digest
cc-lines  per hash group (cc_net: shard = the file's slice of num_shards, group = shard // hash_in_mem)
          and partition of the hash space: the hashes found in two or more documents
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corral.core import fs
from corral.dedup.keys import concat, duplicate_lines, key64, locs
from corral.dedup.lines import doc_hashes
from corral.engine.graph import Item, Summary, Task
from corral.pipeline.rounds.decide import partitions_for, round_items, save_sorted
from corral.pipeline.rounds.keytables import read_partition
from corral.pipeline.rounds.stage import (
    StagedFile,
    StagedSummary,
    StagedWriter,
    Tally,
    kept_records,
    save_keys,
    summarize,
    work_dir,
)
from corral.pipeline.sources.base import PieceItem, SourceTask
from corral.pipeline.sources.commoncrawl.warc import SOURCE


@dataclass(frozen=True)
class WetItem(PieceItem):
    """A WET (or WARC) file to read, with its cc_net hash group."""

    group: int = 0


@dataclass
class ReadSummary(StagedSummary):
    group: int = 0
    line_keys: int = 0  # the file's distinct (line hash, owner) pairs, for the cc-lines partitions


@dataclass(frozen=True)
class LinesItem(Item):
    """One partition of a hash group's line hashes, over the group's files."""

    group: int = 0
    p: int = 0
    partitions: int = 1
    files: tuple[int, ...] = ()


@dataclass
class LinesSummary(Summary):
    group: int = 0
    p: int = 0
    partitions: int = 1
    duplicates: int = 0


def lines_path(out: str, group: int, p: int) -> str:
    return fs.join(work_dir(out, SOURCE), f"lines/{group:05d}-{p:04d}.npy")


def file_line_keys(hashes: np.ndarray, offsets: np.ndarray, owners: np.ndarray) -> dict[str, np.ndarray]:
    """One file's distinct (line hash, owner) pairs — `hashes[offsets[i]:offsets[i+1]]` are document
    i's lines — a hash found in two of its documents sent once and marked `repeated`: what its hash
    group needs to know of the file."""
    own = np.repeat(owners.astype(np.uint64), np.diff(offsets))
    if not len(hashes):
        return {"lh": hashes, "lo": own, "lr": np.zeros(0, bool)}
    order = np.lexsort((own, hashes))
    h, o = hashes[order], own[order]
    distinct = np.concatenate([[True], (h[1:] != h[:-1]) | (o[1:] != o[:-1])])
    h, o = h[distinct], o[distinct]
    first = np.concatenate([[True], h[1:] != h[:-1]])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(h)))
    return {"lh": h[starts], "lo": o[starts], "lr": counts >= 2}


class ReadTask(SourceTask):
    phase = "cc-read"
    summary = ReadSummary

    def run(self, item: WetItem, *earlier) -> ReadSummary:
        st, target = self.stages, StagedFile(self.out, SOURCE, item.index)
        ld = st["line_dedup"]
        tally, writer = Tally(), StagedWriter(target, "read")
        hashes, id_keys, none = [], [], np.empty(0, dtype=np.uint64)
        try:
            for r in kept_records(self.source.read_group(item.piece, item.group, st), tally):
                writer.write(r)
                id_keys.append(key64(r["id"]))
                hashes.append(doc_hashes(r["text"]) if ld["enabled"] else none)
        except BaseException:
            writer.abort()
            raise
        parts = writer.close()
        ids = np.array(id_keys, dtype=np.uint64)
        arrays = {
            "id_key": ids,
            "offsets": np.cumsum([0] + [len(h) for h in hashes], dtype=np.int64),
            "hashes": concat(hashes, np.uint64),
        }
        if ld["enabled"]:
            # A record's lines count once per document: per URL + digest when url dedup keeps one of
            # each (twins count once), per record otherwise (as cc_net, which has no URL dedup).
            owners = ids if st["url_dedup"]["enabled"] else locs(item.index, len(ids)).astype(np.uint64)
            arrays.update(file_line_keys(arrays["hashes"], arrays["offsets"], owners))
        rounds = [r for r, on in (("url", st["url_dedup"]["enabled"]), ("cclines", ld["enabled"])) if on]
        key_bytes = save_keys(target.key_path("ccread-keys"), arrays, rounds)
        tally.save_errors(target)
        line_keys = int(len(arrays.get("lh", ())))
        return summarize(ReadSummary, target, parts, tally, key_bytes=key_bytes, group=item.group, line_keys=line_keys)


class LinesTask(Task):
    """One hash group's partition: the line hashes in two or more of its documents."""

    phase = "cc-lines"
    summary = LinesSummary

    def __init__(self, out: str):
        self.out = out

    def run(self, item: LinesItem, *earlier) -> LinesSummary:
        g, p, n = item.group, item.p, item.partitions
        hs, owners, repeated = [], [], []
        for i in item.files:
            t = read_partition(StagedFile(self.out, SOURCE, i).key_path("ccread-keys"), "cclines", p, n)
            hs.append(t["key"])
            owners.append(t["lo"])
            repeated.append(t["lr"])
        dups = duplicate_lines(concat(hs, np.uint64), concat(owners, np.uint64), concat(repeated, bool))
        save_sorted(lines_path(self.out, g, p), dups)
        return LinesSummary(group=g, p=p, partitions=n, duplicates=int(len(dups)))


def plan_lines(read: list[ReadSummary]) -> list[LinesItem]:
    """Per hash group, its partitions of the line hashes."""
    groups: dict[int, list[ReadSummary]] = {}
    for s in read:
        groups.setdefault(s.group, []).append(s)
    items = []
    for g, files in sorted(groups.items()):
        n = partitions_for(sum(s.line_keys for s in files))
        indices = tuple(sorted(s.index for s in files))
        items += [LinesItem(f"lines-{g:05d}-{p:04d}", g, p, n, files=indices) for p in range(n)]
    return items


def plan_url(read: list[ReadSummary]):
    return round_items("url", read, (), "cc-read")

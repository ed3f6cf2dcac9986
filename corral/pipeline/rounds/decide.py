"""Dedup rounds over key files: each partition of a source's keys decides which documents go.

Rounds, in order (each sees only the documents the rounds before it kept):
  unique  one document per id: the latest timestamp, then the larger text md5   → duplicate_id
  exact   one document per content key: the smallest id                         → duplicate_exact
  near    MinHash LSH buckets → verified edges → components (corral.pipeline.rounds.near) → near_duplicate
A round's partition p of P reads the keys in its range of the key space from every file's round
table (corral.pipeline.rounds.keytables: only that slice) and writes the locators that go, sorted,
to decide/<round>-<p>.npy. The select pass reads them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from corral.core import fs
from corral.dedup.exact import DUPLICATE, DUPLICATE_ID
from corral.dedup.keys import ROW_BITS, concat, descending, loc, losers_by_rank, member_of
from corral.engine.graph import Item, Summary, Task
from corral.pipeline.rounds.keytables import ROUND_TABLES, read_partition
from corral.pipeline.rounds.stage import StagedFile, StagedRows, StagedSummary, staged_parts, work_dir

KEYS_PER_PARTITION = 1 << 22  # keys one partition task holds (about 100 MB of arrays at most)
REASONS = {"unique": DUPLICATE_ID, "exact": DUPLICATE, "url": "duplicate_url_digest", "c4url": "duplicate_url"}


@dataclass(frozen=True)
class Round:
    """A finished round, as later rounds and the select pass read it: its name and partitions."""

    name: str
    partitions: int


@dataclass(frozen=True)
class RoundItem(Item):
    """One partition of a key round over the first `files` staged files; `before` are the earlier
    rounds whose losers it leaves out; `stage_phase` names the phase whose records list the staged
    parts."""

    round: str = ""
    p: int = 0
    partitions: int = 1
    files: int = 0
    before: tuple[Round, ...] = ()
    stage_phase: str = "stage"


@dataclass
class RoundSummary(Summary):
    round: str = ""
    p: int = 0
    partitions: int = 1
    losers: int = 0
    keys: int = 0


def partitions_for(rows: int) -> int:
    return max(1, math.ceil(rows / KEYS_PER_PARTITION))


def decision_path(out: str, source: str, name: str, p: int) -> str:
    return fs.join(work_dir(out, source), f"decide/{name}-{p:04d}.npy")


def save_sorted(path: str, values: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(values))
    fs.atomic_write_bytes(path, buf.getvalue(), durable=False)


def load_sorted(path: str, mapped: bool = False) -> np.ndarray:
    """A saved array; with `mapped`, memory-mapped where the path is local (read when a slice of
    it is used), else read whole."""
    if mapped and not fs.is_remote(path):
        return np.load(fs.local_path(path), mmap_mode="r")
    return np.load(io.BytesIO(fs.read_bytes(path)))


def losers(out: str, source: str, done: Round) -> np.ndarray:
    """Every locator a round decided against, sorted."""
    parts = [load_sorted(decision_path(out, source, done.name, p)) for p in range(done.partitions)]
    return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


def losers_of(out: str, source: str, rounds: Iterable[Round]) -> np.ndarray:
    """Every locator any of the rounds decided against, sorted."""
    return np.sort(concat([losers(out, source, r) for r in rounds], np.int64))


def losers_between(out: str, source: str, done: Round, files: tuple[int, int]) -> np.ndarray:
    """The locators a round decided against among files first..last, sorted: from each partition's
    sorted decision only that range is read (memory-mapped on a local filesystem), so a task's
    cost is its own files' share, not the whole source's."""
    first, last = files
    found = []
    for p in range(done.partitions):
        lost = load_sorted(decision_path(out, source, done.name, p), mapped=True)
        a, b = np.searchsorted(lost, [loc(first, 0), loc(last + 1, 0)])
        found.append(np.array(lost[a:b]))
    return np.sort(concat(found, np.int64))


def rows_lost(out: str, source: str, done: Round, index: int) -> set[int]:
    """The rows of one staged file that a round decided against."""
    return set((losers_between(out, source, done, (index, index)) - loc(index, 0)).tolist())


def round_items(name: str, staged: list[StagedSummary], before: tuple[Round, ...], stage_phase: str) -> list[RoundItem]:
    """The items of one round over the staged files: a partition each."""
    n = partitions_for(sum(s.rows for s in staged))
    return [
        RoundItem(f"{name}-{p:04d}", name, p, n, files=len(staged), before=before, stage_phase=stage_phase)
        for p in range(n)
    ]


def rounds_of(summaries: Iterable[Summary]) -> tuple[Round, ...]:
    """The finished rounds among earlier phases' summaries (each round's first partition names it)."""
    found: dict[str, Round] = {}
    for s in summaries:
        if isinstance(s, RoundSummary):
            found.setdefault(s.round, Round(s.round, s.partitions))
    return tuple(found.values())


class RoundTask(Task):
    """One partition of a key round (`unique`, `exact`, or a source's own: `url`, `c4url`)."""

    phase = "decide"
    summary = RoundSummary

    def __init__(self, out: str, source: str):
        self.out, self.source = out, source

    def run(self, item: RoundItem, *earlier) -> RoundSummary:
        name, p, n = item.round, item.p, item.partitions
        gone = losers_of(self.out, self.source, item.before)
        folder = ROUND_TABLES[name][0]
        keys, locators, ranks = [], [], []
        for i in range(item.files):
            t = read_partition(StagedFile(self.out, self.source, i).key_path(folder), name, p, n)
            locs = loc(i, 0) + t["row"]
            # Larger timestamps and md5s rank first; exact's rank, the id order, is made below.
            rank = [descending(t[r]) for r in ROUND_TABLES[name][2]]
            keep = ~member_of(gone, locs)
            keys.append(t["key"][keep])
            locators.append(locs[keep])
            ranks.append([r[keep] for r in rank])
        if keys:
            k, locs = np.concatenate(keys), np.concatenate(locators)
            rank = [np.concatenate([r[j] for r in ranks]) for j in range(len(ranks[0]))]
        else:
            k, locs, rank = np.empty(0, np.uint64), np.empty(0, np.int64), []
        if name == "exact":
            rank = [self._id_order(item, k, locs)]
        lost = losers_by_rank(k, locs, *rank)
        save_sorted(decision_path(self.out, self.source, name, p), lost)
        return RoundSummary(round=name, p=p, partitions=n, losers=int(len(lost)), keys=int(len(k)))

    def _id_order(self, item: RoundItem, keys: np.ndarray, locators: np.ndarray) -> np.ndarray:
        """For exact dedup, the rank is the document id (smallest stays): read only for the
        documents whose content key is shared, from their staged parts."""
        rank = np.zeros(len(keys), dtype=np.int64)
        if not len(keys):
            return rank
        order = np.argsort(keys, kind="stable")
        k = keys[order]
        shared = np.zeros(len(k), dtype=bool)
        same = k[1:] == k[:-1]
        shared[1:] |= same
        shared[:-1] |= same
        idx = order[shared]
        if not len(idx):
            return rank
        files = {int(x) for x in (locators[idx] >> ROW_BITS)}
        rows = StagedRows(staged_parts(self.out, self.source, item.stage_phase, files))
        ids = sorted(zip(rows.values(locators[idx], "id"), idx.tolist()))
        for position, (_, j) in enumerate(ids, 1):
            rank[j] = position
        return rank

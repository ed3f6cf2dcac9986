"""Dedup rounds over key files: each partition of a source's keys decides which documents go.

Rounds, in order (each sees only the documents the rounds before it kept):
  unique  one document per id: the latest timestamp, then the larger text md5   → duplicate_id
  exact   one document per content key: the smallest id                         → duplicate_exact
  near    MinHash LSH buckets → verified edges → components (corral.pipeline.near) → near_duplicate
A round's partition p of P reads the keys in its range of the key space from every file's round
table (corral.pipeline.keytables: only that slice) and writes the locators that go, sorted, to
decide/<round>-<p>.npy. The select pass reads them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from corral import fs
from corral.dedup import keys as K
from corral.dedup.exact import DUPLICATE, DUPLICATE_ID
from corral.pipeline.keytables import ROUND_TABLES, read_partition, table_path
from corral.pipeline.phases import FolderTask, read_done, work_dir
from corral.pipeline.stage import StagedRows, file_key, key_path

KEYS_PER_PARTITION = 1 << 22  # keys one partition task holds (about 100 MB of arrays at most)
REASONS = {"unique": DUPLICATE_ID, "exact": DUPLICATE, "url": "duplicate_url_digest", "c4url": "duplicate_url"}


def partitions_for(rows: int) -> int:
    return max(1, math.ceil(rows / KEYS_PER_PARTITION))


def decision_path(out: str, source: str, name: str, p: int) -> str:
    return fs.join(work_dir(out, source), f"decide/{name}-{p:04d}.npy")


def save_sorted(path: str, values: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(values))
    fs.atomic_write_bytes(path, buf.getvalue(), durable=False)


def load_sorted(path: str, mapped: bool = False) -> np.ndarray:
    """A saved array; with `mapped`, memory-mapped where the path is local (read when a slice of
    it is used), else read whole."""
    import io

    if mapped and not fs.is_remote(path):
        return np.load(fs.local_path(path), mmap_mode="r")
    return np.load(io.BytesIO(fs.read_bytes(path)))


def losers(out: str, source: str, name: str, partitions: int) -> np.ndarray:
    """Every locator a round decided against, sorted."""
    parts = [load_sorted(decision_path(out, source, name, p)) for p in range(partitions)]
    return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


def losers_of(out: str, source: str, rounds: list[tuple[str, int]]) -> np.ndarray:
    """Every locator any of the rounds (name, partitions) decided against, sorted."""
    return np.sort(K.concat([losers(out, source, r, parts) for r, parts in rounds], np.int64))


def losers_between(out: str, source: str, name: str, partitions: int, first: int, last: int) -> np.ndarray:
    """The locators a round decided against among files first..last, sorted: from each partition's
    sorted decision only that range is read (memory-mapped on a local filesystem), so a task's
    cost is its own files' share, not the whole source's."""
    found = []
    for p in range(partitions):
        lost = load_sorted(decision_path(out, source, name, p), mapped=True)
        a, b = np.searchsorted(lost, [K.loc(first, 0), K.loc(last + 1, 0)])
        found.append(np.array(lost[a:b]))
    return np.sort(K.concat(found, np.int64))


def round_items(
    source: str, fingerprint: str, name: str, rows: int, files: int, before: list[tuple[str, int]], stage_phase: str
) -> list[dict[str, Any]]:
    """The items of one round: a partition each. `before` names the earlier rounds (and their
    partition counts) whose losers this round leaves out; `stage_phase` is the phase whose
    completion records list the staged parts."""
    n = partitions_for(rows)
    return [
        {
            "source": source,
            "key": f"{name}-{p:04d}",
            "fingerprint": fingerprint,
            "round": name,
            "p": p,
            "partitions": n,
            "files": files,
            "before": before,
            "stage_phase": stage_phase,
        }
        for p in range(n)
    ]


class RoundTask(FolderTask):
    """One partition of the `unique` or `exact` round."""

    phase = "decide"

    def run(self, item, *earlier):
        source, name, p, n = item["source"], item["round"], item["p"], item["partitions"]
        gone = losers_of(self.out, source, item["before"])
        folder = ROUND_TABLES[name][0]
        keys, locators, ranks = [], [], []
        for i in range(item["files"]):
            t = read_partition(table_path(key_path(self.out, source, i, folder), name), p, n)
            k = t["key"]
            loc = K.loc(i, 0) + t["row"]
            # Larger timestamps and md5s rank first; exact's rank, the id order, is made below.
            rank = [K.descending(t[r]) for r in ROUND_TABLES[name][2]]
            keep = ~K.member_of(gone, loc)
            keys.append(k[keep])
            locators.append(loc[keep])
            ranks.append([r[keep] for r in rank])
        if keys:
            k = np.concatenate(keys)
            loc = np.concatenate(locators)
            rank = [np.concatenate([r[j] for r in ranks]) for j in range(len(ranks[0]))]
        else:
            k, loc, rank = np.empty(0, np.uint64), np.empty(0, np.int64), []
        if name == "exact":
            rank = [self._id_order(item, k, loc)]
        lost = K.losers_by_rank(k, loc, *rank)
        save_sorted(decision_path(self.out, source, name, p), lost)
        return {"source": source, "round": name, "p": p, "partitions": n, "losers": int(len(lost)), "keys": int(len(k))}

    def _id_order(self, item, keys: np.ndarray, locators: np.ndarray) -> np.ndarray:
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
        files = {int(x) for x in (locators[idx] >> K.ROW_BITS)}
        rows = StagedRows(parts_by_file(self.out, item["source"], item["stage_phase"], files))
        ids = sorted((rows.get(int(locators[j]), "id"), int(j)) for j in idx)
        for position, (_, j) in enumerate(ids, 1):
            rank[j] = position
        return rank


def parts_by_file(out: str, source: str, phase: str, indices: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """The staged parts of some files, from the completion records of the phase that staged them."""
    found = {}
    for i in indices:
        done = read_done(out, source, phase, file_key(i))
        if done is not None:
            found[i] = done["summary"]["parts"]
    return found

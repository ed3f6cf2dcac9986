"""Near dedup over key files: the `near` round of a build source, and of `corral dedup`.

  lsh-<p>     partition p of the band keys of every key file (documents earlier rounds dropped left
              out) → its buckets' candidate edges (member → the bucket's head, its document of
              smallest id key; documents are nodes by their locators), each
              verified by the exact Jaccard similarity of the two documents' shingle sets (saved by
              the stage phase) → decide/near-edges-<p>.npz (edges between locators)
  clusters    every partition's verified edges → connected components → the representative of each
              (the smallest id, read for cluster members only) → decide/near-clusters.npz (member
              locators, sorted; representative or not; cluster size), and, when asked, the clusters
              as rows (`corral dedup`'s clusters.arrow)
The select pass keeps a cluster's representative (tagged `dup_cluster` = its id, `dup_count` = the
size), drops the other members as `near_duplicate`, and tags every other document with its own id
and 1. Only band keys and locators are read back from files; texts never leave the staged parts.
With earlier outputs to deduplicate against (corral.pipeline.rounds.against), each partition also
reads their band tables' slice, and a cluster holding an earlier document drops all its new members
as `duplicate_of_existing`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from corral.core import fs
from corral.core.shards import write_shard
from corral.dedup import minhash
from corral.dedup.clusters import bucket_edges, bucket_edges_against, component_table
from corral.dedup.keys import ROW_BITS, loc, member_of
from corral.engine.graph import Item, Summary, Task
from corral.pipeline.rounds.against import (
    EARLIER_LOC,
    earlier_partition,
    earlier_parts,
    earlier_rows,
    earlier_tables,
)
from corral.pipeline.rounds.decide import Round, losers_of
from corral.pipeline.rounds.keytables import read_members, read_partition
from corral.pipeline.rounds.stage import StagedFile, StagedRows, load_arrays, save_arrays, staged_parts, work_dir

BANDS_PER_PARTITION = 1 << 20  # (band key, document) pairs one LSH task holds: 16 MB, ~0.15 GB with its sorts and edges
SHINGLE_FILES = 2  # staged files whose shingles (mapped) one LSH task has open at once while it verifies
CLUSTER_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("cluster", pa.string(), nullable=False),
        pa.field("representative", pa.bool_(), nullable=False),
        pa.field("existing", pa.bool_(), nullable=False),  # the cluster's representative is an earlier output's
    ]
)


@dataclass(frozen=True)
class NearSettings:
    """A source's `minhash` stage, as the LSH partitions need it."""

    threshold: float
    ngram: int
    verify: bool


@dataclass(frozen=True)
class LshItem(Item):
    p: int = 0
    partitions: int = 1
    files: int = 0
    before: tuple[Round, ...] = ()
    settings: NearSettings | None = None
    against: tuple[str, ...] = ()  # the indexes of earlier outputs' band tables


@dataclass
class LshSummary(Summary):
    p: int = 0
    partitions: int = 1
    candidates: int = 0
    edges: int = 0


@dataclass(frozen=True)
class ClustersItem(Item):
    partitions: int = 1
    stage_phase: str = "stage"
    cluster_rows: str | None = None  # also write the clusters as rows here (clusters.arrow)
    against: tuple[str, ...] = ()


@dataclass
class ClustersSummary(Summary):
    clusters: int = 0
    members: int = 0
    existing: int = 0  # new documents in a cluster with an earlier output's document


def edges_path(out: str, source: str, p: int) -> str:
    return fs.join(work_dir(out, source), f"decide/near-edges-{p:04d}.npz")


def clusters_path(out: str, source: str) -> str:
    return fs.join(work_dir(out, source), "decide/near-clusters.npz")


def lsh_items(
    rows: int, files: int, before: tuple[Round, ...], minhash_stage: dict[str, Any], against: tuple[str, ...] = ()
) -> list[LshItem]:
    """The LSH partitions of a source's band keys and those of the earlier outputs it is deduplicated
    against: about BANDS_PER_PARTITION pairs each."""
    bands = minhash.derive_lsh(minhash_stage["threshold"], minhash_stage["num_perm"], minhash_stage["verify"]).bands
    settings = NearSettings(minhash_stage["threshold"], minhash_stage["ngram"], minhash_stage["verify"])
    n = max(1, math.ceil((rows + earlier_rows(against)) * bands / BANDS_PER_PARTITION))
    return [
        LshItem(f"lsh-{p:04d}", p, n, files=files, before=before, settings=settings, against=against) for p in range(n)
    ]


class LshTask(Task):
    """One partition of the band keys → verified candidate edges."""

    phase = "near-lsh"
    summary = LshSummary

    def __init__(self, out: str, source: str):
        self.out, self.source = out, source

    def run(self, item: LshItem, *earlier) -> LshSummary:
        p, n = item.p, item.partitions
        gone = losers_of(self.out, self.source, item.before)
        pairs = []  # (band key, rank: the id's key, node: the locator) per band of a document
        for i in range(item.files):
            t = read_partition(StagedFile(self.out, self.source, i).key_path(), "near", p, n)
            at = loc(i, 0) + t["row"]
            keep = ~member_of(gone, at)
            pairs.append(np.stack([t["key"][keep].view(np.int64), t["doc"][keep], at[keep]], axis=1))
        for t, table in enumerate(earlier_tables(item.against)):
            pairs.append(earlier_partition(table, t, p, n))  # nodes: their locators, negated
        pairs = np.concatenate(pairs) if pairs else np.empty((0, 3), dtype=np.int64)
        edges = bucket_edges_against(pairs) if item.against else bucket_edges(pairs)
        candidates = len(edges)
        if item.settings.verify and len(edges):
            edges = edges[self._verify(item, np.abs(edges))]
        save_arrays(edges_path(self.out, self.source, p), {"edges": edges})
        return LshSummary(p=p, partitions=n, candidates=int(candidates), edges=int(len(edges)))

    def _verify(self, item: LshItem, ends: np.ndarray) -> np.ndarray:
        """Exact Jaccard of each edge's two shingle sets, as the stage phase saved them. Edges go
        in the order of their files; at most SHINGLE_FILES files are open at once, their shingles
        memory-mapped where the file is local (a task reads the pages of its candidates only). An
        edge to an earlier output's document is checked against that document's text, shingled
        here: its table's edges together, the texts of one table read at a time."""
        sets: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

        def shingles(locator: int) -> np.ndarray:
            index, row = locator >> ROW_BITS, locator & ((1 << ROW_BITS) - 1)
            if index not in sets:
                if len(sets) >= SHINGLE_FILES:
                    sets.popitem(last=False)
                sets[index] = self._shingle_file(index)
            sets.move_to_end(index)
            values, offsets = sets[index]
            return np.asarray(values[offsets[row] : offsets[row + 1]])

        threshold, ngram = item.settings.threshold, item.settings.ngram
        keep = np.zeros(len(ends), dtype=bool)
        earlier = ends[:, 1] >= EARLIER_LOC
        own = np.flatnonzero(~earlier)
        for i in own[np.lexsort((ends[own, 1] >> ROW_BITS, ends[own, 0] >> ROW_BITS))].tolist():
            a, b = ends[i].tolist()
            keep[i] = minhash.jaccard(shingles(a), shingles(b)) >= threshold
        theirs = np.flatnonzero(earlier)
        tables = ends[theirs, 1] >> ROW_BITS
        rows = StagedRows(earlier_parts(item.against)) if len(theirs) else None
        for table in np.unique(tables).tolist():
            edges = theirs[tables == table]
            heads = np.unique(ends[edges, 1])
            sets_of = {h: minhash.shingles(text, ngram) for h, text in zip(heads.tolist(), rows.values(heads, "text"))}
            for i in edges[np.argsort(ends[edges, 0] >> ROW_BITS, kind="stable")].tolist():
                a, b = ends[i].tolist()
                keep[i] = minhash.jaccard(shingles(a), sets_of[b]) >= threshold
        return keep

    def _shingle_file(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(every document's shingles back to back, each one's offsets) of a staged file."""
        path = StagedFile(self.out, self.source, index).key_path("shingles")
        shingles, offsets = read_members(path, "shingles", "offsets")
        return shingles, np.asarray(offsets)


def clusters_items(
    lsh: list[LshSummary], stage_phase: str, cluster_rows: str | None, against: tuple[str, ...] = ()
) -> list[ClustersItem]:
    n = max((s.partitions for s in lsh), default=1)
    return [ClustersItem("clusters", n, stage_phase, cluster_rows, against)]


class ClustersTask(Task):
    """Every partition's edges → clusters and their representatives."""

    phase = "near-clusters"
    summary = ClustersSummary

    def __init__(self, out: str, source: str):
        self.out, self.source = out, source

    def run(self, item: ClustersItem, *earlier) -> ClustersSummary:
        chunks = [load_arrays(edges_path(self.out, self.source, p))["edges"] for p in range(item.partitions)]
        table = component_table(chunks)
        if not len(table.nodes):
            empty = np.empty(0, np.int64)
            arrays = {"members": empty, "rep": empty.astype(bool), "size": empty, "existing": empty.astype(bool)}
            save_arrays(clusters_path(self.out, self.source), arrays)
            return ClustersSummary()
        member_loc = np.abs(table.nodes)  # nodes are locators, an earlier document's negated
        files = {int(x) for x in np.unique(member_loc >> ROW_BITS)}
        parts = {**staged_parts(self.out, self.source, item.stage_phase, files), **earlier_parts(item.against)}
        ids = StagedRows(parts).values(member_loc, "id")
        # A component's representative: its smallest id, or its smallest earlier id when it has an
        # earlier output's document (earlier nodes are negative, so the component's smallest is too).
        earlier = table.nodes < 0
        best: dict[int, tuple[str, int]] = {}
        for j, (comp, doc_id, old) in enumerate(zip(table.reps.tolist(), ids, earlier.tolist())):
            if (comp >= 0 or old) and (comp not in best or doc_id < best[comp][0]):
                best[comp] = (doc_id, j)
        rep = np.zeros(len(ids), dtype=bool)
        rep[[j for _, j in best.values()]] = True
        rep_id = [best[c][0] for c in table.reps.tolist()]
        existing = table.reps < 0
        new = np.flatnonzero(~earlier)
        order = new[np.argsort(member_loc[new])]
        arrays = {"members": member_loc[order], "rep": rep[order], "size": table.sizes[order].astype(np.int64)}
        save_arrays(clusters_path(self.out, self.source), {**arrays, "existing": existing[order]})
        if item.cluster_rows:
            rows = [(ids[j], rep_id[j], bool(rep[j]), bool(existing[j])) for j in new.tolist()]
            write_clusters(item.cluster_rows, rows)
        kept = sum(1 for comp in best if comp >= 0)
        return ClustersSummary(clusters=kept, members=len(new), existing=int(existing[new].sum()))


def write_clusters(path: str, rows: list[tuple[str, str, bool, bool]]) -> None:
    """Clusters as rows: (id, its cluster's representative id, whether it is that one, whether that
    one is an earlier output's) per member of this job."""
    rows = sorted(rows)
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([r[0] for r in rows], pa.string()),
            pa.array([r[1] for r in rows], pa.string()),
            pa.array([bool(r[2]) for r in rows], pa.bool_()),
            pa.array([bool(r[3]) for r in rows], pa.bool_()),
        ],
        schema=CLUSTER_SCHEMA,
    )
    write_shard(path, [batch], schema=CLUSTER_SCHEMA, compression="zstd")


class Clusters:
    """The clusters a select pass applies: lookups by locator."""

    def __init__(self, members: np.ndarray, rep: np.ndarray, size: np.ndarray, existing: np.ndarray):
        self.members, self.rep, self.size, self.existing = members, rep, size, existing

    @classmethod
    def load(cls, out: str, source: str) -> Clusters:
        a = load_arrays(clusters_path(out, source))
        return cls(a["members"], a["rep"], a["size"], a["existing"])

    def slice(self, first: int, last: int) -> Clusters:
        lo, hi = np.searchsorted(self.members, [loc(first, 0), loc(last + 1, 0)])
        return Clusters(self.members[lo:hi], self.rep[lo:hi], self.size[lo:hi], self.existing[lo:hi])

    def tags(self, locators: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dropped: a member that does not represent its cluster, size: the cluster's size or 1,
        existing: a member of a cluster that an earlier output's document represents)."""
        i = np.searchsorted(self.members, locators)
        i[i == len(self.members)] = 0
        hit = (self.members[i] == locators) if len(self.members) else np.zeros(len(locators), bool)
        dropped = np.zeros(len(locators), bool)
        existing = np.zeros(len(locators), bool)
        size = np.ones(len(locators), np.int64)
        if len(self.members):
            dropped[hit] = ~self.rep[i[hit]]
            existing[hit] = self.existing[i[hit]]
            size[hit] = self.size[i[hit]]
        return dropped, size, existing

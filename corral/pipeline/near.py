"""Near dedup over key files: the `near` round of a build source, and of `corral dedup`.

  lsh-<p>     partition p of the band keys of every key file (documents earlier rounds dropped left
              out) → its buckets' candidate edges (member → the bucket's smallest document), each
              verified by the exact Jaccard similarity of the two documents' shingle sets (saved by
              the stage phase) → decide/near-edges-<p>.npz (edges and their locators)
  clusters    every partition's verified edges → connected components → the representative of each
              (the smallest id, read for cluster members only) → decide/near-clusters.npz (member
              locators, sorted; representative or not; cluster size) and the cluster rows
The select pass keeps a cluster's representative (tagged `dup_cluster` = its id, `dup_count` = the
size), drops the other members as `near_duplicate`, and tags every other document with its own id
and 1. Only band keys and locators are read back from files; texts never leave the staged parts.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from corral import fs
from corral.dedup import keys as K
from corral.dedup import minhash
from corral.dedup.near import bucket_edges, component_table
from corral.pipeline.decide import losers_of, parts_by_file
from corral.pipeline.keytables import read_partition, table_path
from corral.pipeline.phases import FolderTask, work_dir
from corral.pipeline.stage import StagedRows, key_path, load_arrays, save_arrays

BANDS_PER_PARTITION = 1 << 23  # (band key, document) pairs one LSH task holds: 128 MB


def edges_path(out: str, source: str, p: int) -> str:
    return fs.join(work_dir(out, source), f"decide/near-edges-{p:04d}.npz")


def clusters_path(out: str, source: str) -> str:
    return fs.join(work_dir(out, source), "decide/near-clusters.npz")


def near_items(
    source: str,
    fingerprint: str,
    rows: int,
    bands: int,
    files: int,
    before: list[tuple[str, int]],
    stage_phase: str,
    threshold: float,
    ngram: int,
    verify: bool,
) -> list[dict[str, Any]]:
    n = max(1, math.ceil(rows * bands / BANDS_PER_PARTITION))
    return [
        {
            "source": source,
            "key": f"lsh-{p:04d}",
            "fingerprint": fingerprint,
            "p": p,
            "partitions": n,
            "files": files,
            "before": before,
            "stage_phase": stage_phase,
            "threshold": threshold,
            "ngram": ngram,
            "verify": verify,
        }
        for p in range(n)
    ]


def _load(path: str) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(fs.read_bytes(path))) as z:
        return {k: z[k] for k in z.files}


class LshTask(FolderTask):
    """One partition of the band keys → verified candidate edges."""

    phase = "near-lsh"

    def run(self, item, *earlier):
        source, p, n = item["source"], item["p"], item["partitions"]
        gone = losers_of(self.out, source, item["before"])
        pairs, docs, locs = [], [], []
        for i in range(item["files"]):
            t = read_partition(table_path(key_path(self.out, source, i), "near"), p, n)
            loc = K.loc(i, 0) + t["row"]
            keep = ~K.member_of(gone, loc)
            pairs.append(np.stack([t["key"][keep].view(np.int64), t["doc"][keep]], axis=1))
            docs.append(t["doc"][keep])
            locs.append(loc[keep])
        pairs = np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)
        edges = bucket_edges(pairs)
        doc, loc = K.concat(docs, np.int64), K.concat(locs, np.int64)
        order = np.argsort(doc, kind="stable")
        doc, loc = doc[order], loc[order]
        ends = K.lookup(doc, loc, edges.reshape(-1), -1).reshape(-1, 2) if len(edges) else np.empty((0, 2), np.int64)
        candidates = len(edges)
        if item["verify"] and len(edges):
            keep = self._verify(item, ends)
            edges, ends = edges[keep], ends[keep]
        save_arrays(edges_path(self.out, source, p), {"edges": edges, "locs": ends})
        return {"source": source, "p": p, "partitions": n, "candidates": int(candidates), "edges": int(len(edges))}

    def _verify(self, item, ends: np.ndarray) -> np.ndarray:
        """Exact Jaccard of each edge's two shingle sets, as the stage phase saved them."""
        sets: dict[int, dict[str, np.ndarray]] = {}

        def shingles(locator: int) -> np.ndarray:
            index, row = locator >> K.ROW_BITS, locator & ((1 << K.ROW_BITS) - 1)
            if index not in sets:
                sets[index] = load_arrays(key_path(self.out, item["source"], index, "shingles"))
            a = sets[index]
            return a["shingles"][a["offsets"][row] : a["offsets"][row + 1]]

        return np.array(
            [minhash.jaccard(shingles(a), shingles(b)) >= item["threshold"] for a, b in ends.tolist()], dtype=bool
        )


class ClustersTask(FolderTask):
    """Every partition's edges → clusters and their representatives."""

    phase = "near-clusters"

    def run(self, item, *earlier):
        source = item["source"]
        chunks, node_doc, node_loc = [], [], []
        for p in range(item["partitions"]):
            a = _load(edges_path(self.out, source, p))
            chunks.append(a["edges"])
            node_doc.append(a["edges"].reshape(-1))
            node_loc.append(a["locs"].reshape(-1))
        table = component_table(chunks)
        if not len(table.nodes):
            arrays = {"members": np.empty(0, np.int64), "rep": np.empty(0, bool), "size": np.empty(0, np.int64)}
            save_arrays(clusters_path(self.out, source), arrays)
            return {"source": source, "clusters": 0, "members": 0}
        docs = np.concatenate(node_doc)
        locs = np.concatenate(node_loc)
        order = np.argsort(docs, kind="stable")
        member_loc = K.lookup(docs[order], locs[order], table.nodes, -1)
        files = {int(x) for x in np.unique(member_loc >> K.ROW_BITS)}
        rows = StagedRows(parts_by_file(self.out, source, item["stage_phase"], files))
        ids = [rows.get(int(x), "id") for x in member_loc.tolist()]
        best: dict[int, tuple[str, int]] = {}
        for j, (comp, doc_id) in enumerate(zip(table.reps.tolist(), ids)):
            if comp not in best or doc_id < best[comp][0]:
                best[comp] = (doc_id, j)
        rep = np.zeros(len(ids), dtype=bool)
        rep[[j for _, j in best.values()]] = True
        rep_id = [best[c][0] for c in table.reps.tolist()]
        order = np.argsort(member_loc)
        save_arrays(
            clusters_path(self.out, source),
            {"members": member_loc[order], "rep": rep[order], "size": table.sizes[order].astype(np.int64)},
        )
        if item.get("cluster_rows"):
            from corral.pipeline.dedup_job import write_clusters

            write_clusters(item["cluster_rows"], sorted(zip(ids, rep_id, rep.tolist())))
        return {"source": source, "clusters": len(best), "members": len(ids)}


class Clusters:
    """The clusters a select pass applies: lookups by locator."""

    def __init__(self, out: str, source: str):
        a = _load(clusters_path(out, source))
        self.members, self.rep, self.size = a["members"], a["rep"], a["size"]

    def slice(self, first: int, last: int) -> Clusters:
        lo, hi = np.searchsorted(self.members, [K.loc(first, 0), K.loc(last + 1, 0)])
        c = object.__new__(Clusters)
        c.members, c.rep, c.size = self.members[lo:hi], self.rep[lo:hi], self.size[lo:hi]
        return c

    def tags(self, locators: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dropped: a member that does not represent its cluster, size: the cluster's size or 1)."""
        i = np.searchsorted(self.members, locators)
        i[i == len(self.members)] = 0
        hit = (self.members[i] == locators) if len(self.members) else np.zeros(len(locators), bool)
        dropped = np.zeros(len(locators), bool)
        size = np.ones(len(locators), np.int64)
        if len(self.members):
            dropped[hit] = ~self.rep[i[hit]]
            size[hit] = self.size[i[hit]]
        return dropped, size

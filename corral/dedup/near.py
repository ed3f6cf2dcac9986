"""Near-duplicate removal on Beam: MinHash signatures → LSH bands → verified edges → components.

kept outcomes ─► signature (corral.dedup.minhash) ─► one key per band, packed with the document
     keys into a few blobs per partition of the key space, through one shuffle
  ─► each bucket (within a partition, by sorting): an edge from every member to its smallest document
  ─► optional exact-Jaccard verification of each edge (two joins fetch both shingle sets)
  ─► connected components in one native stage: the edge list, held as numpy arrays (16 bytes an
     edge: 10^7 edges in 160 MB), goes through scipy's sparse connected_components
  ─► every cluster member tagged `dup_cluster` (the representative's id) and `dup_count`; the
     representative — the smallest id, so the choice never depends on order or runner — is kept,
     the others are dropped as `near_duplicate`. Documents in no cluster get their own id and 1.
Documents are shuffled under 60-bit keys derived from their ids; the representative is nevertheless
the smallest id as a string, chosen per component after the components are known.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple

import apache_beam as beam
import numpy as np

from corral.dedup import minhash as mh
from corral.pipeline.outcome import KEPT, dropped

NEAR_DUPLICATE = "near_duplicate"


def doc_key(doc_id: str) -> int:
    """A 60-bit integer for a document id (ids are hex digests, or hashed when given as text):
    small to shuffle, fits Beam's signed 64-bit integer coder, and orders like the id's hex prefix."""
    try:
        return int(doc_id[:15], 16)
    except ValueError:
        import hashlib

        return int(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).hexdigest()[:15], 16)


def _signed(outcome, params: mh.LshParams, ngram: int):
    r = outcome["record"]
    sh = mh.shingles(r["text"], ngram)  # distinct and sorted: verification compares these sets
    return doc_key(r["id"]), (r["id"], sh.tobytes(), mh.signature(sh, params.num_perm))


PARTITIONS = 64         # groups of the LSH shuffle, each the packed (band key, document) pairs of 1/64 of the buckets
BUFFER_PAIRS = 1 << 18  # pairs one bundle packs (4 MB) before it sends them on: bounds the buffer


class PackBandKeys(beam.DoFn):
    """(document key, signature) → (partition, packed int64 (band key, document key) pairs).

    The LSH shuffle carries a few large blobs instead of one element per band and document: on the
    local runner, where shuffles live in memory, the per-element overhead was most of the memory."""

    def __init__(self, params: mh.LshParams, partitions: int = PARTITIONS):
        self.params, self.partitions = params, partitions

    def start_bundle(self):
        self.keys, self.docs, self.n = [], [], 0

    def process(self, item):
        key, sig = item
        sig = sig if isinstance(sig, np.ndarray) else np.frombuffer(sig, dtype=np.uint32)
        self.keys.append(mh.band_keys(sig, self.params))
        self.docs.append(key)
        self.n += self.params.bands
        if self.n >= BUFFER_PAIRS:
            yield from self._flush()

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindows

        for part in self._flush():
            yield GlobalWindows.windowed_value(part)

    def _flush(self):
        if not self.docs:
            return
        keys = np.concatenate(self.keys)
        docs = np.repeat(np.asarray(self.docs, dtype=np.int64), self.params.bands)
        self.keys, self.docs, self.n = [], [], 0
        parts = keys % self.partitions
        order = np.argsort(parts, kind="stable")
        parts, pairs = parts[order], np.stack([keys[order], docs[order]], axis=1)
        bounds = np.flatnonzero(np.diff(parts)) + 1
        for chunk, first in zip(np.split(pairs, bounds), np.concatenate([[0], bounds])):
            yield int(parts[first]), chunk.tobytes()


def bucket_edges(pairs: np.ndarray) -> np.ndarray:
    """(n, 2) int64 (band key, document key) pairs → the distinct edges (member, head) that join
    every member of a bucket to the bucket's smallest document key."""
    if not len(pairs):
        return np.empty((0, 2), dtype=np.int64)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    starts = np.concatenate([[True], pairs[1:, 0] != pairs[:-1, 0]])
    heads = pairs[np.maximum.accumulate(np.where(starts, np.arange(len(pairs)), 0)), 1]
    members = pairs[:, 1]
    edges = np.stack([members, heads], axis=1)[members != heads]
    return np.unique(edges, axis=0)


def _partition_edges(kv) -> Iterable[tuple[int, int]]:
    """One partition of the LSH shuffle → its buckets' edges."""
    _, blobs = kv
    pairs = np.concatenate([np.frombuffer(b, dtype=np.int64).reshape(-1, 2) for b in blobs])
    for m, head in bucket_edges(pairs).tolist():
        yield m, head


class LshEdges(beam.PTransform):
    """(document key, signature) → distinct candidate edges (member, head): packed band keys
    through one shuffle, each bucket's members joined to its smallest key."""

    def __init__(self, params: mh.LshParams, partitions: int = PARTITIONS):
        super().__init__()
        self.params, self.partitions = params, partitions

    def expand(self, signatures):
        return (signatures
                | "PackBandKeys" >> beam.ParDo(PackBandKeys(self.params, self.partitions))
                | "Buckets" >> beam.GroupByKey()
                | "BucketEdges" >> beam.FlatMap(_partition_edges)
                | "DistinctEdges" >> beam.Distinct())


def _with_first_shingles(kv) -> Iterable[tuple[int, tuple[int, bytes]]]:
    key, grouped = kv
    if not grouped["doc"]:
        return
    shingles = grouped["doc"][0]
    for other in grouped["edge"]:
        yield other, (key, shingles)


def _verify(kv, threshold: float) -> Iterable[tuple[int, int]]:
    key, grouped = kv
    if not grouped["doc"]:
        return
    mine = np.frombuffer(grouped["doc"][0], dtype=np.uint64)
    for other, theirs in grouped["pending"]:
        if mh.jaccard(mine, np.frombuffer(theirs, dtype=np.uint64)) >= threshold:
            yield other, key


class _Components(beam.CombineFn):
    """Connected components of an edge list in one stage: numpy edge chunks, scipy's sparse solver."""

    CHUNK = 1 << 16

    def create_accumulator(self):
        return {"chunks": [], "open": []}

    def add_input(self, acc, edge):
        acc["open"].append(edge)
        if len(acc["open"]) >= self.CHUNK:
            acc["chunks"].append(np.asarray(acc["open"], dtype=np.int64).reshape(-1, 2))
            acc["open"] = []
        return acc

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for a in accs:
            out["chunks"].extend(a["chunks"])
            out["open"].extend(a["open"])
        return out

    def extract_output(self, acc):
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        parts = acc["chunks"] + ([np.asarray(acc["open"], dtype=np.int64).reshape(-1, 2)] if acc["open"] else [])
        if not parts:
            return ComponentTable(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))
        flat = np.concatenate([p.reshape(-1) for p in parts])
        acc["chunks"], acc["open"], parts = [], [], None
        order = np.argsort(flat, kind="stable")  # np.unique(return_inverse) by hand: fewer copies at peak
        ordered = flat[order]
        del flat
        first = np.concatenate([[True], ordered[1:] != ordered[:-1]])
        nodes = ordered[first]
        del ordered
        inverse = np.empty(len(order), dtype=np.int32 if len(nodes) < 2**31 else np.int64)
        inverse[order] = np.cumsum(first, dtype=inverse.dtype) - 1
        del order, first
        inverse = inverse.reshape(-1, 2)
        graph = coo_matrix((np.ones(len(inverse), dtype=np.int8), (inverse[:, 0], inverse[:, 1])),
                           shape=(len(nodes), len(nodes))).tocsr()
        del inverse
        n, labels = connected_components(graph, directed=False)
        del graph
        rep = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(rep, labels, nodes)  # nodes are sorted keys: the smallest one represents
        sizes = np.bincount(labels, minlength=n)
        return ComponentTable(nodes, rep[labels], sizes[labels])


class ComponentTable(NamedTuple):
    """Every node of the edge list with its component's smallest key and size, as numpy arrays
    (24 bytes a node): iterated in chunks, never turned into one list of tuples."""

    nodes: np.ndarray
    reps: np.ndarray
    sizes: np.ndarray

    def rows(self, chunk: int = 1 << 16) -> Iterable[tuple[int, int, int]]:
        for i in range(0, len(self.nodes), chunk):
            yield from zip(self.nodes[i:i + chunk].tolist(), self.reps[i:i + chunk].tolist(),
                           self.sizes[i:i + chunk].tolist())


def components(edges: np.ndarray) -> list[tuple[int, int, int]]:
    """(node, representative, cluster size) for every node of an (n, 2) edge array (for tests and tools)."""
    fn = _Components()
    acc = fn.create_accumulator()
    for a, b in edges.tolist():
        fn.add_input(acc, (a, b))
    return list(fn.extract_output(acc).rows())


def _smallest_id(kv) -> Iterable[tuple[int, tuple[str, int, str]]]:
    """(member key, (representative id, cluster size, member id)) for every member of one component."""
    _, members = kv
    members = list(members)
    rep = min(m[1] for m in members)
    for key, member_id, size in members:
        yield key, (rep, size, member_id)


def _tag(kv) -> Iterable[dict[str, Any]]:
    _, grouped = kv
    for o in grouped["doc"]:
        info = grouped["cluster"]
        r = o["record"]
        if not info:
            yield {**o, "record": {**r, "dup_cluster": r["id"], "dup_count": 1}}
            continue
        rep_id, size, _ = info[0]
        if rep_id == r["id"]:
            yield {**o, "record": {**r, "dup_cluster": rep_id, "dup_count": int(size)}}
        else:
            yield dropped(o["source"], NEAR_DUPLICATE, o.get("where"))


class RepresentativeIds(beam.PTransform):
    """Verified edges → (member key, (representative id, cluster size, member id)) for every member
    of a cluster: components in one native stage, then the smallest id of each (ids as strings,
    whatever they are), joined from `ids`, a PCollection of (key, id)."""

    def __init__(self, ids):
        super().__init__()
        self.ids = ids

    def expand(self, edges):
        clusters = (edges | "Components" >> beam.CombineGlobally(_Components())
                    | "Members" >> beam.FlatMap(lambda table: table.rows()))  # (member, rep, size)
        return (
            {"id": self.ids, "cluster": clusters | "ByMember" >> beam.Map(lambda t: (t[0], (t[1], t[2])))}
            | "JoinMemberId" >> beam.CoGroupByKey()
            | "ByComponent" >> beam.FlatMap(lambda kv: [(c[0], (kv[0], kv[1]["id"][0], c[1]))
                                                        for c in kv[1]["cluster"]] if kv[1]["id"] else [])
            | "Component" >> beam.GroupByKey()
            | "SmallestId" >> beam.FlatMap(_smallest_id)
        )


class NearDedup(beam.PTransform):
    """outcomes → outcomes: MinHash LSH near-duplicate removal of the kept documents."""

    def __init__(self, threshold: float = mh.DEFAULT_THRESHOLD, ngram: int = mh.DEFAULT_NGRAM,
                 num_perm: int | None = None, verify: bool = True):
        super().__init__()
        self.params = mh.derive_lsh(threshold, num_perm, verify)
        self.ngram, self.verify = ngram, verify
        self.cluster_rows = None  # after expansion: (id, representative id, is representative) per member

    def expand(self, outcomes):
        params, ngram, threshold = self.params, self.ngram, self.params.threshold
        docs = outcomes | "Kept" >> beam.Filter(lambda o: o["status"] == KEPT)
        others = outcomes | "NotKept" >> beam.Filter(lambda o: o["status"] != KEPT)
        signed = docs | "Signature" >> beam.Map(_signed, params, ngram)
        edges = signed | "KeySignature" >> beam.Map(lambda kv: (kv[0], kv[1][2])) | "Lsh" >> LshEdges(params)
        if self.verify:
            shingles = signed | "ShingleSets" >> beam.Map(lambda kv: (kv[0], kv[1][1]))
            pending = ({"doc": shingles, "edge": edges | "ByHead" >> beam.Map(lambda e: (e[1], e[0]))}
                       | "JoinHead" >> beam.CoGroupByKey()
                       | "HeadShingles" >> beam.FlatMap(_with_first_shingles))
            edges = ({"doc": shingles, "pending": pending}
                     | "JoinMember" >> beam.CoGroupByKey()
                     | "Verify" >> beam.FlatMap(_verify, threshold))
        ids = signed | "KeyToId" >> beam.Map(lambda kv: (kv[0], kv[1][0]))
        rep_ids = edges | "Clusters" >> RepresentativeIds(ids)
        self.cluster_rows = rep_ids | "ClusterRows" >> beam.Map(lambda kv: (kv[1][2], kv[1][0], kv[1][2] == kv[1][0]))
        keyed_docs = docs | "DocByKey" >> beam.Map(lambda o: (doc_key(o["record"]["id"]), o))
        tagged = ({"doc": keyed_docs, "cluster": rep_ids} | "JoinCluster" >> beam.CoGroupByKey()
                  | "Tag" >> beam.FlatMap(_tag))
        return (tagged, others) | "Merge" >> beam.Flatten()

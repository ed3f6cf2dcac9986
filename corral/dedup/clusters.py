"""Near-duplicate removal, the algorithms: LSH buckets → candidate edges → connected components.

Over the MinHash band keys of every document (corral.dedup.minhash):
  ─► the (band key, document) pairs are split into partitions by ranges of the band key, so that
     each partition is decided on its own (the pipeline's round tables, corral.pipeline.rounds.keytables)
  ─► each bucket (within a partition, by sorting): an edge from every member to its smallest
     document (`bucket_edges`); verification by exact Jaccard happens where the texts are
  ─► connected components in one native step: the edge list, held as numpy arrays (16 bytes an
     edge: 10^7 edges in 160 MB), goes through scipy's sparse connected_components
     (`component_table`)
The pipeline (corral.pipeline.rounds.near) runs these over key files and applies the clusters: the
representative of a cluster (its smallest id) is kept, the others are dropped as `near_duplicate`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

NEAR_DUPLICATE = "near_duplicate"
DUPLICATE_OF_EXISTING = "duplicate_of_existing"  # a near copy of a document an earlier output kept


def doc_key(doc_id: str) -> int:
    """A 60-bit integer for a document id (ids are hex digests, or hashed when given as text):
    fits a signed 64-bit integer, and orders like the id's hex prefix."""
    try:
        return int(doc_id[:15], 16)
    except ValueError:
        import hashlib

        return int(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).hexdigest()[:15], 16)


def bucket_edges(pairs: np.ndarray) -> np.ndarray:
    """(n, 3) int64 rows (band key, rank, node) → the distinct edges (member, head) that join every
    member node of a bucket to the bucket's head: its member of smallest rank, then smallest node.
    Nodes name documents uniquely (locators); ranks order them by their ids' keys, so that the head
    of a bucket does not depend on how the input was cut into pieces. (n, 2) rows (band key, node)
    rank each node by itself."""
    if not len(pairs):
        return np.empty((0, 2), dtype=np.int64)
    key, rank, node = pairs[:, 0], pairs[:, 1], pairs[:, -1]
    order = np.lexsort((node, rank, key))
    key, node = key[order], node[order]
    starts = np.concatenate([[True], key[1:] != key[:-1]])
    heads = node[np.maximum.accumulate(np.where(starts, np.arange(len(key)), 0))]
    edges = np.stack([node, heads], axis=1)[node != heads]
    return np.unique(edges, axis=0)


def bucket_edges_against(pairs: np.ndarray) -> np.ndarray:
    """bucket_edges where negative nodes are earlier documents (already kept elsewhere; their ranks
    below every new one's): the edges among the new documents of each bucket as bucket_edges makes
    them, plus one from each new member to the bucket's head when that is an earlier document; none
    between two earlier ones (they are never dropped, and a new document that reaches one still
    reaches it without them)."""
    if not len(pairs):
        return np.empty((0, 2), dtype=np.int64)
    own = bucket_edges(pairs[pairs[:, -1] >= 0])
    every = bucket_edges(pairs)
    to_earlier = every[(every[:, 0] >= 0) & (every[:, 1] < 0)]
    return np.unique(np.concatenate([own, to_earlier]), axis=0)


def component_table(chunks: list[np.ndarray]) -> ComponentTable:
    """Connected components of an edge list given as (n, 2) int64 chunks, with scipy's sparse
    solver: every node with its component's smallest node and the component's size."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    parts = [c.reshape(-1) for c in chunks if len(c)]
    if not parts:
        return ComponentTable(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))
    flat = np.concatenate(parts)
    del parts
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
    graph = coo_matrix(
        (np.ones(len(inverse), dtype=np.int8), (inverse[:, 0], inverse[:, 1])), shape=(len(nodes), len(nodes))
    ).tocsr()
    del inverse
    n, labels = connected_components(graph, directed=False)
    del graph
    rep = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(rep, labels, nodes)  # nodes are sorted: the smallest one represents
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
            yield from zip(
                self.nodes[i : i + chunk].tolist(),
                self.reps[i : i + chunk].tolist(),
                self.sizes[i : i + chunk].tolist(),
            )


def components(edges: np.ndarray) -> list[tuple[int, int, int]]:
    """(node, representative, cluster size) for every node of an (n, 2) edge array (for tests and tools)."""
    return list(component_table([np.asarray(edges, dtype=np.int64).reshape(-1, 2)]).rows())

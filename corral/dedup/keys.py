"""Dedup as keys: the decisions, as pure functions over numpy arrays of compact keys.

A document is named by its locator `loc = file index << 32 | row` (the input file it was read from
and its row among that file's staged documents), so a decision is a sorted int64 array of the
locators that go, applied later by a select pass over each file. Keys are 64-bit hashes (xxHash3
of the key's UTF-8): at 3·10⁹ keys about 0.25 collisions are expected in a whole crawl, the same
order as cc_net's own 64-bit line hashes.

- `losers_by_rank`: among the documents sharing a key, the best-ranked stays; the others go.
- `duplicate_lines`: cc_net's line dedup — a line hash found in two or more documents of a hash
  group (each document counted once, whatever it repeats inside) is removed from all of them.
- `line_owners`: TFDS C4 line dedup — each line belongs to the page of smallest rank.
"""

from __future__ import annotations

import numpy as np
import xxhash

ROW_BITS = 32  # rows of one input file's staged documents: up to 4·10⁹


def key64(text: str) -> int:
    """A 64-bit key of a string (xxHash3: fast, well mixed; maintained, as minhash.py uses it)."""
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))


def hex64(digest_hex: str) -> int:
    """The first 64 bits of a hex digest, as an unsigned int (an md5 as a sortable rank)."""
    return int(digest_hex[:16], 16)


def loc(file_index: int, row: int) -> int:
    return (file_index << ROW_BITS) | row


def locs(file_index: int, n: int) -> np.ndarray:
    return (np.int64(file_index) << np.int64(ROW_BITS)) + np.arange(n, dtype=np.int64)


def file_of(locators: np.ndarray) -> np.ndarray:
    return locators >> np.int64(ROW_BITS)


def concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    """np.concatenate, with an empty array of `dtype` for no parts."""
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def losers_by_rank(keys: np.ndarray, locators: np.ndarray, *ranks: np.ndarray) -> np.ndarray:
    """Sorted locators of every document that is not the first of its key, ordered by `ranks`
    (ascending, the first array most significant) then by locator. Keys shared by nobody cost a sort."""
    if len(keys) == 0:
        return np.empty(0, dtype=np.int64)
    order = np.lexsort((locators, *reversed(ranks), keys))
    k = keys[order]
    later = np.concatenate([[False], k[1:] == k[:-1]])
    return np.sort(locators[order][later])


def descending(values: np.ndarray) -> np.ndarray:
    """A rank array that sorts `values` (unsigned or signed 64-bit) from the largest down."""
    if values.dtype == np.uint64:
        return ~values
    return -values.astype(np.int64)


def duplicate_lines(hashes: np.ndarray, owners: np.ndarray, repeated: np.ndarray | None = None) -> np.ndarray:
    """Sorted distinct line hashes that occur in two or more documents.

    `hashes[i]` occurs in document `owners[i]` (pairs may repeat); `repeated[i]` marks a hash already
    known to occur in two documents (counted where the hashes were collected)."""
    if len(hashes) == 0:
        return np.empty(0, dtype=np.uint64)
    order = np.lexsort((owners, hashes))
    h, o = hashes[order], owners[order]
    distinct = np.concatenate([[True], (h[1:] != h[:-1]) | (o[1:] != o[:-1])])
    h = h[distinct]
    first = np.concatenate([[True], h[1:] != h[:-1]])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(h)))
    dup = h[starts][counts >= 2]
    if repeated is not None and repeated.any():
        dup = np.union1d(dup, hashes[repeated])
    return dup


def line_owners(keys: np.ndarray, ranks: np.ndarray, locators: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct line keys, the locator owning each): the smallest (rank, locator)."""
    if len(keys) == 0:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    order = np.lexsort((locators, ranks, keys))
    k = keys[order]
    first = np.concatenate([[True], k[1:] != k[:-1]])
    return k[first], locators[order][first]


def member_of(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Boolean mask: which `values` are in the sorted array (searchsorted, no set of Python ints)."""
    if len(sorted_values) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    i = np.searchsorted(sorted_values, values)
    i[i == len(sorted_values)] = 0
    return sorted_values[i] == values


def lookup(sorted_keys: np.ndarray, payload: np.ndarray, values: np.ndarray, missing) -> np.ndarray:
    """payload[j] where sorted_keys[j] == value, else `missing`, for each value."""
    out = np.full(len(values), missing, dtype=payload.dtype)
    if len(sorted_keys) == 0 or len(values) == 0:
        return out
    i = np.searchsorted(sorted_keys, values)
    i[i == len(sorted_keys)] = 0
    hit = sorted_keys[i] == values
    out[hit] = payload[i[hit]]
    return out

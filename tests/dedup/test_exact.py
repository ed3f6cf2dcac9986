"""Exact dedup's keys and decisions (corral.dedup.exact, corral.dedup.keys)."""

import numpy as np

from corral.dedup.exact import text_md5, timestamp_rank
from corral.dedup.keys import (
    descending,
    duplicate_lines,
    file_of,
    hex64,
    line_owners,
    loc,
    lookup,
    losers_by_rank,
    member_of,
)


def test_losers_by_rank_keeps_the_best_ranked_of_each_key():
    keys = np.array([5, 5, 7, 5, 9], dtype=np.uint64)
    locs = np.array([10, 11, 12, 13, 14], dtype=np.int64)
    assert losers_by_rank(keys, locs).tolist() == [11, 13]  # no rank: the first locator stays
    rank = np.array([3, 1, 0, 2, 0], dtype=np.int64)
    assert losers_by_rank(keys, locs, rank).tolist() == [10, 13]  # the smallest rank stays
    assert losers_by_rank(np.empty(0, np.uint64), np.empty(0, np.int64)).tolist() == []


def test_latest_timestamp_then_larger_md5_wins():
    old, new = timestamp_rank("2016-03-06T21:03:34Z"), timestamp_rank("2017-12-23T12:46:08Z")
    assert new > old and timestamp_rank(None) == 0 and timestamp_rank("2017") < timestamp_rank("2017-01-02")
    keys = np.array([1, 1], dtype=np.uint64)
    locs = np.array([0, 1], dtype=np.int64)
    ts = np.array([new, old], dtype=np.int64)
    md5 = np.array([hex64(text_md5({"text": t})) for t in ("new", "old")], dtype=np.uint64)
    assert losers_by_rank(keys, locs, descending(ts), descending(md5)).tolist() == [1]
    a, b = (hex64(text_md5({"text": t})) for t in ("alpha", "beta"))  # no timestamps: the larger md5
    lost = losers_by_rank(keys, locs, descending(np.zeros(2, np.int64)), descending(np.array([a, b], np.uint64)))
    assert lost.tolist() == [0 if b > a else 1]


def test_duplicate_lines_count_documents_not_occurrences():
    # hash 1 in documents 10 and 11; hash 2 twice in document 10 only; hash 3 marked repeated by its file
    hashes = np.array([1, 1, 2, 2, 3], dtype=np.uint64)
    owners = np.array([10, 11, 10, 10, 12], dtype=np.uint64)
    repeated = np.array([False, False, False, False, True])
    assert duplicate_lines(hashes, owners, repeated).tolist() == [1, 3]


def test_line_owners_smallest_rank_then_locator():
    keys = np.array([4, 4, 4, 6], dtype=np.uint64)
    ranks = np.array([9, 2, 2, 1], dtype=np.uint64)
    locs = np.array([0, 5, 3, 7], dtype=np.int64)
    k, owner = line_owners(keys, ranks, locs)
    assert k.tolist() == [4, 6] and owner.tolist() == [3, 7]


def test_member_of_and_lookup():
    s = np.array([2, 5, 9], dtype=np.int64)
    assert member_of(s, np.array([1, 2, 9, 10])).tolist() == [False, True, True, False]
    assert lookup(s, np.array([20, 50, 90]), np.array([5, 6, 9]), -1).tolist() == [50, -1, 90]
    assert loc(3, 7) == (3 << 32) | 7 and file_of(np.array([loc(3, 7)])).tolist() == [3]

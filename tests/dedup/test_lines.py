"""cc_net's line dedup (corral.dedup.lines, corral.dedup.keys), each rule on inline cases: line
normalisation and hash, dedup semantics, hash groups and shards, a record's fields after dedup."""

import hashlib
import json

import numpy as np
import pytest

from corral.core.schema import make_record
from corral.dedup import lines as L
from corral.dedup.keys import duplicate_lines


@pytest.mark.parametrize(
    "a,b,same",
    [
        ("HEADER MENU!", "Header Menu", False),  # ASCII punctuation stays (checked by running cc_net)
        ("Footer 2019", "footer 2020", True),  # digits → 0
        ("  Menu  ", "menu", True),  # strip + lower
        ("«Bonjour»", "bonjour", True),  # UNICODE_PUNCT deleted
        ("Café", "Cafe", False),  # accents stay
        ("Page ٣", "page 0", True),  # every Unicode digit, not only ASCII
        ("a\x07b\x85c", "abc", True),  # controls 0–31 and 127–159 deleted
    ],
)
def test_normalize_for_dedup(a, b, same):
    assert (L.normalize_for_dedup(a) == L.normalize_for_dedup(b)) is same


def test_hash_is_first_8_bytes_of_sha1_little_endian():
    assert L.line_hash("Hello") == int.from_bytes(hashlib.sha1(b"hello").digest()[:8], "little")
    assert L.line_hash("") == int.from_bytes(hashlib.sha1(b"").digest()[:8], "little")  # empty lines hashed too


def test_dedup_semantics():
    a = ["x", "y", "y", "z"]
    dups = {L.line_hash("x")}  # x is in two documents
    assert L.remove_duplicate_lines(a, [L.line_hash(s) for s in a], dups) == ["y", "z"]
    assert L.remove_duplicate_lines(["q"], [0], set()) == []  # hash 0 is cc_net's masked sentinel


@pytest.mark.parametrize("n,shards", [(10, 3), (3, 10), (1600, 1600), (5, 1), (7, 5), (5000, 1600)])
def test_shards_are_cc_nets_contiguous_slices(n, shards):
    for i in range(n):
        s = L.shard_of(i, n, shards)
        assert s * n // shards <= i < (s + 1) * n // shards


def test_groups_of_hash_in_mem_shards():
    assert [L.group_of(i, 1600, 1600, 50) for i in (0, 49, 50, 1599)] == [0, 0, 1, 31]


def test_line_dedup_of_a_group():
    # x is in a, b, c, e: removed there; w is in b and c: removed; c keeps only an empty line, which
    # is no text: dropped like b. y repeats inside a: its first occurrence stays.
    assert dedup([["x", "y", "y", "z"], ["x", "w"], ["x", "w", ""], ["only", "x"]]) == ["y\nz", None, None, "only"]
    assert dedup([["x"]]) == ["x"]  # alone in its group, a line stays


def test_dedup_record_updates_cc_net_fields():

    r = L.dedup_record(make_record("commoncrawl", "k", "a\nb\na", meta={"dedup_group": 0}), set())
    m = json.loads(r["meta"])
    assert r["text"] == "a\nb" and (m["original_nlines"], m["nlines"], m["original_length"], m["length"]) == (
        3,
        2,
        5,
        3,
    )


def dedup(docs: list[list[str]]) -> list[str | None]:
    """cc_net's line dedup of one hash group as the build runs it: per document its line hashes,
    the group's duplicates from the distinct (hash, document) pairs, then each document rebuilt."""
    recs = [make_record("commoncrawl", str(i), "\n".join(lines)) for i, lines in enumerate(docs)]
    hashes = [L.doc_hashes(r["text"]) for r in recs]
    flat = np.array([h for hs in hashes for h in set(hs)], dtype=np.uint64)
    owners = np.array([i for i, hs in enumerate(hashes) for _ in set(hs)], dtype=np.uint64)
    dups = set(duplicate_lines(flat, owners).tolist())
    out = [L.dedup_record(r, dups, hs) for r, hs in zip(recs, hashes)]
    return [None if r is None else r["text"] for r in out]

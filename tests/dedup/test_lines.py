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
    text = "a\nb\na"
    keep = L.kept_lines(L.doc_hashes(text), np.array([0, 3]), np.zeros(3, bool))
    r = L.dedup_record(make_record("commoncrawl", "k", text, meta={"dedup_group": 0}), keep)
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
    hashes = [L.doc_hashes(r["text"]).tolist() for r in recs]
    flat = np.array([h for hs in hashes for h in set(hs)], dtype=np.uint64)
    owners = np.array([i for i, hs in enumerate(hashes) for _ in set(hs)], dtype=np.uint64)
    dups = duplicate_lines(flat, owners)
    all_hashes = np.array([h for hs in hashes for h in hs], dtype=np.uint64)
    offsets = np.cumsum([0] + [len(hs) for hs in hashes])
    keep = L.kept_lines(all_hashes, offsets, np.isin(all_hashes, dups))
    out = [L.dedup_record(r, keep[a:b]) for r, a, b in zip(recs, offsets[:-1], offsets[1:])]
    # the whole-file mask keeps exactly the lines of the reference rule, document by document
    for r, hs, o in zip(recs, hashes, out):
        ref = L.remove_duplicate_lines(r["text"].split("\n"), hs, set(dups.tolist()))
        assert o["text"].split("\n") == ref if o is not None else not "".join(ref).strip()
    return [None if r is None else r["text"] for r in out]


@pytest.mark.parametrize(
    "text",
    [
        "Header MENU!\n  Footer 2019  \n«Bonjour»\nCafé ٣\na\x07b\x85c\n\n\t x \x1c",
        "ΟΔΟΣ\nΣ\nσΣ x\nİstanbul ＫＡ１２\n𝟘𝟙 digits\n\x01 lead\n",  # final sigma, dotted I, astral digits
        "plain ascii 123\n  \nline two\x7f\n\x0b\x0cvt",
        "ΑΣ\u3000\nΒ\nΑΣ\u00a0\u2003\n\u2029ΣΑ\n\u1680ΟΣ'\u0345 ς\u2028Σ\x85x",  # sigma beside Unicode spaces
        "",
    ],
)
def test_doc_hashes_equal_each_lines_hash(text):
    assert L.doc_hashes(text).tolist() == [L.line_hash(ln) for ln in text.split("\n")]


def test_non_ascii_digit_class_is_every_digit():
    everything = "".join(map(chr, range(0x80, 0x110000)))
    bmp, astral = L._non_ascii_digits()
    assert set(L._DIGITS.findall(everything)) == set(bmp.findall(everything)) | set(astral.findall(everything))


def test_kept_lines_whole_file():
    docs = [["x", "y", "y", "z"], ["x", "w"], ["q", "q"]]
    hashes = np.array([L.line_hash(s) for d in docs for s in d], dtype=np.uint64)
    hashes[-1] = 0  # cc_net's masked sentinel: never kept
    offsets = np.array([0, 4, 6, 8])
    dup = np.isin(hashes, [L.line_hash("x")])
    assert L.kept_lines(hashes, offsets, dup).tolist() == [False, True, False, True, False, True, True, False]

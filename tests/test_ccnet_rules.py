"""RECIPE.md §2 rules, each on inline cases: line normalisation and hash, dedup semantics, hash
groups, language-ID input and rounding, perplexity normalisation and formula, bucket edges."""

import hashlib

import numpy as np
import pytest

from corral.dedup import keys as K
from corral.dedup import lines as L
from corral.pipeline.quality import ccnet_rules as R
from corral.schema import make_record


def test_unicode_punct_keys_are_cc_nets_34():
    assert len(L.UNICODE_PUNCT_KEYS) == 34 == len(set(L.UNICODE_PUNCT_KEYS))
    assert set(L.UNICODE_PUNCT_KEYS) == set(R.UNICODE_PUNCT)


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


def dedup(docs: list[list[str]]) -> list[str | None]:
    """cc_net's line dedup of one hash group as the build runs it: per document its line hashes,
    the group's duplicates from the distinct (hash, document) pairs, then each document rebuilt."""
    recs = [make_record("commoncrawl", str(i), "\n".join(lines)) for i, lines in enumerate(docs)]
    hashes = [L.doc_hashes(r["text"]) for r in recs]
    flat = np.array([h for hs in hashes for h in set(hs)], dtype=np.uint64)
    owners = np.array([i for i, hs in enumerate(hashes) for _ in set(hs)], dtype=np.uint64)
    dups = set(K.duplicate_lines(flat, owners).tolist())
    out = [L.dedup_record(r, dups, hs) for r, hs in zip(recs, hashes)]
    return [None if r is None else r["text"] for r in out]


def test_line_dedup_of_a_group():
    # x is in a, b, c, e: removed there; w is in b and c: removed; c keeps only an empty line, which
    # is no text: dropped like b. y repeats inside a: its first occurrence stays.
    assert dedup([["x", "y", "y", "z"], ["x", "w"], ["x", "w", ""], ["only", "x"]]) == ["y\nz", None, None, "only"]
    assert dedup([["x"]]) == ["x"]  # alone in its group, a line stays


def test_dedup_record_updates_cc_net_fields():
    import json

    r = L.dedup_record(make_record("commoncrawl", "k", "a\nb\na", meta={"dedup_group": 0}), set())
    m = json.loads(r["meta"])
    assert r["text"] == "a\nb" and (m["original_nlines"], m["nlines"], m["original_length"], m["length"]) == (
        3,
        2,
        5,
        3,
    )


def test_lid_input_and_rounding():
    assert R.lid_input("one\ntwo\nthree") == "onetwothree"  # no separator (cc_net quirk)
    assert R.lid_result(["__label__en"], [0.49999]) == ("en", 0.5)
    assert R.lid_result(["__label__en"], [0.285]) == ("en", 0.28)  # numpy's rounding, as cc_net
    assert R.near_rounding_boundary(0.28500001) and not R.near_rounding_boundary(0.2849)
    assert R.lid_keep("en", 0.5, 0.5, ["en"]) is None  # rounded score ≥ threshold is kept
    assert R.lid_keep("en", 0.49, 0.5, ["en"]) == "low_lang_score"
    assert R.lid_keep("fr", 0.9, 0.5, ["en"]) == "language_not_selected"
    assert R.lid_keep("fr", 0.9, 0.5, []) is None


@pytest.mark.parametrize(
    "raw,norm",
    [
        ("Hello World!\nSecond", "hello world!second"),  # newlines deleted: lines glued (checked by running cc_net)
        ("Café Crème", "cafe creme"),
        ("In 2019 — 5 items…", "in 0000  -  0 items..."),  # "—" → " - " inside the existing spaces
        ("«Oui», dit-il．", '"oui", dit-il. '),
        ("tab\there", "tabhere"),
    ],
)
def test_perplexity_normalisation(raw, norm):
    assert R.normalize(raw) == norm


def test_accents_not_recomposed():
    assert R.normalize("한") == R.strip_accents("한") and len(R.normalize("한")) == 3  # Hangul stays decomposed


def test_perplexity_formula():
    assert R.perplexity(-10.0, 5) == 100.0
    assert R.perplexity(-7.3, 3) == round(10 ** (7.3 / 3), 1)


@pytest.mark.parametrize(
    "pp,expected", [(339.9, "head"), (340.0, "middle"), (519.9, "middle"), (520.0, "tail"), (None, "all")]
)
def test_bucket_edges_with_cc_net_english_cutoffs(pp, expected):
    assert R.bucket(pp, (340.0, 520.0)) == expected  # RECIPE.md §2.9: en p30 = 340, p60 = 520
    assert R.bucket(100.0, None) == "all"


def test_cutoff_csv():
    rows = [",en,fr"] + [f"{i},{i * 10},{i * 20}" for i in range(100)]
    assert R.read_cutoff_csv("\n".join(rows)) == {"en": (300.0, 600.0), "fr": (600.0, 1200.0)}
    assert R.cutoffs_from_quantiles(list(range(101)), 30, 60) == (30, 60)


def test_quality_input_and_probability():
    assert R.quality_input("  a\nb\n c ") == "a b  c"
    assert R.wiki_probability(["__label__wiki"], [0.8]) == 0.8
    assert R.wiki_probability(["__label__cc"], [0.8]) == pytest.approx(0.2)


def test_select():
    r = {"bucket": "head", "quality": 0.7}
    assert R.select_reason(r, ["head", "middle"], 0.5) is None
    assert R.select_reason({**r, "bucket": "tail"}, ["head", "middle"], 0.5) == "bucket_tail"
    assert R.select_reason({**r, "quality": 0.3}, ["head", "middle"], 0.5) == "low_quality"
    assert R.select_reason({**r, "quality": 0.3}, ["head", "middle"], 0.25) is None  # RP's threshold
    assert R.select_reason({**r, "quality": None}, [], 0.5) == "unscored_quality"


def test_wet_body_title_and_trailing_empties():
    assert R.parse_wet_body("Title\r\n line one \nline two\n\n") == ("Title", ["line one", "line two"])

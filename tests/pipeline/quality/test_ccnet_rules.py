"""cc_net's document rules (corral.pipeline.quality.ccnet_rules, docs/recipe/commoncrawl.md), each on
inline cases: language-ID input and rounding, perplexity normalisation and formula, bucket edges,
the quality classifier's input, WET bodies. (Line dedup: tests/dedup/test_lines.py.)"""

import pytest

from corral.dedup import lines as L
from corral.pipeline.quality import ccnet_rules as R


def test_unicode_punct_keys_are_cc_nets_34():
    assert len(L.UNICODE_PUNCT_KEYS) == 34 == len(set(L.UNICODE_PUNCT_KEYS))
    assert set(L.UNICODE_PUNCT_KEYS) == set(R.UNICODE_PUNCT)


def test_lid_input_and_rounding():
    assert R.lid_input("one\ntwo\nthree") == "onetwothree"  # no separator (cc_net quirk)
    assert R.lid_result(["__label__en"], [0.49999]) == ("en", 0.5)
    assert R.lid_result(["__label__en"], [0.285]) == ("en", 0.28)  # numpy's rounding, as cc_net
    assert R.near_rounding_boundary(0.28500001) and not R.near_rounding_boundary(0.2849)
    assert R.lid_result(["__label__en"], [0.87654], rounding=1) == ("en", 0.9)  # langid.rounding
    assert R.lid_result(["__label__en"], [0.87654], rounding=3) == ("en", 0.877)
    assert R.near_rounding_boundary(0.8500001, rounding=1) and not R.near_rounding_boundary(0.8500001)
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
    assert R.bucket(pp, (340.0, 520.0)) == expected  # docs/recipe/commoncrawl.md#buckets: en p30 = 340, p60 = 520
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

"""docs/recipe/c4.md C4 rules (TFDS v3.0.1) on inline cases, then the real C4 and WET samples."""

import gzip
import json

import pytest
from helpers import shard_records, stages, write_manifest

from corral.manifests.verify import verify_build
from corral.pipeline.build import build
from corral.pipeline.sources.c4 import rules as c4

OPTS = stages("c4")["clean"]
GOOD = "This is a perfectly fine sentence for the page."


def page(*lines):
    return "\n".join(lines)


def test_constants_match_tfds():
    assert (OPTS["min_words_per_line"], OPTS["min_sentences"], OPTS["max_word_length"], OPTS["max_length"]) == (
        5,
        3,
        1000,
        190_000,
    )
    assert OPTS["end_marks"] == [".", "?", "!", '"']
    assert c4.POLICY_SUBSTRINGS == (
        "terms of use",
        "privacy policy",
        "cookie policy",
        "uses cookies",
        "use of cookies",
        "use cookies",
    )


@pytest.mark.parametrize(
    "url,norm",
    [
        ("https://www.example.com/a/", "example.com/a"),
        ("http://example.com/a?utm_source=x", "example.com/a"),
        ("https://example.com/b?ref=home", "example.com/b"),
        ("https://example.com/c?feed=rss", "example.com/c"),
        ("https://example.com/d?id=3", "example.com/d?id=3"),
        ("https://a.org/x//", "a.org/x"),
        ("http://www.a.org///", "a.org"),
    ],
)
def test_normalize_url(url, norm):
    assert c4.normalize_url(url) == norm


def test_clean_page_keeps_good_lines():
    text, reason = c4.clean_page(page(GOOD, GOOD, GOOD), OPTS)
    assert reason is None and text == page(GOOD, GOOD, GOOD)


@pytest.mark.parametrize(
    "bad_line",
    [
        "Too few words here.",  # < 5 words
        "This line has no terminal punctuation at all",  # no end mark
        "This line ends with a curly quote mark ”",  # ASCII end marks only
        "This line trails off into an ellipsis...",  # ellipsis
        "Please enable Javascript to view this page now.",  # javascript
        "By using this site you agree to the terms of use.",  # policy substring
        "This site uses cookies to improve your experience.",
        "A line with a " + "x" * 1001 + " monster word in it.",  # word > 1000 chars
    ],
)
def test_clean_page_drops_lines(bad_line):
    text, _ = c4.clean_page(page(GOOD, bad_line, GOOD, GOOD), OPTS)
    assert text == page(GOOD, GOOD, GOOD)


def test_citations_removed_before_the_checks():
    text, _ = c4.clean_page(
        page(
            "This sentence has a citation marker in it.[1]",
            GOOD,
            GOOD,
            "Another fine line with markers [edit] and [citation needed] here.",
        ),
        OPTS,
    )
    assert text.splitlines()[0] == "This sentence has a citation marker in it."
    assert text.splitlines()[-1] == "Another fine line with markers  and  here."


def test_page_drops():
    assert c4.clean_page(page(GOOD, "Lorem ipsum dolor sit amet, consectetur adipiscing.", GOOD, GOOD), OPTS) == (
        None,
        "lorem_ipsum",
    )
    assert c4.clean_page(page(GOOD, "The function body goes here { return x; } okay.", GOOD), OPTS) == (
        None,
        "curly_bracket",
    )
    assert c4.clean_page(page(GOOD, GOOD), OPTS) == (None, "too_few_sentences")


def test_page_level_checks_only_see_surviving_lines():
    # docs/recipe/c4.md#cleaning-a-page: a "{" or "lorem ipsum" in a line already dropped does not drop the page.
    text, reason = c4.clean_page(page(GOOD, "{ short }", "lorem ipsum", GOOD, GOOD), OPTS)
    assert reason is None and text == page(GOOD, GOOD, GOOD)


def test_sentences_counted_per_line():
    two = "The first sentence is here. The second sentence follows it."
    assert c4.count_sentences(two) == 2
    text, reason = c4.clean_page(page(two, GOOD), OPTS)
    assert reason is None


def test_badwords_regex_word_boundaries(shared_data):
    words = c4.load_badwords(str(shared_data / "c4" / "badwords-en-25e679f.txt"))
    assert len(words) == 377
    pat = c4.badwords_regex(words)
    assert c4.has_badword("2g1c at the start", pat)
    assert c4.has_badword("ends with 2g1c", pat)
    assert c4.has_badword("Multi word: 2 Girls 1 Cup.", pat)
    assert not c4.has_badword("scunthorpe is fine", c4.badwords_regex(["cunt"]))


def test_split_wet_body():
    assert c4.split_wet_body("  Title line \n\nContent-Length: 5\nWARC-Type: x\n body \n") == "Title line\nbody"


def test_keep_owned_lines():
    owned = {c4.line_key("A line."), c4.line_key("c")}
    assert c4.keep_owned_lines("A line.\nb\n  a LINE. \nc", owned) == "A line.\nc"


def _page(url, *lines):
    return {"text": "\n".join(lines), "url": url, "timestamp": "2019-04-01"}


def test_line_dedup_and_url_dedup_on_beam(tmp_path):
    shared = "This shared boilerplate sentence appears on two pages."
    s = [f"Sentence number {i} is unique to this page alone." for i in range(12)]
    pages = [
        _page("https://a.org/x", shared, s[0], s[1], s[2]),
        _page("https://b.org/y", shared, s[3], s[4], s[5], s[3]),
        _page("https://www.a.org/x/", s[6], s[7], s[8]),  # same normalised URL as the first
    ]
    p = tmp_path / "c4.json.gz"
    with gzip.open(p, "wt") as f:
        f.write("\n".join(json.dumps(x) for x in pages) + "\n")
    m = write_manifest(
        tmp_path / "m.yaml", {"c4": {"inputs": [str(p)], "clean": {"enabled": True, "lang_threshold": 0.0}}}
    )
    manifest = build(m, str(tmp_path / "out"))
    kept = {r["url"]: r["text"].split("\n") for r in shard_records(str(tmp_path / "out"), "c4")}
    assert manifest.sources["c4"].funnel.dropped == {"duplicate_url": 1}
    owner = min(["https://a.org/x", "https://b.org/y"], key=c4.url_key)
    other = ({"https://a.org/x", "https://b.org/y"} - {owner}).pop()
    survivor = [u for u in kept if c4.normalize_url(u) == "a.org/x"]
    assert len(survivor) == 1
    if owner in kept:
        assert shared in kept[owner]
    assert other not in kept or shared not in kept[other]
    if "https://b.org/y" in kept:
        assert kept["https://b.org/y"].count(s[3]) == 1  # within-page repeat dropped


def test_real_published_c4(shared_data, tmp_path):
    m = write_manifest(tmp_path / "m.yaml", {"c4": {"inputs": [str(shared_data / "c4" / "c4-sample.*.json.gz")]}})
    manifest = build(m, str(tmp_path / "out"))
    f = manifest.sources["c4"].funnel
    assert (f.input, f.kept) == (30, 30) and f.balanced()
    assert verify_build(str(tmp_path / "out")).ok
    recs = shard_records(str(tmp_path / "out"), "c4")
    assert all(r["url"].startswith("http") and json.loads(r["meta"])["timestamp"] for r in recs)


def test_real_wet_rebuilt_as_c4(shared_data, tmp_path):
    wet = shared_data / "commoncrawl" / "CC-MAIN-20170720121902-20170720141902-00000.head43.warc.wet.gz"
    bad = shared_data / "commoncrawl" / "CC-MAIN-20170720121902-20170720141902-00000.truncated.warc.wet.gz"
    badwords = shared_data / "c4" / "badwords-en-25e679f.txt"
    m = write_manifest(
        tmp_path / "m.yaml",
        {
            "c4": {
                "inputs": [str(wet), str(bad)],
                "read": {"format": "wet"},
                "clean": {"enabled": True, "badwords": str(badwords)},
            }
        },
    )
    manifest = build(m, str(tmp_path / "out"))
    f = manifest.sources["c4"].funnel
    assert f.balanced() and f.errors == {"truncated_or_corrupt": 1}
    # Each file: 1 warcinfo + 43 conversion records, all complete; the truncated one adds its broken tail.
    assert f.input == 44 + 44 + 1
    assert f.dropped["not_conversion_record"] == 2
    assert f.kept >= 1 and "too_few_sentences" in f.dropped and "not_english" in f.dropped
    assert verify_build(str(tmp_path / "out")).ok
    for r in shard_records(str(tmp_path / "out"), "c4"):
        assert all(ln.endswith((".", "?", "!", '"')) for ln in r["text"].split("\n"))


def test_url_dedup_keeps_the_largest_text_md5(tmp_path):
    import hashlib

    texts = [
        f"Page {w} has three sentences here. It is long enough to stay. Its end is a full stop."
        for w in ("one", "two", "three")
    ]
    p = tmp_path / "c4.json.gz"
    with gzip.open(p, "wt") as f:  # one URL three times, as http/https and with a trailing slash
        f.write(
            "\n".join(
                json.dumps(_page(u, t))
                for u, t in zip(("https://a.org/x", "http://a.org/x", "https://www.a.org/x/"), texts)
            )
            + "\n"
        )
    m = write_manifest(
        tmp_path / "m.yaml",
        {"c4": {"inputs": [str(p)], "clean": {"enabled": True, "lang_threshold": 0.0, "min_sentences": 1}}},
    )
    manifest = build(m, str(tmp_path / "out"))
    best = max(texts, key=lambda t: hashlib.md5(t.encode()).hexdigest())
    assert [r["text"] for r in shard_records(str(tmp_path / "out"), "c4")] == [best]
    assert manifest.sources["c4"].funnel.dropped == {"duplicate_url": 2}


def test_validation_split_rule():
    urls = [f"https://example.com/{i}" for i in range(20000)]
    share = sum(c4.split_of(u) == "validation" for u in urls) / len(urls)
    assert 0.0005 < share < 0.002  # 0.1% by md5(url) % 1000 == 0
    assert c4.split_of("u", "/d/c4-validation.00000-of-00008.json.gz") == "validation"
    assert c4.split_of("u", "/d/c4-train.00000-of-01024.json.gz") == "train"

import textwrap

import pytest
from helpers import TABLE1_WEIGHTS

from corral.manifests.mixture import ManifestError, load_mixture, parse_mixture, parse_quantity
from corral.manifests.options import source_stages
from corral.pipeline.sources.github import GITHUB_EXTENSIONS
from corral.pipeline.sources.registry import SOURCES, by_name
from corral.pipeline.sources.wikipedia import WIKI_LANGUAGES

GOOD = """\
name: t
target_tokens: 1M
sources:
  c4:
    weight: 0.75
    inputs: [c4/*.json.gz]
  books:
    weight: 0.25
    inputs: [books/*.txt]
"""


def problems(text):
    with pytest.raises(ManifestError) as e:
        parse_mixture(textwrap.dedent(text), SOURCES, "m.yaml")
    return str(e.value)


def test_llama1_is_table1(manifests_dir):
    m = load_mixture(manifests_dir / "llama1.yaml", SOURCES)
    assert m.weights == TABLE1_WEIGHTS
    assert m.target_tokens == 1_400_000_000_000
    assert (
        sorted(m.sources["wikipedia"].stages["read"]["languages"]) == sorted(WIKI_LANGUAGES)
        and len(WIKI_LANGUAGES) == 20
    )
    cc = m.sources["commoncrawl"].stages
    assert cc["read"]["min_len"] == 300 and cc["langid"]["threshold"] == 0.5 and cc["langid"]["languages"] == ["en"]
    assert (cc["perplexity"]["percentile_head"], cc["perplexity"]["percentile_tail"]) == (30, 60)
    assert cc["perplexity"]["keep_buckets"] == ["head", "middle"] and cc["line_dedup"]["hash_in_mem"] == 50
    gh = m.sources["github"].stages
    assert gh["filter"] == {
        "extensions": list(GITHUB_EXTENSIONS),
        "max_line_length": 1000,
        "max_avg_line_length": 100,
        "min_alnum_fraction": 0.25,
        "min_alpha_per_token": 1.5,
    }
    assert gh["exact_dedup"]["enabled"] is True
    assert m.sources["books"].stages["minhash"] == {
        "enabled": True,
        "threshold": 0.9,
        "ngram": 5,
        "num_perm": None,
        "verify": True,
        "against": [],
    }
    assert m.sources["stackexchange"].stages["read"]["top_sites"] == 28
    assert m.sections["tokenizer"]["vocab_size"] == 32000


def test_sample_manifest_is_valid(manifests_dir):
    m = load_mixture(manifests_dir / "sample.yaml", SOURCES)
    assert set(m.sources) == {s.name for s in SOURCES}
    assert abs(sum(m.weights.values()) - 1) < 1e-9


def test_defaults_fill_every_stage():
    m = parse_mixture(GOOD, SOURCES)
    assert set(m.sources["c4"].stages) == set(source_stages(by_name()["c4"]))
    assert m.sources["c4"].stages["clean"]["min_words_per_line"] == 5
    settings = m.settings()
    assert settings["sources"]["books"]["minhash"]["threshold"] == 0.9
    assert settings["output"]["shard_max_bytes"] == 256 * 2**20


def test_error_names_file_field_and_line_unknown_source():
    msg = problems(GOOD.replace("  books:", "  bookz:"))
    assert "m.yaml: sources.bookz (line 7): unknown field" in msg


def test_error_unknown_option_and_stage():
    msg = problems(GOOD + "    read: {strip_gutenbreg: true}\n    polish: {x: 1}\n")
    assert "sources.books.read.strip_gutenbreg (line 10): unknown field" in msg
    assert "sources.books.polish (line 11): unknown field" in msg


def test_error_unknown_top_level_field():
    assert "targets (line 1): unknown top-level field" in problems("targets: 3\n" + GOOD)


def test_error_weights_do_not_sum_to_one():
    msg = problems(GOOD.replace("weight: 0.25", "weight: 0.2500011"))
    assert "weights must sum to 1" in msg and "1.0000011" in msg
    parse_mixture(GOOD.replace("weight: 0.25", "weight: 0.2500001"), SOURCES)  # within 1e-6: fine


def test_error_no_inputs():
    assert "sources.books.inputs (line 9): required" in problems(GOOD.replace("[books/*.txt]", "[]"))
    assert "sources.books.inputs: required" in problems(GOOD.replace("    inputs: [books/*.txt]\n", ""))
    assert "sources.books.inputs[0] (line 9): must be a non-empty path" in problems(GOOD.replace("books/*.txt", "''"))


def test_error_negative_numbers():
    assert "sources.c4.weight (line 5): must be between 0 and 1" in problems(GOOD.replace("0.75", "-0.75"))
    msg = problems(
        GOOD + "    minhash: {ngram: -5}\n  github:\n    weight: 0\n    inputs: [g]\n"
        "    filter: {max_line_length: -1}\n"
    )
    assert "sources.books.minhash.ngram (line 10): must be ≥ 1" in msg
    assert "sources.github.filter.max_line_length (line 14): must be ≥ 0, got -1 (negative)" in msg
    assert "target_tokens (line 2): must be > 0" in problems(GOOD.replace("1M", "-5"))


def test_error_wrong_types_and_choices():
    msg = problems(GOOD + "    read: {strip_gutenberg: yes please}\n    minhash: {threshold: high, enabled: 1}\n")
    assert "strip_gutenberg (line 10): must be true or false" in msg
    assert "minhash.threshold (line 11): must be a number" in msg
    assert "minhash.enabled (line 11): must be true or false" in msg
    msg = problems(
        GOOD.replace(
            "  books:\n    weight: 0.25\n    inputs: [books/*.txt]\n",
            "  stackexchange:\n    weight: 0.25\n    inputs: [s]\n    read: {score_sort: alpha}\n",
        )
    )
    assert "score_sort (line 10): must be one of numeric, string" in msg
    assert "above 1" not in msg


def test_error_all_problems_reported_at_once():
    msg = problems(GOOD.replace("0.75", "-1").replace("[books/*.txt]", "[]"))
    assert "sources.c4.weight" in msg and "sources.books.inputs" in msg


def test_error_structure():
    assert "must be a YAML mapping" in problems("- a\n- b\n")
    assert "name: required" in problems(GOOD.replace("name: t\n", ""))
    assert "sources: required" in problems("name: t\ntarget_tokens: 5\n")
    assert "not valid YAML (line 2)" in problems("name: t\n  x: [\n")
    assert "must be a mapping with weight" in problems(
        GOOD.replace("  books:\n    weight: 0.25\n    inputs: [books/*.txt]\n", "  books: 3\n")
    )


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ManifestError, match="nope.yaml: cannot read"):
        load_mixture(tmp_path / "nope.yaml", SOURCES)


@pytest.mark.parametrize(
    "value,expected",
    [
        (1400000000000, 1_400_000_000_000),
        ("1.4T", 1_400_000_000_000),
        ("200B", 200_000_000_000),
        ("256MiB", 256 * 2**20),
        ("2M", 2_000_000),
        ("1.5e3", 1500),
        (7.0, 7),
        ("20GB", 20 * 10**9),
    ],
)
def test_parse_quantity(value, expected):
    assert parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["1.4X", "lots", True, float("inf"), None])
def test_parse_quantity_rejects(value):
    with pytest.raises(ValueError):
        parse_quantity(value)


def test_inputs_resolve_env_and_relative_paths(tmp_path, monkeypatch):
    p = tmp_path / "m.yaml"
    p.write_text(GOOD.replace("[c4/*.json.gz]", "['${RAWX}/c4/*.json.gz', 'gs://b/c4/*']"))
    m = load_mixture(p, SOURCES)
    with pytest.raises(ManifestError, match=r"sources.c4.inputs\[0\]: environment variable\(s\) RAWX not set"):
        m.resolved_inputs("c4")
    monkeypatch.setenv("RAWX", "/data/raw")
    assert m.resolved_inputs("c4") == ["/data/raw/c4/*.json.gz", "gs://b/c4/*"]
    assert m.resolved_inputs("books") == [str(tmp_path / "books/*.txt")]


def test_options_that_did_nothing_are_refused_or_bounded():
    # line_dedup.buckets was never read: it is gone, so setting it is a mistake named by its field
    cc = "  commoncrawl:\n    weight: 0\n    inputs: [w]\n"
    msg = problems(GOOD + cc + "    line_dedup: {buckets: 4}\n")
    assert "sources.commoncrawl.line_dedup.buckets (line 13): unknown field" in msg
    # langid.rounding is read by the tagger (a build test checks the scores it gives)
    assert "langid.rounding (line 13): must be ≤ 8" in problems(GOOD + cc + "    langid: {rounding: 12}\n")
    assert "langid.rounding (line 13): must be ≥ 0" in problems(GOOD + cc + "    langid: {rounding: -1}\n")

"""The registry: a plain list of the sources a build knows, each implementing the source protocol."""

from corral.manifests.options import source_stages
from corral.manifests.table1 import ROWS
from corral.pipeline.sources.base import Source
from corral.pipeline.sources.registry import SOURCES, by_name


def test_the_registry_lists_table_1s_sources_first_in_its_order():
    assert [s.name for s in SOURCES][: len(ROWS)] == list(ROWS)
    assert by_name() == {s.name: s for s in SOURCES}


def test_every_source_implements_the_protocol():
    for source in SOURCES:
        assert isinstance(source, Source)
        assert type(source).read is not Source.read, f"{source.name} reads nothing"
        stages = source_stages(source)
        assert "minhash" in stages and "exact_dedup" in stages
        assert set(source.options) <= set(stages)
        assert all(dep in by_name() for dep in source.learns_from)


def test_per_source_defaults_of_the_common_stages():
    sources = by_name()
    assert source_stages(sources["github"])["exact_dedup"]["enabled"].default is True
    assert source_stages(sources["books"])["minhash"]["threshold"].default == 0.9
    assert source_stages(sources["c4"])["exact_dedup"]["enabled"].default is False
    assert source_stages(sources["arxiv"])["minhash"]["enabled"].default is False


def test_rounds_follow_the_stage_settings():
    books = by_name()["books"]
    on = {"exact_dedup": {"enabled": True}, "minhash": {"enabled": True}}
    off = {"exact_dedup": {"enabled": False}, "minhash": {"enabled": False}}
    assert books.rounds(on) == ["unique", "exact", "near"]
    assert books.rounds(off) == ["unique"]


def test_only_commoncrawl_learns_and_only_when_it_trains_side_models():
    cc = by_name()["commoncrawl"]
    stages = {name: {k: o.default for k, o in opts.items()} for name, opts in source_stages(cc).items()}
    assert cc.learns_from == ("wikipedia",) and len(cc.learning(stages)) == 2
    stages["perplexity"].update(sp_model="sp.model", lm_model="lm.bin")
    stages["quality"]["enabled"] = False
    assert cc.learning(stages) == []
    assert all(not s.learns_from for s in SOURCES if s is not cc)

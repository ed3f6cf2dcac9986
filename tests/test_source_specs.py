"""The one declaration of the sources (corral.source_specs) and what derives from it."""

import importlib

from corral.core import schema
from corral.manifests.options import source_stages
from corral.source_specs import SOURCES, SPECS, build_order, display, table_order


def test_every_source_has_a_module_options_and_a_row_name():
    assert SOURCES == ("commoncrawl", "c4", "github", "wikipedia", "books", "arxiv", "stackexchange")
    assert schema.SOURCES == SOURCES
    for spec in SPECS:
        module = importlib.import_module(spec.module)
        assert hasattr(module, "read_file") or hasattr(module, "add_phases"), spec.name
        assert "minhash" in source_stages(spec.name) and "exact_dedup" in source_stages(spec.name)
    assert [display(s) for s in SOURCES] == [
        "CommonCrawl",
        "C4",
        "Github",
        "Wikipedia",
        "Books",
        "ArXiv",
        "StackExchange",
    ]
    assert display("elsewhere") == "elsewhere"


def test_per_source_defaults_of_the_common_stages():
    assert source_stages("github")["exact_dedup"]["enabled"].default is True
    assert source_stages("books")["minhash"]["threshold"].default == 0.9
    assert source_stages("c4")["exact_dedup"]["enabled"].default is False
    assert source_stages("arxiv")["minhash"]["enabled"].default is False


def test_a_source_is_built_after_those_it_learns_from():
    assert build_order(["c4", "commoncrawl", "wikipedia"]).index("wikipedia") == 0
    assert build_order(["books", "c4"]) == ["books", "c4"]
    assert table_order(["stackexchange", "commoncrawl", "other"]) == ["commoncrawl", "stackexchange", "other"]

"""A source's phases in a build's graph (corral.pipeline.phases): its own, then the rounds its
settings enable, then select, which waits for the near-dup clusters."""

from corral.engine.graph import Graph
from corral.manifests.options import defaults, source_stages
from corral.pipeline.phases import add_source
from corral.pipeline.sources.base import Piece, SourcePlan
from corral.pipeline.sources.registry import by_name

OUTPUT = {"compression": "zstd", "shard_max_rows": 100, "shard_max_bytes": 1 << 20}


def _labels(name: str, **stage_overrides) -> list[str]:
    source = by_name()[name]
    stages = {stage: defaults(opts) for stage, opts in source_stages(source).items()}
    for stage, opts in stage_overrides.items():
        stages[stage].update(opts)
    graph = Graph()
    plan = SourcePlan(name, stages, OUTPUT, "/tmp/out", [Piece("a"), Piece("b")], fingerprint="f")
    staged, selected = add_source(graph, source, plan)
    assert selected.phases[0] is graph.phases[-1]
    return [ph.label for ph in graph.phases]


def test_the_rounds_follow_the_settings():
    assert _labels("books") == ["books/stage", "books/unique", "books/near-lsh", "books/near-clusters", "books/select"]
    assert _labels("books", minhash={"enabled": False}, exact_dedup={"enabled": True}) == [
        "books/stage",
        "books/unique",
        "books/exact",
        "books/select",
    ]


def test_a_source_with_passes_of_its_own_ends_the_same_way():
    labels = _labels("commoncrawl")
    assert labels[0] == "commoncrawl/cc-read" and labels[-2:] == ["commoncrawl/unique", "commoncrawl/select"]
    assert "commoncrawl/models" in labels and "commoncrawl/cc-tag" in labels

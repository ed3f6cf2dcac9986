"""The options a mixture manifest may set: what an option is, the stages every source has, and the
top-level sections. Each source declares its own stage sections (its `options`, beside its rules in
corral.pipeline.sources); an option listed nowhere is a configuration error (so a typo never
silently falls back to a default). Defaults follow docs/recipe/ (a page per source says each
option's rule and public source): the paper's intent first; RedPajama's choices where the paper is
silent; RedPajama's bugs fixed, each fix a named option
(docs/recipe/README.md#where-the-references-disagree).

The resolved values (defaults filled in) are what the build manifest records as each stage's
settings, so shards built with different settings are never mixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Option:
    """One stage option: its default, its kind, and its bounds."""

    default: Any
    kind: str  # int | float | bool | str | str_list | quantity (int or "1.4T", "256MiB")
    doc: str
    choices: tuple = ()
    nullable: bool = False
    minimum: float | None = 0  # numbers are non-negative unless an option says otherwise
    maximum: float | None = None
    item_choices: tuple = ()  # allowed items of a str_list


# Stages every source has: exact and near-duplicate removal (docs/recipe/README.md#deduplication).
COMMON_STAGES: dict[str, dict[str, Option]] = {
    "exact_dedup": {
        "enabled": Option(False, "bool", "drop documents whose text hash was already seen (first kept)"),
    },
    "minhash": {
        "enabled": Option(False, "bool", "MinHash LSH near-duplicate removal"),
        "threshold": Option(0.8, "float", "target Jaccard similarity of near duplicates", maximum=1.0),
        "ngram": Option(5, "int", "word n-gram shingle size", minimum=1),
        "num_perm": Option(None, "int", "permutations; null derives it from the threshold", nullable=True, minimum=1),
        "verify": Option(True, "bool", "check candidate pairs' exact Jaccard before merging"),
        "against": Option(
            [],
            "str_list",
            "earlier outputs (a build's OUT, or a `corral dedup` OUT) whose kept documents this "
            "source's may not near-duplicate; only read",
        ),
    },
}

# Top-level sections that are not sources.
TOP_SECTIONS: dict[str, dict[str, Option]] = {
    "output": {
        "shard_max_rows": Option(100_000, "quantity", "rows per document shard", minimum=1),
        "shard_max_bytes": Option(
            256 * 1024**2, "quantity", "Arrow bytes per document shard", minimum=1, maximum=2**31 - 1
        ),
        "compression": Option("zstd", "str", "document shard compression", choices=("zstd", "lz4", "none")),
    },
    "tokenizer": {
        "vocab_size": Option(32000, "int", "LLaMA tokenizer.model vocab_size", minimum=259, maximum=65536),
        "sample_bytes": Option(None, "quantity", "text sampled for tokenizer training; null = all", nullable=True),
        "bos": Option(True, "bool", "prepend <s> (id 1) to every document"),
        "eos": Option(True, "bool", "append </s> (id 2) to every document"),
    },
}


class SourceOptions(Protocol):
    """What a mixture manifest needs of a source (every corral.pipeline.sources.base.Source has it):
    its name, its own stage sections and the defaults of the common stages that differ for it."""

    name: str
    options: Mapping[str, Mapping[str, Option]]
    common_defaults: Mapping[str, Mapping[str, Any]]


def source_stages(source: SourceOptions) -> dict[str, dict[str, Option]]:
    """All stage sections of a source: its own plus the common ones, with its defaults."""
    stages = {name: dict(opts) for name, opts in source.options.items()}
    for stage, opts in COMMON_STAGES.items():
        merged = dict(opts)
        for key, value in source.common_defaults.get(stage, {}).items():
            merged[key] = Option(**{**merged[key].__dict__, "default": value})
        stages[stage] = merged
    return stages


def defaults(options: dict[str, Option]) -> dict[str, Any]:
    return {k: (list(o.default) if isinstance(o.default, list) else o.default) for k, o in options.items()}

"""The seven sources of LLaMA's Table 1, declared once.

Every list of sources derives from SPECS: the document schema's `source` values and their order
(corral.core.schema), the manifest's source sections and their per-source defaults
(corral.manifests.options), Table 1's row names (inspect, the report) and the module that reads and
plans each source's phases (corral.pipeline.plans). This module imports nothing of corral, so every
layer can read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourceSpec:
    name: str  # the manifest's key, the `source` column, the folder under OUT/docs
    display: str  # Table 1's row name
    module: str  # the pipeline module with its reader and phases (`read_file` / `add_phases`)
    # Defaults of the common stages (exact_dedup, minhash) that differ for this source.
    common_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Sources whose build this one may learn from (CommonCrawl's side models come from Wikipedia's
    # shards); those are built first.
    learns_from: tuple[str, ...] = ()


SPECS: tuple[SourceSpec, ...] = (  # in Table 1's order (Touvron et al. 2023, §2.1)
    SourceSpec("commoncrawl", "CommonCrawl", "corral.pipeline.sources.commoncrawl", learns_from=("wikipedia",)),
    SourceSpec("c4", "C4", "corral.pipeline.sources.c4", {"exact_dedup": {"enabled": False}}),
    # §2.1 GitHub: "we removed duplicates at the file level, with exact matches".
    SourceSpec("github", "Github", "corral.pipeline.sources.github", {"exact_dedup": {"enabled": True}}),
    SourceSpec("wikipedia", "Wikipedia", "corral.pipeline.sources.wikipedia"),
    # §2.1 Books: "removing books with more than 90% content overlap".
    SourceSpec("books", "Books", "corral.pipeline.sources.books", {"minhash": {"enabled": True, "threshold": 0.9}}),
    SourceSpec("arxiv", "ArXiv", "corral.pipeline.sources.arxiv"),
    SourceSpec("stackexchange", "StackExchange", "corral.pipeline.sources.stackexchange"),
)

BY_NAME: dict[str, SourceSpec] = {s.name: s for s in SPECS}
SOURCES: tuple[str, ...] = tuple(s.name for s in SPECS)


def display(name: str) -> str:
    """Table 1's row name of a source (the name itself for anything else)."""
    spec = BY_NAME.get(name)
    return spec.display if spec else name


def table_order(names) -> list[str]:
    """Sources in Table 1's order; any other name after them."""
    return sorted(names, key=lambda n: SOURCES.index(n) if n in SOURCES else len(SOURCES))


def build_order(names) -> list[str]:
    """Sources in an order where each comes after those it may learn from."""
    names = list(names)
    first = {dep for n in names if n in BY_NAME for dep in BY_NAME[n].learns_from}
    return sorted(names, key=lambda n: n not in first)

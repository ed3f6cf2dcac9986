"""The sources a build knows: a plain list, Table 1's seven first, in its order (Touvron et al. 2023,
§2.1). Adding a source is writing its module (a `Source`, corral.pipeline.sources.base), importing
it here and adding it to the list.
"""

from __future__ import annotations

from corral.pipeline.sources.arxiv import ArXiv
from corral.pipeline.sources.base import Source
from corral.pipeline.sources.books import Books
from corral.pipeline.sources.c4 import C4
from corral.pipeline.sources.commoncrawl import CommonCrawl
from corral.pipeline.sources.github import GitHub
from corral.pipeline.sources.stackexchange import StackExchange
from corral.pipeline.sources.wikipedia import Wikipedia

SOURCES: tuple[Source, ...] = (
    CommonCrawl(),
    C4(),
    GitHub(),
    Wikipedia(),
    Books(),
    ArXiv(),
    StackExchange(),
)


def by_name(sources: tuple[Source, ...] | None = None) -> dict[str, Source]:
    """The sources (the registry's unless given) by name."""
    return {s.name: s for s in (SOURCES if sources is None else sources)}

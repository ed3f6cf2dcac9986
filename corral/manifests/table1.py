"""Table 1 of Touvron et al. 2023 (§2.1, "Pre-training data"): its rows' names and their order, as
`corral inspect` and the report show a build's sources. A source that is not a row of Table 1 is
shown by its own name, after them."""

from __future__ import annotations

from collections.abc import Iterable

# Table 1's row names, in its order, by the source's name in a manifest.
ROWS = {
    "commoncrawl": "CommonCrawl",
    "c4": "C4",
    "github": "Github",
    "wikipedia": "Wikipedia",
    "books": "Books",
    "arxiv": "ArXiv",
    "stackexchange": "StackExchange",
}


def display(name: str) -> str:
    """Table 1's row name of a source (the name itself for anything else)."""
    return ROWS.get(name, name)


def table_order(names: Iterable[str]) -> list[str]:
    """Sources in Table 1's order; any other name after them, in the order given."""
    order = list(ROWS)
    return sorted(names, key=lambda n: order.index(n) if n in ROWS else len(order))

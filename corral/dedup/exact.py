"""Exact deduplication of kept documents by a content key (RECIPE.md §4 GitHub md5 file dedup;
book-level exact dedup; RECIPE.md §2.12 URL + digest for CommonCrawl).

Among documents with the same key, the one with the smallest id is kept, so the result does not
depend on input order or runner; the others are dropped as `duplicate_exact`.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping

import apache_beam as beam

from corral.pipeline.outcome import KEPT, dropped

DUPLICATE = "duplicate_exact"


def text_md5(record: Mapping[str, Any]) -> str:
    """RECIPE.md §4: RP content_hash = md5 of the UTF-8 content."""
    return hashlib.md5(record["text"].encode("utf-8", "surrogatepass")).hexdigest()


def choose(outcomes) -> list[dict[str, Any]]:
    """Keep the outcome whose record has the smallest id; drop the rest as duplicates."""
    ordered = sorted(outcomes, key=lambda o: o["record"]["id"])
    return [ordered[0]] + [dropped(o["source"], DUPLICATE, o.get("where")) for o in ordered[1:]]


class ExactDedup(beam.PTransform):
    """outcomes → outcomes, with kept documents sharing `key_fn(record)` reduced to one."""

    def __init__(self, key_fn: Callable[[Mapping[str, Any]], str] = text_md5):
        super().__init__()
        self.key_fn = key_fn

    def expand(self, outcomes):
        key_fn = self.key_fn
        deduped = (
            outcomes
            | "Kept" >> beam.Filter(lambda o: o["status"] == KEPT)
            | "Key" >> beam.Map(lambda o: (key_fn(o["record"]), o))
            | "Group" >> beam.GroupByKey()
            | "Choose" >> beam.FlatMap(lambda kv: choose(kv[1]))
        )
        others = outcomes | "NotKept" >> beam.Filter(lambda o: o["status"] != KEPT)
        return (deduped, others) | "Merge" >> beam.Flatten()

"""Exact deduplication of kept documents by a content key (RECIPE.md §4 GitHub md5 file dedup;
book-level exact dedup; RECIPE.md §2.12 URL + digest for CommonCrawl).

Among documents with the same key, the one with the smallest id is kept, so the result does not
depend on input order or runner; the others are dropped as `duplicate_exact`.

`UniqueIds` applies the same machinery to the document id itself (a page present in two dumps, a
file in two exports): the latest `meta.timestamp` wins, then the larger md5 of the text.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Mapping

import apache_beam as beam

from corral.pipeline.outcome import KEPT, dropped

DUPLICATE = "duplicate_exact"


def text_md5(record: Mapping[str, Any]) -> str:
    """RECIPE.md §4: RP content_hash = md5 of the UTF-8 content."""
    return hashlib.md5(record["text"].encode("utf-8", "surrogatepass")).hexdigest()


def by_id(outcome: Mapping[str, Any]):
    """Rank for ExactDedup: the smallest id first."""
    return outcome["record"]["id"]


def latest_first(outcome: Mapping[str, Any]):
    """Rank for UniqueIds: the latest meta.timestamp first, then the larger text md5."""
    meta = json.loads(outcome["record"]["meta"]) if outcome["record"].get("meta") else {}
    ts = str(meta.get("timestamp") or "")
    # Invert each character so that an ascending sort puts the latest timestamp and largest md5 first.
    return tuple(-ord(c) for c in ts) + (0,), tuple(-ord(c) for c in text_md5(outcome["record"]))


def choose(outcomes, rank=by_id, reason: str = DUPLICATE) -> list[dict[str, Any]]:
    """Keep the best-ranked outcome; drop the rest with `reason`."""
    ordered = sorted(outcomes, key=rank)
    return [ordered[0]] + [dropped(o["source"], reason, o.get("where")) for o in ordered[1:]]


class ExactDedup(beam.PTransform):
    """outcomes → outcomes, with kept documents sharing `key_fn(record)` reduced to one."""

    def __init__(self, key_fn: Callable[[Mapping[str, Any]], str] = text_md5, rank=by_id, reason: str = DUPLICATE):
        super().__init__()
        self.key_fn, self.rank, self.reason = key_fn, rank, reason

    def expand(self, outcomes):
        key_fn, rank, reason = self.key_fn, self.rank, self.reason
        deduped = (
            outcomes
            | "Kept" >> beam.Filter(lambda o: o["status"] == KEPT)
            | "Key" >> beam.Map(lambda o: (key_fn(o["record"]), o))
            | "Group" >> beam.GroupByKey()
            | "Choose" >> beam.FlatMap(lambda kv: choose(kv[1], rank, reason))
        )
        others = outcomes | "NotKept" >> beam.Filter(lambda o: o["status"] != KEPT)
        return (deduped, others) | "Merge" >> beam.Flatten()


def UniqueIds() -> ExactDedup:
    """One record per document id (the build's contract), the latest version kept."""
    return ExactDedup(key_fn=lambda r: r["id"], rank=latest_first, reason="duplicate_id")

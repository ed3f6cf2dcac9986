"""Exact deduplication's keys and ranks (docs/recipe/github.md GitHub md5 file dedup; book-level exact dedup;
docs/recipe/commoncrawl.md#url-and-digest-dedup URL + digest for CommonCrawl). The decisions are
`corral.dedup.keys.losers_by_rank`.

- Exact content: among documents with the same content key, the smallest id stays (so the result
  depends on neither input order nor runner); the others are `duplicate_exact`.
- Unique ids (the build's contract, one record per id: a page in two dumps, a file in two exports):
  the latest `meta.timestamp` stays, then the larger md5 of the text; the others are `duplicate_id`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

DUPLICATE = "duplicate_exact"
DUPLICATE_ID = "duplicate_id"
_DIGITS = re.compile(r"\D")
TIMESTAMP_DIGITS = 17  # YYYYMMDDhhmmss plus milliseconds: what an ISO timestamp orders by, as an int64


def text_md5(record: Mapping[str, Any]) -> str:
    """docs/recipe/github.md: RP content_hash = md5 of the UTF-8 content."""
    return hashlib.md5(record["text"].encode("utf-8", "surrogatepass")).hexdigest()


def timestamp_rank(timestamp: Any) -> int:
    """An ISO-8601 timestamp as an integer that orders as the timestamp does (0 when none): its
    digits, the first TIMESTAMP_DIGITS of them, right-padded with zeros."""
    digits = _DIGITS.sub("", str(timestamp or ""))[:TIMESTAMP_DIGITS]
    return int(digits.ljust(TIMESTAMP_DIGITS, "0")) if digits else 0

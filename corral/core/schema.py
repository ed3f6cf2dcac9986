"""The document record, its Arrow schema, and stable document ids (docs/design.md#contracts).

A record is a plain dict with the schema's keys, so it travels through Beam without a custom coder.
Stages add signals (tag first, select later); `meta` holds source-specific fields as a JSON object
text, because they differ per source and one Arrow schema must hold every source.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

# The nullable signal columns, in schema order, with their Arrow types.
SIGNALS: dict[str, pa.DataType] = {
    "lang_score": pa.float64(),  # fastText lid.176 top-1 probability, rounded (docs/recipe/commoncrawl.md#language-id)
    "perplexity": pa.float64(),  # KenLM document perplexity, rounded to 0.1 (docs/recipe/commoncrawl.md#perplexity)
    "bucket": pa.string(),  # head / middle / tail / all (docs/recipe/commoncrawl.md#buckets)
    # P(Wikipedia reference) from the quality classifier (docs/recipe/commoncrawl.md#quality-classifier)
    "quality": pa.float64(),
    "dup_cluster": pa.string(),  # id of the representative of this document's near-duplicate cluster
    "dup_count": pa.int32(),  # size of that cluster
}

DOC_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("lang", pa.string()),
        *[pa.field(name, typ) for name, typ in SIGNALS.items()],
        pa.field("meta", pa.string()),  # JSON object text of source-specific fields
    ],
    metadata={b"corral.schema": b"doc/1"},
)

# Token shards: one row per document; `tokens` values are one contiguous uint16 buffer per shard.
TOKEN_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("tokens", pa.list_(pa.field("item", pa.uint16(), nullable=False)), nullable=False),
    ],
    metadata={b"corral.schema": b"tokens/1"},
)

SOURCE_NAME = re.compile(r"[a-z][a-z0-9_]*")  # a source's name: the manifest key and the folder under OUT/docs
ID_DIGEST_BYTES = 16  # 128-bit ids: collision-free in practice at trillions of documents


class RecordError(ValueError):
    """A record does not fit the document schema."""


def stable_id(source: str, key: str | bytes) -> str:
    """A document id derived from the source's own key (URL + digest, dump page id, repo path, …).

    The same (source, key) gives the same id on every machine and every run; it never depends on
    row order, so reruns, resumes and distributed runners agree.
    """
    if not SOURCE_NAME.fullmatch(source):
        raise RecordError(f"source {source!r}: a source name is lower-case letters, digits and '_'")
    kb = key if isinstance(key, bytes) else key.encode("utf-8", "surrogatepass")
    if not kb:
        raise RecordError(f"{source}: an id needs a non-empty source key")
    h = hashlib.blake2b(source.encode() + b"\x00" + kb, digest_size=ID_DIGEST_BYTES)
    return h.hexdigest()


def make_record(
    source: str,
    key: str | bytes,
    text: str,
    *,
    url: str | None = None,
    lang: str | None = None,
    meta: Mapping[str, Any] | None = None,
    **signals: Any,
) -> dict[str, Any]:
    """A document record with a stable id; signals not given are null."""
    unknown = set(signals) - set(SIGNALS)
    if unknown:
        raise RecordError(f"unknown signal column(s): {', '.join(sorted(unknown))}")
    rec: dict[str, Any] = {
        "id": stable_id(source, key),
        "source": source,
        "text": text,
        "url": url,
        "lang": lang,
    }
    for name in SIGNALS:
        rec[name] = signals.get(name)
    rec["meta"] = json.dumps(dict(meta), ensure_ascii=False, sort_keys=True) if meta else None
    return rec


def record_meta(record: Mapping[str, Any]) -> dict[str, Any]:
    """The decoded `meta` of a record ({} when null)."""
    m = record.get("meta")
    return json.loads(m) if m else {}


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise RecordError naming the first field that does not fit DOC_SCHEMA."""
    missing = [f.name for f in DOC_SCHEMA if f.name not in record]
    if missing:
        raise RecordError(f"record lacks field(s): {', '.join(missing)}")
    extra = set(record) - set(DOC_SCHEMA.names)
    if extra:
        raise RecordError(f"record has unknown field(s): {', '.join(sorted(extra))}")
    for name in ("id", "source", "text"):
        if not isinstance(record[name], str):
            raise RecordError(f"field {name!r} must be a string, got {type(record[name]).__name__}")
    if not SOURCE_NAME.fullmatch(record["source"]):
        raise RecordError(f"field 'source' is {record['source']!r}, not a source name")


def records_to_batch(records: Iterable[Mapping[str, Any]], schema: pa.Schema = DOC_SCHEMA) -> pa.RecordBatch:
    """Records (dicts) into one RecordBatch of `schema`, converted by Arrow's C++ as one struct
    array (a missing field is null); about 4× faster than a Python list per column."""
    rows = records if isinstance(records, list) else list(records)
    return pa.RecordBatch.from_arrays(pa.array(rows, type=pa.struct(list(schema))).flatten(), schema=schema)

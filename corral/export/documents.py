"""Documents out of a build's shards in the layouts other tools read, one output file per shard,
a record batch at a time (memory bounded by one batch, whatever the shard's size).

- `parquet`: the shard's own columns (every signal, `meta` as its JSON text) with pyarrow's Parquet
  writer, zstd-compressed: what `datasets.load_dataset("parquet", …)`, pandas, DuckDB and Spark read.
- `jsonl`: one JSON object a line, gzipped (datatrove's and most trainers' document format): the
  same fields, with `meta` as a JSON object.
- `dolma`: dolma's document layout, `{"id", "text", "source", "added", "created", "metadata"}` in
  `documents/<source>/…jsonl.gz`, with corral's numeric signals as dolma attributes (spans
  `[0, len(text), value]` named `corral__<signal>`) in `attributes/corral/<source>/…jsonl.gz`, one
  line a document in the same order, which dolma's mixer joins by position and id. The string
  signals (bucket, near-duplicate cluster) go in `metadata`.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from corral.core.schema import SIGNALS

PARQUET_COMPRESSION = "zstd"  # pyarrow's Parquet writer; readable by every Parquet reader
GZIP_LEVEL = 6  # gzip's default trade-off (dolma and datatrove write .jsonl.gz)
NUMERIC = [name for name, typ in SIGNALS.items() if pa.types.is_floating(typ) or pa.types.is_integer(typ)]
STRINGS = [name for name in SIGNALS if name not in NUMERIC]
# Fields of a document's `meta` that say when its text was made, most precise first (per source).
DATE_FIELDS = ("timestamp", "date", "created_at", "last_edit_date", "creation_date")


def _meta(value: str | None) -> dict[str, Any]:
    return json.loads(value) if value else {}


def jsonl_row(row: dict[str, Any]) -> dict[str, Any]:
    """A shard row as a JSON document: every column, `meta` parsed."""
    return {**row, "meta": _meta(row.get("meta"))}


def dolma_document(row: dict[str, Any], added: str) -> dict[str, Any]:
    """dolma's document fields from a shard row; `created` is the text's own date where its
    source records one, else `added` (when the build was made)."""
    meta = _meta(row.get("meta"))
    created = next((str(meta[k]) for k in DATE_FIELDS if meta.get(k)), added)
    metadata = {"url": row.get("url"), "lang": row.get("lang"), **{k: row.get(k) for k in STRINGS}, **meta}
    return {
        "id": row["id"],
        "text": row["text"],
        "source": row["source"],
        "added": added,
        "created": created,
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }


def dolma_attributes(row: dict[str, Any]) -> dict[str, Any]:
    """dolma's attribute line: each numeric signal as one span over the whole text."""
    n = len(row["text"])
    return {
        "id": row["id"],
        "attributes": {f"corral__{k}": [[0, n, row[k]]] for k in NUMERIC if row.get(k) is not None},
    }


class ParquetOut:
    def __init__(self, raw, schema: pa.Schema):
        self._writer = pq.ParquetWriter(raw, schema, compression=PARQUET_COMPRESSION)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


class JsonlOut:
    """Gzipped JSON lines of `line(row)` for each row."""

    def __init__(self, raw, line: Callable[[dict[str, Any]], dict[str, Any]]):
        self._gz = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
        self._text = io.TextIOWrapper(self._gz, encoding="utf-8", newline="\n")
        self._line = line

    def write(self, batch: pa.RecordBatch) -> None:
        self._text.writelines(json.dumps(self._line(r), ensure_ascii=False) + "\n" for r in batch.to_pylist())

    def close(self) -> None:
        self._text.flush()
        self._text.detach()
        self._gz.close()

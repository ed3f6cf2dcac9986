"""Documents out of a build's shards in the layouts other tools read, one output file per shard,
a record batch at a time (memory bounded by one batch and the compressor's few MiB a thread,
whatever the shard's size).

- `parquet`: the shard's own columns (every signal, `meta` as its JSON text) with pyarrow's Parquet
  writer, zstd-compressed: what `datasets.load_dataset("parquet", …)`, pandas, DuckDB and Spark read.
- `jsonl`: one JSON object a line (datatrove's and most trainers' document format): the same
  fields, with `meta` as a JSON object.
- `dolma`: dolma's document layout, `{"id", "text", "source", "added", "created", "metadata"}` in
  `documents/<source>/…jsonl.gz` (or .zst), with corral's numeric signals as dolma attributes (spans
  `[0, len(text), value]` named `corral__<signal>`) in `attributes/corral/<source>/…`, one
  line a document in the same order, which dolma's mixer joins by position and id. The string
  signals (bucket, near-duplicate cluster) go in `metadata`.

JSON lines are gzipped (`.gz`) or zstd-compressed (`.zst`) by corral.export.compressed; each line
is what `json.dumps(line, ensure_ascii=False)` writes of the functions below (corral.export.json_lines
writes the same bytes faster).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corral.core.schema import SIGNALS
from corral.export.compressed import Compressed
from corral.export.json_lines import ENCODER

PARQUET_COMPRESSION = "zstd"  # pyarrow's Parquet writer; readable by every Parquet reader
NUMERIC = [name for name, typ in SIGNALS.items() if pa.types.is_floating(typ) or pa.types.is_integer(typ)]
ATTRIBUTE = {name: f"corral__{name}" for name in NUMERIC}  # dolma's attribute name of each numeric signal
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


def dolma_attributes(row: dict[str, Any], n: int) -> dict[str, Any]:
    """dolma's attribute line: each numeric signal as one span over the whole text, `n` characters."""
    return {
        "id": row["id"],
        "attributes": {ATTRIBUTE[k]: [[0, n, row[k]]] for k in NUMERIC if row.get(k) is not None},
    }


def dolma_attribute_lines(batch: pa.RecordBatch) -> bytes:
    """The JSON lines of `dolma_attributes` of each row, byte for byte what json.dumps(…,
    ensure_ascii=False) writes, made a column at a time: each signal's values are written by one
    call of json's encoder (numbers and nulls, so ", " parts them), each text's length by Arrow."""
    lengths = pc.utf8_length(batch.column("text")).to_pylist()
    spans = [
        (f"{ENCODER.encode(ATTRIBUTE[k])}: [[0, ", ENCODER.encode(batch.column(k).to_pylist())[1:-1].split(", "))
        for k in NUMERIC
    ]
    out = []
    for i, (key, n) in enumerate(zip(batch.column("id").to_pylist(), lengths)):
        written = ", ".join(f"{head}{n}, {values[i]}]]" for head, values in spans if values[i] != "null")
        out.append(f'{{"id": {ENCODER.encode(key)}, "attributes": {{{written}}}}}\n')
    return "".join(out).encode()


class ParquetOut:
    def __init__(self, raw, schema: pa.Schema):
        self._writer = pq.ParquetWriter(raw, schema, compression=PARQUET_COMPRESSION)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        """Nothing to stop: the writer has no threads, and its file is thrown away."""


class JsonlOut:
    """Compressed JSON lines: `lines(batch)` of each batch (json_lines.text_lines with a line function,
    or dolma_attribute_lines)."""

    def __init__(self, stream: Compressed, lines: Callable[[pa.RecordBatch], bytes]):
        self._stream, self._lines = stream, lines

    def write(self, batch: pa.RecordBatch) -> None:
        self._stream.write(self._lines(batch))

    def close(self) -> None:
        self._stream.close()

    def abort(self) -> None:
        self._stream.abort()

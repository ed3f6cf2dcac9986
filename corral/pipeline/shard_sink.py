"""`WriteShards`: the Beam sink that writes a PCollection of records as Arrow shards.

Records are spread over `num_buckets` buckets by a hash of their id (not by arrival order), each
bucket is sorted by id and written with `corral.shards.ShardWriter` as `<prefix>-BBBBB-PPPP.arrow`
(bucket B, part P when a bucket exceeds the shard bounds). So the same records give the same file
names and bytes on any runner and any number of workers, and a retried bundle rewrites the same
names atomically. The output PCollection holds one `ShardInfo` dict per shard for the build manifest.

A bucket is sorted in memory: choose `num_buckets` so that total size ÷ num_buckets fits a worker.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping

import apache_beam as beam
import pyarrow as pa

from corral.schema import DOC_SCHEMA
from corral.shards import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, DOC_COMPRESSION, ShardWriter, shard_name


def bucket_of(doc_id: str, num_buckets: int) -> int:
    """The bucket of a document id: stable across processes (unlike Python's salted hash())."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % num_buckets


def write_bucket(bucket: int, records: Iterable[Mapping[str, Any]], out_dir: str, prefix: str = "part",
                 **writer_options: Any) -> list[dict[str, Any]]:
    """Write one bucket's records, sorted by id, as bounded shards; return their ShardInfo dicts.

    `writer_options` are ShardWriter's (schema, max_rows, max_bytes, compression).
    """
    ordered = sorted(records, key=lambda r: (r["id"], r["text"]))  # text breaks ties: order never depends on arrival
    writer = ShardWriter(out_dir, name_fn=lambda part: shard_name(prefix, bucket, part), **writer_options)
    with writer:
        writer.write_all(ordered)
    return [s.to_dict() for s in writer.shards]


class WriteShards(beam.PTransform):
    """records (dicts of `schema`) → Arrow shards under `out_dir`; emits one ShardInfo dict per shard."""

    def __init__(self, out_dir: str, prefix: str = "part", num_buckets: int = 1, schema: pa.Schema = DOC_SCHEMA,
                 max_rows: int = DEFAULT_MAX_ROWS, max_bytes: int = DEFAULT_MAX_BYTES,
                 compression: str | None = DOC_COMPRESSION):
        super().__init__()
        if num_buckets < 1:
            raise ValueError("num_buckets must be ≥ 1")
        self.num_buckets = num_buckets
        self.options = dict(out_dir=out_dir, prefix=prefix, schema=schema, max_rows=max_rows,
                            max_bytes=max_bytes, compression=compression)

    def expand(self, records):
        n, kw = self.num_buckets, self.options
        return (
            records
            | "KeyByBucket" >> beam.Map(lambda r: (bucket_of(r["id"], n), r))
            | "GroupByBucket" >> beam.GroupByKey()
            | "WriteBucket" >> beam.FlatMap(lambda kv: write_bucket(kv[0], kv[1], **kw))
        )

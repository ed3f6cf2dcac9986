"""`corral dedup INPUT --out OUT`: near-duplicate removal as a job of its own.

INPUT is a file, folder or glob of Arrow shards (.arrow, corral's or any with a `text` column),
Parquet (.parquet) or JSON lines (.jsonl/.json, optionally .gz/.bz2/.xz), each record with a `text`
and optionally an `id` (kept as given; otherwise one is derived from the file and row). The job is
the same NearDedup transform `corral build` runs per source. It writes:
  OUT/docs/part-*.arrow   the kept documents (corral's document schema, dup_cluster and dup_count set)
  OUT/clusters.arrow      id, cluster (its representative's id), representative — one row per member
                          of a cluster of two or more
  OUT/manifest.json       the funnel (records read, kept, near duplicates dropped, errors), the shards
                          and the settings (threshold, n-gram, permutations, bands × rows)
The same input gives the same output.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from typing import Any, Iterator

import apache_beam as beam
import pyarrow as pa

from corral.dedup import minhash as mh
from corral.dedup.near import NearDedup
from corral.manifests.build import BuildManifest, SourceBuild, join, relative_shard
from corral.pipeline.inputs import guarded, is_remote, iter_jsonl, open_raw, strip_compression_suffix
from corral.pipeline.outcome import ERROR, KEPT, error, funnel_from_counts, funnel_key
from corral.pipeline.shard_sink import WriteShards
from corral.schema import DOC_SCHEMA, SIGNALS
from corral.shards import ShardInfo, atomic_write_bytes, iter_batches, read_bytes

LABEL = "input"  # the funnel's source name for a standalone job
SUMMARY = "_dedup"
CLUSTER_SCHEMA = pa.schema([pa.field("id", pa.string(), nullable=False),
                            pa.field("cluster", pa.string(), nullable=False),
                            pa.field("representative", pa.bool_(), nullable=False)])


class DedupInputError(ValueError):
    """The input cannot be read as a whole (nothing matches, or an unknown format)."""


def input_files(spec: str) -> list[str]:
    if is_remote(spec):
        from apache_beam.io.filesystems import FileSystems

        files = [m.path for m in FileSystems.match([spec])[0].metadata_list]
    elif os.path.isdir(spec):
        files = [p for p in glob.glob(os.path.join(spec, "**", "*"), recursive=True) if os.path.isfile(p)]
    else:
        files = glob.glob(spec, recursive=True)
    files = sorted(f for f in files if _format(f))
    if not files:
        raise DedupInputError(f"{spec}: no .arrow, .parquet or .jsonl/.json(.gz) file to read")
    return files


def _format(path: str) -> str | None:
    name = strip_compression_suffix(os.path.basename(path))
    if name.endswith(".arrow"):
        return "arrow"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".json")):
        return "jsonl"
    return None


def _record(row: dict[str, Any], path: str, n: int) -> dict[str, Any]:
    given = row.get("id")
    rid = str(given) if given not in (None, "") else hashlib.blake2b(f"{path}:{n}".encode(), digest_size=16).hexdigest()
    meta = {k: v for k, v in row.items() if k not in DOC_SCHEMA.names}
    rec = {"id": rid, "source": str(row.get("source") or LABEL), "text": row["text"],
           "url": row.get("url"), "lang": row.get("lang")}
    for name in SIGNALS:
        rec[name] = row.get(name)
    old_meta = row.get("meta")
    if isinstance(old_meta, str) and old_meta:
        try:
            meta = {**json.loads(old_meta), **meta}
        except ValueError:
            meta["meta"] = old_meta
    rec["meta"] = json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str) if meta else None
    return rec


def _outcome(rec: dict[str, Any]) -> dict[str, Any]:
    return {"source": LABEL, "status": KEPT, "reason": None, "record": rec, "where": None}


def read_records(path: str) -> Iterator[dict[str, Any]]:
    """One outcome per input record: kept, or an error (no text, bad line)."""
    fmt = _format(path)
    if fmt == "jsonl":
        for where, i, obj, problem in iter_jsonl(path, require_text=True):
            yield error(LABEL, "bad_record", where, problem) if problem else _outcome(_record(obj, path, i))
        return
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with open_raw(path) as raw:
            n = 0
            for batch in pq.ParquetFile(raw).iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    n += 1
                    if not isinstance(row.get("text"), str):
                        yield error(LABEL, "bad_record", f"{path}#{n}", "no string field 'text'")
                    else:
                        yield _outcome(_record(row, path, n))
        return
    n = 0
    for batch in iter_batches(path):
        for row in batch.to_pylist():
            n += 1
            if not isinstance(row.get("text"), str):
                yield error(LABEL, "bad_record", f"{path}#{n}", "no string field 'text'")
            else:
                yield _outcome(_record(row, path, n))


def _save(out: str, name: str, value: Any) -> None:
    atomic_write_bytes(join(out, f"{SUMMARY}/{name}"), json.dumps(value).encode("utf-8"))


def _write_clusters(out: str, rows: list[tuple[str, str, bool]]) -> None:
    from corral.shards import write_shard

    rows = sorted(rows)
    batch = pa.RecordBatch.from_arrays(
        [pa.array([r[0] for r in rows], pa.string()), pa.array([r[1] for r in rows], pa.string()),
         pa.array([bool(r[2]) for r in rows], pa.bool_())], schema=CLUSTER_SCHEMA)
    write_shard(join(out, "clusters.arrow"), [batch], schema=CLUSTER_SCHEMA, compression="zstd")


def dedup(spec: str, out: str, threshold: float = mh.DEFAULT_THRESHOLD, ngram: int = mh.DEFAULT_NGRAM,
          num_perm: int | None = None, verify: bool = True, workers: int | None = None) -> BuildManifest:
    """Run the near-duplicate job; return the written manifest."""
    from corral.pipeline.runners import local_runner

    files = input_files(spec)
    params = mh.derive_lsh(threshold, num_perm, verify)
    runner, options = local_runner(workers)
    if not is_remote(out):
        os.makedirs(out, exist_ok=True)
    in_bytes = sum(os.path.getsize(f) for f in files if not is_remote(f))
    buckets = max(1, in_bytes * 3 // (256 << 20) + 1)
    near = NearDedup(threshold, ngram, num_perm, verify)
    with beam.Pipeline(runner=runner, options=options) as p:
        outcomes = (p | "Inputs" >> beam.Create(files) | "Spread" >> beam.Reshuffle()
                    | "Read" >> beam.FlatMap(lambda f: guarded(LABEL, f, read_records(f)))
                    | "NearDedup" >> near)
        (outcomes | "Kept" >> beam.Filter(lambda o: o["status"] == KEPT) | "Record" >> beam.Map(lambda o: o["record"])
         | "Write" >> WriteShards(join(out, "docs"), num_buckets=buckets)
         | "ShardList" >> beam.combiners.ToList() | "SaveShards" >> beam.Map(lambda s: _save(out, "shards.json", s)))
        (outcomes | "FunnelKey" >> beam.Map(lambda o: (funnel_key(o), 1)) | "Count" >> beam.CombinePerKey(sum)
         | "CountList" >> beam.combiners.ToList()
         | "SaveFunnel" >> beam.Map(lambda c: _save(out, "funnel.json", [[list(k), n] for k, n in c])))
        (outcomes | "Errors" >> beam.Filter(lambda o: o["status"] == ERROR)
         | "ErrorList" >> beam.combiners.ToList()
         | "SaveErrors" >> beam.Map(lambda e: _save(out, "errors.json", [{k: o.get(k) for k in ("reason", "where", "detail")}
                                                                         for o in e])))
        (near.cluster_rows | "ClusterList" >> beam.combiners.ToList()
         | "SaveClusters" >> beam.Map(lambda rows: _write_clusters(out, rows)))

    def load(name, default):
        try:
            return json.loads(read_bytes(join(out, f"{SUMMARY}/{name}")))
        except OSError:
            return default

    counts = [((k[0], k[1], k[2]), n) for k, n in load("funnel.json", [])]
    funnel = funnel_from_counts(counts).get(LABEL)
    shards = [relative_shard(ShardInfo(**s), out) for s in sorted(load("shards.json", []), key=lambda s: s["path"])]
    sb = SourceBuild(weight=1.0, documents=sum(s["documents"] for s in shards), shards=shards)
    if funnel is not None:
        sb.funnel = funnel
    settings = {"dedup": {"threshold": threshold, "ngram": ngram, "num_perm": params.num_perm, "bands": params.bands,
                          "rows": params.rows, "verify": verify, "seed": mh.SEED}}
    manifest = BuildManifest(mixture={"name": "dedup", "inputs": [spec], "target_tokens": 0}, settings=settings,
                             sources={LABEL: sb})
    manifest.save(out)
    return manifest

"""`corral dedup INPUT --out OUT`: near-duplicate removal as a job of its own.

INPUT is a file, folder or glob of Arrow shards (.arrow, corral's or any with a `text` column),
Parquet (.parquet) or JSON lines (.jsonl/.json, optionally .gz/.bz2/.xz), each record with a `text`
and optionally an `id` (kept as given; otherwise one is derived from the file and row). The job uses
the same rules and stages as the NearDedup transform `corral build` runs per source, in three passes
over the input (see `dedup`), so that memory does not grow with the texts. It writes:
  OUT/docs/part-*.arrow   the kept documents in input order, shards named by input file (corral's
                          document schema, dup_cluster and dup_count set)
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
import numpy as np
import pyarrow as pa

from corral.dedup import minhash as mh
from corral.dedup.near import NEAR_DUPLICATE, LshEdges, RepresentativeIds, doc_key
from corral.manifests.build import BuildManifest, SourceBuild, join, relative_shard
from corral.pipeline.inputs import guarded, is_remote, iter_jsonl, open_raw, strip_compression_suffix
from corral.pipeline.outcome import ERROR, KEPT, error, funnel_from_counts
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
            yield from _row_outcomes(path, (row for batch in pq.ParquetFile(raw).iter_batches(batch_size=1024)
                                            for row in batch.to_pylist()))
        return
    yield from _row_outcomes(path, (row for batch in iter_batches(path) for row in batch.to_pylist()))


def _row_outcomes(path: str, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for n, row in enumerate(rows, 1):
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


# --- the three passes ----------------------------------------------------------------------------


def _signatures(path: str, ngram: int, num_perm: int) -> Iterator[tuple[int, str, Any]]:
    """Pass A: (key, id, signature) of each readable record: no text and no shingles are kept."""
    for o in guarded(LABEL, path, read_records(path)):
        if o["status"] == KEPT:
            r = o["record"]
            sig = mh.signature(mh.shingles(r["text"], ngram, unique=False), num_perm)
            yield doc_key(r["id"]), r["id"], sig.tobytes()  # bytes: far lighter to hold than an ndarray


class _CandidateShingles(beam.DoFn):
    """Pass B: write the distinct shingles of this file's candidate documents (a side input of keys)
    to a scratch file, OUT/_dedup/shingles/<file index>.bin, and emit where each set lies:
    (key, (file index, byte offset, shingle count)). Verification reads them back two at a time, so
    no shingle set goes through a shuffle or waits in memory."""

    def __init__(self, out: str, index: dict[str, int], ngram: int):
        self.out, self.index, self.ngram, self.keys, self.source = out, index, ngram, None, None

    def process(self, path, candidates):
        from apache_beam.io.filesystems import CompressionTypes, FileSystems

        if self.source is not candidates:
            self.keys, self.source = set(candidates), candidates
        i, offset, seen, f = self.index[path], 0, set(), None
        try:
            for o in guarded(LABEL, path, read_records(path)):
                if o["status"] != KEPT:
                    continue
                key = doc_key(o["record"]["id"])
                if key not in self.keys or key in seen:
                    continue
                seen.add(key)  # the first record under a key stands for it
                if f is None:
                    f = FileSystems.create(scratch_path(self.out, i), compression_type=CompressionTypes.UNCOMPRESSED)
                data = mh.shingles(o["record"]["text"], self.ngram).tobytes()
                f.write(data)
                yield key, (i, offset, len(data) // 8)
                offset += len(data)
        finally:
            if f is not None:
                f.close()


def scratch_path(out: str, i: int) -> str:
    return join(out, f"{SUMMARY}/shingles/{i:05d}.bin")


def _remove_scratch(out: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    folder = join(out, f"{SUMMARY}/shingles")
    if FileSystems.exists(folder):
        FileSystems.delete([folder])


class _Verify(beam.DoFn):
    """(member, {"loc": [where], "pending": [(head, head's where)]}) → the edges (member, head) whose
    exact Jaccard similarity reaches the threshold; shingle sets are read from the scratch files."""

    def __init__(self, out: str, threshold: float):
        self.out, self.threshold, self.files = out, threshold, {}

    def _read(self, where) -> np.ndarray:
        from apache_beam.io.filesystems import CompressionTypes, FileSystems

        i, offset, n = where
        f = self.files.get(i)
        if f is None:
            f = self.files[i] = FileSystems.open(scratch_path(self.out, i),
                                                 compression_type=CompressionTypes.UNCOMPRESSED)
        f.seek(offset)
        return np.frombuffer(f.read(n * 8), dtype=np.uint64)

    def process(self, kv):
        member, grouped = kv
        if not grouped["loc"] or not grouped["pending"]:
            return
        mine = self._read(grouped["loc"][0])
        for head, where in grouped["pending"]:
            if mh.jaccard(mine, self._read(where)) >= self.threshold:
                yield member, head

    def finish_bundle(self):
        for f in self.files.values():
            f.close()
        self.files = {}


def _with_head_location(kv) -> Iterator[tuple[int, tuple[int, Any]]]:
    head, grouped = kv
    if grouped["loc"]:
        for member in grouped["edge"]:
            yield member, (head, grouped["loc"][0])


class _WriteFile(beam.DoFn):
    """Pass C: read one input file again, tag or drop each record, stream the kept ones into this
    file's own shards (`part-<file index>-<part>.arrow`, in input order); return the file's summary."""

    def __init__(self, out: str, index: dict[str, int]):
        self.out, self.index = out, index

    def process(self, path, clusters):
        from corral.shards import ShardWriter, shard_name

        i = self.index[path]
        writer = ShardWriter(join(self.out, "docs"), name_fn=lambda part: shard_name("part", i, part))
        counts: dict[str, int] = {}
        errors = []
        text_bytes = 0
        with writer:
            for o in guarded(LABEL, path, read_records(path)):
                if o["status"] == KEPT:
                    r = o["record"]
                    info = clusters.get(doc_key(r["id"]))
                    if info is None:
                        r = {**r, "dup_cluster": r["id"], "dup_count": 1}
                    elif info[0] == r["id"]:
                        r = {**r, "dup_cluster": info[0], "dup_count": int(info[1])}
                    else:
                        o = {**o, "status": "dropped", "reason": NEAR_DUPLICATE, "record": None}
                    if o["status"] == KEPT:
                        writer.write(r)
                        text_bytes += len(r["text"].encode("utf-8", "surrogatepass"))
                if o["status"] == ERROR:
                    errors.append({k: o.get(k) for k in ("reason", "where", "detail")})
                k = f"{o['status']}\t{o['reason'] or ''}"
                counts[k] = counts.get(k, 0) + 1
        yield {"file": path, "shards": [sh.to_dict() for sh in writer.shards], "counts": counts, "errors": errors,
               "bytes": text_bytes}


def dedup(spec: str, out: str, threshold: float = mh.DEFAULT_THRESHOLD, ngram: int = mh.DEFAULT_NGRAM,
          num_perm: int | None = None, verify: bool = True, workers: int | None = None) -> BuildManifest:
    """Run the near-duplicate job over re-readable inputs; return the written manifest.

    Three passes over the input, as cc_net reads its shards twice: signatures only (A); the shingle
    sets of candidate documents, written to scratch files under OUT/_dedup/shingles (B) and read
    back two at a time by verification; then each file again, written out as it is read (C). What
    the runner holds between stages is a signature per document, packed band keys, the edges and
    the cluster table: never the texts or shingle sets. The scratch files are removed at the end.
    """
    from corral.pipeline.runners import local_runner

    files = input_files(spec)
    params = mh.derive_lsh(threshold, num_perm, verify)
    runner, options = local_runner(workers)
    if not is_remote(out):
        os.makedirs(out, exist_ok=True)
    index = {f: i for i, f in enumerate(files)}
    with beam.Pipeline(runner=runner, options=options) as p:
        sigs = (p | "InputsA" >> beam.Create(files) | "SpreadA" >> beam.Reshuffle()
                | "Signatures" >> beam.FlatMap(_signatures, ngram, params.num_perm))
        edges = sigs | "KeySignature" >> beam.Map(lambda t: (t[0], t[2])) | "Lsh" >> LshEdges(params)
        ids = sigs | "KeyToId" >> beam.Map(lambda t: (t[0], t[1]))
        if verify:
            candidates = edges | "Endpoints" >> beam.FlatMap(lambda e: e) | "DistinctKeys" >> beam.Distinct()
            where = (p | "InputsB" >> beam.Create(files) | "SpreadB" >> beam.Reshuffle()
                     | "CandidateShingles" >> beam.ParDo(_CandidateShingles(out, index, ngram),
                                                         candidates=beam.pvalue.AsList(candidates)))
            pending = ({"loc": where, "edge": edges | "ByHead" >> beam.Map(lambda e: (e[1], e[0]))}
                       | "JoinHead" >> beam.CoGroupByKey() | "HeadLocation" >> beam.FlatMap(_with_head_location))
            edges = ({"loc": where, "pending": pending} | "JoinMember" >> beam.CoGroupByKey()
                     | "Verify" >> beam.ParDo(_Verify(out, params.threshold)))
        rep_ids = edges | "Clusters" >> RepresentativeIds(ids)
        (rep_ids | "ClusterRows" >> beam.Map(lambda kv: (kv[1][2], kv[1][0], kv[1][2] == kv[1][0]))
         | "ClusterList" >> beam.combiners.ToList()
         | "SaveClusters" >> beam.Map(lambda rows: _write_clusters(out, rows)))
        (p | "InputsC" >> beam.Create(files) | "SpreadC" >> beam.Reshuffle()
         | "Write" >> beam.ParDo(_WriteFile(out, index), clusters=beam.pvalue.AsDict(rep_ids))
         | "Summaries" >> beam.combiners.ToList() | "SaveSummaries" >> beam.Map(lambda s: _save(out, "files.json", s)))

    _remove_scratch(out)
    try:
        summaries = json.loads(read_bytes(join(out, f"{SUMMARY}/files.json")))
    except OSError:
        summaries = []
    counts: dict[tuple[str, str, str | None], int] = {}
    shard_dicts, errors, text_bytes = [], [], 0
    for s_ in summaries:
        shard_dicts += s_["shards"]
        errors += s_["errors"]
        text_bytes += s_["bytes"]
        for k, n in s_["counts"].items():
            status, reason = k.split("\t")
            key = (LABEL, status, reason or None)
            counts[key] = counts.get(key, 0) + n
    if errors:
        _save(out, "errors.json", errors)
    funnel = funnel_from_counts(counts.items()).get(LABEL)
    shards = [relative_shard(ShardInfo(**d), out) for d in sorted(shard_dicts, key=lambda d: d["path"])]
    sb = SourceBuild(weight=1.0, documents=sum(d["documents"] for d in shards), bytes=text_bytes, shards=shards)
    if funnel is not None:
        sb.funnel = funnel
    settings = {"dedup": {"threshold": threshold, "ngram": ngram, "num_perm": params.num_perm, "bands": params.bands,
                          "rows": params.rows, "verify": verify, "seed": mh.SEED}}
    manifest = BuildManifest(mixture={"name": "dedup", "inputs": [spec], "target_tokens": 0}, settings=settings,
                             sources={LABEL: sb})
    manifest.save(out)
    return manifest

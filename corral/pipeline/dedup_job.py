"""`corral dedup INPUT --out OUT`: near-duplicate removal as a job of its own.

INPUT is a file, folder or glob of Arrow shards (.arrow, corral's or any with a `text` column),
Parquet (.parquet) or JSON lines (.jsonl/.json, optionally .gz/.bz2/.xz), each record with a `text`
and optionally an `id` (kept as given; otherwise one is derived from the file and row). The job runs
the same phases as a build source's near dedup (see `dedup`): texts stay in per-file tasks, so that
memory does not grow with them. It writes:
  OUT/docs/part-*.arrow   the kept documents in input order, shards named by input file (corral's
                          document schema, dup_cluster and dup_count set)
  OUT/clusters.arrow      one row per member of a cluster of two or more: id (string), cluster (string,
                          its representative's id), representative (bool, the member kept)
  OUT/removed.jsonl       {"id", "duplicate_of"} per dropped near duplicate (clusters.arrow's
                          non-representatives, as lines a shell tool can read)
  OUT/errors.jsonl        the dead letters: each unreadable line or record with its file, position
                          and reason (only when there were some)
  OUT/manifest.json       the funnel (records read, kept, near duplicates dropped, errors), the shards
                          and the settings (threshold, n-gram, permutations, bands × rows, fingerprint)
The same input gives the same output. An OUT that holds another job (other inputs or settings)
or a build is refused unless --overwrite (corral.pipeline.folders).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from corral import fs
from corral.dedup import minhash
from corral.errors import UsageError
from corral.fs import atomic_write_bytes
from corral.manifests.build import BuildManifest, SourceBuild, join, relative_shard
from corral.outcome import KEPT, error, funnel_from_counts
from corral.pipeline import folders, pool
from corral.pipeline.inputs import guarded, is_remote, iter_jsonl, open_raw, strip_compression_suffix
from corral.pipeline.phases import BUILD_DIR, Graph, SourceTask, recorded_summaries, run_phase, work_dir
from corral.pipeline.plans import SourcePlan, dedup_and_select
from corral.pipeline.stage import stage_outcomes
from corral.schema import DOC_SCHEMA, SIGNALS
from corral.shards import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, ShardInfo, iter_batches

LABEL = "input"  # the funnel's source name for a standalone job
ERRORS = "errors.jsonl"  # OUT/errors.jsonl: the dead letters, one JSON object a line
REMOVED = "removed.jsonl"  # OUT/removed.jsonl: each dropped near duplicate and its cluster's representative
CLUSTER_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("cluster", pa.string(), nullable=False),
        pa.field("representative", pa.bool_(), nullable=False),
    ]
)


class DedupInputError(UsageError):
    """The input cannot be read as a whole (nothing matches, or an unknown format)."""


def input_files(spec: str) -> list[str]:
    if is_remote(spec):
        files = [m.path for m in fs.beam_filesystems().match([spec])[0].metadata_list]
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
    rec = {
        "id": rid,
        "source": str(row.get("source") or LABEL),
        "text": row["text"],
        "url": row.get("url"),
        "lang": row.get("lang"),
    }
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
            yield from _row_outcomes(
                path, (row for batch in pq.ParquetFile(raw).iter_batches(batch_size=1024) for row in batch.to_pylist())
            )
        return
    yield from _row_outcomes(path, (row for batch in iter_batches(path) for row in batch.to_pylist()))


def _row_outcomes(path: str, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for n, row in enumerate(rows, 1):
        if not isinstance(row.get("text"), str):
            yield error(LABEL, "bad_record", f"{path}#{n}", "no string field 'text'")
        else:
            yield _outcome(_record(row, path, n))


def write_removed(clusters: str, dest: str) -> int:
    """OUT/removed.jsonl: {"id", "duplicate_of"} for every member of a cluster that is not its
    representative, read from clusters.arrow a batch at a time; returns how many."""
    target, n = fs.AtomicFile(dest), 0
    try:
        for batch in iter_batches(clusters):
            ids, cluster, rep = (batch.column(c).to_pylist() for c in ("id", "cluster", "representative"))
            lines = [
                json.dumps({"id": i, "duplicate_of": c}, ensure_ascii=False)
                for i, c, r in zip(ids, cluster, rep)
                if not r
            ]
            target.raw.write("".join(ln + "\n" for ln in lines).encode("utf-8"))
            n += len(lines)
        target.commit()
    except BaseException:
        target.abort()
        raise
    return n


def write_clusters(path: str, rows: list[tuple[str, str, bool]]) -> None:
    """OUT/clusters.arrow: (id, its cluster's representative id, whether it is that one) per member."""
    from corral.shards import write_shard

    rows = sorted(rows)
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([r[0] for r in rows], pa.string()),
            pa.array([r[1] for r in rows], pa.string()),
            pa.array([bool(r[2]) for r in rows], pa.bool_()),
        ],
        schema=CLUSTER_SCHEMA,
    )
    write_shard(path, [batch], schema=CLUSTER_SCHEMA, compression="zstd")


# --- the job: phases over files, as `corral build` runs a source's near dedup ----------------------


class _StageTask(SourceTask):
    """One input file → its staged records and their MinHash band keys."""

    phase = "stage"

    def run(self, item, *earlier):
        outcomes = guarded(LABEL, item["path"], read_records(item["path"]))
        return stage_outcomes(self.out, LABEL, item["index"], outcomes, self.stages)


def _settings(threshold: float, ngram: int, num_perm: int | None, verify: bool):
    """(the stages a build source would run, the settings the manifest records)."""
    params = minhash.derive_lsh(threshold, num_perm, verify)
    shingles = {"threshold": threshold, "ngram": ngram, "num_perm": params.num_perm, "verify": verify}
    stages = {"exact_dedup": {"enabled": False}, "minhash": {"enabled": True, **shingles}}
    lsh = {"bands": params.bands, "rows": params.rows, "seed": minhash.SEED}
    return stages, {"dedup": {**shingles, **lsh}}


def _run_phases(out: str, files: list[str], stages: dict[str, Any], fingerprint: str, workers: int) -> SourcePlan:
    """Stage every file with its band keys, then decide and select as a build source's near dedup does."""
    output = {"compression": "zstd", "shard_max_rows": DEFAULT_MAX_ROWS, "shard_max_bytes": DEFAULT_MAX_BYTES}
    plan = SourcePlan(LABEL, stages, output, out, files, fingerprint)
    graph = Graph()
    staged = run_phase(graph, "stage", _StageTask(out, stages), out, items=plan.file_items())
    plan.count_phases = ["stage"]
    docs = join(out, "docs")
    dedup_and_select(graph, plan, staged, unique=False, cluster_rows=join(out, "clusters.arrow"), docs_dir=docs)
    pool.execute(graph, workers)
    return plan


def _write_side_files(out: str) -> None:
    """OUT/errors.jsonl (the dead letters, when any), clusters.arrow and removed.jsonl; the
    working files under OUT/_build removed."""
    errors = []
    for path in fs.list_files(join(work_dir(out, LABEL), "errors")):
        errors += [ln for ln in fs.read_bytes(path).decode("utf-8").splitlines() if ln]
    fs.remove([join(out, ERRORS)])
    if errors:
        atomic_write_bytes(join(out, ERRORS), ("\n".join(sorted(errors)) + "\n").encode("utf-8"))
    if not fs.exists(join(out, "clusters.arrow")):
        write_clusters(join(out, "clusters.arrow"), [])
    write_removed(join(out, "clusters.arrow"), join(out, REMOVED))


def _source_build(out: str, plan: SourcePlan) -> SourceBuild:
    """The job's one source: its funnel from the phases' counts, its shards from the select phase."""
    counts: dict[tuple[str, str, str | None], int] = {}
    for phase in plan.count_phases:
        for summary in recorded_summaries(out, LABEL, phase):
            for status, reason, _group, n in summary["counts"]:
                counts[(LABEL, status, reason)] = counts.get((LABEL, status, reason), 0) + n
    selected = recorded_summaries(out, LABEL, "select")
    written = sorted((d for summary in selected for d in summary["shards"]), key=lambda d: d["path"])
    shards = [relative_shard(ShardInfo(**d), out) for d in written]
    sb = SourceBuild(
        1.0, sum(d["documents"] for d in shards), sum(summary["bytes"] for summary in selected), shards=shards
    )
    funnel = funnel_from_counts(counts.items()).get(LABEL)
    if funnel is not None:
        sb.funnel = funnel
    return sb


def dedup(
    spec: str,
    out: str,
    threshold: float = minhash.DEFAULT_THRESHOLD,
    ngram: int = minhash.DEFAULT_NGRAM,
    num_perm: int | None = None,
    verify: bool = True,
    workers: int | None = None,
    overwrite: bool = False,
) -> BuildManifest:
    """Run the near-duplicate job over the input files; return the written manifest.

    The phases of a build source's near dedup (corral.pipeline.near): each file staged with its
    band keys; the LSH partitions' candidate edges, verified by exact Jaccard against the staged
    texts; components and their representatives; then each file's records written out, tagged or
    dropped. The pipeline carries work items and summaries only; the working files under
    OUT/_build are removed at the end.
    """
    files = input_files(spec)
    stages, settings = _settings(threshold, ngram, num_perm, verify)
    print_ = hashlib.sha256(json.dumps([settings, files], sort_keys=True).encode("utf-8")).hexdigest()
    try:  # the same inputs and settings redo the job; other ones are refused (corral.pipeline.folders)
        folders.claim(
            out, "dedup", print_, "--out", overwrite, "this dedup job", "rerun it with its own input and settings"
        )
    except folders.FolderInUse as e:
        raise DedupInputError(str(e)) from e
    settings["dedup"]["fingerprint"] = print_
    fs.remove([work_dir(out, LABEL), join(out, "docs")])
    plan = _run_phases(out, files, stages, print_, workers or 1)
    _write_side_files(out)
    sb = _source_build(out, plan)
    fs.remove([join(out, BUILD_DIR)])
    mixture = {"name": "dedup", "inputs": [spec], "target_tokens": 0}
    manifest = BuildManifest(mixture=mixture, settings=settings, sources={LABEL: sb})
    manifest.save(out)
    return manifest

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
  OUT/removed.jsonl       {"id", "duplicate_of", "reason"} per dropped document (clusters.arrow's
                          non-representatives, as lines a shell tool can read): `near_duplicate`, or
                          `duplicate_of_existing` when it matched a document of an --against output
  OUT/near/               the kept documents' MinHash band tables and their index.json, which a later
                          job reads with --against OUT (corral.pipeline.rounds.against)
  OUT/errors.jsonl        the dead letters: each unreadable line or record with its file, position
                          and reason (only when there were some)
  OUT/manifest.json       the funnel (records read, kept, near duplicates dropped, errors), the shards
                          and the settings (threshold, n-gram, permutations, bands × rows, fingerprint)
The same input gives the same output. An OUT that holds another job (other inputs or settings)
or a build is refused unless --overwrite (corral.engine.folders). With `against` (earlier outputs
of `corral dedup` or a build's near/<source> folder), documents that are near copies of one those
kept are dropped too; the earlier outputs are only read, their band tables reused as written.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from corral.core import fs
from corral.core.errors import UsageError
from corral.core.fs import is_remote, join
from corral.core.outcome import KEPT, error
from corral.core.schema import DOC_SCHEMA, SIGNALS
from corral.core.shards import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, iter_batches
from corral.dedup import minhash
from corral.dedup.clusters import DUPLICATE_OF_EXISTING, NEAR_DUPLICATE
from corral.engine import folders
from corral.engine.execute import execute
from corral.engine.graph import Graph
from corral.engine.progress import Progress
from corral.engine.runners import Executor
from corral.manifests.build_manifest import BuildManifest, SourceBuild
from corral.manifests.mixture import PIECE_SIZE
from corral.pipeline.collect import funnel_counts, funnel_rows, merge_errors, selected, source_build, write_near_index
from corral.pipeline.inputs.chunks import chunk_lines
from corral.pipeline.inputs.row_groups import iter_rows
from corral.pipeline.inputs.streams import iter_jsonl, strip_compression_suffix
from corral.pipeline.phases import add_source
from corral.pipeline.rounds.against import NEAR, AgainstError, folder_of, index_digest, lsh_settings, resolve
from corral.pipeline.rounds.near import write_clusters
from corral.pipeline.rounds.stage import work_dir
from corral.pipeline.sources.base import Piece, Source, SourcePlan, jsonl_pieces, parquet_pieces

LABEL = "input"  # the funnel's source name for a standalone job
ERRORS = "errors.jsonl"  # OUT/errors.jsonl: the dead letters, one JSON object a line
REMOVED = "removed.jsonl"  # OUT/removed.jsonl: each dropped near duplicate and its cluster's representative
CLUSTERS = "clusters.arrow"  # OUT/clusters.arrow: every member of a cluster of two or more


class DedupInputError(UsageError):
    """The input cannot be read as a whole (nothing matches, or an unknown format)."""


def input_files(spec: str) -> list[str]:
    if is_remote(spec):
        files = [path for path, _ in fs.match(spec)] or fs.walk_files(spec)  # a glob, a file or a folder
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


def read_records(piece: Piece) -> Iterator[dict[str, Any]]:
    """One outcome per input record of a file, or of a piece of one (a chunk of JSON lines, a
    range of Parquet row groups): kept, or an error (no text, bad line). Row numbers, and so the
    ids made for rows without one, are the whole file's."""
    path, fmt = piece.path, _format(piece.path)
    if fmt == "jsonl":
        chunked = piece.kind == "chunks"
        lines = chunk_lines(path, piece.prepared, piece.start, True) if chunked else iter_jsonl(path, True)
        for where, i, obj, problem in lines:
            yield error(LABEL, "bad_record", where, problem) if problem else _outcome(_record(obj, path, i))
        return
    if fmt == "parquet":
        yield from _row_outcomes(path, iter_rows(path, piece.start, piece.end if piece.kind == "row_groups" else None))
        return
    yield from _row_outcomes(path, enumerate((row for batch in iter_batches(path) for row in batch.to_pylist()), 1))


def _row_outcomes(path: str, rows: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    for n, row in rows:
        if not isinstance(row.get("text"), str):
            yield error(LABEL, "bad_record", f"{path}#{n}", "no string field 'text'")
        else:
            yield _outcome(_record(row, path, n))


def write_removed(clusters: str, dest: str) -> int:
    """OUT/removed.jsonl: {"id", "duplicate_of", "reason"} for every member of a cluster that is not
    its representative, read from clusters.arrow a batch at a time; returns how many."""
    target, n = fs.AtomicFile(dest), 0
    columns = ("id", "cluster", "representative", "existing")
    try:
        for batch in iter_batches(clusters):
            ids, cluster, rep, old = (batch.column(c).to_pylist() for c in columns)
            lines = [
                json.dumps(
                    {"id": i, "duplicate_of": c, "reason": DUPLICATE_OF_EXISTING if e else NEAR_DUPLICATE},
                    ensure_ascii=False,
                )
                for i, c, r, e in zip(ids, cluster, rep, old)
                if not r
            ]
            target.raw.write("".join(ln + "\n" for ln in lines).encode("utf-8"))
            n += len(lines)
        target.commit()
    except BaseException:
        target.abort()
        raise
    return n


# --- the job: a build source of its own, near dedup only ---------------------------------------------


class Documents(Source):
    """The job's input as a source: records with a `text`, read as they are, near dedup only."""

    name = LABEL

    def split(self, path: str, size: int, stages: dict[str, Any], piece_size: int) -> list[Piece]:
        """JSON lines and Parquet larger than a piece: chunks of one pass, ranges of row groups (as
        a build's sources split them), so a task's memory is a piece's; Arrow shards are bounded."""
        if _format(path) == "parquet":
            return parquet_pieces(path, size, piece_size) or [Piece(path, size=size)]
        return jsonl_pieces(path, size, piece_size) if _format(path) == "jsonl" else [Piece(path, size=size)]

    def read(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return read_records(piece)

    def rounds(self, stages: dict[str, Any]) -> list[str]:
        return ["near"]


@dataclass(frozen=True)
class DedupSettings:
    """The job's MinHash settings (corral.dedup.minhash)."""

    threshold: float = minhash.DEFAULT_THRESHOLD
    ngram: int = minhash.DEFAULT_NGRAM
    num_perm: int | None = None  # derived from the threshold when not given
    verify: bool = True  # check each candidate pair's exact Jaccard


def _stages(s: DedupSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the stages a build source would run, the settings the manifest records)."""
    params = minhash.derive_lsh(s.threshold, s.num_perm, s.verify)
    shingles = {"threshold": s.threshold, "ngram": s.ngram, "num_perm": params.num_perm, "verify": s.verify}
    stages = {"exact_dedup": {"enabled": False}, "minhash": {"enabled": True, **shingles}}
    lsh = {"bands": params.bands, "rows": params.rows, "seed": minhash.SEED}
    return stages, {"dedup": {**shingles, **lsh}}


def _against(paths: list[str], out: str, stages: dict[str, Any]) -> tuple[str, ...]:
    """The band-table indexes of the earlier outputs (corral.pipeline.rounds.against.resolve)."""
    try:
        return resolve(paths, None, lsh_settings(stages["minhash"]), "--against", out)
    except AgainstError as e:
        raise DedupInputError(str(e)) from e


def _write_side_files(out: str) -> None:
    """OUT/errors.jsonl (the dead letters, when any), clusters.arrow and removed.jsonl."""
    fs.remove([join(out, ERRORS)])
    merge_errors(out, LABEL, join(out, ERRORS))
    if not fs.exists(join(out, CLUSTERS)):
        write_clusters(join(out, CLUSTERS), [])
    write_removed(join(out, CLUSTERS), join(out, REMOVED))


def _source_build(out: str, source: Source) -> SourceBuild:
    """The job's one source: its funnel from the phases' counts, its shards from the select phase."""
    shards, text_bytes = selected(out, LABEL)
    funnel = funnel_rows(funnel_counts(out, source, ("stage", "select"), set()))
    return source_build(LABEL, 1.0, {"shards": shards, "bytes": text_bytes, "funnel": funnel})


def dedup(
    spec: str,
    out: str,
    how: Executor | None = None,
    *,
    settings: DedupSettings | None = None,
    overwrite: bool = False,
    piece_size: int = PIECE_SIZE,
    against: Sequence[str] = (),
) -> BuildManifest:
    """Run the near-duplicate job over the input files on `how` (the local pool, one worker, by
    default); return the written manifest.

    The phases of a build source's near dedup (corral.pipeline.rounds.near): each file staged with its
    band keys; the LSH partitions' candidate edges, verified by exact Jaccard against the staged
    texts; components and their representatives; then each file's records written out, tagged or
    dropped. The pipeline carries work items and summaries only; the working files under
    OUT/_build are removed at the end. `against`: earlier outputs whose kept documents this job's
    may not duplicate (their band tables, OUT/near, are read, never written).
    """
    files = input_files(spec)
    stages, recorded = _stages(settings or DedupSettings())
    indexes = _against(list(against), out, stages)
    recorded["dedup"]["against"] = sorted({folder_of(p) for p in against})
    job = [recorded, files, piece_size, index_digest(indexes)]
    print_ = hashlib.sha256(json.dumps(job, sort_keys=True).encode("utf-8")).hexdigest()
    try:  # the same inputs and settings redo the job; other ones are refused (corral.engine.folders)
        folders.claim(
            out,
            "dedup",
            print_,
            flag="--out",
            overwrite=overwrite,
            what="this dedup job",
            redo="rerun it with its own input and settings",
        )
    except folders.FolderInUse as e:
        raise DedupInputError(str(e)) from e
    recorded["dedup"]["fingerprint"] = print_
    fs.remove([work_dir(out, LABEL), join(out, "docs"), join(out, NEAR)])
    output = {"compression": "zstd", "shard_max_rows": DEFAULT_MAX_ROWS, "shard_max_bytes": DEFAULT_MAX_BYTES}
    source, graph = Documents(), Graph()
    pieces = [p for f in files for p in source.split(f, fs.size(f), stages, piece_size)]
    plan = SourcePlan(LABEL, stages, output, out, pieces, fingerprint=print_, piece_size=piece_size)
    plan.docs_dir, plan.cluster_rows = join(out, "docs"), join(out, CLUSTERS)
    plan.near_dir, plan.against, plan.fresh = join(out, NEAR), indexes, True  # its working folder was cleared
    add_source(graph, source, plan)
    execute(graph, how or Executor(), Progress(graph, "dedup"))
    _write_side_files(out)
    write_near_index(plan)
    sb = _source_build(out, source)
    fs.remove([join(out, folders.BUILD_DIR)])
    mixture = {"name": "dedup", "inputs": [spec], "target_tokens": 0}
    manifest = BuildManifest(mixture=mixture, settings=recorded, sources={LABEL: sb})
    manifest.save(out)
    return manifest

"""`corral export OUT --to DIR --format parquet|jsonl|dolma|megatron [--source S] [--compression
gzip|zstd] [--level N]`: a build handed on to other tools, checked and resumable.

- Every output file is written under a temporary name and renamed only when whole, so a failed or
  killed export never leaves a file under its final name.
- The files are written by tasks on the engine (corral.engine), a document shard's files or a
  source's Megatron dataset each, on the local pool (a worker per usable CPU by default) or any Beam
  runner. JSON lines (jsonl, dolma) are compressed on threads besides (corral.export.compressed),
  the usable CPUs shared among the files written at once. While an export runs, each
  finished task leaves a completion record under DIR/_export, so a killed export resumes.
- DIR/export.json records, for each file, the shard it came from (path and sha256), its rows (and
  tokens), its size and sha256. It is written (atomically) when the export starts and when it ends,
  so a rerun skips what is finished and still matches its shard, and redoes the rest.
- DIR/README.md is a short dataset card: the build manifest's sha256, the mixture, each source's
  funnel, the files, and how to load them.
- A DIR holding an export of another build or format is refused, as are files corral did not write.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from corral.core import fs
from corral.core.errors import UsageError
from corral.core.fs import AtomicFile, atomic_write_bytes, join, sha256_of
from corral.core.schema import DOC_SCHEMA
from corral.core.shards import HashingSink, iter_batches, read_token_shard
from corral.engine.execute import run_each
from corral.engine.graph import Item, Ledger, Summary, Task
from corral.engine.runners import Executor, usable_cpus
from corral.export import FORMATS, megatron
from corral.export.compressed import SUFFIX, Compressed, check_codec
from corral.export.documents import JsonlOut, ParquetOut, dolma_attribute_lines, dolma_document, jsonl_row
from corral.export.json_lines import text_lines
from corral.manifests.build_manifest import BuildManifest, load_build, manifest_sha256

RECORD = "export.json"
RECORDS = "_export"  # DEST/_export: the completion records of an export that has not finished
CARD = "README.md"
JSON_LINES = ("jsonl", "dolma")  # the formats written as compressed JSON lines (--compression, --level)


class ExportError(UsageError):
    """The export cannot run as asked: the message says what to fix."""


@dataclass
class Result:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    data_path: str | None = None  # megatron: the weighted --data-path


def _targets(fmt: str, source: str, index: int, codec: str | None) -> list[str]:
    """Output files (relative to DIR) of shard `index` of `source`."""
    name = f"part-{index:05d}"
    if fmt == "parquet":
        return [f"{source}/{name}.parquet"]
    lines = f"{name}.jsonl{SUFFIX[codec]}"
    if fmt == "jsonl":
        return [f"{source}/{lines}"]
    return [f"documents/{source}/{lines}", f"attributes/corral/{source}/{lines}"]


def _load_record(dest: str, fmt: str, sha: str, codec: str | None) -> dict[str, Any]:
    path = join(dest, RECORD)
    if not fs.exists(path):
        stray = fs.list_entries(dest)
        if stray:
            raise ExportError(
                f"{dest}: holds files corral's export did not write ({', '.join(sorted(stray)[:3])}): "
                "choose an empty or new --to"
            )
        return {"format": fmt, "compression": codec, "build_manifest_sha256": sha, "files": {}}
    record = json.loads(fs.read_bytes(path))
    # a record of JSON lines that names no compression holds gzip files
    was = record.get("compression", "gzip" if record.get("format") in JSON_LINES else None)
    if (record.get("format"), was, record.get("build_manifest_sha256")) != (fmt, codec, sha):
        raise ExportError(
            f"{dest}: holds a {_kind(record.get('format'), was)} export of the build whose manifest sha256 is "
            f"{record.get('build_manifest_sha256')}; this is a {_kind(fmt, codec)} export of {sha}: choose another --to"
        )
    return record


def _kind(fmt: str | None, codec: str | None) -> str:
    return f"{fmt} ({codec})" if codec else str(fmt)


def _save_record(dest: str, record: dict[str, Any]) -> None:
    atomic_write_bytes(join(dest, RECORD), json.dumps(record, indent=2, sort_keys=True).encode())


def _done(dest: str, record: dict[str, Any], rel: str, origin: str) -> bool:
    entry = record["files"].get(rel)
    path = join(dest, rel)
    return bool(entry) and entry.get("from_sha256") == origin and fs.exists(path) and fs.size(path) == entry["bytes"]


def _writers(s: _Settings, sinks: list[HashingSink], opened: list) -> None:
    """The writers of one shard's output file(s), appended to `opened` as each is made (so that a
    failure while making the second still stops the first's threads)."""
    if s.fmt == "parquet":
        opened.append(ParquetOut(sinks[0], DOC_SCHEMA))
        return
    if s.fmt == "jsonl":
        lines = [partial(text_lines, line=jsonl_row)]
    else:
        lines = [partial(text_lines, line=partial(dolma_document, added=s.added)), dolma_attribute_lines]
    for sink, batch_lines in zip(sinks, lines):
        opened.append(JsonlOut(Compressed(sink, s.codec, s.level, s.threads), batch_lines))


def _export_shard(s: _Settings, shard_path: str, outs: list[str]) -> list[dict[str, Any]]:
    """Stream one document shard into its output file(s); return each file's rows, bytes and sha256."""
    files = [AtomicFile(p) for p in outs]
    sinks = [HashingSink(f.raw) for f in files]
    writers: list = []
    try:
        _writers(s, sinks, writers)
        rows = 0
        for batch in iter_batches(shard_path):
            for w in writers:
                w.write(batch)
            rows += batch.num_rows
        for w in writers:
            w.close()
        for f in files:
            f.commit()
    except BaseException:
        for w in writers:
            w.abort()
        for f in files:
            f.abort()
        raise
    return [{"rows": rows, "bytes": sink.size, "sha256": sink.sha256.hexdigest()} for sink in sinks]


def _export_tokens(dest: str, source: str, shards: list[str], out: str, vocab: int) -> dict[str, Any]:
    """One source's token shards (paths relative to OUT) as one Megatron indexed dataset."""
    prefix = os.path.join(dest, f"{source}_text_document")

    def pieces():
        for path in shards:
            shard = read_token_shard(join(out, path))
            yield shard.tokens, np.asarray(shard.offsets, dtype=np.int64)

    docs, tokens = megatron.write_indexed(prefix, pieces(), megatron.dtype_for(vocab))
    return {
        "rows": docs,
        "tokens": tokens,
        "bytes": os.path.getsize(prefix + ".bin"),
        "sha256": sha256_of(prefix + ".bin"),
        "idx_sha256": sha256_of(prefix + ".idx"),
    }


def _origin(entries: list[dict]) -> str:
    return hashlib.sha256("".join(e["sha256"] for e in entries).encode()).hexdigest()


@dataclass(frozen=True)
class ExportItem(Item):
    """Files to write from a build's shards: one document shard's file(s), or one source's Megatron
    dataset from all its token shards (`origin`: the sha256 they depend on)."""

    source: str = ""
    shards: tuple[str, ...] = ()  # relative to OUT
    targets: tuple[str, ...] = ()  # relative to DEST
    origin: str = ""


@dataclass
class ExportSummary(Summary):
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # each target's export.json entry


@dataclass(frozen=True)
class _Settings:
    """What every task of one export shares."""

    out: str
    dest: str
    fmt: str
    added: str  # dolma's `added`: when the build was made
    vocab: int  # megatron: the tokenizer's vocabulary (the token dtype)
    codec: str | None = None  # jsonl and dolma: gzip or zstd (corral.export.compressed)
    level: int | None = None
    threads: int = 1  # compression threads of each JSON lines file


class ExportTask(Task):
    """One item's files, each written whole under a temporary name and renamed."""

    phase = "export"
    summary = ExportSummary

    def __init__(self, settings: _Settings):
        self.s = settings

    def still_done(self, item: ExportItem, summary: ExportSummary) -> bool:
        return all(
            fs.exists(fs.join(self.s.dest, rel)) and fs.size(fs.join(self.s.dest, rel)) == e["bytes"]
            for rel, e in summary.files.items()
        )

    def run(self, item: ExportItem, *earlier) -> ExportSummary:
        s = self.s
        if s.fmt == "megatron":
            rel = item.targets[0]
            stats = _export_tokens(s.dest, item.source, list(item.shards), s.out, s.vocab)
            entry = {**stats, "source": item.source, "from_sha256": item.origin, "idx": rel[: -len(".bin")] + ".idx"}
            return ExportSummary(files={rel: entry}, records=stats["rows"])
        outs = [join(s.dest, r) for r in item.targets]
        stats = _export_shard(s, join(s.out, item.shards[0]), outs)
        files = {
            r: {**st, "source": item.source, "from": item.shards[0], "from_sha256": item.origin}
            for r, st in zip(item.targets, stats)
        }
        return ExportSummary(files=files, records=stats[0]["rows"])


def _items(manifest: BuildManifest, fmt: str, chosen: list[str], codec: str | None) -> list[ExportItem]:
    """What to write: per document shard its file(s), or per source one Megatron dataset."""
    if fmt == "megatron":
        return [
            ExportItem(
                f"{s}_text_document",
                s,
                tuple(e["path"] for e in manifest.sources[s].token_shards),
                targets=(f"{s}_text_document.bin",),
                origin=_origin(manifest.sources[s].token_shards),
            )
            for s in chosen
        ]
    return [
        ExportItem(
            f"{s}-{i:05d}", s, (entry["path"],), targets=tuple(_targets(fmt, s, i, codec)), origin=entry["sha256"]
        )
        for s in chosen
        for i, entry in enumerate(manifest.sources[s].shards)
    ]


def _check(out: str, manifest: BuildManifest, fmt: str, sources: list[str] | None) -> list[str]:
    """The sources to export; an ExportError for what cannot be exported as asked."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    unknown = sorted(set(sources or []) - set(manifest.sources))
    if unknown:
        raise ExportError(f"--source {', '.join(unknown)}: the build has {', '.join(manifest.sources)}")
    chosen = [s for s in manifest.sources if not sources or s in sources]
    if fmt == "megatron":
        missing = [s for s in chosen if not manifest.sources[s].token_shards]
        if not manifest.models.get("tokenizer") or missing:
            raise ExportError(f"{out}: no token shards for {', '.join(missing or chosen)}: run `corral tokenize {out}`")
    return chosen


def _codec(fmt: str, compression: str | None, level: int | None) -> tuple[str | None, int | None]:
    """The compression and level of JSON lines (gzip at its default level unless asked); none for
    Parquet and Megatron, which refuse the flags."""
    if fmt not in JSON_LINES:
        if compression is not None or level is not None:
            raise ExportError(f"--compression and --level: only for --format {' or '.join(JSON_LINES)}, not {fmt}")
        return None, None
    codec = compression or "gzip"
    try:
        return codec, check_codec(codec, level)
    except ValueError as e:
        raise ExportError(str(e)) from None


def _threads(how: Executor, pending: int) -> int:
    """Compression threads for each file: the usable CPUs shared among the files written at once
    (at least one, which compresses while the task's own thread makes the lines)."""
    return max(1, usable_cpus() // max(1, min(how.workers, pending)))


def export(
    out: str,
    dest: str,
    fmt: str,
    sources: list[str] | None = None,
    how: Executor | None = None,
    *,
    compression: str | None = None,
    level: int | None = None,
    say=print,
) -> Result:
    """Export build OUT into DEST in `fmt` on `how` (by default the local pool with a worker per usable
    CPU); JSON lines compressed with `compression` (gzip or zstd) at `level`; see the module docstring."""
    manifest = load_build(out)
    chosen = _check(out, manifest, fmt, sources)
    codec, level = _codec(fmt, compression, level)
    sha = manifest_sha256(out)
    if os.path.isfile(dest):
        raise ExportError(f"--to {dest}: is a file, not a folder")
    if fmt == "megatron" and fs.is_remote(dest):  # its .bin is written through a memory map
        raise ExportError(f"--to {dest}: Megatron datasets are written to local disk; give a local --to")
    record = _load_record(dest, fmt, sha, codec)
    if not fs.is_remote(dest):
        os.makedirs(dest, exist_ok=True)
    _save_record(dest, record)  # the folder is this export's from now on: a rerun resumes it
    how = how or Executor(workers=usable_cpus())
    result, units = Result(), {}
    for item in _items(manifest, fmt, chosen, codec):
        if all(_done(dest, record, r, item.origin) for r in item.targets):  # finished in an earlier export
            result.skipped += list(item.targets)
        else:
            units.setdefault(Ledger(os.path.join(dest, RECORDS), item.source, f"{fmt}:{sha}"), []).append(item)
    tok = manifest.models.get("tokenizer") or {}
    added = manifest.created or datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    threads = _threads(how, sum(len(items) for items in units.values()))
    settings = _Settings(
        out, dest, fmt, added, int(tok.get("vocab_size", 0)), codec=codec, level=level, threads=threads
    )
    for summaries in run_each(ExportTask(settings), units, how, "export").values():
        for summary in summaries:
            record["files"].update(summary.files)
            first = next(iter(summary.files))
            if summary.reused:  # finished before an interruption
                result.skipped += list(summary.files)
            else:
                result.written += list(summary.files)
                say(f"corral export: {_said(first, summary.files[first])}")
    _save_record(dest, record)
    shutil.rmtree(os.path.join(dest, RECORDS), ignore_errors=True)
    if fmt == "megatron":
        weights = {s: manifest.sources[s].weight for s in chosen}
        prefixes = {s: os.path.join(os.path.abspath(dest), f"{s}_text_document") for s in chosen if weights[s] > 0}
        result.data_path = megatron.data_path(weights, prefixes)
    about = _Card(out, sha, fmt, result.data_path, SUFFIX.get(codec or "", ""))
    atomic_write_bytes(os.path.join(dest, CARD), card(manifest, record, about).encode())
    return result


def _said(rel: str, entry: dict[str, Any]) -> str:
    if "tokens" in entry:
        return f"{rel}: {entry['rows']:,} documents, {entry['tokens']:,} tokens"
    return f"{rel}: {entry['rows']:,} documents"


@dataclass(frozen=True)
class _Card:
    """What the dataset card says of an export besides its files: the build (its folder and its
    manifest's sha256), the format and, for Megatron, the weighted --data-path."""

    out: str
    sha: str
    fmt: str
    data_path: str | None
    suffix: str = ""  # JSON lines: the compression's file suffix (.gz, .zst)


def card(manifest: BuildManifest, record: dict[str, Any], about: _Card) -> str:
    """The dataset card: what was exported, from which build, and how to load it."""
    out, sha, fmt, data_path, jsonl = about.out, about.sha, about.fmt, about.data_path, f"jsonl{about.suffix}"
    name = manifest.mixture.get("name", "corral build")
    lines = [
        f"# {name}: {fmt} export",
        "",
        f"Exported by corral from the build at `{os.path.abspath(out)}`, whose `manifest.json` has "
        f"sha256 `{sha}`. Each file's rows, size and sha256 are in `{RECORD}`.",
        "",
        "| source | weight | input | kept | dropped | errors | files | rows |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s, sb in manifest.sources.items():
        files = [f for f in record["files"].values() if f.get("source") == s]
        if not files:
            continue
        f = sb.funnel
        lines.append(
            f"| {s} | {sb.weight:g} | {f.input:,} | {f.kept:,} | {sum(f.dropped.values()):,} | "
            f"{sum(f.errors.values()):,} | {len(files)} | {sum(x['rows'] for x in files):,} |"
        )
    lines.append("")
    if fmt == "parquet":
        lines += [
            "```python",
            "import datasets",
            'ds = datasets.load_dataset("parquet", data_files={"train": "*/part-*.parquet"}, split="train")',
            "```",
        ]
    elif fmt == "jsonl":
        lines += [
            "```python",
            "import datasets",
            f'ds = datasets.load_dataset("json", data_files={{"train": "*/part-*.{jsonl}"}}, split="train")',
            "```",
        ]
    elif fmt == "dolma":
        lines += [
            f"dolma layout: `documents/<source>/part-*.{jsonl}` and the attribute set `corral` under "
            "`attributes/corral/<source>/` (`corral__<signal>`: one span over the whole text)."
        ]
    else:
        lines += [
            "Megatron-LM indexed datasets (`<source>_text_document.bin/.idx`, one sequence per document). "
            "Weighted by the mixture:",
            "",
            "```",
            f"--data-path {data_path}",
            "```",
        ]
    return "\n".join(lines) + "\n"

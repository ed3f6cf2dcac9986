"""`corral export OUT --to DIR --format parquet|jsonl|dolma|megatron [--source S]`: a build handed
on to other tools, checked and resumable.

- Every output file is written under a temporary name and renamed only when whole, so a failed or
  killed export never leaves a file under its final name.
- DIR/export.json records, for each file, the shard it came from (path and sha256), its rows (and
  tokens), its size and sha256. It is rewritten (atomically) after each file, so a rerun skips what
  is finished and still matches its shard, and redoes the rest.
- DIR/README.md is a short dataset card: the build manifest's sha256, the mixture, each source's
  funnel, the files, and how to load them.
- A DIR holding an export of another build or format is refused, as are files corral did not write.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corral.errors import UsageError
from corral.export import FORMATS, megatron
from corral.export.documents import JsonlOut, ParquetOut, dolma_attributes, dolma_document, jsonl_row
from corral.fs import AtomicFile, atomic_write_bytes, sha256_of
from corral.manifests.build import BuildManifest, join, load_build, manifest_sha256
from corral.schema import DOC_SCHEMA
from corral.shards import HashingSink, iter_batches, read_token_shard

RECORD = "export.json"
CARD = "README.md"


class ExportError(UsageError):
    """The export cannot run as asked: the message says what to fix."""


@dataclass
class Result:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    data_path: str | None = None  # megatron: the weighted --data-path


def _targets(fmt: str, source: str, index: int) -> list[str]:
    """Output files (relative to DIR) of shard `index` of `source`."""
    name = f"part-{index:05d}"
    if fmt == "parquet":
        return [f"{source}/{name}.parquet"]
    if fmt == "jsonl":
        return [f"{source}/{name}.jsonl.gz"]
    return [f"documents/{source}/{name}.jsonl.gz", f"attributes/corral/{source}/{name}.jsonl.gz"]


def _load_record(dest: str, fmt: str, sha: str) -> dict[str, Any]:
    path = os.path.join(dest, RECORD)
    if not os.path.exists(path):
        stray = [n for n in os.listdir(dest)] if os.path.isdir(dest) else []
        if stray:
            raise ExportError(
                f"{dest}: holds files corral's export did not write ({', '.join(sorted(stray)[:3])}): "
                "choose an empty or new --to"
            )
        return {"format": fmt, "build_manifest_sha256": sha, "files": {}}
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if record.get("format") != fmt or record.get("build_manifest_sha256") != sha:
        raise ExportError(
            f"{dest}: holds a {record.get('format')} export of the build whose manifest sha256 is "
            f"{record.get('build_manifest_sha256')}; this is a {fmt} export of {sha}: choose another --to"
        )
    return record


def _save_record(dest: str, record: dict[str, Any]) -> None:
    atomic_write_bytes(os.path.join(dest, RECORD), json.dumps(record, indent=2, sort_keys=True).encode())


def _done(dest: str, record: dict[str, Any], rel: str, origin: str) -> bool:
    entry = record["files"].get(rel)
    path = os.path.join(dest, rel)
    return (
        bool(entry)
        and entry.get("from_sha256") == origin
        and os.path.exists(path)
        and os.path.getsize(path) == entry["bytes"]
    )


def _export_shard(fmt: str, shard_path: str, outs: list[str], added: str) -> list[dict[str, Any]]:
    """Stream one document shard into its output file(s); return each file's rows, bytes and sha256."""
    files = [AtomicFile(p) for p in outs]
    sinks = [HashingSink(f.raw) for f in files]
    try:
        if fmt == "parquet":
            writers = [ParquetOut(sinks[0], DOC_SCHEMA)]
        elif fmt == "jsonl":
            writers = [JsonlOut(sinks[0], jsonl_row)]
        else:
            writers = [JsonlOut(sinks[0], lambda r: dolma_document(r, added)), JsonlOut(sinks[1], dolma_attributes)]
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
        for f in files:
            f.abort()
        raise
    return [{"rows": rows, "bytes": s.size, "sha256": s.sha256.hexdigest()} for s in sinks]


def _export_tokens(dest: str, source: str, entries: list[dict], out: str, vocab: int) -> dict[str, Any]:
    prefix = os.path.join(dest, f"{source}_text_document")

    def pieces():
        for e in entries:
            shard = read_token_shard(join(out, e["path"]))
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


def export(out: str, dest: str, fmt: str, sources: list[str] | None = None, say=print) -> Result:
    """Export build OUT into DEST in `fmt`; see the module docstring."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    manifest = load_build(out)
    unknown = sorted(set(sources or []) - set(manifest.sources))
    if unknown:
        raise ExportError(f"--source {', '.join(unknown)}: the build has {', '.join(manifest.sources)}")
    chosen = [s for s in manifest.sources if not sources or s in sources]
    sha = manifest_sha256(out)
    if os.path.isfile(dest):
        raise ExportError(f"--to {dest}: is a file, not a folder")
    record = _load_record(dest, fmt, sha)
    os.makedirs(dest, exist_ok=True)
    result = Result()
    if fmt == "megatron":
        tok = manifest.models.get("tokenizer")
        missing = [s for s in chosen if not manifest.sources[s].token_shards]
        if not tok or missing:
            raise ExportError(f"{out}: no token shards for {', '.join(missing or chosen)}: run `corral tokenize {out}`")
        prefixes = {}
        for s in chosen:
            entries = manifest.sources[s].token_shards
            rel, origin = f"{s}_text_document.bin", _origin(entries)
            prefixes[s] = os.path.join(os.path.abspath(dest), f"{s}_text_document")
            if _done(dest, record, rel, origin):
                result.skipped.append(rel)
                continue
            record["files"][rel] = {
                **_export_tokens(dest, s, entries, out, int(tok["vocab_size"])),
                "source": s,
                "from_sha256": origin,
                "idx": f"{s}_text_document.idx",
            }
            _save_record(dest, record)
            result.written.append(rel)
            say(
                f"corral export: {rel}: {record['files'][rel]['rows']:,} documents, "
                f"{record['files'][rel]['tokens']:,} tokens"
            )
        weights = {s: manifest.sources[s].weight for s in chosen}
        result.data_path = megatron.data_path(weights, {s: p for s, p in prefixes.items() if weights[s] > 0})
    else:
        added = manifest.created or datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        for s in chosen:
            for i, entry in enumerate(manifest.sources[s].shards):
                rels = _targets(fmt, s, i)
                if all(_done(dest, record, r, entry["sha256"]) for r in rels):
                    result.skipped += rels
                    continue
                stats = _export_shard(fmt, join(out, entry["path"]), [os.path.join(dest, r) for r in rels], added)
                for r, st in zip(rels, stats):
                    record["files"][r] = {**st, "source": s, "from": entry["path"], "from_sha256": entry["sha256"]}
                _save_record(dest, record)
                result.written += rels
                say(f"corral export: {rels[0]}: {stats[0]['rows']:,} documents")
    atomic_write_bytes(os.path.join(dest, CARD), card(manifest, sha, fmt, record, out, result.data_path).encode())
    return result


def card(manifest: BuildManifest, sha: str, fmt: str, record: dict[str, Any], out: str, data_path: str | None) -> str:
    """The dataset card: what was exported, from which build, and how to load it."""
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
            'ds = datasets.load_dataset("json", data_files={"train": "*/part-*.jsonl.gz"}, split="train")',
            "```",
        ]
    elif fmt == "dolma":
        lines += [
            "dolma layout: `documents/<source>/part-*.jsonl.gz` and the attribute set `corral` under "
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

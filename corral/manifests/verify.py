"""`corral verify OUT`: recheck a build against its manifest.

For every document and token shard: it exists, its size, sha256 and row count match the manifest.
For every source: the funnel adds up (input = kept + dropped + errors), `kept` equals the documents
in its shards, and its token count matches its token shards. For every side model: it exists and its
sha256 matches. For every source that keeps MinHash band tables (OUT/near, what a later job
deduplicates against): each table exists with the sha256 its index records, and the index covers
the source's shards and documents. Shard files on disk that the manifest does not list are reported
as warnings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from corral.core.fs import exists as file_exists
from corral.core.fs import is_remote, join, open_read, sha256_of, walk_files
from corral.core.fs import size as file_size
from corral.core.shards import SHARD_SUFFIX, ShardError, count_rows, read_token_shard
from corral.manifests.build_manifest import BuildManifestError, load_build


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    shards_checked: int = 0
    models_checked: int = 0
    sources_checked: int = 0
    tables_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        tables = f", {self.tables_checked} band tables" if self.tables_checked else ""
        head = f"{self.sources_checked} sources, {self.shards_checked} shards{tables}, {self.models_checked} models"
        head += " checked"
        lines = [f"OK: {head}" if self.ok else f"FAILED: {len(self.problems)} mismatch(es); {head}"]
        lines += [f"  mismatch: {p}" for p in self.problems]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _check_shard(out: str, source: str, kind: str, entry: dict, report: VerifyReport) -> int | None:
    """Check one shard entry; return its row count when readable."""
    rel = entry.get("path", "?")
    where = f"{source} {kind} shard {rel}"
    path = join(out, rel)
    report.shards_checked += 1
    if not file_exists(path):
        report.problems.append(f"{where}: missing")
        return None
    size = file_size(path)
    if size != entry.get("bytes"):
        report.problems.append(f"{where}: {size} bytes on disk, manifest says {entry.get('bytes')}")
    digest = sha256_of(path)
    if digest != entry.get("sha256"):
        report.problems.append(
            f"{where}: sha256 {digest[:16]}… differs from the manifest's {str(entry.get('sha256'))[:16]}…"
        )
    try:
        rows = count_rows(path)
    except (ShardError, OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        report.problems.append(f"{where}: unreadable ({e})")
        return None
    if rows != entry.get("documents"):
        report.problems.append(f"{where}: {rows} rows, manifest says {entry.get('documents')}")
    return rows


def _check_tables(out: str, source: str, shards: list[dict], report: VerifyReport) -> None:
    """A source's MinHash band tables (OUT/near/<source>, or OUT/near for `corral dedup`), when it
    has some: each one's sha256, and the index's shards and documents against the manifest's."""
    index = next(
        (p for p in (join(out, f"near/{source}/index.json"), join(out, "near/index.json")) if file_exists(p)), None
    )
    if index is None:
        return
    with open_read(index) as f:
        data = json.loads(f.read())
    listed = set()
    for t in data.get("tables", []):
        report.tables_checked += 1
        path, where = join(out, t["path"]), f"{source} band table {t['path']}"
        listed.update(os.path.normpath(s) for s in t["shards"])
        if not file_exists(path):
            report.problems.append(f"{where}: missing")
        elif sha256_of(path) != t.get("sha256"):
            report.problems.append(f"{where}: sha256 differs from its index's ({index})")
    with_rows = {os.path.normpath(s["path"]) for s in shards if s.get("documents")}
    if listed != with_rows or data.get("documents") != sum(int(s.get("documents", 0)) for s in shards):
        report.problems.append(f"{source}: the band tables' index {index} does not cover the manifest's shards")


def verify_build(out: str) -> VerifyReport:
    report = VerifyReport()
    try:
        manifest = load_build(out)
    except BuildManifestError as e:
        report.problems.append(str(e))
        return report
    listed: set[str] = set()
    for name, src in manifest.sources.items():
        report.sources_checked += 1
        f = src.funnel
        if not f.balanced():
            report.problems.append(
                f"{name} funnel: input {f.input} ≠ kept {f.kept} + dropped {sum(f.dropped.values())} "
                f"+ errors {sum(f.errors.values())} (= {f.accounted})"
            )
        shard_docs = sum(int(s.get("documents", 0)) for s in src.shards)
        if shard_docs != src.documents:
            report.problems.append(f"{name}: documents {src.documents} ≠ {shard_docs} in its shards")
        if f.kept != src.documents:
            report.problems.append(f"{name} funnel: kept {f.kept} ≠ documents {src.documents}")
        for entry in src.shards:
            listed.add(os.path.normpath(entry.get("path", "")))
            _check_shard(out, name, "document", entry, report)
        _check_tables(out, name, src.shards, report)
        token_total = 0
        for entry in src.token_shards:
            listed.add(os.path.normpath(entry.get("path", "")))
            if _check_shard(out, name, "token", entry, report) is not None and src.tokens is not None:
                try:
                    token_total += int(read_token_shard(join(out, entry["path"])).offsets[-1])
                except (ShardError, OSError, ValueError) as e:  # a damaged zstd body fails only here
                    report.problems.append(f"{name} token shard {entry['path']}: unreadable ({e})")
        if src.token_shards:
            tok_docs = sum(int(s.get("documents", 0)) for s in src.token_shards)
            if tok_docs != src.documents:
                report.problems.append(f"{name}: {tok_docs} documents in token shards ≠ {src.documents} documents")
            if src.tokens is not None and token_total != src.tokens:
                report.problems.append(f"{name}: tokens {src.tokens} ≠ {token_total} in its token shards")
    for mname, model in manifest.models.items():
        report.models_checked += 1
        rel = model.get("path", "")
        path = rel if (is_remote(rel) or os.path.isabs(rel)) else join(out, rel)
        if not file_exists(path):
            report.problems.append(f"model {mname}: {rel} missing")
        elif sha256_of(path) != model.get("sha256"):
            report.problems.append(f"model {mname}: sha256 of {rel} differs from the manifest's")
    prefix = out.rstrip("/") + "/"
    for p in walk_files(out):
        rel = os.path.normpath(p[len(prefix) :] if p.startswith(prefix) else os.path.relpath(p, out))
        if p.endswith(SHARD_SUFFIX) and rel not in listed and os.path.basename(rel) != "clusters.arrow":
            report.warnings.append(f"{rel}: shard file not listed in the manifest")
    return report

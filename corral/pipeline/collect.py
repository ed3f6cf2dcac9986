"""What a built source leaves for the manifest, read back from its completion records (nothing passes
from the workers to the driver except through OUT): the funnel counts, the shards and their text
bytes, the side models, the dead letters (merged into one file), the dropped examples (merged into
OUT/examples/<source>.json) and what crossed the pipeline's shuffles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from corral.core import fs
from corral.core.outcome import funnel_from_counts
from corral.core.shards import ShardInfo
from corral.engine.graph import Summary
from corral.engine.records import EXAMPLES, read_once, recorded, records
from corral.manifests.build_manifest import SourceBuild, relative_shard
from corral.pipeline.rounds.against import lsh_settings, write_index
from corral.pipeline.rounds.select import SelectSummary
from corral.pipeline.rounds.stage import EXAMPLES_PER_REASON, StagedSummary, ledger, work_dir
from corral.pipeline.sources.base import Source, SourcePlan, Staged


@dataclass
class _Counted(Summary):
    """What the summary of every phase that counts records has: counts per (status, reason, group)
    and the rows read per group."""

    counts: list[list[Any]] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)


def funnel_counts(out: str, source: Source, phases: tuple[str, ...], excluded: set[str]) -> dict[tuple, int]:
    """(status, reason) → records, over the summaries of the phases that count. The records of a
    group the source drops whole count under its `excluded_reason`, whatever else befell them."""
    gone = ("dropped", source.excluded_reason)
    counts: dict[tuple[str, str | None], int] = {}
    for phase in phases:
        for s in recorded(ledger(out, source.name), phase, _Counted):
            for status, reason, group, n in s.counts:
                key = gone if group in excluded else (status, reason)
                counts[key] = counts.get(key, 0) + n
            for group, n in s.groups.items() if excluded else ():
                if group in excluded:  # its staged rows are counted here, not at select
                    counts[gone] = counts.get(gone, 0) + n - sum(c[3] for c in s.counts if c[2] == group)
    return counts


def selected(out: str, name: str) -> tuple[list[dict[str, Any]], int]:
    """The shards the select pass wrote (paths relative to OUT, sorted) and their text bytes."""
    summaries = recorded(ledger(out, name), "select", SelectSummary)
    shards = sorted((relative_shard(ShardInfo(**d), out) for s in summaries for d in s.shards), key=lambda d: d["path"])
    return shards, sum(s.bytes for s in summaries)


def write_near_index(plan: SourcePlan) -> None:
    """The index of the band tables a source's select items wrote (corral.pipeline.rounds.against),
    with the settings they were made with: what a later job deduplicates against."""
    if plan.stages["minhash"]["enabled"]:
        summaries = recorded(ledger(plan.out, plan.name), "select", SelectSummary)
        tables = [s.near for s in summaries if s.near]
        write_index(plan.out, plan.tables_dir, lsh_settings(plan.stages["minhash"]), tables)


def models(out: str, name: str, phases: tuple[str, ...]) -> dict[str, Any]:
    """The side models the phases' summaries name, with paths relative to OUT."""
    found: dict[str, Any] = {}
    prefix = out.rstrip("/") + "/"
    for phase in phases:
        for rec in records(ledger(out, name), phase):
            for model, info in rec["summary"].get("models", {}).items():
                where = info["path"][len(prefix) :] if info["path"].startswith(prefix) else info["path"]
                found[model] = {**info, "path": where}
    return found


def merge_errors(out: str, name: str, dest: str) -> list[str]:
    """Every task's dead letters, sorted, into `dest` (when there are any); returns them."""
    lines = []
    for path in fs.list_files(fs.join(work_dir(out, name), "errors")):
        if path.endswith(".jsonl") and fs.TMP_MARK not in path:
            lines += [ln for ln in fs.read_bytes(path).decode("utf-8").splitlines() if ln]
    if lines:
        fs.atomic_write_bytes(dest, ("\n".join(sorted(lines)) + "\n").encode("utf-8"))
    return lines


def merge_examples(out: str, name: str) -> None:
    """OUT/examples/<source>.json: up to EXAMPLES_PER_REASON dropped documents per reason, {reason:
    [[id, start of text], …]}, from the tasks' example files in phase and item order."""
    merged: dict[str, list] = {}
    for path in sorted(fs.list_files(fs.join(work_dir(out, name), EXAMPLES))):
        if fs.TMP_MARK in path:
            continue
        for reason, rows in json.loads(fs.read_bytes(path)).items():
            room = EXAMPLES_PER_REASON - len(merged.setdefault(reason, []))
            merged[reason] += rows[: max(0, room)]
    dest = fs.join(out, f"examples/{name}.json")
    if merged:
        fs.atomic_write_bytes(dest, json.dumps(merged, ensure_ascii=False, indent=1).encode("utf-8"))
    else:  # none this time: no stale file from an earlier build
        fs.remove([dest])


def shuffle_stats(out: str, name: str, read: int) -> dict[str, Any]:
    """What crossed the pipeline's shuffles for this source (work items and their summaries, as
    recorded) and what went through key files, per input record; each phase's tasks and seconds."""
    folder = fs.join(work_dir(out, name), "done")
    shuffled = key_bytes = 0
    phases, seconds = {}, {}
    for phase_dir in fs.list_entries(folder):
        n, took = 0, 0.0
        for rec in records(ledger(out, name), phase_dir):
            n += 1
            shuffled += len(json.dumps(rec["item"])) + len(json.dumps(rec["summary"]))
            key_bytes += int(rec["summary"].get("key_bytes", 0))
            took += float(rec["summary"].get("seconds", 0.0))
        phases[phase_dir], seconds[phase_dir] = n, round(took, 3)
    per = max(read, 1)  # records read from the inputs
    return {
        "tasks": phases,
        "task_seconds": seconds,
        "shuffle_bytes": shuffled,
        "shuffle_bytes_per_record": round(shuffled / per, 1),
        "key_file_bytes_per_record": round(key_bytes / per, 1),
    }


def funnel_rows(counts: dict[tuple, int]) -> list[list[Any]]:
    """Funnel counts as the record keeps them: [status, reason, n], sorted."""
    return [[s, r, n] for (s, r), n in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))]


def source_build(name: str, weight: float, record: dict[str, Any]) -> SourceBuild:
    """A source's entry in the manifest, from its record (shards, text bytes, funnel rows)."""
    shards = record["shards"]
    sb = SourceBuild(weight, sum(s["documents"] for s in shards), record["bytes"], shards=shards)
    sb.funnel = funnel_from_counts([((name, s, r), n) for s, r, n in record["funnel"]]).get(name, sb.funnel)
    return sb


def collect(source: Source, plan: SourcePlan, staged: Staged) -> dict[str, Any]:
    """A built source's record for the manifest: funnel counts, shards, text bytes, models and
    shuffle sizes; its dead letters merged into OUT/errors/<source>/errors.jsonl and its examples
    into OUT/examples/<source>.json."""
    with read_once():
        return _collect(source, plan, staged)


def _collect(source: Source, plan: SourcePlan, staged: Staged) -> dict[str, Any]:
    out, name = plan.out, plan.name
    first = recorded(ledger(out, name), staged.phase, StagedSummary)  # what select decides from
    excluded = set(source.excluded_groups(plan.stages, first))
    counts = funnel_counts(out, source, (*staged.counted, "select"), excluded)
    shards, text_bytes = selected(out, name)
    merge_errors(out, name, fs.join(out, f"errors/{name}/errors.jsonl"))
    merge_examples(out, name)
    write_near_index(plan)
    return {
        "shards": shards,
        "bytes": text_bytes,
        "models": models(out, name, staged.models),
        "funnel": funnel_rows(counts),
        "stats": shuffle_stats(out, name, sum(counts.values())),
    }

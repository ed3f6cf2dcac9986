"""`corral build`: a mixture manifest → a graph of phases over files → OUT/manifest.json.

Per source (corral.pipeline.plans): per-file tasks read, clean and tag each input file and stage its
documents with compact key files; dedup rounds decide from the keys which documents go; a select
pass per group of staged files writes OUT/docs/<source>/part-*.arrow. CommonCrawl runs cc_net's two
passes with side models trained on the build's Wikipedia in between. Texts never cross a shuffle:
only work items and summaries pass between tasks (docs/design.md). The graph runs on this
machine (corral.pipeline.pool) or, given a Beam runner, as Beam pipelines (corral.pipeline.on_beam).

The driver then reads the completion records back — counts, shards, models — merges the dead
letters into OUT/errors/<source>/errors.jsonl and writes OUT/manifest.json. Nothing passes from
the workers to the driver except through OUT.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from corral import fs
from corral.errors import UsageError
from corral.manifests.build import BuildManifest, SourceBuild, relative_shard
from corral.manifests.mixture import Mixture, load_mixture
from corral.outcome import funnel_from_counts
from corral.pipeline import folders, on_beam, pool, resume
from corral.pipeline.inputs import InputError, match_inputs
from corral.pipeline.phases import BUILD_DIR, EXAMPLES, Graph, recorded_summaries, work_dir
from corral.pipeline.plans import SourcePlan, add_phases, source_module
from corral.pipeline.progress import Progress
from corral.pipeline.stage import EXAMPLES_PER_REASON
from corral.shards import ShardInfo
from corral.source_specs import build_order

BUILD_LOG = logging.getLogger("corral.build")
STAGED_FOLDERS = (
    "stage",
    "read",
    "clean",
    "keys",
    "shingles",
    "ccread-keys",
    "c4read-keys",
    "clean-keys",
    "lines",
    "decide",
    EXAMPLES,
)


class BuildError(UsageError, RuntimeError):
    """The build cannot start: a configuration problem, named with its file and field."""


def _needs_wikipedia(mixture: Mixture) -> list[str]:
    """The commoncrawl options that make the build train side models on its Wikipedia source."""
    if "commoncrawl" not in mixture.sources:
        return []
    st = mixture.sources["commoncrawl"].stages
    needs = []
    if not (st["perplexity"]["sp_model"] and st["perplexity"]["lm_model"]):
        needs.append("sources.commoncrawl.perplexity.sp_model/lm_model (null: trained on Wikipedia)")
    if st["quality"]["enabled"] and not st["quality"]["positives"]:
        needs.append("sources.commoncrawl.quality.enabled (the classifier's positives are Wikipedia's)")
    return needs


def _learns_from_wikipedia(mixture, manifest_path: str) -> bool:
    """Whether CommonCrawl trains side models on this build's Wikipedia; a BuildError when it
    would and the manifest has no wikipedia source."""
    needs = _needs_wikipedia(mixture)
    if needs and "wikipedia" not in mixture.sources:
        raise BuildError(
            f"{manifest_path}: {'; '.join(needs)} — but the manifest has no wikipedia source "
            "(add one, or give pre-trained models and disable the classifier)"
        )
    return bool(needs)


def _match_all(mixture, manifest_path: str) -> dict[str, list[tuple[str, int]]]:
    """Each source's input files with their sizes; a configuration problem is a BuildError."""
    inputs: dict[str, list[tuple[str, int]]] = {}
    for source in mixture.sources:
        try:
            inputs[source] = match_inputs(mixture.resolved_inputs(source), f"{manifest_path}: sources.{source}.inputs")
        except InputError as e:
            raise BuildError(str(e)) from e
    return inputs


def _claim(out: str, mixture, overwrite: bool) -> None:
    """Take OUT for this mixture (corral.pipeline.folders) and clear what other sources left."""
    try:
        folders.claim(
            out,
            "build",
            mixture.name,
            "--out",
            overwrite,
            f"build {mixture.name!r}",
            "rebuild it with its own manifest to resume",
        )
    except folders.FolderInUse as e:
        raise BuildError(str(e)) from e
    _drop_other_sources(out, set(mixture.sources))


def _fingerprints(mixture, inputs, order: list[str], learns: bool) -> dict[str, str]:
    """Each source's resume fingerprint; CommonCrawl's covers the Wikipedia it learns from."""
    output = mixture.sections["output"]
    prints: dict[str, str] = {}
    for source in order:
        depends = prints.get("wikipedia") if source == "commoncrawl" and learns else None
        prints[source] = resume.fingerprint(mixture.sources[source].stages, output, source, inputs[source], depends)
    return prints


def _plans(mixture, out: str, inputs, prints, todo: list[str], learns: bool) -> tuple[Graph, dict[str, SourcePlan]]:
    """The phase graph of the sources to build; CommonCrawl waits for Wikipedia when it learns from it."""
    graph, plans, wiki_done = Graph(), {}, []
    for source in todo:
        stages, paths = mixture.sources[source].stages, [path for path, _ in inputs[source]]
        plan = SourcePlan(source, stages, mixture.sections["output"], out, paths, prints[source])
        if source == "commoncrawl" and learns:
            plan.waits = list(wiki_done)
        plans[source] = plan
        last = add_phases(graph, plan)
        if source == "wikipedia":
            wiki_done = last
    return graph, plans


def _source_build(out: str, source: str, spec, plan: SourcePlan | None, fingerprint: str) -> dict[str, Any]:
    """The build record of a source: collected from its finished phases (and marked finished), or
    the record of the earlier build that it reuses."""
    if plan is None:
        return resume.finished_record(out, source)["build"]
    record = _collect(out, source, plan, spec.weight)
    resume.mark_finished(out, source, fingerprint, record)
    fs.remove([fs.join(work_dir(out, source), f) for f in STAGED_FOLDERS])
    return record


def _manifest(out: str, mixture, plans, prints, seconds: float) -> BuildManifest:
    sources: dict[str, SourceBuild] = {}
    models: dict[str, Any] = {}
    stats: dict[str, Any] = {"seconds": round(seconds, 3), "sources": {}}
    for source, spec in mixture.sources.items():
        record = _source_build(out, source, spec, plans.get(source), prints[source])
        shards = record["shards"]
        sb = SourceBuild(spec.weight, sum(s["documents"] for s in shards), record["bytes"], shards=shards)
        sb.funnel = funnel_from_counts([((source, s, r), n) for s, r, n in record["funnel"]]).get(source, sb.funnel)
        sources[source] = sb
        models.update(record.get("models", {}))
        stats["sources"][source] = record.get("stats", {})
    return BuildManifest(
        mixture=mixture.to_dict(), settings=mixture.settings(), sources=sources, models=models, stats=stats
    )


def build(
    manifest_path: str,
    out: str,
    runner=None,
    options=None,
    workers: int | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
) -> BuildManifest:
    """Build every source of the mixture manifest into OUT; return the written build manifest.
    OUT must be new, empty or a build of the same mixture name (corral.pipeline.folders), unless
    `overwrite` clears another build from it first."""
    mixture = load_mixture(manifest_path)
    learns = _learns_from_wikipedia(mixture, manifest_path)
    inputs = _match_all(mixture, manifest_path)
    _claim(out, mixture, overwrite)
    order = build_order(inputs)  # Wikipedia first: CommonCrawl may learn from it
    prints = _fingerprints(mixture, inputs, order, learns)
    reused = [s for s in order if resume.finished(out, s, prints[s])]
    todo = [s for s in order if s not in reused]
    resumed = [s for s in todo if resume.prepare(out, s, prints[s])]
    t0 = time.perf_counter()
    graph, plans = _plans(mixture, out, inputs, prints, todo, learns)
    if todo:
        watch = Progress(out, {s: len(inputs[s]) for s in todo}, enabled=progress)
        if runner is None:
            with pool.LocalPool(workers or 1) as local, watch:
                local.run(graph)
        else:
            with watch:
                on_beam.execute(graph, runner, options)
    BUILD_LOG.info(
        "build %s: %d source(s) built, %d reused (%s)", out, len(todo), len(reused), ", ".join(reused) or "none"
    )
    if resumed:
        BUILD_LOG.info("resumed %s from the completion records of an interrupted build", ", ".join(resumed))
    manifest = _manifest(out, mixture, plans, prints, time.perf_counter() - t0)
    _carry_over_tokens(out, manifest)
    manifest.save(out)
    return manifest


def _drop_other_sources(out: str, keep: set[str]) -> None:
    """Remove what an earlier build of this folder left for sources the manifest no longer has, so
    no stale shards stay beside the new manifest."""
    if fs.is_remote(out):
        return
    for top in ("docs", "tokens", "errors", BUILD_DIR, "_tokenize"):
        folder = os.path.join(out, top)
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if name not in keep and os.path.isdir(os.path.join(folder, name)):
                fs.remove([os.path.join(folder, name)])


def _collect(out: str, source: str, plan: SourcePlan, weight: float) -> dict[str, Any]:
    """A built source's record, from its completion records: funnel counts, shards, text bytes,
    models, dead letters (merged into OUT/errors/<source>/errors.jsonl) and shuffle sizes."""
    module = source_module(source)
    counts: dict[tuple[str, str | None], int] = {}
    phase_counts = {phase: recorded_summaries(out, source, phase) for phase in plan.count_phases}
    excluded = set()
    if hasattr(module, "excluded_groups"):
        excluded = set(module.excluded_groups(plan.stages, phase_counts[plan.count_phases[0]]))
    for _phase, summaries in phase_counts.items():
        for s in summaries:
            for status, reason, group, n in s["counts"]:
                key = ("dropped", module.EXCLUDED_REASON) if group in excluded else (status, reason)
                counts[key] = counts.get(key, 0) + n
            for group, n in (s.get("groups") or {}).items() if excluded else ():
                if group in excluded:  # the staged rows of an excluded group are counted here, not at select
                    staged = n - sum(c[3] for c in s["counts"] if c[2] == group)
                    counts[("dropped", module.EXCLUDED_REASON)] = (
                        counts.get(("dropped", module.EXCLUDED_REASON), 0) + staged
                    )
    selected = recorded_summaries(out, source, "select")
    shards = sorted(
        (relative_shard(ShardInfo(**d), out) for s in selected for d in s["shards"]), key=lambda d: d["path"]
    )
    _merge_errors(out, source)
    _merge_examples(out, source)
    models = {}
    for s in (s for phase in plan.model_phases for s in recorded_summaries(out, source, phase)):
        for name, info in s.get("models", {}).items():
            prefix = out.rstrip("/") + "/"
            models[name] = {
                **info,
                "path": info["path"][len(prefix) :] if info["path"].startswith(prefix) else info["path"],
            }
    return {
        "shards": shards,
        "bytes": sum(s["bytes"] for s in selected),
        "models": models,
        "funnel": [[s, r, n] for (s, r), n in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))],
        "stats": _shuffle_stats(out, source, sum(counts.values())),
    }


def _shuffle_stats(out: str, source: str, records: int) -> dict[str, Any]:
    """What crossed the pipeline's shuffles for this source (work items and their summaries, as
    recorded) and what went through key files, per input record."""
    folder = fs.join(work_dir(out, source), "done")
    shuffled = key_bytes = 0
    phases, seconds = {}, {}
    for phase_dir in sorted(os.listdir(folder)) if not fs.is_remote(folder) and os.path.isdir(folder) else []:
        n, took = 0, 0.0
        for path in fs.list_files(fs.join(folder, phase_dir)):
            rec = json.loads(fs.read_bytes(path))
            n += 1
            shuffled += len(json.dumps(rec["item"])) + len(json.dumps(rec["summary"]))
            key_bytes += int(rec["summary"].get("key_bytes", 0))
            took += float(rec["summary"].get("seconds", 0.0))
        phases[phase_dir], seconds[phase_dir] = n, round(took, 3)
    per = max(records, 1)
    return {
        "tasks": phases,
        "task_seconds": seconds,
        "shuffle_bytes": shuffled,
        "shuffle_bytes_per_record": round(shuffled / per, 1),
        "key_file_bytes_per_record": round(key_bytes / per, 1),
    }


def _merge_examples(out: str, source: str) -> None:
    """OUT/examples/<source>.json: up to EXAMPLES_PER_REASON dropped documents per reason, {reason:
    [[id, start of text], …]}, from the tasks' example files in phase and item order."""
    merged: dict[str, list] = {}
    for path in sorted(fs.list_files(fs.join(work_dir(out, source), EXAMPLES))):
        if fs.TMP_MARK in path:
            continue
        for reason, rows in json.loads(fs.read_bytes(path)).items():
            room = EXAMPLES_PER_REASON - len(merged.setdefault(reason, []))
            merged[reason] += rows[: max(0, room)]
    dest = fs.join(out, f"examples/{source}.json")
    if merged:
        fs.atomic_write_bytes(dest, json.dumps(merged, ensure_ascii=False, indent=1).encode("utf-8"))
    else:  # none this time: no stale file from an earlier build
        fs.remove([dest])


def _merge_errors(out: str, source: str) -> None:
    lines = []
    for path in fs.list_files(fs.join(work_dir(out, source), "errors")):
        if path.endswith(".jsonl") and fs.TMP_MARK not in path:
            lines += [ln for ln in fs.read_bytes(path).decode("utf-8").splitlines() if ln]
    if lines:
        fs.atomic_write_bytes(
            fs.join(out, f"errors/{source}/errors.jsonl"), ("\n".join(sorted(lines)) + "\n").encode("utf-8")
        )


def _carry_over_tokens(out: str, manifest: BuildManifest) -> None:
    """Keep what `corral tokenizer train` and `corral tokenize` recorded in an earlier manifest of
    this folder: the tokenizer always, and a source's token shards while its document shards are
    the same ones (a rebuilt source must be tokenized again)."""
    from corral.manifests.build import BuildManifestError, load_build

    try:
        old = load_build(out)
    except (BuildManifestError, OSError, ValueError):
        return
    if "tokenizer" in old.models:
        manifest.models["tokenizer"] = old.models["tokenizer"]
    if "tokenize" in old.settings:
        manifest.settings["tokenize"] = old.settings["tokenize"]
    for name, sb in manifest.sources.items():
        before = old.sources.get(name)
        if before and before.token_shards and before.shards == sb.shards:
            sb.token_shards, sb.tokens = before.token_shards, before.tokens

"""`corral build`: a mixture manifest → a graph of phases over files → OUT/manifest.json.

1. The manifest is read with the registry's sources (corral.pipeline.sources.registry): each source
   names its stage options; each input pattern is matched, and split into pieces by its source.
2. OUT is claimed for the mixture (corral.engine.folders); each source's fingerprint decides whether
   an earlier build's work is reused whole, resumed item by item, or cleared (corral.engine.resume).
3. Each source to build adds its phases to one graph (corral.pipeline.phases): its own up to staged
   documents and their key files, then the dedup rounds and the select pass, which writes
   OUT/docs/<source>/part-*.arrow. A source that learns from another (CommonCrawl's side models from
   Wikipedia) waits for it.
4. The graph runs on the local pool or a Beam runner (corral.engine.execute). Texts never cross a
   shuffle: only work items and summaries pass between tasks (docs/design.md).
5. The driver reads each source's completion records back (corral.pipeline.collect) and writes
   OUT/manifest.json.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from corral.core import fs
from corral.core.errors import UsageError
from corral.engine import folders, resume
from corral.engine.execute import execute
from corral.engine.graph import Graph
from corral.engine.progress import Progress
from corral.engine.runners import Executor
from corral.manifests.build_manifest import BuildManifest, BuildManifestError, SourceBuild, load_build
from corral.manifests.mixture import Mixture, load_mixture
from corral.pipeline.collect import collect, source_build
from corral.pipeline.inputs.match import InputError
from corral.pipeline.phases import add_source
from corral.pipeline.rounds.against import NEAR, AgainstError, index_digest, lsh_settings
from corral.pipeline.rounds.against import resolve as resolve_against
from corral.pipeline.rounds.stage import work_dir
from corral.pipeline.sources.base import Piece, Source, SourcePlan, Staged
from corral.pipeline.sources.registry import by_name

BUILD_LOG = logging.getLogger("corral.build")
# The working folders of every built source (corral.pipeline.rounds), removed with those of its own
# phases (`Staged.working`) once it is finished; its completion records stay.
WORKING = ("stage", "keys", "shingles", "decide", "examples")


class BuildError(UsageError, RuntimeError):
    """The build cannot start: a configuration problem, named with its file and field."""


def _learning(mixture: Mixture, catalogue: dict[str, Source], manifest_path: str) -> dict[str, tuple[str, ...]]:
    """The sources that learn from others in this build, with those others; a BuildError when a
    source would learn from one the manifest does not have."""
    learns = {}
    for name, spec in mixture.sources.items():
        source = catalogue[name]
        needs = source.learning(spec.stages)
        if not needs:
            continue
        missing = [dep for dep in source.learns_from if dep not in mixture.sources]
        if missing:
            raise BuildError(
                f"{manifest_path}: {'; '.join(needs)} — but the manifest has no {' or '.join(missing)} source "
                "(add one, or give pre-trained models and disable the classifier)"
            )
        learns[name] = source.learns_from
    return learns


def _match_all(mixture: Mixture, catalogue: dict[str, Source], manifest_path: str) -> dict[str, list[tuple[str, int]]]:
    """Each source's input files with their sizes; a configuration problem is a BuildError."""
    inputs: dict[str, list[tuple[str, int]]] = {}
    for name in mixture.sources:
        field_ = f"{manifest_path}: sources.{name}.inputs"
        try:
            inputs[name] = catalogue[name].inputs(mixture.resolved_inputs(name), field_)
        except InputError as e:
            raise BuildError(str(e)) from e
    return inputs


def _claim(out: str, mixture: Mixture, overwrite: bool) -> None:
    """Take OUT for this mixture (corral.engine.folders) and clear what other sources left."""
    try:
        folders.claim(
            out,
            "build",
            mixture.name,
            flag="--out",
            overwrite=overwrite,
            what=f"build {mixture.name!r}",
            redo="rebuild it with its own manifest to resume",
        )
    except folders.FolderInUse as e:
        raise BuildError(str(e)) from e
    _drop_other_sources(out, set(mixture.sources))


def _drop_other_sources(out: str, keep: set[str]) -> None:
    """Remove what an earlier build of this folder left for sources the manifest no longer has, so
    no stale shards stay beside the new manifest."""
    stale = []
    for top in ("docs", "tokens", "errors", NEAR, folders.BUILD_DIR, "_tokenize"):
        folder = fs.join(out, top)
        stale += [fs.join(folder, name) for name in fs.list_folders(folder) if name not in keep]
    fs.remove(stale)


def _build_order(names, learns: dict[str, tuple[str, ...]]) -> list[str]:
    """Sources in an order where each comes after those it learns from."""
    first = {dep for deps in learns.values() for dep in deps}
    return sorted(names, key=lambda n: n not in first)


def _against(mixture: Mixture, manifest_path: str, out: str) -> dict[str, tuple[str, ...]]:
    """The band-table indexes of the earlier outputs each source deduplicates against (its
    `minhash.against`, paths relative to the manifest); a BuildError when one has no tables, was
    made with other settings, or overlaps this build's OUT."""
    found: dict[str, tuple[str, ...]] = {}
    for name, spec in mixture.sources.items():
        stage = spec.stages["minhash"]
        against = stage["against"]
        if not (stage["enabled"] and against):
            continue
        field_ = f"{manifest_path}: sources.{name}.minhash.against"
        paths = [mixture.resolved_path(p, f"sources.{name}.minhash.against[{i}]") for i, p in enumerate(against)]
        try:
            found[name] = resolve_against(paths, name, lsh_settings(stage), field_, out)
        except AgainstError as e:
            raise BuildError(str(e)) from e
    return found


def _fingerprints(mixture: Mixture, inputs, order: list[str], learns, against) -> dict[str, str]:
    """Each source's resume fingerprint; one that learns from others covers theirs, one that is
    deduplicated against earlier outputs covers their band-table indexes."""
    prints: dict[str, str] = {}
    for name in order:
        settings = {
            "source": name,
            "stages": mixture.sources[name].stages,
            "piece_size": mixture.sources[name].piece_size,  # the pieces are the completion records' items
            "output": mixture.sections["output"],
            "depends": [prints[dep] for dep in learns.get(name, ())],
            "against": index_digest(against.get(name, ())),
        }
        prints[name] = resume.fingerprint(settings, inputs[name])
    return prints


def _reusable(out: str, name: str, print_: str) -> bool:
    """Whether an earlier run finished this source with the same fingerprint and its shards are there."""
    done = resume.finished_result(work_dir(out, name), print_)
    if done is None:
        return False
    for shard in done["shards"]:  # paths relative to OUT: a moved build resumes
        path = fs.join(out, shard["path"])
        if not fs.exists(path) or fs.size(path) != shard["bytes"]:
            return False
    return True


def _pieces(source: Source, inputs: list[tuple[str, int]], stages: dict[str, Any], piece_size: int) -> list[Piece]:
    """Each input's pieces, in input order: a file larger than `piece_size` as its source splits it."""
    return [piece for path, size in inputs for piece in source.split(path, size, stages, piece_size)]


def _graph(mixture: Mixture, out: str, job: _Job) -> tuple[Graph, dict[str, tuple[SourcePlan, Staged]]]:
    """The phase graph of the sources to build; a source waits for those it learns from."""
    graph, built, ends = Graph(), {}, {}
    for name in job.todo:
        source, stages = job.catalogue[name], mixture.sources[name].stages
        plan = SourcePlan(
            name,
            stages,
            mixture.sections["output"],
            out,
            _pieces(source, job.inputs[name], stages, mixture.sources[name].piece_size),
            fingerprint=job.prints[name],
            piece_size=mixture.sources[name].piece_size,
        )
        plan.waits = [ends[dep] for dep in job.learns.get(name, ()) if dep in ends]
        plan.against, plan.fresh = job.against.get(name, ()), name in job.fresh
        staged, ends[name] = add_source(graph, source, plan)
        built[name] = (plan, staged)
    return graph, built


@dataclass
class _Job:
    """What the build decided before it runs: the sources it knows, each one's inputs, what each
    learns from, their fingerprints, and those it builds (in order)."""

    catalogue: dict[str, Source]
    inputs: dict[str, list[tuple[str, int]]]
    learns: dict[str, tuple[str, ...]]
    prints: dict[str, str]
    todo: list[str]
    against: dict[str, tuple[str, ...]]
    fresh: set[str] = field(default_factory=set)  # sources whose working folders were cleared for this run


def _source_record(out: str, name: str, job: _Job, built) -> dict[str, Any]:
    """The record of a source: collected from its finished phases (and marked finished), or the
    record of the earlier build that it reuses."""
    folder = work_dir(out, name)
    if name not in built:
        return resume.finished_result(folder, job.prints[name])
    plan, staged = built[name]
    record = collect(job.catalogue[name], plan, staged)
    resume.mark_finished(folder, job.prints[name], record)
    fs.remove([fs.join(folder, f) for f in (*WORKING, *staged.working)])
    return record


def _manifest(out: str, mixture: Mixture, job: _Job, built, seconds: float) -> BuildManifest:
    sources: dict[str, SourceBuild] = {}
    models: dict[str, Any] = {}
    stats: dict[str, Any] = {"seconds": round(seconds, 3), "sources": {}}
    for name, spec in mixture.sources.items():
        record = _source_record(out, name, job, built)
        sources[name] = source_build(name, spec.weight, record)
        models.update(record.get("models", {}))
        stats["sources"][name] = record.get("stats", {})
    return BuildManifest(
        mixture=mixture.to_dict(), settings=mixture.settings(), sources=sources, models=models, stats=stats
    )


def build(
    manifest_path: str,
    out: str,
    how: Executor | None = None,
    *,
    progress: bool | None = None,
    overwrite: bool = False,
    sources: Sequence[Source] | None = None,
    piece_size: int | None = None,
) -> BuildManifest:
    """Build every source of the mixture manifest into OUT on `how` (the local pool, one worker, by
    default); return the written build manifest. OUT must be new, empty or a build of the same
    mixture name (corral.engine.folders), unless `overwrite` clears another build from it first.
    `sources` are those a manifest may name (the registry's by default); `piece_size` (input bytes)
    replaces every source's `piece_size`."""
    catalogue = by_name(None if sources is None else tuple(sources))
    mixture = load_mixture(manifest_path, list(catalogue.values()))
    if piece_size:
        for spec in mixture.sources.values():
            spec.piece_size = piece_size
    learns = _learning(mixture, catalogue, manifest_path)
    inputs = _match_all(mixture, catalogue, manifest_path)
    against = _against(mixture, manifest_path, out)
    _claim(out, mixture, overwrite)
    order = _build_order(inputs, learns)  # a source after those it learns from
    prints = _fingerprints(mixture, inputs, order, learns, against)
    reused = [s for s in order if _reusable(out, s, prints[s])]
    job = _Job(catalogue, inputs, learns, prints, [s for s in order if s not in reused], against=against)
    outputs = {s: [fs.join(out, f"{top}/{s}") for top in ("docs", "errors", NEAR)] for s in job.todo}
    resumed = [s for s in job.todo if resume.prepare(work_dir(out, s), prints[s], outputs[s])]
    job.fresh = set(job.todo) - set(resumed)
    t0 = time.perf_counter()
    graph, built = _graph(mixture, out, job)
    if job.todo:
        execute(graph, how or Executor(), Progress(graph, "build", enabled=progress))
    BUILD_LOG.info(
        "build %s: %d source(s) built, %d reused (%s)", out, len(job.todo), len(reused), ", ".join(reused) or "none"
    )
    if resumed:
        BUILD_LOG.info("resumed %s from the completion records of an interrupted build", ", ".join(resumed))
    manifest = _manifest(out, mixture, job, built, time.perf_counter() - t0)
    _carry_over_tokens(out, manifest)
    manifest.save(out)
    return manifest


def _carry_over_tokens(out: str, manifest: BuildManifest) -> None:
    """Keep what `corral tokenizer train` and `corral tokenize` recorded in an earlier manifest of
    this folder: the tokenizer always, and a source's token shards while its document shards are
    the same ones (a rebuilt source must be tokenized again)."""
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

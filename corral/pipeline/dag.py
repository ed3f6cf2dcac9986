"""Assemble one Beam pipeline from a mixture manifest, run it, and write the build manifest.

Per source:  paths ─► Read (the source module's PTransform: raw format → outcomes)
             ─► UniqueIds (one record per id: a page in two dumps keeps its latest revision)
             ─► ExactDedup, NearDedup (MinHash LSH) when the manifest enables them ─► outcomes, then
             ├─ kept records ─► WriteShards ─► OUT/docs/<source>/part-*.arrow
             ├─ count per (source, status, reason) ─► the funnel
             └─ errors ─► OUT/errors/<source>/errors.jsonl (dead letters with their input location)
The pipeline writes those summaries under OUT/_build/; the driver reads them back after the run and
writes OUT/manifest.json. Nothing passes from the workers to the driver except through OUT.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import math
import os
import shutil
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from corral.dedup.exact import ExactDedup, UniqueIds, text_md5
from corral.dedup.near import NearDedup
from corral.manifests.build import BuildManifest, SourceBuild, join, relative_shard
from corral.manifests.mixture import Mixture, load_mixture
from corral.pipeline.inputs import InputError, is_remote, match_inputs
from corral.pipeline.outcome import ERROR, KEPT, funnel_from_counts, funnel_key
from corral.pipeline.shard_sink import WriteShards
from corral.shards import ShardInfo, atomic_write_bytes, file_exists, file_size, read_bytes

# The module of each source; each defines `Read` (a PTransform from paths to outcomes).
SOURCE_MODULES = {
    "commoncrawl": "corral.pipeline.sources.commoncrawl",
    "c4": "corral.pipeline.sources.c4",
    "github": "corral.pipeline.sources.github",
    "wikipedia": "corral.pipeline.sources.wikipedia",
    "books": "corral.pipeline.sources.books",
    "arxiv": "corral.pipeline.sources.arxiv",
    "stackexchange": "corral.pipeline.sources.stackexchange",
}
SUMMARY_DIR = "_build"
BUILD_LOG = logging.getLogger("corral.build")
EXPANSION = 3  # bytes of Arrow text per byte of (compressed) input, to size the shard buckets


class BuildError(RuntimeError):
    """The build cannot start: a configuration problem, named with its file and field."""


def source_module(source: str):
    return importlib.import_module(SOURCE_MODULES[source])


def _write_json(path: str, value: Any) -> None:
    atomic_write_bytes(path, json.dumps(value, ensure_ascii=False).encode("utf-8"))


def _write_errors(out: str, source: str, errors: list[dict[str, Any]]) -> None:
    lines = sorted(json.dumps({k: o.get(k) for k in ("reason", "where", "detail")}, ensure_ascii=False)
                   for o in errors)
    atomic_write_bytes(join(out, f"errors/{source}/errors.jsonl"), ("\n".join(lines) + "\n").encode("utf-8"))


def add_source(p: beam.Pipeline, mixture: Mixture, source: str, paths: list[tuple[str, int]], out: str,
               kept_records: dict[str, Any] | None = None, fingerprint: str = ""):
    """Add one source's branch to the pipeline; return its kept records and its last step."""
    spec = mixture.sources[source]
    stages = spec.stages
    output = mixture.sections["output"]
    module = source_module(source)
    in_bytes = sum(max(size, 0) for _, size in paths)
    buckets = max(1, math.ceil(in_bytes * EXPANSION / output["shard_max_bytes"]))
    compression = None if output["compression"] == "none" else output["compression"]
    summary = join(out, SUMMARY_DIR)

    path_list = [path for path, _ in paths]
    if getattr(module, "NEEDS_CONTEXT", False):
        context = {"paths": path_list, "out": out, "wikipedia": (kept_records or {}).get("wikipedia")}
        reader = module.Read(stages, context)
    else:
        reader = module.Read(stages)
    outcomes = (
        p
        | f"{source}/Inputs" >> beam.Create(path_list, reshuffle=False)
        | f"{source}/Spread" >> beam.Reshuffle()
        | f"{source}/Read" >> reader
        | f"{source}/UniqueIds" >> UniqueIds()
    )
    if stages["exact_dedup"]["enabled"]:
        key_fn = getattr(module, "dedup_key", text_md5)  # a source may name its own content key
        outcomes = outcomes | f"{source}/ExactDedup" >> ExactDedup(key_fn)
    mh = stages["minhash"]
    if mh["enabled"]:
        near = NearDedup(mh["threshold"], mh["ngram"], mh["num_perm"], mh["verify"])
        outcomes = outcomes | f"{source}/NearDedup" >> near

    records = (
        outcomes
        | f"{source}/Kept" >> beam.Filter(lambda o: o["status"] == KEPT)
        | f"{source}/Record" >> beam.Map(lambda o: o["record"])
    )
    saved = [(
        records
        | f"{source}/Write" >> WriteShards(join(out, f"docs/{source}"), num_buckets=buckets,
                                           max_rows=output["shard_max_rows"], max_bytes=output["shard_max_bytes"],
                                           compression=compression)
        | f"{source}/ShardList" >> beam.combiners.ToList()
        | f"{source}/SaveShards" >> beam.Map(lambda shards: _write_json(
            join(summary, f"shards-{source}.json"), [relative_shard(ShardInfo(**s), out) for s in shards]))
    )]
    saved.append(
        records
        | f"{source}/TextBytes" >> beam.Map(lambda r: len(r["text"].encode("utf-8", "surrogatepass")))
        | f"{source}/SumBytes" >> beam.CombineGlobally(sum)
        | f"{source}/SaveBytes" >> beam.Map(lambda n: _write_json(join(summary, f"bytes-{source}.json"), n))
    )
    saved.append(
        outcomes
        | f"{source}/FunnelKey" >> beam.Map(_count_metric)
        | f"{source}/Count" >> beam.CombinePerKey(sum)
        | f"{source}/CountList" >> beam.combiners.ToList()
        | f"{source}/SaveFunnel" >> beam.Map(
            lambda counts: _write_json(join(summary, f"funnel-{source}.json"), [[list(k), n] for k, n in counts]))
    )
    saved.append(
        outcomes
        | f"{source}/Errors" >> beam.Filter(lambda o: o["status"] == ERROR)
        | f"{source}/ErrorList" >> beam.combiners.ToList()
        | f"{source}/DeadLetters" >> beam.Map(lambda errs: _write_errors(out, source, errs) if errs else None)
    )
    if getattr(reader, "models_saved", None) is not None:
        saved.append(reader.models_saved)
    # The mark of a finished source, written only after every one of its summaries (side inputs make
    # this step wait for them): a rerun of the build reuses the source while its fingerprint holds.
    return records, (
        p
        | f"{source}/DoneSeed" >> beam.Create([None])
        | f"{source}/Done" >> beam.Map(lambda _, *waits: _write_json(join(summary, f"done-{source}.json"),
                                                                      {"fingerprint": fingerprint}),
                                       *[beam.pvalue.AsList(s) for s in saved])
    )


def _count_metric(outcome: dict[str, Any]):
    """Beam counters beside the as-data funnel, for runners and UIs that show metrics."""
    reason = outcome["reason"]
    name = outcome["status"] if reason is None else f"{outcome['status']}:{reason}"
    Metrics.counter(f"corral.{outcome['source']}", name).inc()
    Metrics.counter(f"corral.{outcome['source']}", "input").inc()
    return (funnel_key(outcome), 1)


def _read_summary(out: str, name: str, default: Any) -> Any:
    path = join(out, f"{SUMMARY_DIR}/{name}")
    try:
        return json.loads(read_bytes(path))
    except (OSError, FileNotFoundError):
        return default


def _remove_stale(out: str, source: str, keep: set[str]) -> None:
    """Delete shards of an earlier build of this source that this build did not write (local OUT)."""
    folder = os.path.join(out, "docs", source)
    if is_remote(out) or not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.endswith(".arrow") and os.path.join("docs", source, name) not in keep:
            os.remove(os.path.join(folder, name))


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


def fingerprint(mixture: Mixture, source: str, paths: list[tuple[str, int]], depends: str | None = None) -> str:
    """What a source's outputs depend on: corral's version, the source's stage settings, the output
    settings, its input files (path, size, and modification time when local) and, for CommonCrawl
    with models trained on Wikipedia, Wikipedia's own fingerprint."""
    from corral import __version__

    files = []
    for path, size in paths:
        mtime = os.stat(path).st_mtime_ns if not is_remote(path) and os.path.exists(path) else None
        files.append([path, size, mtime])
    body = {"corral": __version__, "source": source, "stages": mixture.sources[source].stages,
            "output": mixture.sections["output"], "inputs": files, "depends": depends}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _finished(out: str, source: str, print_: str) -> bool:
    """Whether an earlier run finished this source with the same fingerprint and its shards are there."""
    done = _read_summary(out, f"done-{source}.json", None)
    if not done or done.get("fingerprint") != print_:
        return False
    for shard in _read_summary(out, f"shards-{source}.json", []):  # paths relative to OUT: a moved build resumes
        path = join(out, shard["path"])
        if not file_exists(path) or file_size(path) != shard["bytes"]:
            return False
    return True


def _forget(out: str, source: str) -> None:
    """Remove an unfinished or outdated source's summaries and dead letters before it is rebuilt."""
    names = [f"{SUMMARY_DIR}/{kind}-{source}.json" for kind in ("done", "shards", "bytes", "funnel", "models")]
    if is_remote(out):
        from apache_beam.io.filesystems import FileSystems

        paths = [join(out, n) for n in names + [f"errors/{source}/errors.jsonl"]]
        existing = [p for p in paths if FileSystems.exists(p)]
        if existing:
            FileSystems.delete(existing)
        return
    for n in names:
        if os.path.exists(os.path.join(out, n)):
            os.remove(os.path.join(out, n))
    shutil.rmtree(os.path.join(out, "errors", source), ignore_errors=True)


def _read_back(p: beam.Pipeline, out: str, source: str):
    """A finished source's kept records, read back from its shards (for a stage that needs them)."""
    from corral.shards import iter_records

    paths = [join(out, s["path"]) for s in _read_summary(out, f"shards-{source}.json", [])]
    return (p | f"{source}/Reused" >> beam.Create(sorted(paths), reshuffle=False)
            | f"{source}/Spread" >> beam.Reshuffle() | f"{source}/ReadBack" >> beam.FlatMap(iter_records))


def build(manifest_path: str, out: str, runner=None, options=None, workers: int | None = None) -> BuildManifest:
    """Build every source of the mixture manifest into OUT; return the written build manifest."""
    mixture = load_mixture(manifest_path)
    needs = _needs_wikipedia(mixture)
    if needs and "wikipedia" not in mixture.sources:
        raise BuildError(f"{manifest_path}: {'; '.join(needs)} — but the manifest has no wikipedia source "
                         "(add one, or give pre-trained models and disable the classifier)")
    inputs: dict[str, list[tuple[str, int]]] = {}
    for source in mixture.sources:
        try:
            inputs[source] = match_inputs(mixture.resolved_inputs(source), f"{manifest_path}: sources.{source}.inputs")
        except InputError as e:
            raise BuildError(str(e)) from e
    if runner is None:
        from corral.pipeline.runners import local_runner

        runner, options = local_runner(workers)
    if type(runner).__name__ == "DaskRunner":
        from corral.pipeline.runners import DASK_UNSUPPORTED

        refused = [f"sources.{s} ({why})" for s, why in DASK_UNSUPPORTED.items() if s in mixture.sources]
        if refused:
            raise BuildError(f"{manifest_path}: {'; '.join(refused)} cannot run on Beam's DaskRunner: build "
                             "those sources with the local runner (or another runner) into their own OUT")
    if not is_remote(out):
        os.makedirs(out, exist_ok=True)
    order = sorted(inputs, key=lambda s: s != "wikipedia")  # Wikipedia first: CommonCrawl may learn from it
    prints: dict[str, str] = {}
    for source in order:
        depends = prints.get("wikipedia") if source == "commoncrawl" and needs else None
        prints[source] = fingerprint(mixture, source, inputs[source], depends)
    reused = [s for s in order if _finished(out, s, prints[s])]
    for source in order:
        if source not in reused:
            _forget(out, source)
    todo = [s for s in order if s not in reused]
    if todo:
        with beam.Pipeline(runner=runner, options=options) as p:
            kept_records: dict[str, Any] = {}
            if "commoncrawl" in todo and needs and "wikipedia" in reused:
                kept_records["wikipedia"] = _read_back(p, out, "wikipedia")
            last = []
            for source in todo:
                kept_records[source], done = add_source(p, mixture, source, inputs[source], out, kept_records,
                                                        prints[source])
                last.append(done)
            # One final step that waits for every source: some runners (Beam 2.77's DaskRunner) compute
            # only the graph behind the pipeline's last transform, and would skip independent branches.
            (p | "Finish/Seed" >> beam.Create([None])
             | "Finish" >> beam.Map(lambda _, *waits: None, *[beam.pvalue.AsList(d) for d in last]))
    BUILD_LOG.info("build %s: %d source(s) built, %d reused (%s)", out, len(todo), len(reused),
                   ", ".join(reused) or "none")

    sources: dict[str, SourceBuild] = {}
    for source, spec in mixture.sources.items():
        counts = [((k[0], k[1], k[2]), n) for k, n in _read_summary(out, f"funnel-{source}.json", [])]
        funnel = funnel_from_counts(counts).get(source)
        shards = sorted(_read_summary(out, f"shards-{source}.json", []), key=lambda s: s["path"])
        _remove_stale(out, source, {s["path"] for s in shards})
        sb = SourceBuild(weight=spec.weight, documents=sum(s["documents"] for s in shards),
                         bytes=int(_read_summary(out, f"bytes-{source}.json", 0)), shards=shards)
        if funnel is not None:
            sb.funnel = funnel
        sources[source] = sb
    models = {}
    for source in mixture.sources:
        for name, info in _read_summary(out, f"models-{source}.json", {}).items():
            rel = info["path"]
            prefix = out.rstrip("/") + "/"
            info = {**info, "path": rel[len(prefix):] if rel.startswith(prefix) else rel}
            models[name] = info
    manifest = BuildManifest(mixture=mixture.to_dict(), settings=mixture.settings(), sources=sources, models=models)
    _carry_over_tokens(out, manifest)
    manifest.save(out)
    return manifest


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

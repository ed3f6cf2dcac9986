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

import importlib
import json
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
from corral.shards import ShardInfo, atomic_write_bytes, read_bytes

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
               kept_records: dict[str, Any] | None = None):
    """Add one source's branch to the pipeline; return its kept records."""
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
        outcomes = outcomes | f"{source}/NearDedup" >> NearDedup(mh["threshold"], mh["ngram"], mh["num_perm"], mh["verify"])

    records = (
        outcomes
        | f"{source}/Kept" >> beam.Filter(lambda o: o["status"] == KEPT)
        | f"{source}/Record" >> beam.Map(lambda o: o["record"])
    )
    (
        records
        | f"{source}/Write" >> WriteShards(join(out, f"docs/{source}"), num_buckets=buckets,
                                           max_rows=output["shard_max_rows"], max_bytes=output["shard_max_bytes"],
                                           compression=compression)
        | f"{source}/ShardList" >> beam.combiners.ToList()
        | f"{source}/SaveShards" >> beam.Map(lambda shards: _write_json(join(summary, f"shards-{source}.json"), shards))
    )
    (
        records
        | f"{source}/TextBytes" >> beam.Map(lambda r: len(r["text"].encode("utf-8", "surrogatepass")))
        | f"{source}/SumBytes" >> beam.CombineGlobally(sum)
        | f"{source}/SaveBytes" >> beam.Map(lambda n: _write_json(join(summary, f"bytes-{source}.json"), n))
    )
    (
        outcomes
        | f"{source}/FunnelKey" >> beam.Map(_count_metric)
        | f"{source}/Count" >> beam.CombinePerKey(sum)
        | f"{source}/CountList" >> beam.combiners.ToList()
        | f"{source}/SaveFunnel" >> beam.Map(
            lambda counts: _write_json(join(summary, f"funnel-{source}.json"), [[list(k), n] for k, n in counts]))
    )
    (
        outcomes
        | f"{source}/Errors" >> beam.Filter(lambda o: o["status"] == ERROR)
        | f"{source}/ErrorList" >> beam.combiners.ToList()
        | f"{source}/DeadLetters" >> beam.Map(lambda errs: _write_errors(out, source, errs) if errs else None)
    )
    return records


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
    if not is_remote(out):
        os.makedirs(out, exist_ok=True)
        shutil.rmtree(os.path.join(out, SUMMARY_DIR), ignore_errors=True)
        shutil.rmtree(os.path.join(out, "errors"), ignore_errors=True)
    order = sorted(inputs, key=lambda s: s != "wikipedia")  # Wikipedia first: CommonCrawl may learn from it
    with beam.Pipeline(runner=runner, options=options) as p:
        kept_records: dict[str, Any] = {}
        for source in order:
            kept_records[source] = add_source(p, mixture, source, inputs[source], out, kept_records)

    sources: dict[str, SourceBuild] = {}
    for source, spec in mixture.sources.items():
        counts = [((k[0], k[1], k[2]), n) for k, n in _read_summary(out, f"funnel-{source}.json", [])]
        funnel = funnel_from_counts(counts).get(source)
        shard_dicts = sorted(_read_summary(out, f"shards-{source}.json", []), key=lambda s: s["path"])
        shards = [relative_shard(ShardInfo(**s), out) for s in shard_dicts]
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
    manifest.save(out)
    return manifest

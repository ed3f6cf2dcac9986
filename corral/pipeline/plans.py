"""Each source's phases, added to the build's pipeline.

Every source ends the same way: staged files with their key files → the dedup rounds its settings
enable → the select pass. How it gets there is its own:
  files        (C4 json, GitHub, Wikipedia, Books, arXiv, StackExchange): one `stage` task per input
               file reads, cleans and tags it whole
  commoncrawl  cc_net's two passes and the side models (corral.pipeline.sources.commoncrawl)
  c4 clean     TFDS's URL and line dedup between per-file passes (corral.pipeline.sources.c4_passes)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from corral.dedup import minhash
from corral.dedup.exact import text_md5
from corral.pipeline.decide import RoundTask, round_items
from corral.pipeline.near import ClustersTask, LshTask, near_items
from corral.pipeline.phases import Graph, Task, run_phase
from corral.pipeline.select import SelectTask, select_items
from corral.pipeline.stage import file_key, stage_outcomes
from corral.source_specs import BY_NAME


# The module of each source; each defines `read_file(path, stages)` (one input's outcomes).
def source_module(source: str):
    """The pipeline module of a source (corral.source_specs names it)."""
    return importlib.import_module(BY_NAME[source].module)


@dataclass
class SourcePlan:
    """What a source's phases need to know, and what they leave for the driver."""

    name: str
    stages: dict[str, Any]
    output: dict[str, Any]
    out: str
    paths: list[str]
    fingerprint: str
    waits: list[Any] = field(default_factory=list)  # phases to wait for (the side models' inputs)
    count_phases: list[str] = field(default_factory=list)  # phases whose summaries carry funnel counts
    model_phases: list[str] = field(default_factory=list)  # phases whose summaries name side models
    stage_phase: str = "stage"

    def file_items(self) -> list[dict[str, Any]]:
        return [
            {"source": self.name, "key": file_key(i), "fingerprint": self.fingerprint, "path": path, "index": i}
            for i, path in enumerate(self.paths)
        ]


class StageTask(Task):
    """One input file → its staged documents, key file and dead letters (the `files` sources)."""

    phase = "stage"

    def __init__(self, out: str, source: str, stages: dict[str, Any]):
        self.out, self.source, self.stages = out, source, stages

    def run(self, item, *earlier):
        module = source_module(self.source)
        content_key = getattr(module, "dedup_key", text_md5)  # a source may name its own content key
        return stage_outcomes(
            self.out, self.source, item["index"], module.read_file(item["path"], self.stages), self.stages, content_key
        )


def add_phases(p: Graph, plan: SourcePlan):
    """Add a source's phases to the graph; return the handles of its last phases. A source
    module's own `add_phases` (CommonCrawl; C4 when it cleans) takes over, unless it returns None."""
    custom: Callable | None = getattr(source_module(plan.name), "add_phases", None)
    ends = custom(p, plan) if custom is not None else None
    if ends is not None:
        return ends
    plan.count_phases = ["stage"]
    staged = run_phase(
        p,
        f"{plan.name}/stage",
        StageTask(plan.out, plan.name, plan.stages),
        plan.out,
        items=plan.file_items(),
        waits=plan.waits,
    )
    return dedup_and_select(p, plan, staged)


def _rows(staged: list[dict[str, Any]]) -> int:
    return sum(s["rows"] for s in staged)


def _before(earlier) -> list[tuple[str, int]]:
    """(round, its partition count) of each earlier round, from its summaries."""
    return [(lst[0]["round"], lst[0]["partitions"]) for lst in earlier if lst]


def _plan_round(name: str, source: str, fingerprint: str, stage_phase: str, staged, *earlier):
    return round_items(source, fingerprint, name, _rows(staged), len(staged), _before(earlier), stage_phase)


def _plan_near(source: str, fingerprint: str, stage_phase: str, m: dict[str, Any], bands: int, staged, *earlier):
    before = _before(earlier)
    return near_items(
        source,
        fingerprint,
        _rows(staged),
        bands,
        len(staged),
        before,
        stage_phase,
        m["threshold"],
        m["ngram"],
        m["verify"],
    )


def _plan_clusters(source: str, fingerprint: str, stage_phase: str, lsh, cluster_rows=None):
    n = max((s["partitions"] for s in lsh), default=1) if lsh else 1
    return [
        {
            "source": source,
            "key": "clusters",
            "fingerprint": fingerprint,
            "partitions": n,
            "stage_phase": stage_phase,
            "cluster_rows": cluster_rows,
        }
    ]


def _plan_select(plan_info: dict[str, Any], staged, *earlier):
    rounds = _before(earlier)
    exclude = plan_info.get("exclude") and plan_info["exclude"](staged)
    return select_items(
        plan_info["source"],
        plan_info["fingerprint"],
        staged,
        plan_info["shard_bytes"],
        rounds=rounds,
        near=plan_info["near"],
        exclude_groups=exclude or None,
        stage_phase=plan_info["stage_phase"],
    )


def _key_rounds(p: Graph, plan: SourcePlan, staged, unique: bool) -> list:
    """The key rounds that run before near dedup: unique ids, then exact contents when enabled."""
    wanted = [("unique", unique), ("exact", plan.stages["exact_dedup"]["enabled"])]
    rounds = []
    for key in (key for key, on in wanted if on):
        planner = partial(_plan_round, key, plan.name, plan.fingerprint, plan.stage_phase)
        task = RoundTask(plan.out)
        rounds.append(run_phase(p, f"{plan.name}/{key}", task, plan.out, plan=planner, earlier=[staged, *rounds]))
    return rounds


def _near_phases(p: Graph, plan: SourcePlan, staged, rounds: list, cluster_rows: str | None):
    """MinHash LSH over the staged band keys, then the clusters phase; returns the clusters phase."""
    name, fp, sp, out = plan.name, plan.fingerprint, plan.stage_phase, plan.out
    m = plan.stages["minhash"]
    bands = minhash.derive_lsh(m["threshold"], m["num_perm"], m["verify"]).bands
    lsh_plan = partial(_plan_near, name, fp, sp, m, bands)
    lsh = run_phase(p, f"{name}/near-lsh", LshTask(out), out, plan=lsh_plan, earlier=[staged, *rounds])
    clusters_plan = partial(_plan_clusters, name, fp, sp, cluster_rows=cluster_rows)
    return run_phase(p, f"{name}/near-clusters", ClustersTask(out), out, plan=clusters_plan, earlier=[lsh])


def dedup_and_select(
    p: Graph,
    plan: SourcePlan,
    staged,
    rule=None,
    unique: bool = True,
    cluster_rows: str | None = None,
    docs_dir: str | None = None,
    select_waits=(),
):
    """The dedup rounds the source's settings enable, then the select pass (writing under
    `docs_dir`, by default OUT/docs/<source>); returns the last phase. `cluster_rows` is where the
    near-dup clusters are also written as rows (`corral dedup`'s clusters.arrow)."""
    name, st, out = plan.name, plan.stages, plan.out
    rounds = _key_rounds(p, plan, staged, unique)
    near = st["minhash"]["enabled"]
    ends = [_near_phases(p, plan, staged, rounds, cluster_rows)] if near else []
    excluded = getattr(source_module(name), "excluded_groups", None) if name in BY_NAME else None
    info = {
        "source": name,
        "fingerprint": plan.fingerprint,
        "shard_bytes": plan.output["shard_max_bytes"],
        "near": near,
        "stage_phase": plan.stage_phase,
        "exclude": partial(excluded, st) if excluded else None,
    }
    selected = run_phase(
        p,
        f"{name}/select",
        SelectTask(out, plan.output, rule, docs_dir),
        out,
        plan=partial(_plan_select, info),
        earlier=[staged, *rounds],
        waits=ends + list(select_waits),
    )
    plan.count_phases.append("select")
    return [selected]

"""A source's phases in a build's graph: its own, up to staged documents with their keys (the
source's `stage`, corral.pipeline.sources.base), then the same for every source:

  staged files + key files ─► the dedup rounds its settings enable (unique ids, exact contents,
  MinHash near duplicates) ─► select (the decisions and the source's own thresholds applied,
  OUT/docs/<source>/part-*.arrow written)

Nothing here names a source.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from corral.engine.graph import Graph, Handle
from corral.pipeline.rounds.decide import RoundTask, round_items, rounds_of
from corral.pipeline.rounds.near import ClustersTask, LshTask, clusters_items, lsh_items
from corral.pipeline.rounds.select import SelectPlan, SelectTask, select_items
from corral.pipeline.rounds.stage import StagedSummary
from corral.pipeline.sources.base import Source, SourcePlan, Staged

KEY_ROUNDS = ("unique", "exact")  # the rounds decided by key partitions, in this order, before near


def add_source(graph: Graph, source: Source, plan: SourcePlan) -> tuple[Staged, Handle]:
    """Add a source's phases to the graph; return what its own phases staged and its select phase."""
    staged = source.stage(graph, plan)
    wanted = source.rounds(plan.stages)
    rounds = _key_rounds(graph, plan, staged, [r for r in KEY_ROUNDS if r in wanted])
    near = [_near_phases(graph, plan, staged, rounds)] if "near" in wanted else []
    template = SelectPlan(plan.output["shard_max_bytes"], (), "near" in wanted, (), near_dir=plan.tables_dir)
    shared = partial(_select_plan, source, plan.stages, template)
    selected = graph.add(
        f"{plan.name}/select",
        SelectTask(plan.out, plan.name, plan.output, staged.rule, plan.docs_dir),
        plan.ledger,
        plan=shared,
        earlier=[staged.handle, *rounds],
        waits=near + staged.select_waits,
    )
    return staged, selected


def _plan_round(name: str, stage_phase: str, staged: list[StagedSummary], *earlier) -> list:
    return round_items(name, staged, rounds_of(s for lst in earlier for s in lst), stage_phase)


def _key_rounds(graph: Graph, plan: SourcePlan, staged: Staged, names: list[str]) -> list[Handle]:
    """The key rounds, each leaving out what the ones before it decided."""
    rounds: list[Handle] = []
    for name in names:
        rounds.append(
            graph.add(
                f"{plan.name}/{name}",
                RoundTask(plan.out, plan.name),
                plan.ledger,
                plan=partial(_plan_round, name, staged.phase),
                earlier=[staged.handle, *rounds],
            )
        )
    return rounds


def _plan_lsh(minhash_stage: dict, against: tuple[str, ...], staged: list[StagedSummary], *earlier) -> list:
    before = rounds_of(s for lst in earlier for s in lst)
    return lsh_items(sum(s.rows for s in staged), len(staged), before, minhash_stage, against)


def _near_phases(graph: Graph, plan: SourcePlan, staged: Staged, rounds: list[Handle]) -> Handle:
    """MinHash LSH over the staged band keys, then the clusters phase; returns the clusters phase."""
    lsh = graph.add(
        f"{plan.name}/near-lsh",
        LshTask(plan.out, plan.name),
        plan.ledger,
        plan=partial(_plan_lsh, plan.stages["minhash"], plan.against),
        earlier=[staged.handle, *rounds],
    )
    clusters = partial(clusters_items, stage_phase=staged.phase, cluster_rows=plan.cluster_rows, against=plan.against)
    return graph.add(
        f"{plan.name}/near-clusters", ClustersTask(plan.out, plan.name), plan.ledger, plan=clusters, earlier=[lsh]
    )


def _select_plan(source: Source, stages: dict, template: SelectPlan, summaries, *earlier) -> list:
    """The select items: the template with the rounds that ran and the groups the source drops whole."""
    shared = replace(
        template,
        rounds=rounds_of(s for lst in earlier for s in lst),
        exclude_groups=tuple(source.excluded_groups(stages, summaries)),
    )
    return select_items(summaries, shared)

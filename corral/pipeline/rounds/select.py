"""The select pass: a group of consecutive staged files → the source's final shards.

Per staged row: dropped when it belongs to a group the source drops whole (StackExchange's smaller
sites, counted by the build from the stage counts), when a dedup round decided against its locator
(the round's reason), or when the source's own rule says so (CommonCrawl's thresholds); kept rows
get the near-dup tags (when the source runs MinHash) and are written, in input order, to
OUT/docs/<source>/part-<first file>-<part>.arrow with the manifest's shard bounds and compression;
with MinHash, the kept documents' band keys go to a table beside them (OUT/near/<source>/part-<first
file>.npz, corral.pipeline.rounds.against), for later jobs to deduplicate against.
Rows are handled as Arrow batches: a source with no per-row rule never turns a text into a Python
string here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corral.core import fs
from corral.core.outcome import DROPPED, KEPT
from corral.core.shards import ShardWriter, shard_name
from corral.dedup.clusters import DUPLICATE_OF_EXISTING, NEAR_DUPLICATE
from corral.dedup.keys import ROW_BITS, locs, member_of
from corral.engine.graph import Item, Summary, Task
from corral.pipeline.rounds.against import save_table, table_path
from corral.pipeline.rounds.decide import REASONS, Round, losers_between
from corral.pipeline.rounds.near import Clusters
from corral.pipeline.rounds.stage import (
    EXAMPLES_PER_REASON,
    Part,
    StagedFile,
    StagedSummary,
    Tally,
    iter_staged,
    load_arrays,
    row_groups,
)


class SelectRule(Protocol):
    """A source's own thresholds at select: (the kept rows, (reason, row) of the others)."""

    def setup(self) -> None: ...

    def select(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[tuple[str, int]]]: ...


@dataclass(frozen=True)
class SelectItem(Item):
    files: tuple[int, ...] = ()
    rounds: tuple[Round, ...] = ()  # the rounds whose losers go
    near: bool = False  # apply the near-dup clusters
    exclude_groups: tuple[str, ...] = ()  # groups dropped whole
    near_dir: str | None = None  # where the kept documents' band table goes (with `near`)
    parts: tuple[tuple[Part, ...], ...] = ()  # each file's staged parts, as its summary listed them


@dataclass
class SelectSummary(Summary):
    files: list[int] = field(default_factory=list)
    shards: list[dict[str, Any]] = field(default_factory=list)
    counts: list[list[Any]] = field(default_factory=list)
    bytes: int = 0
    near: dict[str, Any] = field(default_factory=dict)  # its band table: path, shards, rows (when written)


@dataclass(frozen=True)
class SelectPlan:
    """What every select item of a source shares."""

    shard_bytes: int
    rounds: tuple[Round, ...]
    near: bool
    exclude_groups: tuple[str, ...]
    near_dir: str | None = None


def select_items(summaries: list[StagedSummary], plan: SelectPlan) -> list[SelectItem]:
    """Consecutive files grouped until their staged bytes reach one shard's bound."""
    items, group, size = [], [], 0
    parts = {s.index: tuple(s.parts) for s in summaries}
    for s in sorted(summaries, key=lambda s: s.index):
        group.append(s.index)
        size += sum(p.bytes for p in s.parts)
        if size >= plan.shard_bytes:
            items.append(group)
            group, size = [], 0
    if group:
        items.append(group)
    return [
        SelectItem(
            f"select-{g[0]:06d}",
            tuple(g),
            plan.rounds,
            near=plan.near,
            exclude_groups=plan.exclude_groups,
            near_dir=plan.near_dir if plan.near else None,
            parts=tuple(parts[i] for i in g),
        )
        for g in items
    ]


@dataclass
class _Decisions:
    """What the rounds decided about a select item's files: (reason, sorted losers) per key round,
    and the near-dup clusters."""

    gone: list[tuple[str, np.ndarray]]
    clusters: Clusters | None


class SelectTask(Task):
    phase = "select"
    summary = SelectSummary

    def __init__(
        self,
        out: str,
        source: str,
        output: Mapping[str, Any],
        rule: SelectRule | None = None,
        docs_dir: str | None = None,
    ):
        self.out, self.source, self.output, self.rule, self.docs_dir = out, source, output, rule, docs_dir

    def setup(self):
        if self.rule is not None:
            self.rule.setup()

    def run(self, item: SelectItem, *earlier) -> SelectSummary:
        files = item.files
        first, last = files[0], files[-1]
        decisions = _Decisions(
            [(REASONS[r.name], losers_between(self.out, self.source, r, (first, last))) for r in item.rounds],
            Clusters.load(self.out, self.source).slice(first, last) if item.near else None,
        )
        tally = Tally()
        writer = self._writer(first)
        text_bytes = 0
        kept: list[np.ndarray] = []  # the locators of the rows written, in order
        parts_of = {f: list(ps) for f, ps in zip(files, item.parts)}
        with writer:
            for index in files:
                excluded = self._excluded_rows(index, set(item.exclude_groups))
                row = 0
                for batch in iter_staged(parts_of.get(index, [])):
                    at = locs(index, batch.num_rows) + row
                    keep = np.ones(batch.num_rows, dtype=bool) if excluded is None else ~excluded[row : row + len(at)]
                    row += batch.num_rows
                    batch, written = self._decide(batch, at, keep, decisions, tally)
                    if batch.num_rows:
                        writer.write_batch(batch)
                        kept.append(at[written])
                        text_bytes += int(pc.sum(pc.binary_length(batch.column("text"))).as_py() or 0)
                        tally.reason(KEPT, None, batch.num_rows)
        shards = [s.to_dict() for s in writer.shards]
        near = self._near_table(item, np.concatenate(kept), shards) if item.near_dir and kept else {}
        return SelectSummary(
            files=list(files), shards=shards, counts=tally.rows(), bytes=text_bytes, examples=tally.examples, near=near
        )

    def _near_table(self, item: SelectItem, written: np.ndarray, shards: list[dict]) -> dict[str, Any]:
        """The band table of the documents written (their band keys and node keys from their files'
        key files), for later jobs to deduplicate against; returns its record for the index."""
        bands, docs = [], []
        files = written >> ROW_BITS
        for index in np.unique(files).tolist():  # ascending: the order the rows were written in
            rows = written[files == index] & ((1 << ROW_BITS) - 1)
            a = load_arrays(StagedFile(self.out, self.source, index).key_path())
            bands.append(a["bands"][rows])
            docs.append(a["doc"][rows])
        table = save_table(table_path(item.near_dir, item.files[0]), np.concatenate(bands), np.concatenate(docs))
        return {**table, "shards": [s["path"] for s in shards], "rows": [s["documents"] for s in shards]}

    def _excluded_rows(self, index: int, exclude: set[str]) -> np.ndarray | None:
        """Which staged rows of a file belong to a group dropped whole (None: no such group)."""
        if not exclude:
            return None
        groups = row_groups(StagedFile(self.out, self.source, index))
        return np.isin(groups, list(exclude))

    def _writer(self, first: int) -> ShardWriter:
        compression = None if self.output["compression"] == "none" else self.output["compression"]
        return ShardWriter(
            self.docs_dir or fs.join(self.out, f"docs/{self.source}"),
            max_rows=self.output["shard_max_rows"],
            max_bytes=self.output["shard_max_bytes"],
            compression=compression,
            name_fn=lambda part: shard_name("part", first, part),
        )

    def _decide(self, batch, at: np.ndarray, keep: np.ndarray, decisions: _Decisions, tally: Tally):
        """(the rows of a staged batch that every decision keeps (of those `keep` holds, the rows of
        groups the build counts whole left out), near-dup tagged, after the rule; their positions
        in the batch)."""
        for reason, lost in decisions.gone:
            keep &= ~_drop(tally, reason, batch, member_of(lost, at) & keep)
        if decisions.clusters is not None:
            dropped, sizes, existing = decisions.clusters.tags(at)
            keep &= ~_drop(tally, NEAR_DUPLICATE, batch, dropped & ~existing & keep)
            keep &= ~_drop(tally, DUPLICATE_OF_EXISTING, batch, existing & keep)
            batch = _with_near_tags(batch, sizes)
        batch = batch.filter(pa.array(keep))
        positions = np.flatnonzero(keep)
        if self.rule is None or not batch.num_rows:
            return batch, positions
        before = batch
        batch, reasons = self.rule.select(batch)
        ruled_out = np.zeros(before.num_rows, dtype=bool)
        for r, i in reasons:
            ruled_out[i] = True
            tally.reason(DROPPED, r)
            if tally.wants_example(r):
                tally.example(r, before.column("id")[i].as_py(), before.column("text")[i].as_py())
        return batch, positions[~ruled_out]


def _drop(tally: Tally, reason: str, batch, hit: np.ndarray) -> np.ndarray:
    """Count the rows `hit` drops under `reason` (with examples); returns `hit`."""
    tally.reason(DROPPED, reason, int(hit.sum()))
    _examples(tally, reason, batch, hit)
    return hit


def _examples(tally: Tally, reason: str, batch: pa.RecordBatch, hit: np.ndarray) -> None:
    """The first rows of `batch` that `hit` drops, as the reason's examples (while it wants some)."""
    if not tally.wants_example(reason) or not hit.any():
        return
    for i in np.flatnonzero(hit)[:EXAMPLES_PER_REASON].tolist():
        tally.example(reason, batch.column("id")[i].as_py(), batch.column("text")[i].as_py())


def _with_near_tags(batch: pa.RecordBatch, sizes: np.ndarray) -> pa.RecordBatch:
    cols = {name: batch.column(name) for name in batch.schema.names}
    cols["dup_cluster"] = batch.column("id")
    cols["dup_count"] = pa.array(sizes, type=batch.schema.field("dup_count").type)
    return pa.RecordBatch.from_arrays([cols[n] for n in batch.schema.names], schema=batch.schema)

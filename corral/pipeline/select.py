"""The select pass: a group of consecutive staged files → the source's final shards.

Per staged row: dropped when a dedup round decided against its locator (the round's reason), or
when the source's own rule says so (CommonCrawl's thresholds); kept rows get the near-dup tags
(when the source runs MinHash) and are written, in input order, to OUT/docs/<source>/part-<first
file>-<part>.arrow with the manifest's shard bounds and compression. Rows are handled as Arrow
batches: a source with no per-row rule never turns a text into a Python string here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corral import fs
from corral.dedup import keys as K
from corral.dedup.near import NEAR_DUPLICATE
from corral.outcome import DROPPED, KEPT
from corral.pipeline.decide import REASONS, losers_between, parts_by_file
from corral.pipeline.phases import Task
from corral.pipeline.stage import EXAMPLES_PER_REASON, Tally, iter_staged
from corral.shards import ShardWriter, shard_name


def select_items(
    source: str, fingerprint: str, summaries: list[Mapping[str, Any]], shard_bytes: int, **common: Any
) -> list[dict[str, Any]]:
    """Consecutive files grouped until their staged bytes reach one shard's bound."""
    items, group, size = [], [], 0
    for s in sorted(summaries, key=lambda s: s["index"]):
        group.append(s["index"])
        size += sum(p["bytes"] for p in s["parts"])
        if size >= shard_bytes:
            items.append(group)
            group, size = [], 0
    if group:
        items.append(group)
    return [
        {"source": source, "key": f"select-{g[0]:06d}", "fingerprint": fingerprint, "files": g, **common} for g in items
    ]


class SelectTask(Task):
    phase = "select"

    def __init__(self, out: str, output: Mapping[str, Any], rule=None, docs_dir: str | None = None):
        self.out, self.output, self.rule, self.docs_dir = out, output, rule, docs_dir

    def setup(self):
        if self.rule is not None:
            self.rule.setup()

    def run(self, item, *earlier):
        source, files = item["source"], item["files"]
        first, last = files[0], files[-1]
        gone = [
            (REASONS[name], losers_between(self.out, source, name, parts, first, last))
            for name, parts in item["rounds"]
        ]
        clusters = None
        if item.get("near"):
            from corral.pipeline.near import Clusters

            clusters = Clusters(self.out, source).slice(first, last)
        exclude = set(item.get("exclude_groups") or ())
        tally = Tally()
        writer = self._writer(source, first)
        text_bytes = 0
        parts_of = parts_by_file(self.out, source, item["stage_phase"], files)
        with writer:
            for index in files:
                row = 0
                for batch in iter_staged(parts_of.get(index, [])):
                    loc = K.locs(index, batch.num_rows) + row
                    row += batch.num_rows
                    batch = self._decide(batch, loc, gone, clusters, exclude, tally)
                    if batch.num_rows:
                        writer.write_batch(batch)
                        text_bytes += int(pc.sum(pc.binary_length(batch.column("text"))).as_py() or 0)
                        tally.reason(KEPT, None, batch.num_rows)
        return {
            "source": source,
            "files": files,
            "shards": [s.to_dict() for s in writer.shards],
            "counts": tally.rows(),
            "bytes": text_bytes,
            "examples": tally.examples,
        }

    def _writer(self, source: str, first: int) -> ShardWriter:
        compression = None if self.output["compression"] == "none" else self.output["compression"]
        return ShardWriter(
            self.docs_dir or fs.join(self.out, f"docs/{source}"),
            max_rows=self.output["shard_max_rows"],
            max_bytes=self.output["shard_max_bytes"],
            compression=compression,
            name_fn=lambda part: shard_name("part", first, part),
        )

    def _decide(self, batch, loc, gone, clusters, exclude: set[str], tally: Tally):
        """The rows of a staged batch that every decision keeps, near-dup tagged, after the rule."""
        keep = np.ones(batch.num_rows, dtype=bool)
        if exclude:  # rows of groups the driver counts whole (StackExchange's smaller sites)
            metas = batch.column("meta").to_pylist()
            keep &= np.array([json.loads(m or "{}").get("site") not in exclude for m in metas])
        for reason, lost in gone:
            keep &= ~_drop(tally, reason, batch, K.member_of(lost, loc) & keep)
        if clusters is not None:
            dropped, sizes = clusters.tags(loc)
            keep &= ~_drop(tally, NEAR_DUPLICATE, batch, dropped & keep)
            batch = _with_near_tags(batch, sizes) if sizes is not None else batch
        batch = batch.filter(pa.array(keep))
        if self.rule is None or not batch.num_rows:
            return batch
        before = batch
        batch, reasons = self.rule.select(batch)
        for r, i in reasons:
            tally.reason(DROPPED, r)
            if tally.wants_example(r):
                tally.example(r, before.column("id")[i].as_py(), before.column("text")[i].as_py())
        return batch


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

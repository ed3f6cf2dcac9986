"""cc_net's second pass over files, its `mine` step (docs/recipe/commoncrawl.md#order-of-stages):

cc-tag    per file: the records the url round kept, line dedup against its hash group's
          duplicates, then language ID and perplexity, batched; staged again with the build's
          keys, a perplexity sketch per language and the keys of the quality negatives
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corral.core.outcome import DROPPED
from corral.dedup.keys import hex64, member_of
from corral.dedup.lines import dedup_record, kept_lines
from corral.engine.graph import Task, of_type
from corral.pipeline.quality.ccnet_rules import lid_keep
from corral.pipeline.quality.taggers import LanguageId, Perplexity
from corral.pipeline.rounds.decide import REASONS, load_sorted, rounds_of, rows_lost
from corral.pipeline.rounds.keytables import by_partition
from corral.pipeline.rounds.stage import (
    FileItem,
    KeyCollector,
    StagedFile,
    StagedSummary,
    StagedWriter,
    Tally,
    file_key,
    iter_staged,
    load_arrays,
    save_keys,
    summarize,
)
from corral.pipeline.sources.commoncrawl.first_pass import LinesSummary, ReadSummary, lines_path
from corral.pipeline.sources.commoncrawl.lm import LmSummary, lm_paths
from corral.pipeline.sources.commoncrawl.warc import SOURCE

LID_BATCH = 256  # documents per fastText predict call
SKETCH_POINTS = 257  # order statistics a file keeps of each language's perplexities, for the percentiles


@dataclass(frozen=True)
class TagItem(FileItem):
    group: int = 0


@dataclass
class TagSummary(StagedSummary):
    sketch: dict[str, Any] = field(default_factory=dict)  # per language: {"n", "points"} (`sketch`)


def sketch(values: list[float]) -> dict[str, Any]:
    """At most SKETCH_POINTS order statistics of a file's values, each standing for n/points of them."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if len(v) > SKETCH_POINTS:
        v = v[np.linspace(0, len(v) - 1, SKETCH_POINTS).round().astype(int)]
    return {"n": len(values), "points": v.tolist()}


def plan_tag(summaries) -> list[TagItem]:
    return [
        TagItem(key=file_key(s.index), index=s.index, parts=tuple(s.parts), group=s.group)
        for s in of_type(summaries, ReadSummary)
    ]


class TagTask(Task):
    phase = "cc-tag"
    summary = TagSummary

    def __init__(self, out: str, stages: dict[str, Any]):
        self.out, self.stages = out, stages
        self.lid = LanguageId(stages["langid"]["model"], stages["langid"]["rounding"])
        self.ppl = None

    def run(self, item: TagItem, summaries) -> TagSummary:
        st, target = self.stages, StagedFile(self.out, SOURCE, item.index)
        line_dedup = st["line_dedup"]["enabled"]
        if self.ppl is None:
            self.ppl = Perplexity(lm_paths(st, of_type(summaries, LmSummary)))
        keys = load_arrays(target.key_path("ccread-keys"))
        hashes, offsets = keys["hashes"], keys["offsets"]
        url = rounds_of(summaries)
        lost = rows_lost(self.out, SOURCE, url[0], item.index) if url else set()
        keep = kept_lines(hashes, offsets, self._duplicate_lines(item, summaries, hashes)) if line_dedup else None
        tally, writer = Tally(), StagedWriter(target)
        tagged = _Tagged(writer, KeyCollector(st), st["langid"])
        try:
            for i, r in enumerate(r for batch in iter_staged(item.parts) for r in batch.to_pylist()):
                if i in lost:
                    tally.reason(DROPPED, REASONS["url"], example=(r["id"], r["text"]))
                    continue
                if line_dedup:
                    deduped = dedup_record(r, keep[offsets[i] : offsets[i + 1]])
                    if deduped is None:
                        tally.reason(DROPPED, "empty_after_line_dedup", example=(r["id"], r["text"]))
                        continue
                    r = deduped
                tagged.pending.append(r)
                if len(tagged.pending) >= LID_BATCH:
                    tagged.flush(self.lid, self.ppl)
            tagged.flush(self.lid, self.ppl)
        except BaseException:
            writer.abort()
            raise
        parts = writer.close()
        key_bytes = save_keys(target.key_path(), tagged.arrays())
        sketches = {lang: sketch(v) for lang, v in sorted(tagged.scored.items())}
        return summarize(TagSummary, target, parts, tally, key_bytes=key_bytes, sketch=sketches)

    def _duplicate_lines(self, item: TagItem, summaries, hashes: np.ndarray) -> np.ndarray:
        """Which of this file's line hashes are duplicates: each looked up in its partition's
        duplicates (mapped: the lookups read the pages they touch, not the group's whole set)."""
        lines = [s for s in of_type(summaries, LinesSummary) if s.group == item.group]
        parts = max((s.partitions for s in lines), default=0)

        def member(p, v):
            return member_of(load_sorted(lines_path(self.out, item.group, p), mapped=True), v)

        return by_partition(hashes, parts, member, False)


class _Tagged:
    """Documents waiting for a batched language-ID call, and what tagging them leaves: the staged
    rows, their keys, the negatives for the quality classifier and the perplexities per language."""

    def __init__(self, writer: StagedWriter, collector: KeyCollector, langid: dict[str, Any]):
        self.writer, self.collector, self.langid = writer, collector, langid
        self.languages = set(langid["languages"])
        self.pending: list[dict[str, Any]] = []
        self.neg: list[int] = []
        self.neg_rows: list[int] = []
        self.scored: dict[str, list[float]] = {}

    def flush(self, lid: LanguageId, ppl: Perplexity) -> None:
        """Language ID of the batch, then the perplexity of the documents the language filter keeps
        (as cc_net's mine step, which drops the others before scoring them)."""
        threshold, languages = self.langid["threshold"], self.langid["languages"]
        for r, (lang, score) in zip(self.pending, lid.tag([r["text"] for r in self.pending])):
            r["lang"], r["lang_score"], r["perplexity"] = lang, score, None
        scored = [r for r in self.pending if lid_keep(r["lang"], r["lang_score"], threshold, languages) is None]
        for r, pp in zip(scored, ppl.scores([r["text"] for r in scored], [r["lang"] for r in scored])):
            r["perplexity"] = pp
        for r in self.pending:
            lang = r["lang"]
            if r["perplexity"] is not None:
                self.scored.setdefault(lang, []).append(r["perplexity"])
            if lang in self.languages:
                self.neg.append(hex64(hashlib.md5(r["id"].encode()).hexdigest()))
                self.neg_rows.append(self.writer.rows)
            self.writer.write(r)
            self.collector.add(r)
        self.pending.clear()

    def arrays(self) -> dict[str, np.ndarray]:
        neg = {"neg": np.array(self.neg, dtype=np.uint64), "neg_row": np.array(self.neg_rows, np.int64)}
        return {**self.collector.arrays(), **neg}

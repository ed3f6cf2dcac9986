"""TFDS's C4 cleaning as passes over files (docs/recipe/c4.md), in its order:

c4-read   per file: read, length cap; staged with each page's normalised-URL key and text md5
c4url     one page per normalised URL, the largest md5(text)                        → duplicate_url
c4-clean  per file: clean_page; staged with each page's distinct line keys
c4-lines  per partition of the line keys: each line's owner, the page of smallest md5(url)
c4-final  per file: the lines the page owns (first occurrence), ≥ min_sentences again, English,
          badwords; staged with the build's keys → the unique/exact/near rounds → select
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from corral.core import fs
from corral.core.outcome import DROPPED, apply_rule, is_kept, kept
from corral.dedup.keys import concat, hex64, key64, line_owners, loc, lookup
from corral.engine.graph import Graph, Item, Summary, Task, merged, of_type
from corral.pipeline.rounds import stage
from corral.pipeline.rounds.decide import (
    RoundTask,
    load_sorted,
    partitions_for,
    round_items,
    rounds_of,
    rows_lost,
    save_sorted,
)
from corral.pipeline.rounds.keytables import by_partition, read_partition
from corral.pipeline.sources.base import PieceItem, Source, SourcePlan, SourceTask, Staged
from corral.pipeline.sources.c4.rules import (
    SOURCE,
    badwords_regex,
    clean_page,
    count_sentences,
    has_badword,
    keep_owned_lines_by_key,
    line_key,
    load_badwords,
    normalize_url,
    url_key,
)


@dataclass
class CleanSummary(stage.StagedSummary):
    line_keys: int = 0  # distinct line keys of the file's pages, for the c4-lines partitions


@dataclass(frozen=True)
class LinesItem(Item):
    p: int = 0
    partitions: int = 1
    files: int = 0


@dataclass
class LinesSummary(Summary):
    p: int = 0
    partitions: int = 1
    lines: int = 0


def _length_rule(opts):
    return lambda r: r if len(r["text"]) <= opts["max_length"] else "too_long"


def _clean_rule(opts):
    def fn(r):
        text, reason = clean_page(r["text"], opts)
        return reason if text is None else {**r, "text": text}

    return fn


class _English:
    """English probability ≥ threshold, with fastText lid.176 loaded once per worker."""

    def __init__(self, threshold: float, model: str | None = None):
        self.threshold, self.model_path, self.model = threshold, model, None

    def __call__(self, text: str) -> bool:
        if self.model is None:
            import fasttext

            from corral.core.model_cache import lid_model_path

            self.model = fasttext.load_model(str(lid_model_path(self.model_path)))
        labels, probs = self.model.predict(text.replace("\n", " "), k=1)
        return labels[0] == "__label__en" and float(probs[0]) >= self.threshold


class ReadTask(SourceTask):
    phase = "c4-read"
    summary = stage.StagedSummary

    def run(self, item: PieceItem, *earlier) -> stage.StagedSummary:
        opts, target = self.stages["clean"], stage.StagedFile(self.out, SOURCE, item.index)
        tally, writer = stage.Tally(), stage.StagedWriter(target, "read")
        urls, md5s = [], []
        length = _length_rule(opts)
        outcomes = (apply_rule(o, length) for o in self.source.outcomes(item.piece, self.stages))
        for r in stage.kept_records(outcomes, tally):
            writer.write(r)
            urls.append(key64(normalize_url(r["url"] or r["id"])))
            md5s.append(hex64(hashlib.md5(r["text"].encode("utf-8")).hexdigest()))
        parts = writer.close()
        key_bytes = stage.save_keys(
            target.key_path("c4read-keys"), {"url_key": np.array(urls, np.uint64), "md5": np.array(md5s, np.uint64)}
        )
        tally.save_errors(target)
        return stage.summarize(stage.StagedSummary, target, parts, tally, key_bytes=key_bytes)


class CleanTask(SourceTask):
    phase = "c4-clean"
    summary = CleanSummary

    def run(self, item: stage.FileItem, summaries) -> CleanSummary:
        opts, target = self.stages["clean"], stage.StagedFile(self.out, SOURCE, item.index)
        lost = rows_lost(self.out, SOURCE, rounds_of(summaries)[0], item.index)
        tally, writer = stage.Tally(), stage.StagedWriter(target, "clean")
        clean = _clean_rule(opts)
        line_keys, offsets, rank = [], [0], []
        row = 0
        for batch in stage.iter_staged(item.parts):
            for r in batch.to_pylist():
                i, row = row, row + 1
                if i in lost:
                    tally.reason(DROPPED, "duplicate_url")
                    continue
                o = apply_rule(kept(r), clean)
                if not is_kept(o):
                    tally.add(o)
                    continue
                r = o["record"]
                writer.write(r)
                if opts["line_dedup"]:
                    ks = sorted({hex64(line_key(ln)) for ln in r["text"].split("\n")})
                    line_keys += ks
                    offsets.append(offsets[-1] + len(ks))
                    rank.append(hex64(url_key(r["url"])))
        parts = writer.close()
        arrays = {
            "lines": np.array(line_keys, np.uint64),
            "offsets": np.array(offsets, np.int64),
            "rank": np.array(rank, np.uint64),
        }
        key_bytes = stage.save_keys(target.key_path("clean-keys"), arrays)
        return stage.summarize(CleanSummary, target, parts, tally, key_bytes=key_bytes, line_keys=len(line_keys))


def owners_path(out: str, p: int, part: str) -> str:
    """Partition p's sorted line keys (`keys`) or their owners (`owner`), as mmap-able arrays."""
    return fs.join(stage.work_dir(out, SOURCE), f"lines/owners-{p:04d}.{part}.npy")


class LinesTask(Task):
    phase = "c4-lines"
    summary = LinesSummary

    def __init__(self, out: str):
        self.out = out

    def run(self, item: LinesItem, *earlier) -> LinesSummary:
        p, n = item.p, item.partitions
        keys, ranks, locs = [], [], []
        for i in range(item.files):
            t = read_partition(stage.StagedFile(self.out, SOURCE, i).key_path("clean-keys"), "c4lines", p, n)
            keys.append(t["key"])
            ranks.append(t["rank"])
            locs.append(loc(i, 0) + t["row"])
        k, owner = line_owners(concat(keys, np.uint64), concat(ranks, np.uint64), concat(locs, np.int64))
        save_sorted(owners_path(self.out, p, "keys"), k)
        save_sorted(owners_path(self.out, p, "owner"), owner)
        return LinesSummary(p=p, partitions=n, lines=int(len(k)))


class FinalTask(SourceTask):
    phase = "c4-final"
    summary = stage.StagedSummary

    def __init__(self, out: str, source: Source, stages: dict[str, Any]):
        super().__init__(out, source, stages)
        self.english = _English(stages["clean"]["lang_threshold"])
        self.badwords = None

    def run(self, item: stage.FileItem, summaries) -> stage.StagedSummary:
        opts, target = self.stages["clean"], stage.StagedFile(self.out, SOURCE, item.index)
        if opts["badwords"] and self.badwords is None:
            self.badwords = badwords_regex(load_badwords(opts["badwords"]))
        owned = self._owned_lines(item, summaries) if opts["line_dedup"] else None
        tally, writer = stage.Tally(), stage.StagedWriter(target)
        collector = stage.KeyCollector(self.stages)
        for i, r in enumerate(r for batch in stage.iter_staged(item.parts) for r in batch.to_pylist()):
            if owned is not None:
                text = keep_owned_lines_by_key(r["text"], owned(i))
                if not text:
                    tally.reason(DROPPED, "empty_after_line_dedup", example=(r["id"], r["text"]))
                    continue
                if count_sentences(text) < opts["min_sentences"]:
                    tally.reason(DROPPED, "too_few_sentences_after_line_dedup", example=(r["id"], r["text"]))
                    continue
                r = {**r, "text": text}
            reason = self._drop_reason(r["text"])
            if reason is not None:
                tally.reason(DROPPED, reason, example=(r["id"], r["text"]))
                continue
            writer.write(r)
            collector.add(r)
        parts = writer.close()
        key_bytes = stage.save_keys(target.key_path(), collector.arrays())
        return stage.summarize(stage.StagedSummary, target, parts, tally, key_bytes=key_bytes)

    def _drop_reason(self, text: str) -> str | None:
        if not self.english(text):
            return "not_english"
        if self.badwords is not None and has_badword(text, self.badwords):
            return "badword"
        return None

    def _owned_lines(self, item: stage.FileItem, summaries):
        """row → the set of line keys this file's page at that row owns. Each of the file's line keys
        is looked up in its partition's owners only (mapped: the lookups read the pages they
        touch, not every partition whole)."""
        n = max((s.partitions for s in of_type(summaries, LinesSummary)), default=0)
        a = stage.load_arrays(stage.StagedFile(self.out, SOURCE, item.index).key_path("clean-keys"))

        def owners(p, v):
            keys = load_sorted(owners_path(self.out, p, "keys"), mapped=True)
            return lookup(keys, load_sorted(owners_path(self.out, p, "owner"), mapped=True), v, -1)

        owner = by_partition(a["lines"], n, owners, np.int64(-1))
        offsets, lines = a["offsets"], a["lines"]

        def owned(i: int) -> set[int]:
            lo, hi = offsets[i], offsets[i + 1]
            return set(lines[lo:hi][owner[lo:hi] == loc(item.index, i)].tolist())

        return owned


def _plan_url(read: list[stage.StagedSummary]):
    return round_items("c4url", read, (), "c4-read")


def _plan_files(summaries) -> list[stage.FileItem]:
    return stage.file_items(s for s in of_type(summaries, stage.StagedSummary))


def _plan_lines(cleaned: list[CleanSummary]) -> list[LinesItem]:
    n = partitions_for(sum(s.line_keys for s in cleaned))
    return [LinesItem(f"lines-{p:04d}", p, n, files=len(cleaned)) for p in range(n)]


def add_clean_phases(graph: Graph, source: Source, plan: SourcePlan) -> Staged:
    """C4's passes up to the staged pages the build's rounds and select take."""
    st, out, ledger = plan.stages, plan.out, plan.ledger
    read = graph.add(
        "c4/c4-read", ReadTask(out, source, st), ledger, items=plan.piece_items(), waits=plan.waits, inputs=True
    )
    url = graph.add("c4/c4url", RoundTask(out, SOURCE), ledger, plan=_plan_url, earlier=[read])
    cleaned = graph.add(
        "c4/c4-clean",
        CleanTask(out, source, st),
        ledger,
        plan=_plan_files,
        earlier=[merged("c4/BeforeClean", [read, url])],
    )
    before_final = [cleaned]
    if st["clean"]["line_dedup"]:
        before_final.append(graph.add("c4/c4-lines", LinesTask(out), ledger, plan=_plan_lines, earlier=[cleaned]))
    final = graph.add(
        "c4/c4-final",
        FinalTask(out, source, st),
        ledger,
        plan=_plan_files,
        earlier=[merged("c4/BeforeFinal", before_final)],
    )
    return Staged(
        final,
        phase="c4-final",
        counted=("c4-read", "c4-clean", "c4-final"),
        working=("read", "clean", "c4read-keys", "clean-keys", "lines"),
    )

"""CommonCrawl's perplexity models (docs/recipe/commoncrawl.md#perplexity): per language, when the
manifest gives none, SentencePiece + a KenLM 5-gram trained on the lead sections of the build's
Wikipedia (the source CommonCrawl learns from), as cc_net's `lm` step does.

  lm   per language: its `lm_docs` Wikipedia documents with the smallest ids → OUT/models/<lang>.sp.model
       and <lang>.arpa.bin
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.core import fs
from corral.core.shards import iter_batches
from corral.engine.graph import Item, Summary, Task
from corral.engine.records import recorded
from corral.engine.resume import finished_result
from corral.pipeline.quality.side_models import lead_section, train_perplexity_models
from corral.pipeline.rounds.select import SelectSummary
from corral.pipeline.rounds.stage import ledger, work_dir


@dataclass(frozen=True)
class LmItem(Item):
    lang: str = ""


@dataclass
class LmSummary(Summary):
    lang: str = ""
    models: dict[str, Any] = field(default_factory=dict)  # each model file's info, for the build manifest
    paths: dict[str, str] | None = None  # {"sp", "lm"}: the trained models' paths


def models_dir(out: str) -> str:
    return fs.join(out, "models")


def reference_shards(out: str, reference: str) -> list[str]:
    """The shards of the source CommonCrawl learns from: from its finished record, or from its
    select pass of this build."""
    done = finished_result(work_dir(out, reference))
    if done is not None:
        return [fs.join(out, s["path"]) for s in done["shards"]]
    return sorted(d["path"] for s in recorded(ledger(out, reference), "select", SelectSummary) for d in s.shards)


def smallest_documents(out: str, reference: str, keep: Callable[[str, str], bool], n: int) -> list[tuple[str, str]]:
    """(id, text) of the n smallest ids among the reference source's documents that `keep(lang, text)`."""
    heap: list[tuple[_Rev, str]] = []  # a max-heap by id: it holds the n smallest
    for path in reference_shards(out, reference):
        for batch in iter_batches(path):
            for doc_id, lang, text in zip(
                batch.column("id").to_pylist(), batch.column("lang").to_pylist(), batch.column("text").to_pylist()
            ):
                if keep(lang, text):
                    item = (_Rev(doc_id), text)
                    if len(heap) < n:
                        heapq.heappush(heap, item)
                    elif doc_id < heap[0][0].s:
                        heapq.heapreplace(heap, item)
    return sorted((r.s, t) for r, t in heap)


class _Rev:
    """A string that orders backwards (a max-heap of ids with heapq)."""

    __slots__ = ("s",)

    def __init__(self, s: str):
        self.s = s

    def __lt__(self, other: _Rev) -> bool:
        return self.s > other.s


class LmTask(Task):
    """One language's SentencePiece + KenLM, trained on the lead sections of the reference source's
    documents (the `lm_docs` smallest ids of that language)."""

    phase = "lm"
    summary = LmSummary

    def __init__(self, out: str, stages: dict[str, Any], reference: str):
        self.out, self.ppl, self.reference = out, stages["perplexity"], reference

    def run(self, item: LmItem, *earlier) -> LmSummary:
        lang = item.lang
        docs = smallest_documents(self.out, self.reference, lambda lg, _t: lg == lang, self.ppl["lm_docs"])
        if not docs:
            return LmSummary(lang=lang)
        infos = train_perplexity_models(
            lang,
            [lead_section(t) for _, t in docs],
            models_dir(self.out),
            vocab_size=self.ppl["sp_vocab_size"],
            order=self.ppl["lm_order"],
        )
        paths = {"sp": infos[f"{lang}.sp.model"]["path"], "lm": infos[f"{lang}.arpa.bin"]["path"]}
        return LmSummary(lang=lang, models=infos, paths=paths)


def lm_paths(stages: dict[str, Any], lm_summaries: list[LmSummary]) -> dict[str, dict[str, str]]:
    """Per language, the SentencePiece and KenLM models: the manifest's, or those trained here."""
    ppl, languages = stages["perplexity"], stages["langid"]["languages"]
    if ppl["sp_model"] and ppl["lm_model"]:
        return {
            lang: {"sp": ppl["sp_model"].replace("{lang}", lang), "lm": ppl["lm_model"].replace("{lang}", lang)}
            for lang in languages
        }
    return {s.lang: s.paths for s in lm_summaries if s.paths}

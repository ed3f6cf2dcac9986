"""CommonCrawl's thresholds (docs/recipe/commoncrawl.md#buckets, #quality-classifier): what the
select pass needs, made after the tag pass, and the rule that applies them.

  models    `cutoffs`: the perplexity bucket cutoffs per language (a cutoff.csv, or percentiles merged
            from the tag pass's sketches); `quality`: the Wikipedia-reference classifier (Wikipedia —
            or crawled reference pages — against a sample of the crawl)
  select    language and its score, the bucket, the quality score: each a drop reason (`Thresholds`)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from corral.core import fs
from corral.core.outcome import is_kept
from corral.dedup.keys import loc
from corral.engine.graph import Item, Summary, Task, of_type
from corral.pipeline.inputs.match import match_inputs
from corral.pipeline.inputs.streams import guarded
from corral.pipeline.quality import ccnet_rules as rules
from corral.pipeline.quality.side_models import QualityTrainingFailed, train_quality_model
from corral.pipeline.quality.taggers import LanguageId, QualityScorer
from corral.pipeline.rounds.stage import StagedFile, StagedRows, load_arrays
from corral.pipeline.sources.commoncrawl.lm import models_dir, smallest_documents
from corral.pipeline.sources.commoncrawl.second_pass import TagSummary
from corral.pipeline.sources.commoncrawl.warc import SOURCE, read_warc_html, read_wet

LOG = logging.getLogger(__name__)
CUTOFFS_FILE = "perplexity_cutoffs.json"  # OUT/models/: the head/tail cutoffs per language the buckets used


@dataclass
class ModelsSummary(Summary):
    models: dict[str, Any] = field(default_factory=dict)  # each model file's info, for the build manifest


def percentile_cutoffs(sketches: list[dict[str, Any]], head: int, tail: int) -> tuple[float, float]:
    """(p_head, p_tail) of the values the sketches stand for: each point weighs n/len(points)."""
    pts = np.concatenate([np.asarray(s["points"], dtype=np.float64) for s in sketches])
    w = np.concatenate([np.full(len(s["points"]), s["n"] / len(s["points"])) for s in sketches])
    order = np.argsort(pts, kind="stable")
    pts, cum = pts[order], np.cumsum(w[order])
    total = cum[-1]

    def q(pct: int) -> float:
        target = pct / 100 * (total - 1) + 1  # the rank (1-based) of the percentile among n values
        return float(pts[min(np.searchsorted(cum, target - 1e-9), len(pts) - 1)])

    return q(head), q(tail)


def _cutoff_info(table: dict[str, tuple[float, float]], path: str, head: int, tail: int, origin: str) -> dict[str, Any]:
    """Write the bucket cutoffs per language to OUT/models/ (what the report draws); their model info."""
    values = {lang: [float(a), float(b)] for lang, (a, b) in sorted(table.items())}
    data = json.dumps({"percentiles": [head, tail], "cutoffs": values}, indent=1).encode("utf-8")
    return {
        "path": path,
        "sha256": fs.atomic_write_bytes(path, data),
        "bytes": len(data),
        "kind": "perplexity_cutoffs",
        "percentiles": [head, tail],
        "origin": origin,
        "cutoffs": values,
    }


class ModelsTask(Task):
    """`cutoffs`: the perplexity bucket cutoffs; `quality`: the reference classifier."""

    phase = "models"
    summary = ModelsSummary

    def __init__(self, out: str, stages: dict[str, Any], reference: str):
        self.out, self.stages, self.reference = out, stages, reference

    def run(self, item: Item, summaries) -> ModelsSummary:
        tagged = of_type(summaries, TagSummary)
        if item.key == "cutoffs":
            return ModelsSummary(models={CUTOFFS_FILE: self._cutoffs(tagged)})
        return ModelsSummary(models=self._quality(tagged))

    def _cutoffs(self, tagged) -> dict[str, Any]:
        ppl = self.stages["perplexity"]
        head, tail = ppl["percentile_head"], ppl["percentile_tail"]
        path = fs.join(models_dir(self.out), CUTOFFS_FILE)
        if ppl["cutoffs"]:
            table = rules.read_cutoff_csv(fs.read_bytes(ppl["cutoffs"]).decode("utf-8"), head, tail)
            return _cutoff_info(table, path, head, tail, ppl["cutoffs"])
        by_lang: dict[str, list[dict[str, Any]]] = {}
        for s in tagged:
            for lang, sk in s.sketch.items():
                if sk["n"]:
                    by_lang.setdefault(lang, []).append(sk)
        table = {lang: percentile_cutoffs(sks, head, tail) for lang, sks in by_lang.items()}
        return _cutoff_info(table, path, head, tail, "this crawl's own perplexities")

    def _quality(self, tagged: list[TagSummary]) -> dict[str, Any]:
        q, languages = self.stages["quality"], set(self.stages["langid"]["languages"])
        fs.remove([fs.join(models_dir(self.out), "quality.bin")])  # never a classifier of an earlier build
        if q["positives"]:
            pos = self._reference_positives(q, languages)
        else:

            def wanted(lang: str, text: str) -> bool:
                return lang in languages and len(text) >= q["min_chars"]

            pos = smallest_documents(self.out, self.reference, wanted, q["max_docs"])
        neg = self._negatives(tagged, min(q["max_docs"], len(pos)))  # equal classes: no more texts than that
        if not pos or not neg:
            LOG.warning("quality classifier not trained: %d wiki and %d crawl documents", len(pos), len(neg))
            return {}
        try:
            return train_quality_model(
                [t for _, t in pos[: len(neg)]], [t for _, t in neg[: len(pos)]], models_dir(self.out), q
            )
        except QualityTrainingFailed as e:
            LOG.warning("quality classifier not trained: %s", e)
            return {}

    def _reference_positives(self, q, languages) -> list[tuple[str, str]]:
        """Pages that Wikipedia cites, crawled by the user (WET, or WARC with HTML), read like the
        crawl itself (RP ran them through cc_net); their language must be selected too."""
        lid = LanguageId(self.stages["langid"]["model"], self.stages["langid"]["rounding"])
        read = self.stages["read"]
        docs = []
        for path, _ in match_inputs([q["positives"]], "sources.commoncrawl.quality.positives"):
            reader = read_wet if ".wet" in path else read_warc_html
            recs = [o["record"] for o in guarded(SOURCE, path, reader(path, 0, read)) if is_kept(o)]
            for r, (lang, _score) in zip(recs, lid.tag([r["text"] for r in recs])):
                if lang in languages and len(r["text"]) >= q["min_chars"]:
                    docs.append((r["id"], r["text"]))
        return sorted(docs)[: q["max_docs"]]

    def _negatives(self, tagged: list[TagSummary], n: int) -> list[tuple[str, str]]:
        """The crawl's n documents of the selected languages with the smallest md5(id), in that order."""
        best = np.empty(0, np.uint64)
        where = np.empty(0, np.int64)
        for s in tagged:
            a = load_arrays(StagedFile(self.out, SOURCE, s.index).key_path())
            keys = np.concatenate([best, a["neg"]])
            at = np.concatenate([where, loc(s.index, 0) + a["neg_row"]])
            keep = np.argsort(keys, kind="stable")[:n]
            best, where = keys[keep], at[keep]
        texts = StagedRows({s.index: s.parts for s in tagged}).values(where, "text")
        return [(f"{int(k):016x}", t) for k, t in zip(best.tolist(), texts)]


# --- select -----------------------------------------------------------------------------------------


class Thresholds:
    """CommonCrawl's thresholds on a batch of tagged documents: language and its score, then the
    bucket (from the recorded cutoffs) and the quality score (from the trained classifier)."""

    def __init__(self, out: str, stages: dict[str, Any]):
        self.out, self.stages = out, stages
        self.cutoffs = None

    def setup(self):
        pass

    def _load(self):
        if self.cutoffs is None:
            data = json.loads(fs.read_bytes(fs.join(models_dir(self.out), CUTOFFS_FILE)))
            self.cutoffs = {lang: tuple(v) for lang, v in data["cutoffs"].items()}
            path = fs.join(models_dir(self.out), "quality.bin")
            self.quality = QualityScorer(path if self.stages["quality"]["enabled"] and fs.exists(path) else None)

    def select(self, batch):
        """(the kept rows with their bucket and quality set, (reason, row) of the others). Only the
        columns the rules read become Python values; texts only when the classifier scores them."""
        self._load()
        lid, ppl, q = self.stages["langid"], self.stages["perplexity"], self.stages["quality"]
        langs = batch.column("lang").to_pylist()
        lang_scores = batch.column("lang_score").to_pylist()
        perplexities = batch.column("perplexity").to_pylist()
        texts = batch.column("text").to_pylist() if self.quality.model_path else [""] * batch.num_rows
        buckets, qualities, keep, reasons = [], [], np.zeros(batch.num_rows, dtype=bool), []
        for i, score in enumerate(self.quality.score(texts)):
            lang = langs[i]
            reason = rules.lid_keep(lang or "", lang_scores[i] or 0.0, lid["threshold"], lid["languages"])
            bucket = None
            if reason is None:
                bucket = rules.bucket(perplexities[i], self.cutoffs.get(lang))
                reason = rules.select_reason(
                    {"bucket": bucket, "quality": score}, ppl["keep_buckets"], q["threshold"] if q["enabled"] else None
                )
            if reason is None:
                keep[i] = True
                buckets.append(bucket)
                qualities.append(score)
            else:
                reasons.append((reason, i))
        kept = batch.filter(pa.array(keep))
        cols = [kept.column(n) for n in batch.schema.names]
        cols[batch.schema.get_field_index("bucket")] = pa.array(buckets, batch.schema.field("bucket").type)
        cols[batch.schema.get_field_index("quality")] = pa.array(qualities, batch.schema.field("quality").type)
        return pa.RecordBatch.from_arrays(cols, schema=batch.schema), reasons

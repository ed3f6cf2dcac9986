"""CommonCrawl (docs/recipe/commoncrawl.md): cc_net's two passes over files, then the Wikipedia-reference classifier.

  cc-read   per WET (or WARC) file: read records (corral.pipeline.sources.cc_read), stage them, and
            hash every line (cc_net's `hashes` step); the file's distinct (line hash, document)
            pairs go to its key file, with the URL + digest key of each record
  url       (url_dedup) one record per URL + digest, the first read              → duplicate_url_digest
  cc-lines  per hash group (cc_net: shard = the file's slice of num_shards, group = shard // hash_in_mem)
            and partition of the hash space: the hashes found in two or more documents
  lm        per language, when no models are given: SentencePiece + KenLM on the build's Wikipedia
  cc-tag    per file (cc_net's `mine` step): line dedup against its group's duplicates, language ID,
            perplexity; staged again with keys, a perplexity sketch and the quality negatives' keys
  models    the bucket cutoffs (a cutoff.csv, or percentiles of the sketches) and the quality
            classifier (Wikipedia — or crawled reference pages — against a sample of the crawl)
  unique, select   one record per id, then per group of files: language, bucket and quality
            thresholds, each a drop reason
Tag first, select last: every signal is a column, so a new threshold needs no rerun of the rest.
Side models are files under OUT/models handed from phase to phase; models are loaded in the tasks
of each worker, never pickled with them.
"""

from __future__ import annotations

import heapq
import json
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from corral import fs
from corral.dedup import keys as K
from corral.dedup.lines import dedup_record, doc_hashes, group_of
from corral.outcome import DROPPED, is_kept
from corral.pipeline.decide import (
    REASONS,
    RoundTask,
    load_sorted,
    losers_between,
    partitions_for,
    round_items,
    save_sorted,
)
from corral.pipeline.inputs import guarded, match_inputs
from corral.pipeline.keytables import by_partition, read_partition, table_path
from corral.pipeline.phases import FolderTask, SourceTask, Task, merged, of_phase, run_phase, work_dir
from corral.pipeline.quality import ccnet_rules as rules
from corral.pipeline.quality.side_models import lead_section, train_perplexity_models, train_quality_model
from corral.pipeline.quality.taggers import LanguageId, Perplexity, QualityScorer
from corral.pipeline.sources.cc_read import SOURCE, read_warc_html, read_wet
from corral.pipeline.stage import (
    KeyCollector,
    StagedWriter,
    Tally,
    file_key,
    iter_staged,
    kept_records,
    key_path,
    load_arrays,
    save_keys,
    stage_folder,
    staged_summary,
)

LID_BATCH = 256  # documents per fastText predict call
CUTOFFS_FILE = "perplexity_cutoffs.json"  # OUT/models/: the head/tail cutoffs per language the buckets used
SKETCH_POINTS = 257  # order statistics a file keeps of each language's perplexities, for the percentiles


def models_dir(out: str) -> str:
    return fs.join(out, "models")


def lines_path(out: str, group: int, p: int) -> str:
    return fs.join(work_dir(out, SOURCE), f"lines/{group:05d}-{p:04d}.npy")


# --- pass 1: read, stage, hash lines --------------------------------------------------------------


def file_line_keys(hashes: np.ndarray, offsets: np.ndarray, owners: np.ndarray) -> dict[str, np.ndarray]:
    """One file's distinct (line hash, owner) pairs — `hashes[offsets[i]:offsets[i+1]]` are document
    i's lines — a hash found in two of its documents sent once and marked `repeated`: what its hash
    group needs to know of the file."""
    own = np.repeat(owners.astype(np.uint64), np.diff(offsets))
    if not len(hashes):
        return {"lh": hashes, "lo": own, "lr": np.zeros(0, bool)}
    order = np.lexsort((own, hashes))
    h, o = hashes[order], own[order]
    distinct = np.concatenate([[True], (h[1:] != h[:-1]) | (o[1:] != o[:-1])])
    h, o = h[distinct], o[distinct]
    first = np.concatenate([[True], h[1:] != h[:-1]])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(h)))
    return {"lh": h[starts], "lo": o[starts], "lr": counts >= 2}


class ReadTask(SourceTask):
    phase = "cc-read"

    def run(self, item, *earlier):
        st, index = self.stages, item["index"]
        read, ld = st["read"], st["line_dedup"]
        reader = read_warc_html if read["format"] == "warc" else read_wet
        tally = Tally()
        writer = StagedWriter(stage_folder(self.out, SOURCE, "read"), index)
        hashes, id_keys = [], []
        try:
            outcomes = guarded(SOURCE, item["path"], reader(item["path"], item["group"], read))
            for r in kept_records(outcomes, tally):
                writer.write(r)
                id_keys.append(K.key64(r["id"]))
                hashes.append(doc_hashes(r["text"]) if ld["enabled"] else [])
        except BaseException:
            writer.abort()
            raise
        parts = writer.close()
        ids = np.array(id_keys, dtype=np.uint64)
        arrays = {
            "id_key": ids,
            "offsets": np.cumsum([0] + [len(h) for h in hashes], dtype=np.int64),
            "hashes": np.fromiter((x for h in hashes for x in h), dtype=np.uint64, count=sum(len(h) for h in hashes)),
        }
        if ld["enabled"]:
            # A record's lines count once per document: per URL + digest when url dedup keeps one of
            # each (twins count once), per record otherwise (as cc_net, which has no URL dedup).
            owners = ids if st["url_dedup"]["enabled"] else K.locs(index, len(ids)).astype(np.uint64)
            arrays.update(file_line_keys(arrays["hashes"], arrays["offsets"], owners))
        rounds = [r for r, on in (("url", st["url_dedup"]["enabled"]), ("cclines", ld["enabled"])) if on]
        key_bytes = save_keys(key_path(self.out, SOURCE, index, "ccread-keys"), arrays, rounds)
        tally.save_errors(self.out, SOURCE, index)
        line_keys = int(len(arrays.get("lh", ())))
        return staged_summary(index, writer, parts, tally, key_bytes, group=item["group"], line_keys=line_keys)


class LinesTask(FolderTask):
    """One hash group's partition: the line hashes in two or more of its documents."""

    phase = "cc-lines"

    def run(self, item, *earlier):
        g, p, n = item["group"], item["p"], item["partitions"]
        hs, owners, repeated = [], [], []
        for i in item["files"]:
            t = read_partition(table_path(key_path(self.out, SOURCE, i, "ccread-keys"), "cclines"), p, n)
            hs.append(t["key"])
            owners.append(t["lo"])
            repeated.append(t["lr"])
        dups = K.duplicate_lines(K.concat(hs, np.uint64), K.concat(owners, np.uint64), K.concat(repeated, bool))
        save_sorted(lines_path(self.out, g, p), dups)
        return {"group": g, "p": p, "partitions": n, "duplicates": int(len(dups))}


def _plan_lines(fingerprint: str, read_summaries):
    groups: dict[int, list[dict[str, Any]]] = {}
    for s in read_summaries:
        groups.setdefault(s["group"], []).append(s)
    items = []
    for g, files in sorted(groups.items()):
        n = partitions_for(sum(s["line_keys"] for s in files))
        for p in range(n):
            items.append(
                {
                    "source": SOURCE,
                    "key": f"lines-{g:05d}-{p:04d}",
                    "fingerprint": fingerprint,
                    "group": g,
                    "p": p,
                    "partitions": n,
                    "files": sorted(s["index"] for s in files),
                }
            )
    return items


def _plan_url(fingerprint: str, read_summaries):
    return round_items(
        SOURCE, fingerprint, "url", sum(s["rows"] for s in read_summaries), len(read_summaries), [], "cc-read"
    )


# --- side models ----------------------------------------------------------------------------------


def wiki_shards(out: str) -> list[str]:
    """The build's Wikipedia shards: from its finished record, or from its select pass of this build."""
    from corral.pipeline.phases import recorded_summaries
    from corral.pipeline.resume import finished_record

    done = finished_record(out, "wikipedia")
    if done is not None:
        return [fs.join(out, s["path"]) for s in done["build"]["shards"]]
    return sorted(d["path"] for s in recorded_summaries(out, "wikipedia", "select") for d in s["shards"])


def _wiki_smallest(out: str, keep, n: int) -> list[tuple[str, str]]:
    """(id, text) of the n smallest ids among Wikipedia's documents that `keep(lang, text)`."""
    from corral.shards import iter_batches

    heap: list[tuple[str, str]] = []  # max-heap by id, as negated order: holds the n smallest
    for path in wiki_shards(out):
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
    """One language's SentencePiece + KenLM, trained on the lead sections of the build's Wikipedia
    (the `lm_docs` smallest ids of that language)."""

    phase = "lm"

    def __init__(self, out: str, stages: dict[str, Any]):
        self.out, self.ppl = out, stages["perplexity"]

    def run(self, item, *earlier):
        lang = item["lang"]
        docs = _wiki_smallest(self.out, lambda lg, _t: lg == lang, self.ppl["lm_docs"])
        if not docs:
            return {"lang": lang, "models": {}}
        infos = train_perplexity_models(
            lang,
            [lead_section(t) for _, t in docs],
            models_dir(self.out),
            self.ppl["sp_vocab_size"],
            self.ppl["lm_order"],
        )
        return {
            "lang": lang,
            "models": infos,
            "paths": {"sp": infos[f"{lang}.sp.model"]["path"], "lm": infos[f"{lang}.arpa.bin"]["path"]},
        }


def lm_paths(stages: dict[str, Any], lm_summaries: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    ppl, languages = stages["perplexity"], stages["langid"]["languages"]
    if ppl["sp_model"] and ppl["lm_model"]:
        return {
            lang: {"sp": ppl["sp_model"].replace("{lang}", lang), "lm": ppl["lm_model"].replace("{lang}", lang)}
            for lang in languages
        }
    return {s["lang"]: s["paths"] for s in lm_summaries if s.get("paths")}


# --- pass 2: line dedup, language, perplexity ---------------------------------------------------


def sketch(values: list[float]) -> dict[str, Any]:
    """At most SKETCH_POINTS order statistics of a file's values, each standing for n/points of them."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if len(v) > SKETCH_POINTS:
        v = v[np.linspace(0, len(v) - 1, SKETCH_POINTS).round().astype(int)]
    return {"n": len(values), "points": v.tolist()}


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


class TagTask(SourceTask):
    phase = "cc-tag"

    def __init__(self, out: str, stages: dict[str, Any]):
        super().__init__(out, stages)
        self.lid = LanguageId(stages["langid"]["model"], stages["langid"]["rounding"])
        self.ppl = None

    def run(self, item, summaries):
        st, index = self.stages, item["index"]
        line_dedup = st["line_dedup"]["enabled"]
        if self.ppl is None:
            self.ppl = Perplexity(lm_paths(st, of_phase(summaries, "lm")))
        keys = load_arrays(key_path(self.out, SOURCE, index, "ccread-keys"))
        hashes, offsets = keys["hashes"], keys["offsets"]
        lost = self._url_losers(summaries, index)
        dupset = self._duplicate_lines(item, summaries, hashes) if line_dedup else set()
        tally = Tally()
        writer = StagedWriter(stage_folder(self.out, SOURCE, "stage"), index)
        tagged = _Tagged(writer, KeyCollector(st), set(st["langid"]["languages"]))
        row = 0
        try:
            for batch in iter_staged(item["parts"]):
                for r in batch.to_pylist():
                    i, row = row, row + 1
                    if i in lost:
                        tally.reason(DROPPED, REASONS["url"], example=(r["id"], r["text"]))
                        continue
                    if line_dedup:
                        deduped = dedup_record(r, dupset, hashes[offsets[i] : offsets[i + 1]].tolist())
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
        key_bytes = save_keys(key_path(self.out, SOURCE, index), tagged.arrays())
        sketches = {lang: sketch(v) for lang, v in sorted(tagged.scored.items())}
        return staged_summary(index, writer, parts, tally, key_bytes, sketch=sketches)

    def _url_losers(self, summaries, index: int) -> set[int]:
        """Rows of this file that the URL round dropped (a newer fetch of the same URL won)."""
        url = [s for s in of_phase(summaries, "decide") if s.get("round") == "url"]
        if not url:
            return set()
        losers = losers_between(self.out, SOURCE, "url", url[0]["partitions"], index, index) - K.loc(index, 0)
        return set(losers.tolist())

    def _duplicate_lines(self, item, summaries, hashes: np.ndarray) -> set[int]:
        """This file's duplicated lines only: each hash looked up in its partition's duplicates
        (mapped: the lookups read the pages they touch, not the group's whole set)."""
        lines = [s for s in of_phase(summaries, "cc-lines") if s["group"] == item["group"]]
        parts = max((s["partitions"] for s in lines), default=0)

        def member(p, v):
            return K.member_of(load_sorted(lines_path(self.out, item["group"], p), mapped=True), v)

        return set(hashes[by_partition(hashes, parts, member, False)].tolist())


class _Tagged:
    """Documents waiting for a batched language-ID call, and what tagging them leaves: the staged
    rows, their keys, the negatives for the quality classifier and the perplexities per language."""

    def __init__(self, writer: StagedWriter, collector: KeyCollector, languages: set[str]):
        self.writer, self.collector, self.languages = writer, collector, languages
        self.pending: list[dict[str, Any]] = []
        self.neg: list[int] = []
        self.neg_rows: list[int] = []
        self.scored: dict[str, list[float]] = {}

    def flush(self, lid: LanguageId, ppl: Perplexity) -> None:
        for r, (lang, score) in zip(self.pending, lid.tag([r["text"] for r in self.pending])):
            r["lang"], r["lang_score"] = lang, score
            r["perplexity"] = ppl.score(r["text"], lang)
            if r["perplexity"] is not None:
                self.scored.setdefault(lang, []).append(r["perplexity"])
            if lang in self.languages:
                self.neg.append(K.hex64(_md5(r["id"])))
                self.neg_rows.append(self.writer.rows)
            self.writer.write(r)
            self.collector.add(r)
        self.pending.clear()

    def arrays(self) -> dict[str, np.ndarray]:
        neg = {"neg": np.array(self.neg, dtype=np.uint64), "neg_row": np.array(self.neg_rows, np.int64)}
        return {**self.collector.arrays(), **neg}


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


def _plan_tag(fingerprint: str, summaries):
    return [
        {
            "source": SOURCE,
            "key": file_key(s["index"]),
            "fingerprint": fingerprint,
            "index": s["index"],
            "group": s["group"],
            "parts": s["parts"],
        }
        for s in of_phase(summaries, "cc-read")
    ]


# --- cutoffs and the quality classifier -------------------------------------------------------------


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


class ModelsTask(SourceTask):
    """`cutoffs`: the perplexity bucket cutoffs; `quality`: the reference classifier."""

    phase = "models"

    def run(self, item, summaries):
        if item["key"] == "cutoffs":
            return {"models": {CUTOFFS_FILE: self._cutoffs(of_phase(summaries, "cc-tag"))}}
        return {"models": self._quality(of_phase(summaries, "cc-tag"))}

    def _cutoffs(self, tagged) -> dict[str, Any]:
        ppl = self.stages["perplexity"]
        head, tail = ppl["percentile_head"], ppl["percentile_tail"]
        path = fs.join(models_dir(self.out), CUTOFFS_FILE)
        if ppl["cutoffs"]:
            table = rules.read_cutoff_csv(fs.read_bytes(ppl["cutoffs"]).decode("utf-8"), head, tail)
            return _cutoff_info(table, path, head, tail, ppl["cutoffs"])
        by_lang: dict[str, list[dict[str, Any]]] = {}
        for s in tagged:
            for lang, sk in s["sketch"].items():
                if sk["n"]:
                    by_lang.setdefault(lang, []).append(sk)
        table = {lang: percentile_cutoffs(sks, head, tail) for lang, sks in by_lang.items()}
        return _cutoff_info(table, path, head, tail, "this crawl's own perplexities")

    def _quality(self, tagged) -> dict[str, Any]:
        import logging

        from corral.pipeline.quality.side_models import QualityTrainingFailed

        q, languages = self.stages["quality"], set(self.stages["langid"]["languages"])
        fs.remove([fs.join(models_dir(self.out), "quality.bin")])  # never a classifier of an earlier build
        if q["positives"]:
            pos = self._reference_positives(q, languages)
        else:
            pos = _wiki_smallest(self.out, lambda lg, t: lg in languages and len(t) >= q["min_chars"], q["max_docs"])
        neg = self._negatives(tagged, min(q["max_docs"], len(pos)))  # equal classes: no more texts than that
        if not pos or not neg:
            logging.getLogger(__name__).warning(
                "quality classifier not trained: %d wiki and %d crawl documents", len(pos), len(neg)
            )
            return {}
        try:
            return train_quality_model(
                [t for _, t in pos[: len(neg)]], [t for _, t in neg[: len(pos)]], models_dir(self.out), q
            )
        except QualityTrainingFailed as e:
            logging.getLogger(__name__).warning("quality classifier not trained: %s", e)
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

    def _negatives(self, tagged, n: int) -> list[tuple[str, str]]:
        """The crawl's n documents of the selected languages with the smallest md5(id), in that order."""
        best = np.empty(0, np.uint64)
        where = np.empty(0, np.int64)
        for s in tagged:
            a = load_arrays(key_path(self.out, SOURCE, s["index"]))
            keys = np.concatenate([best, a["neg"]])
            locs = np.concatenate([where, (np.int64(s["index"]) << np.int64(K.ROW_BITS)) + a["neg_row"]])
            keep = np.argsort(keys, kind="stable")[:n]
            best, where = keys[keep], locs[keep]
        from corral.pipeline.stage import StagedRows

        rows = StagedRows({s["index"]: s["parts"] for s in tagged})
        return [(f"{int(k):016x}", rows.get(int(w), "text")) for k, w in zip(best.tolist(), where.tolist())]


# --- select -----------------------------------------------------------------------------------------


class SelectRule:
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


# --- the phases ---------------------------------------------------------------------------------------


def add_phases(p, plan):
    from corral.pipeline.plans import dedup_and_select

    st, out, fp = plan.stages, plan.out, plan.fingerprint
    ld = st["line_dedup"]
    n = len(plan.paths)
    items = [{**it, "group": group_of(it["index"], n, ld["num_shards"], ld["hash_in_mem"])} for it in plan.file_items()]
    read = run_phase(p, "commoncrawl/cc-read", ReadTask(out, st), out, items=items)
    before_tag = [read]
    if st["url_dedup"]["enabled"]:
        before_tag.append(
            run_phase(p, "commoncrawl/url", RoundTask(out), out, plan=partial(_plan_url, fp), earlier=[read])
        )
    if ld["enabled"]:
        before_tag.append(
            run_phase(p, "commoncrawl/cc-lines", LinesTask(out), out, plan=partial(_plan_lines, fp), earlier=[read])
        )
    ppl = st["perplexity"]
    if not (ppl["sp_model"] and ppl["lm_model"]):
        lm_items = [
            {"source": SOURCE, "key": f"lm-{lang}", "fingerprint": fp, "lang": lang}
            for lang in st["langid"]["languages"]
        ]
        before_tag.append(run_phase(p, "commoncrawl/lm", LmTask(out, st), out, items=lm_items, waits=plan.waits))
    tag = run_phase(
        p,
        "commoncrawl/cc-tag",
        TagTask(out, st),
        out,
        plan=partial(_plan_tag, fp),
        earlier=[merged("commoncrawl/BeforeTag", before_tag)],
    )
    model_items = [{"source": SOURCE, "key": "cutoffs", "fingerprint": fp}]
    if st["quality"]["enabled"]:
        model_items.append({"source": SOURCE, "key": "quality", "fingerprint": fp})
    models = run_phase(
        p, "commoncrawl/models", ModelsTask(out, st), out, items=model_items, earlier=[tag], waits=plan.waits
    )
    plan.stage_phase = "cc-tag"
    plan.count_phases = ["cc-read", "cc-tag"]
    plan.model_phases = ["lm", "models"]
    return dedup_and_select(p, plan, tag, rule=SelectRule(out, st), select_waits=[models]) + [models]


def read_file(path: str, stages: dict[str, Any]):
    """One WET/WARC file's records as read (cc_net's parse; no dedup or tagging)."""
    reader = read_warc_html if stages["read"]["format"] == "warc" else read_wet
    return guarded(SOURCE, path, reader(path, 0, stages["read"]))

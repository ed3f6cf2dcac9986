"""CommonCrawl (RECIPE.md §2): CCNet's pipeline on Beam, then the Wikipedia-reference classifier.

paths ─► read (WET conversion records; or WARC responses with HTML through Resiliparse's extractor)
      ─► url_dedup (optional: exact on URL + WARC-Block-Digest, as RP)
      ─► line_dedup (cc_net semantics, corral.dedup.lines, per hash group of input shards)
      ─► tag lang, lang_score (fastText lid.176, batched)
      ─► tag perplexity (SentencePiece + KenLM per language: given, or trained here on the build's
         Wikipedia) and bucket (30th/60th percentiles from a cutoff.csv, or of this crawl's own scores)
      ─► tag quality (fastText: the build's Wikipedia vs an equal sample of the crawl, trained here)
      ─► select: lang score and language, buckets kept, quality threshold — each a drop reason.
Tag first, select last: every signal is a column, so a new threshold needs no rerun of the rest.
The funnel's input counts conversion (or response) records; warcinfo and request records are not
documents and are not counted.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterator

import apache_beam as beam

from corral.dedup.exact import ExactDedup
from corral.dedup.lines import LineDedup, group_of
from corral.pipeline.inputs import guarded, match_inputs, open_input
from corral.outcome import KEPT, apply_rule, dropped, error, kept
from corral.pipeline.quality import ccnet_rules as rules
from corral.pipeline.quality.side_models import lead_section, localize, train_perplexity_models, train_quality_model
from corral.schema import make_record

SOURCE = "commoncrawl"
MAX_RECORD_BYTES = 64 * 1024 * 1024  # corral's bound on a WET/WARC record's content: beyond it, one `too_large` error
NEEDS_CONTEXT = True  # the DAG passes the input list, OUT and the build's Wikipedia records
LID_BATCH = 256  # documents per fastText predict call
CUTOFFS_FILE = "perplexity_cutoffs.json"  # OUT/models/: the head/tail cutoffs per language the buckets used


# --- reading ------------------------------------------------------------------------------------


def _record(url: str, digest: str, date: str | None, title: str, lines: list[str], length: int | None,
            group: int, path: str) -> dict[str, Any]:
    text = "\n".join(lines)
    meta = {"title": title, "digest": digest, "date_download": date, "source_domain": rules.source_domain(url),
            "nlines": len(lines), "length": len(text), "content_length": length, "dedup_group": group,
            "wet_file": os.path.basename(path)}
    return make_record(SOURCE, f"{url} {digest}", text, url=url, meta=meta)


def read_wet(path: str, group: int, read: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One outcome per conversion record: kept, too_short, or an error."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    n = 0
    with open_input(path) as f:
        it = iter(ArchiveIterator(f))
        while True:
            try:
                rec = next(it)
            except StopIteration:
                return
            except ArchiveLoadFailed as e:
                yield error(SOURCE, "bad_warc_record", f"{path} after record {n}", str(e))
                return
            h = rec.rec_headers
            if rec.rec_type != "conversion":
                continue
            n += 1
            url = h.get_header("WARC-Target-URI") or ""
            where = f"{path} {url}"
            declared = h.get_header("Content-Length")
            data = rec.content_stream().read(MAX_RECORD_BYTES + 1)
            if len(data) > MAX_RECORD_BYTES:
                yield error(SOURCE, "too_large", where, f"more than {MAX_RECORD_BYTES:,} bytes")
                continue
            if declared is not None and declared.isdigit() and len(data) < int(declared):
                yield error(SOURCE, "short_record", where, f"{len(data)} of {declared} bytes")
                continue
            try:
                body = data.decode("utf-8")
            except UnicodeDecodeError:
                yield error(SOURCE, "invalid_utf8", where)
                continue
            title, lines = rules.parse_wet_body(body)
            if len("\n".join(lines)) < read["min_len"]:
                yield dropped(SOURCE, "too_short", where)
                continue
            yield kept(_record(url, h.get_header("WARC-Block-Digest") or "", h.get_header("WARC-Date"), title,
                               lines, int(declared) if declared and declared.isdigit() else None, group, path))


def read_warc_html(path: str, group: int, read: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One outcome per HTML response record, its main text extracted with Resiliparse."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from warcio.archiveiterator import ArchiveIterator

    with open_input(path) as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "response":
                continue
            url = rec.rec_headers.get_header("WARC-Target-URI") or ""
            where = f"{path} {url}"
            ctype = (rec.http_headers.get_header("Content-Type") or "") if rec.http_headers else ""
            if "html" not in ctype.lower():
                yield dropped(SOURCE, "not_html", where)
                continue
            raw = rec.content_stream().read(MAX_RECORD_BYTES + 1)
            if len(raw) > MAX_RECORD_BYTES:
                yield error(SOURCE, "too_large", where, f"more than {MAX_RECORD_BYTES:,} bytes")
                continue
            html = bytes_to_str(raw, detect_encoding(raw))
            text = extract_plain_text(html, main_content=True, alt_texts=False, links=False, list_bullets=True)
            title, lines = rules.parse_wet_body(text)
            if len("\n".join(lines)) < read["min_len"]:
                yield dropped(SOURCE, "too_short", where)
                continue
            digest = rec.rec_headers.get_header("WARC-Payload-Digest") or rec.rec_headers.get_header("WARC-Block-Digest") or ""
            yield kept(_record(url, digest, rec.rec_headers.get_header("WARC-Date"), title, lines, None, group, path))


# --- tagging DoFns (models loaded once per worker) ------------------------------------------------


class _LanguageId(beam.DoFn):
    """Tag lang and lang_score (RECIPE.md §2.6), predictions batched."""

    def __init__(self, model: str | None):
        self.model_path, self.model = model, None

    def setup(self):
        import fasttext

        from corral.model_cache import lid_model_path

        self.model = fasttext.load_model(str(lid_model_path(self.model_path)))

    def process(self, batch):
        docs = [o for o in batch if o["status"] == KEPT]
        if docs:
            texts = [rules.lid_input(o["record"]["text"]) for o in docs]
            labels, scores = self.model.predict(texts, k=1)
            for o, text, lab, sc in zip(docs, texts, labels, scores):
                if rules.near_rounding_boundary(float(sc[0])):
                    lab, sc = self.model.predict(text, k=1)  # float64, exactly as cc_net's single call
                lang, score = rules.lid_result(lab, sc)
                o["record"] = {**o["record"], "lang": lang, "lang_score": score}
        yield from batch


class _Perplexity(beam.DoFn):
    """Tag perplexity for languages with a model (RECIPE.md §2.7); others stay null."""

    def __init__(self):
        self.loaded: dict[str, tuple[Any, Any]] = {}

    def _models(self, lang: str, paths: dict[str, dict[str, str]]):
        if lang not in self.loaded:
            import kenlm
            import sentencepiece as spm

            entry = paths[lang]
            sp = spm.SentencePieceProcessor(model_file=localize(entry["sp"]))
            self.loaded[lang] = (sp, kenlm.Model(localize(entry["lm"])))
        return self.loaded[lang]

    def process(self, outcome, models):
        if outcome["status"] == KEPT:
            lang = outcome["record"].get("lang")
            if lang in models:
                sp, lm = self._models(lang, models)
                pp = rules.score_document(outcome["record"]["text"], sp, lm)
                outcome = {**outcome, "record": {**outcome["record"], "perplexity": pp}}
        yield outcome


class _Quality(beam.DoFn):
    """Tag quality = P(wiki) (RECIPE.md §2.12)."""

    def __init__(self):
        self.model, self.path = None, None

    def process(self, outcome, model_path):
        if outcome["status"] == KEPT and model_path:
            if self.path != model_path:
                import fasttext

                self.model, self.path = fasttext.load_model(localize(model_path)), model_path
            labels, probs = self.model.predict(rules.quality_input(outcome["record"]["text"]), k=1)
            outcome = {**outcome, "record": {**outcome["record"], "quality": rules.wiki_probability(labels, probs)}}
        yield outcome


def _cutoff_info(table: dict[str, tuple[float, float]], path: str, head: int, tail: int,
                 origin: str) -> tuple[str, dict[str, Any]]:
    """Write the bucket cutoffs per language to OUT/models/ (what the report draws); their model info."""
    from corral.shards import atomic_write_bytes

    values = {lang: [float(a), float(b)] for lang, (a, b) in sorted(table.items())}
    data = json.dumps({"percentiles": [head, tail], "cutoffs": values}, indent=1).encode("utf-8")
    return CUTOFFS_FILE, {"path": path, "sha256": atomic_write_bytes(path, data), "bytes": len(data),
                          "kind": "perplexity_cutoffs", "percentiles": [head, tail], "origin": origin,
                          "cutoffs": values}


def _with_bucket(outcome: dict[str, Any], cutoffs: dict[str, tuple[float, float]]) -> dict[str, Any]:
    if outcome["status"] != KEPT:
        return outcome
    r = outcome["record"]
    return {**outcome, "record": {**r, "bucket": rules.bucket(r.get("perplexity"), cutoffs.get(r.get("lang")))}}


def _select(stages: dict[str, Any]):
    lid, ppl, q = stages["langid"], stages["perplexity"], stages["quality"]

    def rule(r):
        reason = rules.lid_keep(r.get("lang") or "", r.get("lang_score") or 0.0, lid["threshold"], lid["languages"])
        return reason or rules.select_reason(r, ppl["keep_buckets"], q["threshold"] if q["enabled"] else None) or r
    return rule


def _train_quality(_, pos, neg, models_dir, opts) -> list[dict[str, Any]]:
    """Train on equal classes (the smaller one sets the size); nothing when it cannot be trained, and
    the documents are then dropped as `unscored_quality` by the select step."""
    import logging

    from corral.pipeline.quality.side_models import QualityTrainingFailed

    if not pos or not neg:
        logging.getLogger(__name__).warning("quality classifier not trained: %d wiki and %d crawl documents",
                                            len(pos), len(neg))
        return []
    try:
        return [train_quality_model([t for _, t in pos[: len(neg)]], [t for _, t in neg[: len(pos)]], models_dir, opts)]
    except QualityTrainingFailed as e:
        logging.getLogger(__name__).warning("quality classifier not trained: %s", e)
        return []


def _sample_key(record_id: str) -> str:
    return hashlib.md5(record_id.encode()).hexdigest()


# --- the transform ------------------------------------------------------------------------------


class Read(beam.PTransform):
    """paths → outcomes for CommonCrawl; side models are trained here when the manifest asks."""

    def __init__(self, stages: dict[str, dict[str, Any]], context: dict[str, Any]):
        super().__init__()
        self.stages, self.context = stages, context
        self.models_saved = None  # after expansion: the step that records the side models, if any

    def expand(self, paths):
        st, ctx = self.stages, self.context
        p = paths.pipeline
        read, ld = st["read"], st["line_dedup"]
        all_paths = ctx["paths"]
        index = {path: i for i, path in enumerate(all_paths)}
        n = len(all_paths)
        reader = read_warc_html if read["format"] == "warc" else read_wet

        def read_one(path):
            group = group_of(index[path], n, ld["num_shards"], ld["hash_in_mem"])
            return guarded(SOURCE, path, reader(path, group, read))

        outcomes = paths | "ReadRecords" >> beam.FlatMap(read_one)
        if st["url_dedup"]["enabled"]:
            outcomes = outcomes | "UrlDigestDedup" >> ExactDedup(
                key_fn=lambda r: f"{r['url']} {json.loads(r['meta'])['digest']}", reason="duplicate_url_digest")
        if ld["enabled"]:
            outcomes = outcomes | "LineDedup" >> LineDedup(ld["buckets"])
        outcomes = (outcomes
                    | "BatchForLid" >> beam.BatchElements(min_batch_size=1, max_batch_size=LID_BATCH)
                    | "LanguageId" >> beam.ParDo(_LanguageId(st["langid"]["model"])))

        models_dir = f"{ctx['out'].rstrip('/')}/models"
        infos = []
        languages = st["langid"]["languages"]
        ppl = st["perplexity"]
        if ppl["sp_model"] and ppl["lm_model"]:
            given = {lang: {"sp": ppl["sp_model"].replace("{lang}", lang), "lm": ppl["lm_model"].replace("{lang}", lang)}
                     for lang in languages}
            lm_paths = p | "GivenLMs" >> beam.Create([given])
        else:
            wiki = ctx["wikipedia"]
            by_lang = (
                wiki
                | "WikiForLM" >> beam.Filter(lambda r: r["lang"] in languages)
                | "LangKey" >> beam.Map(lambda r: (r["lang"], (r["id"], lead_section(r["text"]))))
                | "FirstDocs" >> beam.combiners.Top.SmallestPerKey(ppl["lm_docs"])
            )
            trained = by_lang | "TrainLM" >> beam.Map(
                lambda kv: (kv[0], train_perplexity_models(kv[0], [t for _, t in kv[1]], models_dir,
                                                           ppl["sp_vocab_size"], ppl["lm_order"])))
            infos.append(trained | "LMInfos" >> beam.FlatMap(lambda kv: list(kv[1].items())))
            lm_paths = (trained
                        | "LMPaths" >> beam.Map(lambda kv: (kv[0], {"sp": kv[1][f"{kv[0]}.sp.model"]["path"],
                                                                     "lm": kv[1][f"{kv[0]}.arpa.bin"]["path"]}))
                        | "LMDict" >> beam.combiners.ToDict())
        outcomes = outcomes | "Perplexity" >> beam.ParDo(_Perplexity(), models=beam.pvalue.AsSingleton(lm_paths))

        if ppl["cutoffs"]:
            from corral.shards import read_bytes

            table = rules.read_cutoff_csv(read_bytes(ppl["cutoffs"]).decode("utf-8"), ppl["percentile_head"],
                                          ppl["percentile_tail"])
            cutoffs = p | "CutoffTable" >> beam.Create([table])
        else:
            head, tail = ppl["percentile_head"], ppl["percentile_tail"]
            cutoffs = (
                outcomes
                | "Scored" >> beam.FlatMap(lambda o: [(o["record"]["lang"], o["record"]["perplexity"])]
                                           if o["status"] == KEPT and o["record"].get("perplexity") is not None else [])
                | "Quantiles" >> beam.ApproximateQuantiles.PerKey(101)
                | "Cutoffs" >> beam.Map(lambda kv: (kv[0], rules.cutoffs_from_quantiles(kv[1], head, tail)))
                | "CutoffDict" >> beam.combiners.ToDict()
            )
        infos.append(cutoffs | "CutoffInfo" >> beam.Map(
            _cutoff_info, f"{models_dir}/{CUTOFFS_FILE}", ppl["percentile_head"], ppl["percentile_tail"],
            ppl["cutoffs"] or "this crawl's own perplexities"))
        outcomes = outcomes | "Bucket" >> beam.Map(_with_bucket, cutoffs=beam.pvalue.AsSingleton(cutoffs))

        q = st["quality"]
        if q["enabled"]:
            if q["positives"]:
                # Pages that Wikipedia cites, crawled by the user (WET, or WARC with HTML), read like
                # the crawl itself (RP ran them through cc_net); their language must be selected too.
                ref_paths = [path for path, _ in match_inputs([q["positives"]], "sources.commoncrawl.quality.positives")]
                refs = (
                    p
                    | "ReferencePaths" >> beam.Create(ref_paths)
                    | "ReadReferences" >> beam.FlatMap(
                        lambda path: guarded(SOURCE, path, (read_wet if ".wet" in path else read_warc_html)(path, 0, read)))
                    | "ReferenceDocs" >> beam.Filter(lambda o: o["status"] == KEPT)
                    | "BatchRefsForLid" >> beam.BatchElements(min_batch_size=1, max_batch_size=LID_BATCH)
                    | "ReferenceLanguage" >> beam.ParDo(_LanguageId(st["langid"]["model"]))
                    | "ReferenceRecords" >> beam.Map(lambda o: o["record"])
                )
            else:
                refs = ctx["wikipedia"]
            positives = (
                refs
                | "WikiPositives" >> beam.Filter(lambda r: r["lang"] in languages and len(r["text"]) >= q["min_chars"])
                | "PosKey" >> beam.Map(lambda r: (r["id"], r["text"]))
                | "FirstPositives" >> beam.combiners.Top.Smallest(q["max_docs"])
            )
            negatives = (
                outcomes
                | "CrawlNegatives" >> beam.Filter(lambda o: o["status"] == KEPT and o["record"].get("lang") in languages)
                | "NegKey" >> beam.Map(lambda o: (_sample_key(o["record"]["id"]), o["record"]["text"]))
                | "SampleNegatives" >> beam.combiners.Top.Smallest(q["max_docs"])
            )
            quality = (
                p
                | "QualitySeed" >> beam.Create([None])
                | "TrainQuality" >> beam.FlatMap(_train_quality, models_dir=models_dir, opts=q,
                    pos=beam.pvalue.AsSingleton(positives), neg=beam.pvalue.AsSingleton(negatives))
            )
            infos.append(quality | "QualityInfo" >> beam.FlatMap(lambda d: list(d.items())))
            model_path = quality | "QualityPath" >> beam.Map(lambda d: d["quality.bin"]["path"])
            outcomes = outcomes | "Quality" >> beam.ParDo(
                _Quality(), model_path=beam.pvalue.AsSingleton(model_path, default_value=None))

        if infos:
            summary = f"{ctx['out'].rstrip('/')}/_build/models-{SOURCE}.json"
            from corral.shards import atomic_write_bytes

            self.models_saved = (infos | "AllModelInfos" >> beam.Flatten() | "ModelList" >> beam.combiners.ToList()
                                 | "SaveModels" >> beam.Map(lambda items: atomic_write_bytes(
                                     summary, json.dumps(dict(sorted(items))).encode("utf-8"))))
        return outcomes | "Select" >> beam.Map(apply_rule, _select(st))

"""C4 (RECIPE.md §3): read the published C4, or rebuild it from CommonCrawl WET with TFDS's rules.

`read.format: c4_json` (default) reads C4 as published: JSON lines (optionally .gz) with `text`,
`url` and `timestamp` or `date`. The published C4 is already cleaned, so `clean.enabled` is off.

`read.format: wet` reads WET files the way TFDS `split_wet_file` does (conversion records; body lines
stripped, empty ones skipped, lines starting with `WARC`, `CONTENT-` or `Content-` dropped; the page
title stays in the text) and `clean.enabled: true` applies TFDS C4 v3.0.1's pipeline in its order:
length cap (190,000 chars) → URL normalisation + URL dedup (the page with the largest md5(text) per
URL) → `clean_page` (per line: too-long word, citations, end mark / ellipsis, ≥5 words,
"lorem ipsum" page drop, "javascript" lines, "{" page drop, policy lines; ≥3 sentences) → line dedup
across pages (md5 of the stripped, lowercased line; the page with the smallest md5(url) keeps it;
repeats within a page dropped; ≥3 sentences again) → English with probability ≥ 0.99 → badwords over
the whole lowercased page, with the list file given in `clean.badwords`. Every page's `meta.split` is
`validation` or `train`: from a published file's name, else TFDS's md5(url) % 1000 == 0 rule (the
published C4's validation files are read too, as RP's glob did; the split lets a user tell them apart).

Deviations, documented: sentences are counted with NLTK's Punkt algorithm with default parameters
(TFDS loads the trained `english.pickle`, which would need a run-time download); English detection
uses fastText lid.176 (`__label__en` ≥ `lang_threshold`) instead of langdetect, which the toolkit
does not depend on. Badwords are matched as escaped literals.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator

import apache_beam as beam

from corral.pipeline.inputs import guarded, iter_jsonl, open_input
from corral.outcome import KEPT, apply_rule, dropped, error, kept
from corral.schema import make_record

SOURCE = "c4"

CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")  # RECIPE.md §3.3: TFDS citation regex
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
                     "use cookies")  # RECIPE.md §3.3: TFDS policy substrings
ELLIPSIS = "..."  # RECIPE.md §3.3: TFDS _ELLIPSIS
_URL_SCHEME = re.compile(r"^https?://(www\.)?")
_URL_TRACKING = re.compile(r"\?(utm_|ref|feed).*")
WET_METADATA_PREFIXES = ("WARC", "CONTENT-", "Content-")  # RECIPE.md §3.3 step 1: TFDS split_wet_file


# --- pure rules ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _punkt():
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer()  # default parameters: nothing to download


def count_sentences(text: str) -> int:
    return len(_punkt().tokenize(text))


def normalize_url(url: str) -> str:
    """RECIPE.md §3.3 step 3: strip the scheme and www., tracking queries, a trailing '/'."""
    url = _URL_SCHEME.sub("", url)
    url = _URL_TRACKING.sub("", url)
    return url[:-1] if url.endswith("/") else url


def clean_page(text: str, opts: dict[str, Any], sentences: Callable[[str], int] = count_sentences
               ) -> tuple[str | None, str | None]:
    """RECIPE.md §3.3 step 4, TFDS `clean_page`: (cleaned text, None) or (None, drop reason)."""
    end_marks = tuple(opts["end_marks"])
    kept_lines: list[str] = []
    n_sentences = 0
    for line in text.splitlines():
        line = line.strip()
        if any(len(word) > opts["max_word_length"] for word in line.split()):
            continue
        line = CITATION.sub("", line)
        if not line.endswith(end_marks) or line.endswith(ELLIPSIS):
            continue
        if len(line.split()) < opts["min_words_per_line"]:
            continue
        lower = line.lower()
        if "lorem ipsum" in lower:
            return None, "lorem_ipsum"
        if "javascript" in lower:
            continue
        if "{" in line:
            return None, "curly_bracket"
        if any(p in lower for p in POLICY_SUBSTRINGS):
            continue
        n_sentences += sentences(line)
        kept_lines.append(line)
    if n_sentences < opts["min_sentences"]:
        return None, "too_few_sentences"
    return "\n".join(kept_lines).strip(), None


def line_key(line: str) -> str:
    """RECIPE.md §3.3 step 5: md5 of the stripped, lowercased line."""
    return hashlib.md5(line.strip().lower().encode("utf-8")).hexdigest()


def url_key(url: str) -> str:
    return hashlib.md5((url or "").encode("utf-8")).hexdigest()


def keep_owned_lines(text: str, owned: set[str]) -> str:
    """The page's lines whose key this page owns, first occurrence only (TFDS remove_duplicate_text)."""
    out, seen = [], set()
    for line in text.split("\n"):
        k = line_key(line)
        if k in owned and k not in seen:
            seen.add(k)
            out.append(line)
    return "\n".join(out).strip()


def load_badwords(path: str) -> list[str]:
    from corral.shards import read_bytes

    words = read_bytes(path).decode("utf-8").splitlines()
    return [w.strip().lower() for w in words if w.strip()]


def badwords_regex(words: Iterable[str]) -> re.Pattern:
    """RECIPE.md §3.3 step 7: TFDS v3 `(?:\\W|^)(w1|w2|…)(?:\\W|$)` over the lowercased page."""
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))
    return re.compile(r"(?:\W|^)(" + alternatives + r")(?:\W|$)")


def has_badword(text: str, pattern: re.Pattern) -> bool:
    return pattern.search(text.lower()) is not None


def split_wet_body(body: str) -> str:
    """RECIPE.md §3.3 step 1: stripped non-empty lines, WARC/Content- lines dropped, title kept."""
    lines = (ln.strip() for ln in body.splitlines())
    return "\n".join(ln for ln in lines if ln and not ln.startswith(WET_METADATA_PREFIXES))


# --- reading ------------------------------------------------------------------------------------


VALIDATION_MODULUS = 1000  # RECIPE.md §3.3 step 8: md5(url) % 1000 == 0 → validation (0.1%)


def split_of(url: str | None, path: str | None = None) -> str:
    """`validation` or `train`: the published file's name when it says, else TFDS's md5(url) rule."""
    if path and "validation" in os.path.basename(path):
        return "validation"
    if path and "train" in os.path.basename(path):
        return "train"
    return "validation" if int(url_key(url or ""), 16) % VALIDATION_MODULUS == 0 else "train"


def page_record(text: str, url: str | None, timestamp: str | None, key: str, path: str | None = None) -> dict[str, Any]:
    meta = {"split": split_of(url, path)}
    if timestamp:
        meta["timestamp"] = timestamp
    return make_record(SOURCE, key, text, url=url, lang="en", meta=meta)


def read_c4_json(path: str) -> Iterator[dict[str, Any]]:
    """Published C4 json lines → one outcome per line."""
    for where, i, obj, problem in iter_jsonl(path, require_text=True):
        if problem:
            yield error(SOURCE, "bad_json_line", where, problem)
            continue
        text, url = obj["text"], obj.get("url")
        if not text.strip():
            yield dropped(SOURCE, "empty", where)
            continue
        ts = obj.get("timestamp") or obj.get("date")
        yield kept(page_record(text, url, ts, url or f"{os.path.basename(path)}:{i}", path))


def read_wet_pages(path: str) -> Iterator[dict[str, Any]]:
    """WET conversion records → one outcome per record, TFDS split_wet_file style."""
    from warcio.archiveiterator import ArchiveIterator

    with open_input(path) as f:
        for rec in ArchiveIterator(f):
            headers = rec.rec_headers
            if rec.rec_type != "conversion":
                yield dropped(SOURCE, "not_conversion_record", path)
                continue
            url = headers.get_header("WARC-Target-URI")
            raw = rec.content_stream().read()
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield error(SOURCE, "invalid_utf8", f"{path} {url}")
                continue
            text = split_wet_body(body)
            if not text:
                yield dropped(SOURCE, "empty", f"{path} {url}")
                continue
            key = f"{url} {headers.get_header('WARC-Block-Digest') or ''}"
            yield kept(page_record(text, url, headers.get_header("WARC-Date"), key))


# --- the TFDS cleaning as Beam transforms ---------------------------------------------------------


def _length_rule(opts):
    return lambda r: r if len(r["text"]) <= opts["max_length"] else "too_long"


def _clean_rule(opts):
    def fn(r):
        text, reason = clean_page(r["text"], opts)
        return reason if text is None else {**r, "text": text}
    return fn


class _LangFilter(beam.DoFn):
    """English probability ≥ threshold, with fastText lid.176 loaded once per worker."""

    def __init__(self, threshold: float, model: str | None = None):
        self.threshold, self.model_path, self.model = threshold, model, None

    def setup(self):
        import fasttext

        from corral.model_cache import lid_model_path

        self.model = fasttext.load_model(str(lid_model_path(self.model_path)))

    def process(self, outcome):
        if outcome["status"] != KEPT:
            yield outcome
            return
        labels, probs = self.model.predict(outcome["record"]["text"].replace("\n", " "), k=1)
        if labels[0] == "__label__en" and float(probs[0]) >= self.threshold:
            yield outcome
        else:
            yield dropped(SOURCE, "not_english", outcome.get("where"))


class _BadwordsFilter(beam.DoFn):
    def __init__(self, path: str):
        self.path, self.pattern = path, None

    def setup(self):
        self.pattern = badwords_regex(load_badwords(self.path))

    def process(self, outcome):
        if outcome["status"] == KEPT and has_badword(outcome["record"]["text"], self.pattern):
            yield dropped(SOURCE, "badword", outcome.get("where"))
        else:
            yield outcome


def _choose_url(outcomes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """TFDS v3 URL dedup: keep the page with the largest md5(text); the others are duplicates."""
    ordered = sorted(outcomes, key=lambda o: hashlib.md5(o["record"]["text"].encode("utf-8")).hexdigest(),
                     reverse=True)
    return [ordered[0]] + [dropped(SOURCE, "duplicate_url", o.get("where")) for o in ordered[1:]]


def _dedup_lines(page_id: str, grouped: dict[str, list], min_sentences: int) -> list[dict[str, Any]]:
    outcomes, owned = grouped["page"], set(grouped["owned"])
    out = []
    for o in outcomes:
        text = keep_owned_lines(o["record"]["text"], owned)
        if not text:
            out.append(dropped(SOURCE, "empty_after_line_dedup", o.get("where")))
        elif count_sentences(text) < min_sentences:
            out.append(dropped(SOURCE, "too_few_sentences_after_line_dedup", o.get("where")))
        else:
            out.append({**o, "record": {**o["record"], "text": text}})
    return out


class LineDedup(beam.PTransform):
    """TFDS remove_duplicate_text: each line survives only in the page with the smallest md5(url)."""

    def __init__(self, min_sentences: int):
        super().__init__()
        self.min_sentences = min_sentences

    def expand(self, outcomes):
        min_sentences = self.min_sentences
        pages = outcomes | "KeptPages" >> beam.Filter(lambda o: o["status"] == KEPT)
        others = outcomes | "NotKept" >> beam.Filter(lambda o: o["status"] != KEPT)
        owners = (
            pages
            | "LineKeys" >> beam.FlatMap(lambda o: [(k, (url_key(o["record"]["url"]), o["record"]["id"]))
                                                   for k in {line_key(ln) for ln in o["record"]["text"].split("\n")}])
            | "Owner" >> beam.CombinePerKey(min)
            | "ByPage" >> beam.Map(lambda kv: (kv[1][1], kv[0]))
        )
        by_id = pages | "PageById" >> beam.Map(lambda o: (o["record"]["id"], o))
        deduped = (
            {"page": by_id, "owned": owners}
            | "Join" >> beam.CoGroupByKey()
            | "Rebuild" >> beam.FlatMap(lambda kv: _dedup_lines(kv[0], kv[1], min_sentences))
        )
        return (deduped, others) | "Merge" >> beam.Flatten()


class Clean(beam.PTransform):
    """outcomes → outcomes: TFDS C4 v3.0.1 cleaning in its order (see the module docstring)."""

    def __init__(self, clean: dict[str, Any], lid_model: str | None = None):
        super().__init__()
        self.opts, self.lid_model = clean, lid_model

    def expand(self, outcomes):
        o = self.opts
        outcomes = outcomes | "LengthCap" >> beam.Map(apply_rule, _length_rule(o))
        kept_pages = outcomes | "ForUrlDedup" >> beam.Filter(lambda x: x["status"] == KEPT)
        others = outcomes | "NotKeptYet" >> beam.Filter(lambda x: x["status"] != KEPT)
        by_url = (
            kept_pages
            | "KeyUrl" >> beam.Map(lambda x: (normalize_url(x["record"]["url"] or x["record"]["id"]), x))
            | "GroupUrl" >> beam.GroupByKey()
            | "ChooseUrl" >> beam.FlatMap(lambda kv: _choose_url(kv[1]))
        )
        outcomes = ((by_url, others) | "MergeUrl" >> beam.Flatten()
                    | "CleanPage" >> beam.Map(apply_rule, _clean_rule(o)))
        if o["line_dedup"]:
            outcomes = outcomes | "LineDedup" >> LineDedup(o["min_sentences"])
        outcomes = outcomes | "English" >> beam.ParDo(_LangFilter(o["lang_threshold"], self.lid_model))
        if o["badwords"]:
            outcomes = outcomes | "Badwords" >> beam.ParDo(_BadwordsFilter(o["badwords"]))
        return outcomes


def read_file(path: str, stages: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One input's pages: published C4 json, or WET pages (cleaned by the build's C4 passes when
    `clean.enabled`)."""
    reader = read_wet_pages if stages["read"]["format"] == "wet" else read_c4_json
    return guarded(SOURCE, path, reader(path))

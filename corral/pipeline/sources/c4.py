"""C4 (docs/recipe/c4.md): read the published C4, or rebuild it from CommonCrawl WET with TFDS's rules.

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
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache, partial
from typing import Any

import numpy as np

from corral import fs
from corral.outcome import DROPPED, apply_rule, dropped, error, is_kept, kept
from corral.pipeline import stage
from corral.pipeline.decide import load_sorted, losers_between, save_sorted
from corral.pipeline.inputs import guarded, iter_jsonl, open_input
from corral.pipeline.keytables import by_partition, read_partition, table_path
from corral.pipeline.phases import FolderTask, SourceTask, work_dir
from corral.schema import make_record

SOURCE = "c4"

CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")  # docs/recipe/c4.md#cleaning-a-page: TFDS citation regex
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)  # docs/recipe/c4.md#cleaning-a-page: TFDS policy substrings
ELLIPSIS = "..."  # docs/recipe/c4.md#cleaning-a-page: TFDS _ELLIPSIS
_URL_SCHEME = re.compile(r"^https?://(www\.)?")
_URL_TRACKING = re.compile(r"\?(utm_|ref|feed).*")
WET_METADATA_PREFIXES = ("WARC", "CONTENT-", "Content-")  # docs/recipe/c4.md#reading-wet: TFDS split_wet_file


# --- pure rules ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _punkt():
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer()  # default parameters: nothing to download


def count_sentences(text: str) -> int:
    return len(_punkt().tokenize(text))


def normalize_url(url: str) -> str:
    """docs/recipe/c4.md#urls: strip the scheme and www., tracking queries, every trailing '/'
    (TFDS `_normalize_url`: `url.rstrip("/")`)."""
    url = _URL_SCHEME.sub("", url)
    url = _URL_TRACKING.sub("", url)
    return url.rstrip("/")


def clean_page(
    text: str, opts: dict[str, Any], sentences: Callable[[str], int] = count_sentences
) -> tuple[str | None, str | None]:
    """docs/recipe/c4.md#cleaning-a-page, TFDS `clean_page`: (cleaned text, None) or (None, drop reason)."""
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
    """docs/recipe/c4.md#line-dedup: md5 of the stripped, lowercased line."""
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
    from corral.fs import read_bytes

    words = read_bytes(path).decode("utf-8").splitlines()
    return [w.strip().lower() for w in words if w.strip()]


def badwords_regex(words: Iterable[str]) -> re.Pattern:
    """docs/recipe/c4.md#bad-words: TFDS v3 `(?:\\W|^)(w1|w2|…)(?:\\W|$)` over the lowercased page."""
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))
    return re.compile(r"(?:\W|^)(" + alternatives + r")(?:\W|$)")


def has_badword(text: str, pattern: re.Pattern) -> bool:
    return pattern.search(text.lower()) is not None


def split_wet_body(body: str) -> str:
    """docs/recipe/c4.md#reading-wet: stripped non-empty lines, WARC/Content- lines dropped, title kept."""
    lines = (ln.strip() for ln in body.splitlines())
    return "\n".join(ln for ln in lines if ln and not ln.startswith(WET_METADATA_PREFIXES))


# --- reading ------------------------------------------------------------------------------------


VALIDATION_MODULUS = 1000  # docs/recipe/c4.md#validation-split: md5(url) % 1000 == 0 → validation (0.1%)


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


# --- the TFDS cleaning as passes over files ------------------------------------------------------
#
#   c4-read   per file: read, length cap; staged with each page's normalised-URL key and text md5
#   c4url     one page per normalised URL, the largest md5(text)                        → duplicate_url
#   c4-clean  per file: clean_page; staged with each page's distinct line keys
#   c4-lines  per partition of the line keys: each line's owner, the page of smallest md5(url)
#   c4-final  per file: the lines the page owns (first occurrence), ≥ min_sentences again, English,
#             badwords; staged with the build's keys → unique/exact/near rounds → select


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

            from corral.model_cache import lid_model_path

            self.model = fasttext.load_model(str(lid_model_path(self.model_path)))
        labels, probs = self.model.predict(text.replace("\n", " "), k=1)
        return labels[0] == "__label__en" and float(probs[0]) >= self.threshold


def _partitions(summaries, phase: str) -> int:
    return max((s["partitions"] for s in summaries if s.get("phase") == phase), default=0)


class _ReadTask(SourceTask):
    phase = "c4-read"

    def run(self, item, *earlier):
        from corral.dedup import keys as K

        opts, index = self.stages["clean"], item["index"]
        tally, writer = stage.Tally(), stage.StagedWriter(stage.stage_folder(self.out, SOURCE, "read"), index)
        urls, md5s = [], []
        length = _length_rule(opts)
        outcomes = (apply_rule(o, length) for o in read_file(item["path"], self.stages))
        for r in stage.kept_records(outcomes, tally):
            writer.write(r)
            urls.append(K.key64(normalize_url(r["url"] or r["id"])))
            md5s.append(K.hex64(hashlib.md5(r["text"].encode("utf-8")).hexdigest()))
        parts = writer.close()
        key_bytes = stage.save_keys(
            stage.key_path(self.out, SOURCE, index, "c4read-keys"),
            {"url_key": np.array(urls, np.uint64), "md5": np.array(md5s, np.uint64)},
        )
        tally.save_errors(self.out, SOURCE, index)
        return stage.staged_summary(index, writer, parts, tally, key_bytes)


class _CleanTask(SourceTask):
    phase = "c4-clean"

    def run(self, item, summaries):
        from corral.dedup import keys as K

        opts, index = self.stages["clean"], item["index"]
        lost = losers_between(self.out, SOURCE, "c4url", _partitions(summaries, "decide"), index, index)
        lost = set((lost - K.loc(index, 0)).tolist())
        tally, writer = stage.Tally(), stage.StagedWriter(stage.stage_folder(self.out, SOURCE, "clean"), index)
        clean = _clean_rule(opts)
        line_keys, offsets, rank = [], [0], []
        row = 0
        for batch in stage.iter_staged(item["parts"]):
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
                    ks = sorted({K.hex64(line_key(ln)) for ln in r["text"].split("\n")})
                    line_keys += ks
                    offsets.append(offsets[-1] + len(ks))
                    rank.append(K.hex64(url_key(r["url"])))
        parts = writer.close()
        key_bytes = stage.save_keys(
            stage.key_path(self.out, SOURCE, index, "clean-keys"),
            {
                "lines": np.array(line_keys, np.uint64),
                "offsets": np.array(offsets, np.int64),
                "rank": np.array(rank, np.uint64),
            },
        )
        return stage.staged_summary(index, writer, parts, tally, key_bytes, line_keys=len(line_keys))


def owners_path(out: str, p: int, part: str) -> str:
    """Partition p's sorted line keys (`keys`) or their owners (`owner`), as mmap-able arrays."""
    return fs.join(work_dir(out, SOURCE), f"lines/owners-{p:04d}.{part}.npy")


class _LinesTask(FolderTask):
    phase = "c4-lines"

    def run(self, item, *earlier):
        from corral.dedup import keys as K

        p, n = item["p"], item["partitions"]
        keys, ranks, locs = [], [], []
        for i in range(item["files"]):
            t = read_partition(table_path(stage.key_path(self.out, SOURCE, i, "clean-keys"), "c4lines"), p, n)
            keys.append(t["key"])
            ranks.append(t["rank"])
            locs.append(K.loc(i, 0) + t["row"])
        k, owner = K.line_owners(K.concat(keys, np.uint64), K.concat(ranks, np.uint64), K.concat(locs, np.int64))
        save_sorted(owners_path(self.out, p, "keys"), k)
        save_sorted(owners_path(self.out, p, "owner"), owner)
        return {"p": p, "partitions": n, "lines": int(len(k))}


class _FinalTask(SourceTask):
    phase = "c4-final"

    def __init__(self, out: str, stages: dict[str, Any]):
        super().__init__(out, stages)
        self.english = _English(stages["clean"]["lang_threshold"])
        self.badwords = None

    def run(self, item, summaries):
        from corral.dedup import keys as K

        opts, index = self.stages["clean"], item["index"]
        if opts["badwords"] and self.badwords is None:
            self.badwords = badwords_regex(load_badwords(opts["badwords"]))
        if opts["line_dedup"]:
            # Each of this file's line keys is looked up in its partition's owners only (mapped:
            # the lookups read the pages they touch, not every partition whole).
            n = _partitions(summaries, "c4-lines")
            a = stage.load_arrays(stage.key_path(self.out, SOURCE, index, "clean-keys"))
            owner = by_partition(
                a["lines"],
                n,
                lambda p, v: K.lookup(
                    load_sorted(owners_path(self.out, p, "keys"), mapped=True),
                    load_sorted(owners_path(self.out, p, "owner"), mapped=True),
                    v,
                    -1,
                ),
                np.int64(-1),
            )
            offsets = a["offsets"]
        tally, writer = stage.Tally(), stage.StagedWriter(stage.stage_folder(self.out, SOURCE), index)
        collector = stage.KeyCollector(self.stages)
        row = 0
        for batch in stage.iter_staged(item["parts"]):
            for r in batch.to_pylist():
                i, row = row, row + 1
                if opts["line_dedup"]:
                    lo, hi = offsets[i], offsets[i + 1]
                    mine = a["lines"][lo:hi][owner[lo:hi] == K.loc(index, i)]
                    text = keep_owned_lines_by_key(r["text"], set(mine.tolist()))
                    if not text:
                        tally.reason(DROPPED, "empty_after_line_dedup", example=(r["id"], r["text"]))
                        continue
                    if count_sentences(text) < opts["min_sentences"]:
                        tally.reason(DROPPED, "too_few_sentences_after_line_dedup", example=(r["id"], r["text"]))
                        continue
                    r = {**r, "text": text}
                if not self.english(r["text"]):
                    tally.reason(DROPPED, "not_english", example=(r["id"], r["text"]))
                    continue
                if self.badwords is not None and has_badword(r["text"], self.badwords):
                    tally.reason(DROPPED, "badword", example=(r["id"], r["text"]))
                    continue
                writer.write(r)
                collector.add(r)
        parts = writer.close()
        key_bytes = stage.save_keys(stage.key_path(self.out, SOURCE, index), collector.arrays())
        return stage.staged_summary(index, writer, parts, tally, key_bytes)


def keep_owned_lines_by_key(text: str, owned: set[int]) -> str:
    """keep_owned_lines with the owned lines named by their 64-bit keys."""
    from corral.dedup import keys as K

    out, seen = [], set()
    for line in text.split("\n"):
        k = K.hex64(line_key(line))
        if k in owned and k not in seen:
            seen.add(k)
            out.append(line)
    return "\n".join(out).strip()


def _plan_files(fingerprint: str, phase: str, summaries):
    return [
        {
            "source": SOURCE,
            "key": stage.file_key(s["index"]),
            "fingerprint": fingerprint,
            "index": s["index"],
            "parts": s["parts"],
        }
        for s in summaries
        if s.get("phase") == phase
    ]


def _plan_url(fingerprint: str, read):
    from corral.pipeline.decide import round_items

    return round_items(SOURCE, fingerprint, "c4url", sum(s["rows"] for s in read), len(read), [], "c4-read")


def _plan_lines(fingerprint: str, cleaned):
    from corral.pipeline.decide import partitions_for

    n = partitions_for(sum(s["line_keys"] for s in cleaned))
    return [
        {
            "source": SOURCE,
            "key": f"lines-{p:04d}",
            "fingerprint": fingerprint,
            "p": p,
            "partitions": n,
            "files": len(cleaned),
        }
        for p in range(n)
    ]


def add_phases(p, plan):
    """C4's own passes when it cleans (TFDS); None (the generic per-file stage) otherwise."""
    if not plan.stages["clean"]["enabled"]:
        return None
    from corral.pipeline.decide import RoundTask
    from corral.pipeline.phases import merged, run_phase
    from corral.pipeline.plans import dedup_and_select

    st, out, fp = plan.stages, plan.out, plan.fingerprint
    read = run_phase(p, "c4/c4-read", _ReadTask(out, st), out, items=plan.file_items())
    url = run_phase(p, "c4/c4url", RoundTask(out), out, plan=partial(_plan_url, fp), earlier=[read])
    cleaned = run_phase(
        p,
        "c4/c4-clean",
        _CleanTask(out, st),
        out,
        plan=partial(_plan_files, fp, "c4-read"),
        earlier=[merged("c4/BeforeClean", [read, url])],
    )
    before_final = [cleaned]
    if st["clean"]["line_dedup"]:
        before_final.append(
            run_phase(p, "c4/c4-lines", _LinesTask(out), out, plan=partial(_plan_lines, fp), earlier=[cleaned])
        )
    final = run_phase(
        p,
        "c4/c4-final",
        _FinalTask(out, st),
        out,
        plan=partial(_plan_files, fp, "c4-clean"),
        earlier=[merged("c4/BeforeFinal", before_final)],
    )
    plan.stage_phase = "c4-final"
    plan.count_phases = ["c4-read", "c4-clean", "c4-final"]
    return dedup_and_select(p, plan, final)


def read_file(path: str, stages: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One input's pages: published C4 json, or WET pages (cleaned by the build's C4 passes when
    `clean.enabled`)."""
    reader = read_wet_pages if stages["read"]["format"] == "wet" else read_c4_json
    return guarded(SOURCE, path, reader(path))

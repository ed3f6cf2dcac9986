"""cc_net's document rules as pure functions (docs/recipe/commoncrawl.md: "Reading WET",
"Language ID", "Perplexity", "Buckets").

- WET records: headers by name (old and new layouts), `conversion` only, lines stripped, the first
  body line is the `title` and leaves `raw_content`, `min_len` on raw_content before dedup.
- Language ID input: the deduplicated text with newlines removed (no separator, cc_net's quirk);
  top-1 label, score rounded to 2 decimals; kept iff the rounded score ≥ the threshold.
- Perplexity: cc_net `text_normalizer.normalize(accent, case, numbers, punct=1)` of the whole
  document (which deletes newlines, gluing lines), SentencePiece pieces joined by spaces, KenLM
  log10 score with <s> and </s>, length = words + 1, perplexity = round(10^(−logprob/length), 1).
- Buckets: pp < p30 → head, pp < p60 → middle, else tail; no model or no score → all.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from urllib.parse import urlparse

from corral.core.text import replace_category

LID_ROUNDING = 2  # docs/recipe/commoncrawl.md#language-id: cc_net rounds language scores to 2 decimals
# docs/recipe/commoncrawl.md#buckets: cc_net percentile_head / percentile_tail
PERCENTILE_HEAD, PERCENTILE_TAIL = 30, 60

# docs/recipe/commoncrawl.md#perplexity: cc_net text_normalizer UNICODE_PUNCT mapping (punct=1 replaces with these).
UNICODE_PUNCT = {
    "，": ",",
    "。": ".",
    "、": ",",
    "„": '"',
    "”": '"',
    "“": '"',
    "«": '"',
    "»": '"',
    "１": '"',
    "」": '"',
    "「": '"',
    "《": '"',
    "》": '"',
    "´": "'",
    "∶": ":",
    "：": ":",
    "？": "?",
    "！": "!",
    "（": "(",
    "）": ")",
    "；": ";",
    "–": "-",
    "—": " - ",
    "．": ". ",
    "～": "~",
    "’": "'",
    "…": "...",
    "━": "-",
    "〈": "<",
    "〉": ">",
    "【": "[",
    "】": "]",
    "％": "%",
    "►": "-",
}
_PUNCT_RE = re.compile("[" + re.escape("".join(UNICODE_PUNCT)) + "]")  # the C scan; a call only per match
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")
_DIGITS = re.compile(r"\d")


# --- WET ----------------------------------------------------------------------------------------


def parse_wet_body(body: str) -> tuple[str, list[str]]:
    """(title, content lines) of a WET conversion record's body: lines stripped, trailing empties
    dropped, the first line is the title (docs/recipe/commoncrawl.md#reading-wet)."""
    lines = list(map(str.strip, body.split("\n")))
    while len(lines) >= 1 and lines[-1] == "" and len(lines) > 1:
        lines.pop()
    if not lines:
        return "", []
    return lines[0], lines[1:]


def source_domain(url: str) -> str:
    return urlparse(url).netloc


# --- language ID --------------------------------------------------------------------------------


def lid_input(text: str) -> str:
    """raw_content.replace("\\n", ""): lines joined with no separator, a cc_net quirk kept
    (docs/recipe/commoncrawl.md#language-id)."""
    return text.replace("\n", "")


def lid_result(labels: Iterable[str], scores: Iterable[float], rounding: int = LID_ROUNDING) -> tuple[str, float]:
    """(language, score rounded to `rounding` decimals) from fastText's top-1 prediction, rounded with
    numpy as cc_net does (`scores.round(2)`), which can differ from Python's round() at a boundary."""
    import numpy as np

    label = next(iter(labels))
    score = np.float64(next(iter(scores)))
    return label.replace("__label__", ""), float(np.round(score, rounding))


def near_rounding_boundary(score: float, rounding: int = LID_ROUNDING, eps: float = 1e-4) -> bool:
    """True when a score is so close to a rounding boundary (x.xx5 at 2 decimals) that float32
    (batched) and float64 (single) predictions of the same text could round differently."""
    scaled = score * 10**rounding
    return abs(scaled - int(scaled) - 0.5) < eps


def lid_keep(lang: str, score: float, threshold: float, languages: list[str]) -> str | None:
    """None when kept; else the drop reason (cc_net drops score < threshold, then keep_lang)."""
    if score < threshold:
        return "low_lang_score"
    if languages and lang not in languages:
        return "language_not_selected"
    return None


# --- perplexity ---------------------------------------------------------------------------------


def strip_accents(text: str) -> str:
    """NFD, then drop combining marks (Mn); not recomposed, as cc_net (Hangul stays decomposed).
    ASCII text has nothing to strip; other text goes through compiled classes of all Mn marks."""
    if text.isascii():
        return text
    return replace_category(unicodedata.normalize("NFD", text), "Mn", "")


def normalize(text: str) -> str:
    """docs/recipe/commoncrawl.md#perplexity: cc_net normalize(accent=True, case=True, numbers=True, punct=1)."""
    text = text.strip().lower()
    text = strip_accents(text)
    text = _DIGITS.sub("0", text)
    if not text.isascii():
        text = _PUNCT_RE.sub(lambda m: UNICODE_PUNCT[m.group()], text)
    return _CONTROL_RE.sub("", text)


def perplexity(logprob10: float, length: int) -> float:
    """docs/recipe/commoncrawl.md#perplexity: round(10 ** (−Σ log10 p / Σ length), 1)."""
    return round(10.0 ** (-logprob10 / length), 1)


def score_document(text: str, sp, lm) -> float:
    """Document perplexity: normalise, SentencePiece pieces joined by " ", KenLM with <s> and </s>."""
    return score_pieces(sp.encode_as_pieces(normalize(text)), lm)


def score_pieces(pieces: list[str], lm) -> float:
    """Perplexity of a normalised document's SentencePiece pieces: joined by " ", scored by KenLM
    with <s> and </s>; length = the line's words + 1, as cc_net counts them."""
    line = " ".join(pieces)
    return perplexity(lm.score(line), len(line.split()) + 1)


def bucket(pp: float | None, cutoffs: tuple[float, float] | None) -> str:
    """Head below the 30th percentile, middle below the 60th, else tail; all when unscored
    (docs/recipe/commoncrawl.md#buckets)."""
    if pp is None or cutoffs is None:
        return "all"
    head, tail = cutoffs
    if pp < head:
        return "head"
    if pp < tail:
        return "middle"
    return "tail"


def read_cutoff_csv(
    text: str, percentile_head: int = PERCENTILE_HEAD, percentile_tail: int = PERCENTILE_TAIL
) -> dict[str, tuple[float, float]]:
    """{lang: (p_head, p_tail)} from a cc_net cutoff.csv (rows 0–99 = percentiles, a column per language)."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    langs = header[1:] if header and header[0] in ("", "percentile", "index") else header
    offset = len(header) - len(langs)
    table: dict[int, list[str]] = {}
    for row in rows[1:]:
        if not row:
            continue
        idx = int(float(row[0])) if offset else len(table)
        table[idx] = row[offset:]
    out = {}
    for j, lang in enumerate(langs):
        try:
            out[lang] = (float(table[percentile_head][j]), float(table[percentile_tail][j]))
        except (KeyError, ValueError, IndexError):
            continue
    return out


def cutoffs_from_quantiles(quantiles: list[float], percentile_head: int, percentile_tail: int) -> tuple[float, float]:
    """(p_head, p_tail) from 101 quantiles (0th … 100th percentile) of a language's perplexities."""
    return quantiles[percentile_head], quantiles[percentile_tail]


def quality_input(text: str) -> str:
    """docs/recipe/commoncrawl.md#quality-classifier: RP classifier input, " ".join(content.strip().splitlines())."""
    return " ".join(text.strip().splitlines())


def wiki_probability(labels: Iterable[str], probs: Iterable[float], positive: str = "__label__wiki") -> float:
    """docs/recipe/commoncrawl.md#quality-classifier: p if the top label is wiki, else 1 − p."""
    label, p = next(iter(labels)), float(next(iter(probs)))
    return min(1.0, max(0.0, p if label == positive else 1.0 - p))


def select_reason(record: Mapping, keep_buckets: list[str], quality_threshold: float | None) -> str | None:
    """The final select step: None when the document satisfies the manifest, else why not."""
    if keep_buckets and record.get("bucket") not in keep_buckets:
        return f"bucket_{record.get('bucket')}"
    if quality_threshold is not None:
        if record.get("quality") is None:
            return "unscored_quality"  # no classifier could be trained (a class had no documents)
        if record["quality"] < quality_threshold:
            return "low_quality"
    return None

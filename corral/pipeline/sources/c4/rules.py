"""C4's rules as pure functions (docs/recipe/c4.md): TFDS C4 v3.0.1's page cleaning, URL
normalisation, line keys and ownership, bad words, the WET body split and the validation split."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from corral.core.fs import read_bytes
from corral.dedup.keys import hex64

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


VALIDATION_MODULUS = 1000  # docs/recipe/c4.md#validation-split: md5(url) % 1000 == 0 → validation (0.1%)


def split_of(url: str | None, path: str | None = None) -> str:
    """`validation` or `train`: the published file's name when it says, else TFDS's md5(url) rule."""
    if path and "validation" in os.path.basename(path):
        return "validation"
    if path and "train" in os.path.basename(path):
        return "train"
    return "validation" if int(url_key(url or ""), 16) % VALIDATION_MODULUS == 0 else "train"


def keep_owned_lines_by_key(text: str, owned: set[int]) -> str:
    """keep_owned_lines with the owned lines named by their 64-bit keys."""
    out, seen = [], set()
    for line in text.split("\n"):
        k = hex64(line_key(line))
        if k in owned and k not in seen:
            seen.add(k)
            out.append(line)
    return "\n".join(out).strip()

"""CCNet line-level deduplication (docs/recipe/commoncrawl.md#line-hashes), as pure functions; the build's passes
(corral.pipeline.sources.commoncrawl) count hashes per group with corral.dedup.keys.duplicate_lines.

Normalisation for hashing (cc_net text_normalizer.normalize_for_dedup), per line, in order:
strip → lower() → every Unicode digit (`\\d`) to "0" → delete the 34 UNICODE_PUNCT characters and the
control characters 0–31 and 127–159. ASCII punctuation and accents stay (checked by running cc_net:
"HEADER MENU!" ≠ "Header Menu", "Footer 2019" = "footer 2020"). The key is the first 8 bytes of
SHA-1 of the UTF-8 line, read as a little-endian uint64 (cc_net's numpy buffer on x86).

Semantics (cc_net HashesCollector + DuplicatesRemover, `collect=False`): within a hash group, a line
whose hash occurs in two or more documents is removed from all of them, the first occurrence
included; inside one document a repeated line keeps its first occurrence; hash 0 is cc_net's
"masked" sentinel and never kept; a document left with no line (or only blank ones) is dropped. Groups are cc_net's:
shard = the input file's slice of `num_shards`, group = shard // `hash_in_mem`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

# docs/recipe/commoncrawl.md#line-hashes: the 34 keys of cc_net's UNICODE_PUNCT (text_normalizer.py).
UNICODE_PUNCT_KEYS = "，。、„”“«»１」「《》´∶：？！（）；–—．～’…━〈〉【】％►"
_DIGITS = re.compile(r"\d")  # the str regex: every Unicode Nd digit, not just ASCII
_DELETE = re.compile("[" + re.escape(UNICODE_PUNCT_KEYS) + "\x00-\x1f\x7f-\x9f]")
# ASCII digits → "0" and ASCII controls deleted by one C-level bytes.translate; bytes ≥ 0x80 (UTF-8
# sequences) are left alone. `_ASCII_DELETE` keeps "\n", which separates a document's lines.
_ASCII_TABLE = bytes(ord("0") if 0x30 <= b <= 0x39 else b for b in range(256))
_ASCII_DELETE = bytes([*range(0, 10), *range(11, 32), 127])
_SHA1_DIGEST = type(hashlib.sha1()).digest
SHA1_BYTES = 20
HASH_BYTES = 8  # docs/recipe/commoncrawl.md#line-hashes: first 8 bytes of SHA-1


def normalize_for_dedup(line: str) -> str:
    """Steps 1–4 of docs/recipe/commoncrawl.md#line-hashes."""
    line = line.strip().lower()
    line = _DIGITS.sub("0", line)
    return _DELETE.sub("", line)


def line_hash(line: str) -> int:
    """uint64 (little-endian) of the first 8 bytes of SHA-1 of the normalised line
    (docs/recipe/commoncrawl.md#line-hashes)."""
    data = normalize_for_dedup(line).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha1(data).digest()[:HASH_BYTES], "little")


@cache
def _non_ascii_digits() -> tuple[re.Pattern, re.Pattern]:
    """(BMP class, astral class) of the non-ASCII characters `\\d` matches. Unicode assigns decimal
    digits (Nd) in planes 0 and 1 only, so those two planes are scanned (tested against all)."""
    found = _DIGITS.findall("".join(map(chr, range(0x80, 0x20000))))
    bmp, astral = [c for c in found if ord(c) < 0x10000], [c for c in found if ord(c) >= 0x10000]
    return re.compile("[" + "".join(bmp) + "]"), re.compile("[" + "".join(astral) + "]")


@cache
def _non_ascii_rare() -> re.Pattern:
    """One class for a document's non-ASCII work: BMP digits (to "0"), cc_net's punctuation keys and
    the C1 controls (deleted); all in the BMP, so `re` tests it against a bitmap."""
    return re.compile("[" + _non_ascii_digits()[0].pattern[1:-1] + re.escape(UNICODE_PUNCT_KEYS) + "\x80-\x9f]")


def _zero_or_delete(m: re.Match) -> str:
    return "0" if m.group().isdecimal() else ""


_ASTRAL_LEADS = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")  # UTF-8 lead bytes of the planes beyond the BMP


def _normalize_non_ascii(text: str) -> bytes:
    """A lowered document's non-ASCII digits to "0" and its punctuation keys and C1 controls
    deleted, in one regex pass, as UTF-8; the astral digits' class (scanned range by range) only
    runs on text with astral characters, found by their lead bytes (memchr, not a regex scan)."""
    data = _non_ascii_rare().sub(_zero_or_delete, text).encode("utf-8", "surrogatepass")
    if any(lead in data for lead in _ASTRAL_LEADS):
        data = _non_ascii_digits()[1].sub("0", data.decode("utf-8", "surrogatepass")).encode("utf-8", "surrogatepass")
    return data


def doc_hashes(raw_content: str) -> np.ndarray:
    """line_hash of every line of a document, as uint64, without a Python loop over lines: the lines
    stripped (map), the document lowered and its non-ASCII digits, punctuation and C1 controls
    replaced by one regex pass, its ASCII digits and controls by one bytes.translate, then SHA-1
    of each line by map. Every step acts on single characters, so the document at once gives each
    line's normalize_for_dedup (the unit tests compare the two)."""
    text = "\n".join(map(str.strip, raw_content.lower().split("\n")))  # no whitespace has a case
    data = text.encode("ascii") if text.isascii() else _normalize_non_ascii(text)
    digests = b"".join(map(_SHA1_DIGEST, map(hashlib.sha1, data.translate(_ASCII_TABLE, _ASCII_DELETE).split(b"\n"))))
    first = np.frombuffer(digests, np.uint8).reshape(-1, SHA1_BYTES)[:, :HASH_BYTES]
    return np.ascontiguousarray(first).view("<u8").ravel().astype(np.uint64, copy=False)


def shard_of(file_index: int, n_files: int, num_shards: int) -> int:
    """The cc_net shard holding input file `file_index`: shard s holds files
    [s·n // num_shards, (s+1)·n // num_shards) (docs/recipe/commoncrawl.md#shards-and-dedup-groups)."""
    s = file_index * num_shards // max(n_files, 1)
    while s + 1 < num_shards and (s + 1) * n_files // num_shards <= file_index:
        s += 1
    while s > 0 and s * n_files // num_shards > file_index:
        s -= 1
    return s


def group_of(file_index: int, n_files: int, num_shards: int, hash_in_mem: int) -> int:
    """A shard is deduplicated against the hashes of its block of hash_in_mem shards
    (docs/recipe/commoncrawl.md#shards-and-dedup-groups)."""
    return shard_of(file_index, n_files, num_shards) // hash_in_mem


def remove_duplicate_lines(lines: Sequence[str], hashes: Sequence[int], duplicates: set[int]) -> list[str]:
    """docs/recipe/commoncrawl.md#which-lines-go finalize_doc: keep a line iff h != 0, h is not a
    cross-document duplicate, and h was not already kept in this document (the reference rule;
    `kept_lines` computes it for a whole file at once)."""
    seen: set[int] = set()
    out = []
    for line, h in zip(lines, hashes):
        if h == 0 or h in duplicates or h in seen:
            continue
        seen.add(h)
        out.append(line)
    return out


def kept_lines(hashes: np.ndarray, offsets: np.ndarray, duplicate: np.ndarray) -> np.ndarray:
    """remove_duplicate_lines for every document of a file at once: document i's lines hash to
    hashes[offsets[i]:offsets[i+1]], `duplicate` marks the cross-document duplicates; True where a
    line stays (its hash is not 0, not a duplicate, and its first in the document)."""
    doc = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    order = np.argsort(hashes, kind="stable")  # equal hashes stay in line order, so document order too
    h, d = hashes[order], doc[order]
    first_sorted = np.ones(len(order), dtype=bool)
    first_sorted[1:] = (h[1:] != h[:-1]) | (d[1:] != d[:-1])
    first = np.empty_like(first_sorted)
    first[order] = first_sorted
    return first & (hashes != 0) & ~np.asarray(duplicate, dtype=bool)


def dedup_record(record: dict[str, Any], keep: np.ndarray) -> dict[str, Any] | None:
    """The record with the lines `keep` marks False removed (cc_net's output fields updated), or None
    when no line, or only blank ones, is left."""
    text = record["text"]
    if keep.all():
        nlines, new = len(keep), text
    else:
        lines = text.split("\n")
        nlines, new = len(lines), "\n".join([ln for ln, k in zip(lines, keep.tolist()) if k])
    if not new or new.isspace():
        return None
    meta = json.loads(record["meta"]) if record.get("meta") else {}
    meta.update(original_nlines=nlines, original_length=len(text), nlines=int(keep.sum()), length=len(new))
    return {**record, "text": new, "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True)}

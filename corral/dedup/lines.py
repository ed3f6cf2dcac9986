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
import re
from collections.abc import Sequence
from typing import Any

# docs/recipe/commoncrawl.md#line-hashes: the 34 keys of cc_net's UNICODE_PUNCT (text_normalizer.py).
UNICODE_PUNCT_KEYS = "，。、„”“«»１」「《》´∶：？！（）；–—．～’…━〈〉【】％►"
_DIGITS = re.compile(r"\d")  # the str regex: every Unicode Nd digit, not just ASCII
_DELETE = re.compile("[" + re.escape(UNICODE_PUNCT_KEYS) + "\x00-\x1f\x7f-\x9f]")
# ASCII fast path (most web lines): digits → "0" and controls deleted by one C-level bytes.translate.
_ASCII_TABLE = bytes(ord("0") if chr(b).isdigit() else b for b in range(256))
_ASCII_DELETE = bytes([*range(0, 32), 127])
_ASCII_SPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # exactly what str.strip() strips among ASCII
HASH_BYTES = 8  # docs/recipe/commoncrawl.md#line-hashes: first 8 bytes of SHA-1


def normalize_for_dedup(line: str) -> str:
    """Steps 1–4 of docs/recipe/commoncrawl.md#line-hashes."""
    line = line.strip().lower()
    line = _DIGITS.sub("0", line)
    return _DELETE.sub("", line)


def _normalized_bytes(line: str) -> bytes:
    """UTF-8 of normalize_for_dedup(line), with a byte-level path for ASCII lines (same result)."""
    line = line.strip().lower()
    if line.isascii():
        return line.encode("ascii").translate(_ASCII_TABLE, _ASCII_DELETE)
    return _DELETE.sub("", _DIGITS.sub("0", line)).encode("utf-8", "surrogatepass")


def line_hash(line: str) -> int:
    """uint64 (little-endian) of the first 8 bytes of SHA-1 of the normalised line
    (docs/recipe/commoncrawl.md#line-hashes)."""
    return int.from_bytes(hashlib.sha1(_normalized_bytes(line)).digest()[:HASH_BYTES], "little")


def doc_hashes(raw_content: str) -> list[int]:
    """line_hash of every line (the loop inlined: this is the stage's hottest code). An ASCII document
    is hashed as bytes throughout; the result is the same as line_hash's."""
    sha1, from_bytes = hashlib.sha1, int.from_bytes
    if raw_content.isascii():
        table, delete, space = _ASCII_TABLE, _ASCII_DELETE, _ASCII_SPACE
        return [
            from_bytes(sha1(line.strip(space).lower().translate(table, delete)).digest()[:HASH_BYTES], "little")
            for line in raw_content.encode("ascii").split(b"\n")
        ]
    norm = _normalized_bytes
    return [from_bytes(sha1(norm(line)).digest()[:HASH_BYTES], "little") for line in raw_content.split("\n")]


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
    cross-document duplicate, and h was not already kept in this document."""
    seen: set[int] = set()
    out = []
    for line, h in zip(lines, hashes):
        if h == 0 or h in duplicates or h in seen:
            continue
        seen.add(h)
        out.append(line)
    return out


def dedup_record(
    record: dict[str, Any], duplicates: set[int], hashes: list[int] | None = None
) -> dict[str, Any] | None:
    """The record with its duplicate lines removed (cc_net's output fields updated), or None if empty."""
    import json

    lines = record["text"].split("\n")
    kept = remove_duplicate_lines(lines, hashes if hashes is not None else doc_hashes(record["text"]), duplicates)
    text = "\n".join(kept)
    if not text.strip():  # no line survived, or only blank ones: no document left
        return None
    meta = json.loads(record["meta"]) if record.get("meta") else {}
    meta.update(original_nlines=len(lines), original_length=len(record["text"]), nlines=len(kept), length=len(text))
    return {**record, "text": text, "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True)}

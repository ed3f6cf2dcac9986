"""Shared text helpers: compiled character classes by Unicode category.

Python's `re` tests a character class against a bitmap when all its ranges lie in the BMP, but falls
back to scanning every range when any lies beyond it; so each class is compiled twice, for the BMP
and for the astral planes, and the astral one runs only on text that has astral characters.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


@cache
def category_classes(prefix: str) -> tuple[re.Pattern, re.Pattern]:
    """(BMP class, astral class) of every code point whose Unicode category starts with `prefix`
    ("Mn": non-spacing marks, "P": punctuation, …). Built once per process (about 0.1 s)."""
    ranges, start, prev = [], None, None
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)).startswith(prefix):
            if start is None:
                start = cp
            elif cp != prev + 1:
                ranges.append((start, prev))
                start = cp
            prev = cp
    if start is not None:
        ranges.append((start, prev))

    def cls(rs):
        if not rs:
            return re.compile("(?!)")
        return re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in rs) + "]")

    return cls([r for r in ranges if r[1] <= 0xFFFF]), cls([r for r in ranges if r[1] > 0xFFFF])


def replace_category(text: str, prefix: str, repl: str) -> str:
    """Replace every character of the category with `repl`."""
    bmp, astral = category_classes(prefix)
    text = bmp.sub(repl, text)
    return astral.sub(repl, text) if _ASTRAL.search(text) else text

"""Wikitext → plain text (docs/recipe/wikipedia.md#markup-removal): the HF `wikipedia` script v2.0.0's
markup removal, with mwparserfromhell, for corral.pipeline.sources.wikipedia.

Before parsing, `{| … |}` wikitables, `<ref>`s and File/Image/Media links are cut out by scans
(the parser reads the rest of a page as text after markup it cannot parse). After parsing, one
walk of the tree finds the links and tags to remove (`nodes_in`), each removed in the Wikicode that
holds it (`drop_node`), where mwparserfromhell's own `remove`/`replace` search the whole tree for
every node; the page is parsed, edited and read with the cyclic garbage collector paused.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MAGIC_WORDS = re.compile(r"__[A-Z]*__")  # docs/recipe/wikipedia.md: HF-wiki v2 re_rm_magic


def strip_wikitables(raw: str) -> str:
    """Remove `{| … |}` wikitable blocks (nested ones too) by their line-start delimiters.

    The recipe removes tables; mwparserfromhell sometimes fails to parse a real table (a header row
    of `!!` cells with templates, seen on enwiki) and leaves it as raw text with its links. The
    delimiters are defined to stand at line starts, so a line scan finds every table.
    """
    out, depth = [], 0
    for line in raw.split("\n"):
        head = line.lstrip()
        if head.startswith("{|"):
            depth += 1
            continue
        if depth:
            if head.startswith("|}"):
                depth -= 1
            continue
        out.append(line)
    return "\n".join(out)


_REFS = re.compile(r"<ref\b[^>]*/>|<ref\b[^>]*>.*?</ref\s*>", re.IGNORECASE | re.DOTALL)


def strip_refs(raw: str) -> str:
    """Remove `<ref …/>` and `<ref …>…</ref>` (refs do not nest), before parsing: after markup it
    cannot parse, mwparserfromhell reads the rest of a page as text, refs included."""
    return _REFS.sub("", raw)


def strip_media_links(raw: str, media: set[str]) -> str:
    """Remove `[[File:…]]`-style links with their nested links (bracket-balanced), before parsing,
    for the same reason as strip_refs."""
    out, i, n = [], 0, len(raw)
    while i < n:
        j = raw.find("[[", i)
        if j < 0:
            out.append(raw[i:])
            break
        out.append(raw[i:j])
        head = raw[j + 2 : j + 40].lstrip(" :")
        prefix = head.split(":", 1)[0].strip().lower() if ":" in head else ""
        if prefix not in media:
            out.append("[[")
            i = j + 2
            continue
        depth, k = 0, j
        while k < n:
            if raw.startswith("[[", k):
                depth, k = depth + 1, k + 2
            elif raw.startswith("]]", k):
                depth, k = depth - 1, k + 2
                if depth == 0:
                    break
            else:
                k += 1
        i = k
    return "".join(out)


def clean_wikitext(raw: str, media: set[str], categories: set[str], strip_magic: bool = True) -> str:
    """docs/recipe/wikipedia.md: HF-wiki v2.0.0 markup removal; `media`/`categories` are lowercase prefixes.

    `strip_magic=False` keeps `__MAGIC__` words (HF-wiki v1.0.0 did not remove them)."""
    with gc_paused():
        return _clean_wikitext(raw, media, categories, strip_magic)


def _clean_wikitext(raw: str, media: set[str], categories: set[str], strip_magic: bool) -> str:
    import mwparserfromhell  # here, not at the top: every command that reads a manifest imports this module
    from mwparserfromhell.nodes import Tag, Wikilink

    wikicode = mwparserfromhell.parse(strip_media_links(strip_refs(strip_wikitables(raw)), media))
    # Removals run once over the whole page: nodes removed through the sections' views can
    # survive in the text (seen on real pages); the section split below then only formats.
    for context, link in nodes_in(wikicode, Wikilink):  # a list: removing while iterating skips nodes
        title = str(link.title).strip()
        prefix = title.split(":", 1)[0].strip().lower().lstrip(":") if ":" in title else ""
        if prefix in media:
            drop_node(context, link)
        elif prefix in categories:
            drop_node(context, link, title.split(":", 1)[1].strip())
    for context, tag in nodes_in(wikicode, Tag):
        if str(tag.tag).strip().lower() in ("ref", "table"):
            drop_node(context, tag)
    sections = []
    for section in flat_sections(wikicode):
        text = section.strip_code().strip()
        sections.append(MAGIC_WORDS.sub("", text).strip() if strip_magic else text)
    return "\n\n".join(s for s in sections if s).strip()


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block, and as it was after. A page's parse tree holds
    no reference cycles (reference counting frees it), but its thousands of objects set off
    collections that scan every live object: ~10% of a page's time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def flat_sections(wikicode) -> list:
    """`wikicode.get_sections(flat=True, include_lead=True, include_headings=True)`: the lead, then
    each top-level heading with the nodes up to the next one; as Wikicode over plain lists, which
    strip_code() reads faster than the views get_sections() makes."""
    from mwparserfromhell.nodes import Heading
    from mwparserfromhell.wikicode import Wikicode

    nodes = list(wikicode.nodes)
    bounds = [0, *(i for i, node in enumerate(nodes) if isinstance(node, Heading)), len(nodes)]
    return [Wikicode(nodes[a:b]) for a, b in zip(bounds, bounds[1:])]


def nodes_in(wikicode, kind: type) -> list[tuple[Any, Any]]:
    """(the Wikicode that holds it, node) for the nodes of `kind` in `wikicode` that can reach its
    text, in the order `wikicode.filter(recursive=True, forcetype=kind)` gives them: one walk of the tree,
    where removing each found node by `wikicode.remove` would search the whole tree again.

    Templates are not entered: strip_code() drops a template with all it holds, so what is removed
    inside one never reaches the text (and a template holds no heading of the page's sections)."""
    from mwparserfromhell.nodes import Comment, HTMLEntity, Template, Text

    not_entered = (Template, Text, Comment, HTMLEntity)  # Text, Comment, HTMLEntity hold no nodes
    found, todo = [], [(wikicode, node) for node in reversed(wikicode.nodes)]
    while todo:
        context, node = todo.pop()
        if isinstance(node, kind):
            found.append((context, node))
        elif isinstance(node, not_entered):
            continue
        for code in reversed(list(node.__children__())):
            todo.extend((code, child) for child in reversed(code.nodes))
    return found


def drop_node(context, node, value: str | None = None) -> None:
    """`wikicode.remove(node)`, or `wikicode.replace(node, value)`, done in the Wikicode that holds
    `node`. A node inside one removed before it is edited where it is, in the removed subtree (the
    whole-tree search of `remove` raises ValueError for it instead): it is out of the page either way."""
    for i, child in enumerate(context.nodes):
        if child is node:
            context.nodes.pop(i)
            if value is not None:
                context.insert(i, value)
            return

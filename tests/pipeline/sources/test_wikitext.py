"""wikitext: clean_wikitext equals the reference (mwparserfromhell's whole-tree filter/remove/replace
and get_sections, as the HF script runs them) on tricky pages and on every page of the real samples."""

import bz2
import gc
import html
import re

import mwparserfromhell
import pytest
from mwparserfromhell.nodes import Tag, Wikilink

from corral.pipeline.sources import wikitext as wt
from corral.pipeline.sources.wikipedia import aliases

MEDIA, CATS = aliases("de", {"6": "Datei", "14": "Kategorie"})


def reference(raw: str, media: set[str], categories: set[str], strip_magic: bool = True) -> str:
    """The markup removal as mwparserfromhell's own API writes it (each removal a whole-tree search)."""
    wikicode = mwparserfromhell.parse(wt.strip_media_links(wt.strip_refs(wt.strip_wikitables(raw)), media))
    for link in wikicode.filter_wikilinks(recursive=True):
        title = str(link.title).strip()
        prefix = title.split(":", 1)[0].strip().lower().lstrip(":") if ":" in title else ""
        try:
            if prefix in media:
                wikicode.remove(link)
            elif prefix in categories:
                wikicode.replace(link, title.split(":", 1)[1].strip())
        except ValueError:  # already gone with an enclosing node
            pass
    for tag in wikicode.filter_tags(matches=lambda t: str(t.tag).strip().lower() in ("ref", "table"), recursive=True):
        try:
            wikicode.remove(tag)
        except ValueError:
            pass
    sections = []
    for section in wikicode.get_sections(flat=True, include_lead=True, include_headings=True):
        text = section.strip_code().strip()
        sections.append(wt.MAGIC_WORDS.sub("", text).strip() if strip_magic else text)
    return "\n\n".join(s for s in sections if s).strip()


TRICKY = [
    "{{Infobox|name=[[Kategorie:In template]]|img=[[Datei:x.png]]|t=<table><tr><td>x</td></tr></table>}}Lead.",
    "{{outer|{{inner|[[Category:Deep]]}}|== Not a heading ==}}\n== Real ==\ntext",
    "[[Datei:a.png|thumb|a [[Kategorie:In caption]] and [[Berlin]]]] after",  # cut before parsing
    "[[Berlin|the [[Kategorie:Nested]] city]] and [[Kategorie:Top|sort key]]",
    "[[Category:Outer [[Category:Inner]]]] x",  # the inner goes with the outer
    "[[:Category:Shown as link]] [[ Kategorie : Spaced ]] [[category:lower]]",
    "[[Kategorie:{{PAGENAME}}]] [[{{ns:14}}:Templated prefix]]",
    "== Heading with [[Kategorie:Cat]] and [[Datei:y.jpg]] ==\nbody<ref>r</ref>",
    "== First ==\nno lead\n=== Sub ===\n\n==Empty==\n",
    "<ref name=a/>x<ref>y</ref><ref group=n>{{cite|z}}</ref>< ref>odd</ref><REF>upper</REF>",
    "<table><tr><td>[[Kategorie:In table]]</td></tr></table>after<div><table>inner</table>div text</div>",
    "{|\n|a\n|}\nafter {| inline not a table |} x\n:{|\n|indented\n|}",
    "{{{arg|default with [[Kategorie:In arg]]}}} [http://x.org label [[Kategorie:In ext]]]",
    "'''bold [[Kategorie:B]]''' ''italic'' <small>[[Kategorie:S]]</small>",
    "#REDIRECT [[Target]]",
    "__NOTOC__ text __FORCETOC__\n== H ==\n__NOEDITSECTION__",
    "<!-- [[Kategorie:Commented]] --> <nowiki>[[Kategorie:Nowiki]]</nowiki> <math>[[x]]</math>",
    "<gallery>\nDatei:a.jpg|[[Kategorie:Gallery]]\n</gallery>",
    "* [[Kategorie:L1]]\n# [[Kategorie:L2]]\n; t : [[Kategorie:L3]]\n----",
    "[[Kategorie:Unclosed",
    "{{unclosed [[Kategorie:After unclosed template]]",
    "[[Bild:local.png|x]] [[Image:en.png]] [[Media:m.ogg]] [[File:f.svg]] kept",
    "",
    "   ",
]


@pytest.mark.parametrize("raw", TRICKY)
def test_clean_wikitext_equals_the_reference(raw):
    for magic in (True, False):
        assert wt.clean_wikitext(raw, MEDIA, CATS, magic) == reference(raw, MEDIA, CATS, magic)


def test_clean_wikitext_by_hand():
    raw = "{{T|[[Kategorie:A]]}}Lead [[Berlin|city]].\n[[Kategorie:Stadt]]\n== H ==\nx<ref>r</ref>"
    assert wt.clean_wikitext(raw, MEDIA, CATS) == "Lead city.\nStadt\n\nH \nx"


def test_nodes_in_finds_what_filter_finds_outside_templates():
    code = mwparserfromhell.parse("".join(TRICKY[:4] + TRICKY[10:14]))
    templates = code.filter_templates(recursive=True)
    in_templates = {id(n) for t in templates for c in t.__children__() for n in c.filter(recursive=True)}
    assert in_templates
    for kind, found in ((Wikilink, code.filter_wikilinks(recursive=True)), (Tag, code.filter_tags(recursive=True))):
        got = wt.nodes_in(code, kind)
        assert all(any(c is node for c in context.nodes) for context, node in got)  # each in its holder
        assert [id(n) for _, n in got] == [id(n) for n in found if id(n) not in in_templates]
        assert len(got) < len(found)


def test_drop_node_removes_or_replaces_in_place():
    code = mwparserfromhell.parse("a [[X|[[Kategorie:Y]]]] b [[Datei:z]] c")
    (outer_ctx, outer), (inner_ctx, inner), (media_ctx, media) = wt.nodes_in(code, Wikilink)
    wt.drop_node(inner_ctx, inner, "Y")
    wt.drop_node(media_ctx, media)
    assert str(code) == "a [[X|Y]] b  c"
    wt.drop_node(media_ctx, media)  # no longer there: nothing happens
    assert str(code) == "a [[X|Y]] b  c"


@pytest.mark.parametrize("raw", TRICKY)
def test_flat_sections_are_get_sections(raw):
    code = mwparserfromhell.parse(raw)
    want = code.get_sections(flat=True, include_lead=True, include_headings=True)
    assert [str(s) for s in wt.flat_sections(code)] == [str(s) for s in want]


def test_gc_paused_restores_the_collector_as_it_was():
    assert gc.isenabled()
    with wt.gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), wt.gc_paused():
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with wt.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_every_real_page_gives_the_same_text(shared_data):
    raws = []
    for path in sorted((shared_data / "wikipedia").glob("enwiki*.bz2")):
        xml = bz2.decompress(path.read_bytes()).decode("utf-8")
        raws += [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", xml, re.DOTALL)]
    media, cats = aliases("en", {})
    assert len(raws) > 200
    assert [wt.clean_wikitext(r, media, cats) for r in raws] == [reference(r, media, cats) for r in raws]

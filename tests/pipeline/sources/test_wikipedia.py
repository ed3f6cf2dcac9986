"""docs/recipe/wikipedia.md Wikipedia rules on inline cases, then the real dumps (en, bg in UTF-16, zh)."""

import bz2
import collections

from helpers import run_read, shard_records, write_manifest

from corral.manifests.verify import verify_build
from corral.pipeline.build import build
from corral.pipeline.sources import wikipedia as wk
from corral.pipeline.sources import wikitext as wt
from corral.pipeline.sources.wikipedia import WIKI_LANGUAGES

MEDIA, CATS = wk.aliases("de", {})


def dump(pages, dbname="dewiki", extra_ns=""):
    head = (
        f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" xml:lang="de"><siteinfo>'
        f'<dbname>{dbname}</dbname><namespaces><namespace key="6">Datei</namespace>'
        f'<namespace key="14">Kategorie</namespace>{extra_ns}</namespaces></siteinfo>'
    )
    body = ""
    for i, (title, ns, text, redirect) in enumerate(pages):
        red = '<redirect title="X" />' if redirect else ""
        body += (
            f"<page><title>{title}</title><ns>{ns}</ns><id>{i + 1}</id>"
            f"{red}<revision><timestamp>2022-08-01T00:00:00Z"
            f"</timestamp><text>{text}</text></revision></page>"
        )
    return head + body + "</mediawiki>"


def test_language_of():
    assert wk.language_of("enwiki", "de", "/x/frwiki-1.xml") == "en"
    assert wk.language_of(None, "de", "/x/frwiki-1.xml") == "de"
    assert wk.language_of(None, None, "/x/frwiki-20220801-pages.xml.bz2") == "fr"
    assert wk.language_of("zh_yuewiki", None, "x") == "zh-yue"


def test_paper_languages():
    assert len(WIKI_LANGUAGES) == 20 and set(WIKI_LANGUAGES) == set(wk.MEDIA_ALIASES) == set(wk.CATEGORY_ALIASES)


def test_media_links_removed_in_english_and_local_names():
    raw = "Text [[File:a.jpg|thumb|cap]] more [[Datei:b.png]] and [[Bild:c.png|x]] end [[Berlin|the city]]."
    assert wk.clean_wikitext(raw, MEDIA, CATS) == "Text  more  and  end the city."


def test_category_links_keep_text_without_prefix():
    assert wk.clean_wikitext("A.\n[[Kategorie:Stadt]]\n[[Category:Cities]]", MEDIA, CATS) == "A.\nStadt\nCities"


def test_refs_tables_templates_comments_and_magic_words():
    raw = (
        "{{Infobox|name=X}}'''X''' is a thing.<ref>Cite me</ref><!-- hidden -->\n"
        '{| class="wikitable"\n|-\n| cell\n|}\n<table><tr><td>t</td></tr></table>__NOTOC__\n'
        "== History ==\nIt began.{{cn}}"
    )
    text = wk.clean_wikitext(raw, MEDIA, CATS)
    # strip_code leaves the heading's inner spaces ("== History ==" → "History "), as in HF's output.
    assert [ln.strip() for ln in text.split("\n")] == ["X is a thing.", "", "History", "It began."]
    for gone in ("Cite me", "hidden", "cell", "NOTOC", "Infobox", "cn"):
        assert gone not in text


def test_wikitables_removed_even_when_the_parser_misses_them():
    raw = (
        "Before.\n{| class=wikitable\n! A !! {{Tooltip| SR | x}} !! B\n|-\n| bgcolor=lime | [[L|W]]\n"
        "{|\n| nested\n|}\n|}\nAfter."
    )
    assert wt.strip_wikitables(raw) == "Before.\nAfter."
    assert wk.clean_wikitext(raw, MEDIA, CATS) == "Before.\nAfter."


def test_refs_and_media_links_removed_before_parsing():
    assert wt.strip_refs('a<ref name="x">{{cite|y}}</ref>b<ref name=z />c<REF>d\ne</ref>') == "abc"
    raw = "x [[File:a.svg|thumb|A [[nested]] caption]] y [[Berlin]] [[ : Image:b.png]] z"
    assert wt.strip_media_links(raw, MEDIA) == "x  y [[Berlin]]  z"
    assert wt.strip_media_links("unclosed [[File:a|b", MEDIA) == "unclosed "


def test_magic_words_kept_when_asked():
    assert "__NOTOC__" in wk.clean_wikitext("Hi __NOTOC__ there", MEDIA, CATS, strip_magic=False)


def test_read_rules(tmp_path):
    p = tmp_path / "dewiki-20220801-pages-articles.xml.bz2"
    p.write_bytes(
        bz2.compress(
            dump(
                [
                    ("Berlin", 0, "'''Berlin''' ist eine Stadt. [[Kategorie:Stadt]]", False),
                    ("Diskussion:Berlin", 1, "talk", False),
                    ("Bärlin", 0, "#WEITERLEITUNG [[Berlin]]", True),
                    ("Leer", 0, "{{Begriffsklärung}}", False),
                ]
            ).encode()
        )
    )
    outs = run_read(wk.Wikipedia(), [str(p)], tmp_path)
    reasons = collections.Counter(o["reason"] for o in outs if o["status"] == "dropped")
    assert reasons == {"not_main_namespace": 1, "redirect": 1, "empty": 1}
    (doc,) = [o["record"] for o in outs if o["status"] == "kept"]
    assert doc["text"] == "Berlin ist eine Stadt. Stadt" and doc["lang"] == "de"
    assert doc["url"] == "https://de.wikipedia.org/wiki/Berlin"


def test_language_filter(tmp_path):
    p = tmp_path / "x.xml"
    p.write_text(dump([("A", 0, "Text.", False)], dbname="jawiki"))
    assert [o["reason"] for o in run_read(wk.Wikipedia(), [str(p)], tmp_path)] == ["language_not_selected"]
    outs = run_read(wk.Wikipedia(), [str(p)], tmp_path, read={"languages": ["ja"]})
    assert outs[0]["status"] == "kept" and outs[0]["record"]["lang"] == "ja"


def test_entities_refused_and_malformed_xml(tmp_path):
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        "<mediawiki><page><title>&b;</title><ns>0</ns><id>1</id><revision><text>x</text></revision></page></mediawiki>"
    )
    (tmp_path / "enwiki-bomb.xml").write_text(bomb)
    ext = (
        '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        "<mediawiki><page><title>&e;</title><ns>0</ns></page></mediawiki>"
    )
    (tmp_path / "enwiki-ext.xml").write_text(ext)
    good = dump([("A", 0, "Good text.", False)], dbname="enwiki")
    (tmp_path / "enwiki-broken.xml").write_text(good + dump([("B", 0, "More.", False)])[:150])
    outs = run_read(
        wk.Wikipedia(),
        [str(tmp_path / n) for n in ("enwiki-bomb.xml", "enwiki-ext.xml", "enwiki-broken.xml")],
        tmp_path,
    )
    errors = sorted(o["reason"] for o in outs if o["status"] == "error")
    assert errors == ["malformed_xml", "xml_entities_forbidden", "xml_entities_forbidden"]
    assert [o["record"]["text"] for o in outs if o["status"] == "kept"] == ["Good text."]


def test_real_dumps(shared_data, tmp_path):
    m = write_manifest(
        tmp_path / "m.yaml",
        {"wikipedia": {"inputs": [str(shared_data / "wikipedia" / "*.bz2"), str(shared_data / "wikipedia" / "*.xml")]}},
    )
    manifest = build(m, str(tmp_path / "out"))
    f = manifest.sources["wikipedia"].funnel
    assert f.balanced() and not f.errors
    # The enwiki excerpt has 100 redirects; one is in namespace 4 and counts as not_main_namespace.
    assert f.dropped["redirect"] == 99
    assert f.dropped["language_not_selected"] == 23  # zh is not one of the paper's languages
    assert verify_build(str(tmp_path / "out")).ok
    recs = shard_records(str(tmp_path / "out"), "wikipedia")
    langs = collections.Counter(r["lang"] for r in recs)
    assert langs["bg"] >= 1 and langs["en"] > 100 and "zh" not in langs
    bg = [r for r in recs if r["lang"] == "bg"][0]
    assert "календар" in bg["text"]  # UTF-16 dump decoded
    for r in recs:
        assert "[[" not in r["text"] and "{{" not in r["text"] and "<ref" not in r["text"]

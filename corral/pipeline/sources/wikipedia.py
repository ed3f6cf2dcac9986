"""Wikipedia (docs/recipe/wikipedia.md): MediaWiki XML dumps → plain text of main-namespace articles.

Input: `*-pages-articles*.xml` dumps, plain or .bz2, in whatever encoding the XML declares or its
byte-order mark says (UTF-16 included). Parsed as a stream with defusedxml: a dump that declares
entities is refused, never expanded; pages are released as they are read. A multistream dump
(concatenated bz2 streams of about 100 pages each) larger than a piece is cut at stream boundaries,
by its published index or a scan (corral.pipeline.inputs.multistream): each task reads the
siteinfo stream and its own range.

Rules (HF `wikipedia` script v2.0.0, which RedPajama ran):
- Language: siteinfo's `dbname` (`enwiki` → en), else the root's `xml:lang`, else the file name
  (`bgwiki-…`). Languages not in `read.languages` (the paper's 20 by default) are dropped as
  `language_not_selected`.
- Only namespace 0 (`read.namespaces`); redirects (a `<redirect>` element) dropped as `redirect`.
- Markup, per section (lead and headings included): links to File/Image/Media (and their local
  names, from the dump's own siteinfo and a table of the 20 languages' aliases) removed; category
  links keep their text without the `Category:` prefix; `<ref>` and `<table>` tags removed (and
  `{| … |}` wikitables by a line scan first, since the parser misses some real ones);
  `strip_code()` (templates and comments dropped, link text kept); magic words `__[A-Z]*__`
  removed. Sections joined with a blank line; pages left empty dropped as `empty`.
mwparserfromhell is the wikitext parser (what the HF script uses): maintained, and it parses
nested templates and tags that regexes get wrong.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import iterparse

from corral.core import fs
from corral.core.outcome import dropped, error, kept
from corral.core.schema import make_record
from corral.manifests.options import Option
from corral.pipeline.inputs.multistream import INDEX_SUFFIX, multistream_cuts, open_piece
from corral.pipeline.inputs.streams import open_input
from corral.pipeline.sources.base import Piece, Source, ranges
from corral.pipeline.sources.wikitext import clean_wikitext

SOURCE = "wikipedia"
LOG = logging.getLogger("corral.build")

# Local names of the File/Media namespaces (HF-wiki MEDIA_ALIASES, for the paper's 20 languages).
MEDIA_ALIASES = {
    "en": ["file", "image", "media"],
    "bg": ["файл", "картинка", "медия", "изображение"],
    "ca": ["fitxer", "imatge", "arxiu", "multimèdia"],
    "cs": ["soubor", "obrázek", "média"],
    "da": ["fil", "billede", "medie"],
    "de": ["datei", "bild", "medium"],
    "es": ["archivo", "imagen", "medio"],
    "fr": ["fichier", "image", "média"],
    "hr": ["datoteka", "slika", "mediji"],
    "hu": ["fájl", "kép", "média"],
    "it": ["file", "immagine", "media"],
    "nl": ["bestand", "afbeelding", "media"],
    "pl": ["plik", "grafika", "media"],
    "pt": ["ficheiro", "arquivo", "imagem", "média", "mídia"],
    "ro": ["fișier", "fişier", "imagine", "media"],
    "ru": ["файл", "изображение", "медиа"],
    "sl": ["slika", "datoteka", "media"],
    "sr": ["датотека", "слика", "медији", "datoteka", "slika", "medij"],
    "sv": ["fil", "bild", "media"],
    "uk": ["файл", "зображення", "медіа"],
}
# Local names of the Category namespace (HF-wiki CATEGORY_ALIASES, for the same languages).
CATEGORY_ALIASES = {
    "en": ["category"],
    "bg": ["категория"],
    "ca": ["categoria"],
    "cs": ["kategorie"],
    "da": ["kategori"],
    "de": ["kategorie"],
    "es": ["categoría"],
    "fr": ["catégorie"],
    "hr": ["kategorija"],
    "hu": ["kategória"],
    "it": ["categoria"],
    "nl": ["categorie"],
    "pl": ["kategoria"],
    "pt": ["categoria"],
    "ro": ["categorie"],
    "ru": ["категория"],
    "sl": ["kategorija"],
    "sr": ["категорија", "kategorija"],
    "sv": ["kategori"],
    "uk": ["категорія"],
}
MEDIA_NS, FILE_NS, CATEGORY_NS = "-2", "6", "14"  # MediaWiki namespace keys
_DB_LANG = re.compile(r"^([a-z_\-]+?)wiki$")
_FILE_LANG = re.compile(r"^([a-z_\-]+?)wiki-")


# --- pure rules ---------------------------------------------------------------------------------


def language_of(dbname: str | None, xml_lang: str | None, path: str) -> str | None:
    """Wiki language: siteinfo dbname, else the root's xml:lang, else the dump's file name."""
    if dbname and (m := _DB_LANG.match(dbname)):
        return m.group(1).replace("_", "-")
    if xml_lang:
        return xml_lang
    m = _FILE_LANG.match(os.path.basename(path))
    return m.group(1).replace("_", "-") if m else None


def aliases(lang: str | None, site_names: dict[str, str]) -> tuple[set[str], set[str]]:
    """(media prefixes, category prefixes): English, the language's table, and the dump's own names."""
    media = set(MEDIA_ALIASES["en"]) | set(MEDIA_ALIASES.get(lang or "", []))
    cats = set(CATEGORY_ALIASES["en"]) | set(CATEGORY_ALIASES.get(lang or "", []))
    for key in (MEDIA_NS, FILE_NS):
        if site_names.get(key):
            media.add(site_names[key].lower())
    if site_names.get(CATEGORY_NS):
        cats.add(site_names[CATEGORY_NS].lower())
    return media, cats


def page_url(lang: str, title: str) -> str:
    return f"https://{lang}.wikipedia.org/wiki/{title.replace(' ', '_')}"


# --- reading ------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem, name: str):
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


def read_dump(
    path: str, read: dict[str, Any], clean: dict[str, Any], piece: Piece | None = None
) -> Iterator[dict[str, Any]]:
    """One outcome per <page> of a dump, or of one piece of a multistream dump."""
    languages = set(read["languages"])
    namespaces = set(read["namespaces"])
    dbname = xml_lang = None
    site_names: dict[str, str] = {}
    root = None
    n = 0
    where = piece.where() if piece is not None else path
    with open_input(path) if piece is None or piece.whole else open_pieces(piece) as stream:
        try:
            for event, elem in iterparse(
                stream, events=("start", "end"), forbid_dtd=False, forbid_entities=True, forbid_external=True
            ):
                tag = _local(elem.tag)
                if event == "start":
                    if root is None:
                        root = elem
                        xml_lang = elem.get("{http://www.w3.org/XML/1998/namespace}lang")
                    continue
                if tag == "siteinfo":
                    db = _child(elem, "dbname")
                    dbname = db.text if db is not None else None
                    ns = _child(elem, "namespaces")
                    for item in ns if ns is not None else []:
                        site_names[item.get("key", "")] = (item.text or "").strip()
                    root.clear()
                elif tag == "page":
                    n += 1
                    lang = language_of(dbname, xml_lang, path)
                    yield _page(elem, _Dump(path, lang, site_names, languages, namespaces), clean)
                    root.clear()  # release the page: memory stays flat over a whole dump
        except (EntitiesForbidden, DTDForbidden, ExternalReferenceForbidden) as e:
            yield error(SOURCE, "xml_entities_forbidden", f"{where} after page {n}", type(e).__name__)
        except Exception as e:
            if type(e).__name__ != "ParseError":
                raise
            yield error(SOURCE, "malformed_xml", f"{where} after page {n}", str(e))


@dataclass(frozen=True)
class _Dump:
    """What a dump's <siteinfo> and the build's `read` options say of each of its pages."""

    path: str
    lang: str | None
    site_names: dict[str, str]
    languages: set[str]
    namespaces: set[str]


def _page(elem, dump: _Dump, clean: dict[str, Any]) -> dict[str, Any]:
    path, lang, site_names = dump.path, dump.lang, dump.site_names
    languages, namespaces = dump.languages, dump.namespaces
    title = (_child(elem, "title").text or "") if _child(elem, "title") is not None else ""
    page_id = (_child(elem, "id").text or "") if _child(elem, "id") is not None else ""
    where = f"{path} page {page_id or title}"
    ns = _child(elem, "ns")
    if (ns.text if ns is not None else "0") not in namespaces:
        return dropped(SOURCE, "not_main_namespace", where)
    if _child(elem, "redirect") is not None:
        return dropped(SOURCE, "redirect", where)
    if lang not in languages:
        return dropped(SOURCE, "language_not_selected", where)
    rev = _child(elem, "revision")
    text_el = _child(rev, "text") if rev is not None else None
    raw = text_el.text if text_el is not None and text_el.text else ""
    ts_el = _child(rev, "timestamp") if rev is not None else None
    media, cats = aliases(lang, site_names)
    text = clean_wikitext(raw, media, cats, clean["strip_magic_words"]) if raw else ""
    if not text:
        return dropped(SOURCE, "empty", where)
    meta = {
        "title": title,
        "page_id": page_id,
        "timestamp": ts_el.text if ts_el is not None else None,
        "language": lang,
    }
    return kept(
        make_record(SOURCE, f"{lang}wiki/{page_id or title}", text, url=page_url(lang, title), lang=lang, meta=meta)
    )


# --- the source ------------------------------------------------------------------------------

# The 20 Wikipedia languages of the paper (docs/recipe/wikipedia.md, LLaMA §2.1).
WIKI_LANGUAGES = (
    "bg",
    "ca",
    "cs",
    "da",
    "de",
    "en",
    "es",
    "fr",
    "hr",
    "hu",
    "it",
    "nl",
    "pl",
    "pt",
    "ro",
    "ru",
    "sl",
    "sr",
    "sv",
    "uk",
)

OPTIONS = {
    "read": {
        "languages": Option(list(WIKI_LANGUAGES), "str_list", "the paper's 20 languages"),
        "namespaces": Option(["0"], "str_list", "main namespace only"),
    },
    "clean": {
        "strip_magic_words": Option(True, "bool", "HF-wiki v2 removes __MAGIC__ words"),
    },
}


class Wikipedia(Source):
    name = SOURCE
    options = OPTIONS

    def inputs(self, patterns: list[str | dict], field_: str) -> list[tuple[str, int]]:
        """The dumps the patterns match; a multistream index among them is not a dump (it is read,
        beside its dump, when the dump is split)."""
        return [(p, n) for p, n in super().inputs(patterns, field_) if not p.endswith(INDEX_SUFFIX)]

    def split(self, path: str, size: int, stages: dict[str, Any], piece_size: int) -> list[Piece]:
        """A multistream dump larger than a piece: ranges of its bz2 streams (corral.pipeline.inputs.multistream)."""
        if not path.lower().endswith(".xml.bz2"):
            return [Piece(path, size=size)]
        try:
            size = size or fs.size(path)  # a paths list's URL comes without its size
            cut = multistream_cuts(path, size, piece_size) if size > piece_size else None
        except (OSError, EOFError, ValueError) as e:  # unreachable now: one task reads it, and says why
            LOG.warning("%s: not split (%s: %s)", path, type(e).__name__, e)
            cut = None
        if cut is None or len(cut[1]) < 2:
            return [Piece(path, size=size)]
        header, starts = cut
        return ranges(path, "bytes", [*starts, size], size, header)

    def read(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return read_dump(piece.path, stages["read"], stages["clean"], piece)


def open_pieces(piece: Piece):
    """The XML of a range of a multistream dump's streams, with its header's siteinfo."""
    return open_piece(piece.path, piece.header, piece.start, piece.end, piece.part == piece.parts - 1)

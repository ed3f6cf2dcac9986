"""`corral sample DIR`: a deterministic raw sample of all seven sources in their native formats.

The text is real language present wherever corral is installed, never random words:
- English: the paragraphs of Python's bundled documentation topics (`pydoc_data.topics`) and the
  prose of the standard library's docstrings (read with `ast`, in file order);
- French, Spanish, Russian, Swedish, Catalan, German: the translated messages of Sphinx's message
  catalogs (a corral dependency), read from their `.mo` files with the standard `gettext`;
- source code and license texts: installed packages' trees and their dist-info license files.

Each source's files exercise its rules: CommonCrawl WET (gzip members, one per record) with
boilerplate lines repeated across a site's pages, pages in other languages, low-quality keyword
pages, and pages crawled twice; C4 JSON lines with exact duplicates; repository folders under MIT,
BSD, Apache, MPL and no license; Wikipedia XML dumps (en, fr, es, ru) with templates, references,
file links, tables, categories, redirects and talk pages; Gutenberg books with their header and
license boilerplate, a near-duplicate second edition and a re-upload under another number; arXiv
tarballs with macros, comments, `\\input` files and a bibliography (and one without sections);
StackExchange Posts.xml with answers, tag wikis and an orphan answer. The same DIR comes out
byte-identical on every run (fixed seeds, dates and archive times).
"""

from __future__ import annotations

import os
import random
import shutil

from corral.sample.formats import (
    write_arxiv,
    write_books,
    write_c4,
    write_commoncrawl,
    write_github,
    write_stackexchange,
    write_wikipedia,
)
from corral.sample.prose import doc_topics, foreign_sentences, stdlib_topics

SEED = 20230227  # LLaMA's arXiv date, as a fixed seed
FOREIGN = ("fr", "es", "ru", "sv", "ca", "de")  # Sphinx catalogs with enough sentences; all in LLaMA's 20
WIKI_LANGS = ("en", "fr", "es", "ru")


def write_sample(out: str) -> dict[str, int]:
    """Write the sample under `out` (replacing what a previous run wrote there); raw records per source."""
    for source in ("commoncrawl", "c4", "github", "wikipedia", "books", "arxiv", "stackexchange"):
        shutil.rmtree(os.path.join(out, source), ignore_errors=True)
    rng = random.Random(SEED)
    modules = stdlib_topics()
    docs = doc_topics()
    foreign = {lang: foreign_sentences(lang) for lang in FOREIGN}
    # disjoint shares of the standard library's modules, so sources do not repeat each other
    cc, c4, books, arxiv, se = modules[0::5], modules[1::5], modules[2::5], modules[3::5][:12], modules[4::5]
    wiki = {"en": docs}
    for lang in WIKI_LANGS[1:]:
        s = foreign[lang]
        wiki[lang] = [(f"{lang}-{i}", s[i : i + 5]) for i in range(0, len(s) - 4, 5)]
    counts = {
        "commoncrawl": write_commoncrawl(out, cc, foreign, rng),
        "c4": write_c4(out, c4, rng),
        "github": write_github(out),
        "wikipedia": write_wikipedia(out, wiki),
        "books": write_books(out, books),
        "arxiv": write_arxiv(out, arxiv),
        "stackexchange": write_stackexchange(out, se),
    }
    return counts

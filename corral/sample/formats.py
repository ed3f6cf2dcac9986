"""The sample's raw files, one writer per source in its native format: WET, C4 JSON lines, repository
folders, Wikipedia XML dumps, Gutenberg books, arXiv tarballs and StackExchange Posts.xml."""

from __future__ import annotations

import base64
import bz2
import glob
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import sysconfig
import tarfile
import uuid
from xml.sax.saxutils import escape, quoteattr

from corral.core.fs import atomic_write_bytes

CRAWL_DATE = "2026-11-01T00:00:00Z"  # every WARC-Date, dump and post date of the sample
REPO_FILES = 30  # source files copied per repository (the demo stays small)
# installed packages as repositories: import name, distribution name
REPOS = (
    ("yaml", "pyyaml"),
    ("mwparserfromhell", "mwparserfromhell"),
    ("xxhash", "xxhash"),
    ("warcio", "warcio"),
    ("certifi", "certifi"),
    ("defusedxml", "defusedxml"),
)
UNLICENSED = ("iniconfig", "iniconfig")  # copied without its license files: dropped as no_license


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
        g.write(data)
    return buf.getvalue()


def _uuid(*parts: str) -> str:
    """A WARC record id that is the same on every run (a name-based UUID)."""
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, chr(0).join(parts))}>"


def _warc_record(headers: list[tuple[str, str]], body: bytes) -> bytes:
    """One WARC/1.0 record as its own gzip member (how CommonCrawl stores WET files)."""
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return _gzip(head.encode() + body + b"\r\n\r\n")


def _wet_file(name: str, pages: list[tuple[str, str]]) -> bytes:
    info = b"isPartOf: CORRAL-SAMPLE-2026-44\r\noperator: corral sample\r\n"
    out = [
        _warc_record(
            [
                ("WARC-Type", "warcinfo"),
                ("WARC-Date", CRAWL_DATE),
                ("WARC-Filename", name),
                ("WARC-Record-ID", _uuid(name)),
                ("Content-Type", "application/warc-fields"),
            ],
            info,
        )
    ]
    for url, text in pages:
        body = text.encode("utf-8")
        digest = base64.b32encode(hashlib.sha1(body).digest()).decode()
        out.append(
            _warc_record(
                [
                    ("WARC-Type", "conversion"),
                    ("WARC-Target-URI", url),
                    ("WARC-Date", CRAWL_DATE),
                    ("WARC-Record-ID", _uuid(name, url, text[:64])),
                    ("WARC-Refers-To", _uuid("response", url)),
                    ("WARC-Block-Digest", f"sha1:{digest}"),
                    ("Content-Type", "text/plain"),
                ],
                body,
            )
        )
    return b"".join(out)


def write_commoncrawl(
    out: str, english: list[tuple[str, list[str]]], foreign: dict[str, list[str]], rng: random.Random
) -> int:
    pages: list[tuple[str, str]] = []
    sites = [f"{name}-notes.example.org" for name in ("pydoc", "stdlib", "howto", "guide", "manual", "cookbook")]
    for i, (module, paras) in enumerate(english):
        site = sites[i % len(sites)]
        nav = [site.split(".")[0].replace("-", " ").title(), "Home", "Articles", "About this site", "Contact us"]
        footer = [f"Copyright 2026 {site}. All rights reserved.", "Privacy policy | Terms of use | Cookie settings"]
        for j in range(0, len(paras), 5):
            body = paras[j : j + 5]
            if sum(map(len, body)) < 400:
                continue
            title = f"The {module} module, part {j // 5 + 1}"
            pages.append((f"https://{site}/{module}/{j // 5 + 1}.html", "\n".join([title, *nav, *body, *footer])))
    for lang, sentences in foreign.items():  # other languages: dropped by language ID
        for j in range(0, min(len(sentences), 60), 6):
            pages.append((f"https://docs-{lang}.example.org/page{j // 6}.html", "\n".join(sentences[j : j + 6])))
    names = sorted({m for m, _ in english})
    for k in range(0, min(len(names), 240), 12):  # keyword pages: real words, no prose (low quality)
        words = names[k : k + 12]
        lines = [f"{w} {w} download free {w} tutorial {w} pdf best {w} tips" for w in words]
        pages.append((f"https://seo-links.example.net/tags/{k // 12}.html", "\n".join(lines)))
    rng.shuffle(pages)
    recrawled = pages[:12]  # crawled twice: the same URL and body again in the second file
    half = len(pages) // 2
    files = [pages[:half], pages[half:] + recrawled]
    for n, chunk in enumerate(files):
        name = f"CC-MAIN-20261101000000-20261101120000-{n:05d}.warc.wet.gz"
        atomic_write_bytes(os.path.join(out, "commoncrawl", name), _wet_file(name, chunk))
    return len(pages) + len(recrawled)


def write_c4(out: str, english: list[tuple[str, list[str]]], rng: random.Random) -> int:
    docs = []
    for module, paras in english:
        for j in range(0, len(paras), 4):
            text = "\n".join(paras[j : j + 4])
            docs.append(
                {
                    "text": text,
                    "timestamp": "2019-04-25T12:57:54Z",
                    "url": f"https://blog.example.com/{module}/{j // 4}",
                }
            )
    docs += [dict(d) for d in docs[::15]]  # exact duplicates (same text, same URL)
    rng.shuffle(docs)
    for n in range(2):
        lines = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs[n::2])
        atomic_write_bytes(os.path.join(out, "c4", f"c4-train.{n:05d}-of-00002.json.gz"), _gzip(lines.encode()))
    return len(docs)


def dist_info(dist: str) -> str | None:
    """The installed `.dist-info` folder of distribution `dist`, or None."""
    site = sysconfig.get_paths()["purelib"]
    norm = dist.replace("-", "_").lower()
    for path in sorted(glob.glob(os.path.join(site, "*.dist-info"))):
        if os.path.basename(path).lower().startswith(norm + "-"):
            return path
    return None


def license_files(info: str) -> list[str]:
    """A dist-info's license files (under licenses/, or LICENSE*/COPYING* beside METADATA), as the
    GitHub rules name license files."""
    from corral.core.licenses import is_license_file

    found = glob.glob(os.path.join(info, "licenses", "**", "*"), recursive=True)
    found += glob.glob(os.path.join(info, "LICEN[CS]E*")) + glob.glob(os.path.join(info, "COPYING*"))
    return sorted(f for f in set(found) if os.path.isfile(f) and is_license_file(os.path.basename(f)))


def write_github(out: str) -> int:
    import importlib.util

    n = 0
    for pkg, dist, licensed in [(p, d, True) for p, d in REPOS] + [(*UNLICENSED, False)]:
        spec = importlib.util.find_spec(pkg)
        info = dist_info(dist)
        if spec is None or info is None or not spec.submodule_search_locations:
            continue  # not installed here: the sample simply has one repository fewer
        src = list(spec.submodule_search_locations)[0]
        dest = os.path.join(out, "github", pkg)
        files = sorted(
            f
            for f in glob.glob(os.path.join(src, "**", "*"), recursive=True)
            if os.path.isfile(f) and f.endswith((".py", ".pyi", ".c", ".h", ".txt", ".md")) and "__pycache__" not in f
        )[:REPO_FILES]
        for f in files:
            rel = os.path.relpath(f, src)
            os.makedirs(os.path.dirname(os.path.join(dest, pkg, rel)), exist_ok=True)
            shutil.copyfile(f, os.path.join(dest, pkg, rel))
            n += 1
        if licensed:
            for f in license_files(info):
                shutil.copyfile(f, os.path.join(dest, os.path.basename(f)))
                n += 1
    return n


def _wikitext(title: str, paras: list[str], lang: str, i: int) -> str:
    first, rest = paras[0], paras[1:]
    parts = [
        f"{{{{Infobox software\n| name = {title}\n| license = PSF}}}}",
        f"'''{title}''' {first}<ref>{{{{cite web |url=https://example.org/{i} |title={title}}}}}</ref>",
        f"[[File:{title}.png|thumb|{title}]]",
    ]
    for k, p in enumerate(rest):
        if k % 3 == 0:
            parts.append(f"== {title} {k // 3 + 1} ==")
        words = p.split(" ")
        if len(words) > 8:  # a link inside the sentence, as articles have
            words[4] = f"[[{words[4]}]]"
        parts.append(" ".join(words))
    parts.append('{| class="wikitable"\n|-\n! a !! b\n|-\n| 1 || 2\n|}')
    parts.append("__NOTOC__")
    parts.append(f"[[Category:{'Python' if lang == 'en' else 'Informatique'}]]")
    return "\n\n".join(parts)


def write_wikipedia(out: str, articles: dict[str, list[tuple[str, list[str]]]]) -> int:
    n = 0
    for lang, items in articles.items():
        db = f"{lang}wiki"
        pages = []
        for i, (title, paras) in enumerate(items):
            pages.append((i * 3 + 1, 0, title.replace("-", " ").capitalize(), _wikitext(title, paras, lang, i), False))
        # a redirect and a talk page, which the rules drop
        pages.append((len(pages) * 3 + 1, 0, "Redirected title", f"#REDIRECT [[{pages[0][2]}]]", True))
        pages.append((len(pages) * 3 + 1, 1, f"Talk:{pages[0][2]}", "This page is about the article.", False))
        xml = [
            f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="{lang}">',
            "  <siteinfo>",
            "    <sitename>Wikipedia</sitename>",
            f"    <dbname>{db}</dbname>",
            "    <namespaces>",
            '      <namespace key="0" case="first-letter" />',
            '      <namespace key="1" case="first-letter">Talk</namespace>',
            '      <namespace key="6" case="first-letter">File</namespace>',
            "    </namespaces>",
            "  </siteinfo>",
        ]
        for pid, ns, title, text, redirect in pages:
            xml += ["  <page>", f"    <title>{escape(title)}</title>", f"    <ns>{ns}</ns>", f"    <id>{pid}</id>"]
            if redirect:
                xml.append(f'    <redirect title="{escape(pages[0][2])}" />')
            xml += [
                "    <revision>",
                f"      <id>{pid + 1000}</id>",
                f"      <timestamp>{CRAWL_DATE}</timestamp>",
                "      <model>wikitext</model>",
                "      <format>text/x-wiki</format>",
                f'      <text bytes="{len(text.encode())}" xml:space="preserve">{escape(text)}</text>',
                "    </revision>",
                "  </page>",
            ]
        xml.append("</mediawiki>\n")
        data = bz2.compress("\n".join(xml).encode("utf-8"))
        atomic_write_bytes(os.path.join(out, "wikipedia", f"{db}-20261101-pages-articles.xml.bz2"), data)
        n += len(pages)
    return n


def _gutenberg(number: int, title: str, author: str, chapters: list[tuple[str, list[str]]]) -> str:
    upper = title.upper()
    head = (
        f"The Project Gutenberg eBook of {title}\n\n"
        "This ebook is for the use of anyone anywhere in the United States and most other parts of "
        "the world at no cost and with almost no restrictions whatsoever. You may copy it, give it "
        "away or re-use it under the terms of the Project Gutenberg License included with this ebook "
        "or online at www.gutenberg.org.\n\n"
        f"Title: {title}\n\nAuthor: {author}\n\nRelease date: November 1, 2026 [eBook #{number}]\n\n"
        f"Language: English\n\n*** START OF THE PROJECT GUTENBERG EBOOK {upper} ***\n\n\n"
        "Produced by the corral sample generator from Python's documentation.\n\n\n"
    )
    body = []
    for k, (name, paras) in enumerate(chapters):
        body.append(f"CHAPTER {k + 1}. {name.upper()}\n\n" + "\n\n".join(paras))
    tail = (
        f"\n\n\nEnd of the Project Gutenberg EBook of {title}\n\n"
        f"*** END OF THE PROJECT GUTENBERG EBOOK {upper} ***\n\n"
        "Updated editions will replace the previous one; the old editions will be renamed.\n"
        "Section 1. General Terms of Use and Redistributing Project Gutenberg electronic works\n"
    )
    return head + "\n\n\n".join(body) + tail


def write_books(out: str, english: list[tuple[str, list[str]]]) -> int:
    per = max(1, len(english) // 3)
    volumes = [english[i * per : (i + 1) * per] for i in range(3)]
    titles = ["Notes on the Standard Library", "Modules and Their Uses", "A Reader of Docstrings"]
    n = 0
    for k, (title, chapters) in enumerate(zip(titles, volumes)):
        number = 90001 + k
        atomic_write_bytes(
            os.path.join(out, "books", f"pg{number}.txt"),
            _gutenberg(number, title, "Python contributors", chapters).encode(),
        )
        n += 1
    # a second edition of the first book: one paragraph per chapter changed (near duplicate, >90%)
    edited = [(name, paras[:-1] + [paras[-1] + " This edition adds a short note."]) for name, paras in volumes[0]]
    atomic_write_bytes(
        os.path.join(out, "books", "pg90011.txt"),
        _gutenberg(90011, titles[0] + " (Second Edition)", "Python contributors", edited).encode(),
    )
    # the second book uploaded again under another number (exact duplicate of its text)
    atomic_write_bytes(
        os.path.join(out, "books", "pg90012.txt"),
        _gutenberg(90012, titles[1], "Python contributors", volumes[1]).encode(),
    )
    return n + 2


def _tar_gz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g, tarfile.open(fileobj=g, mode="w") as tar:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1761955200, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_arxiv(out: str, english: list[tuple[str, list[str]]]) -> int:
    n = 0
    for k, (module, paras) in enumerate(english):
        half = max(1, len(paras) // 2)
        intro = "\n\n".join(p.replace("Python", r"\py{}") for p in paras[:half])
        method = "\n\n".join(paras[half:])
        main = (
            r"\documentclass{article}"
            "\n"
            r"\usepackage{amsmath}"
            "\n"
            r"\newcommand{\py}{Python}"
            "\n"
            r"\def\mod#1{\texttt{#1}}"
            "\n"
            r"\title{On the \mod{" + module + r"} module}"
            "\n"
            r"\begin{document}"
            "\n"
            r"\maketitle"
            "\n"
            r"\begin{abstract}"
            "\n" + paras[0] + "\n"
            r"\end{abstract}"
            "\n"
            "% the sections live in their own files\n"
            r"\section{Introduction}"
            "\n"
            r"\input{intro}"
            "\n"
            r"\section{The module}  % drafted first"
            "\n"
            r"\input{sections/method}"
            "\n"
            r"\begin{thebibliography}{9}"
            "\n"
            r"\bibitem{py} Python Software Foundation. The Python Language Reference."
            "\n"
            r"\end{thebibliography}"
            "\n"
            r"\end{document}"
            "\n"
        )
        files = {"main.tex": main, "intro.tex": intro + "\n", "sections/method.tex": method + "\n"}
        atomic_write_bytes(os.path.join(out, "arxiv", f"2611.{k + 1:05d}.tar.gz"), _tar_gz(files))
        n += 1
    # a note without any section: dropped (no_section)
    note = r"\documentclass{article}" "\n" r"\begin{document}" "\n" + english[0][1][0] + "\n" r"\end{document}" "\n"
    atomic_write_bytes(os.path.join(out, "arxiv", "2611.09999.tar.gz"), _tar_gz({"note.tex": note}))
    return n + 1


def write_stackexchange(out: str, topics: list[tuple[str, list[str]]]) -> int:
    n = 0
    sites = {"python.stackexchange.com": topics[0::2], "docs.stackexchange.com": topics[1::2]}
    for site, items in sites.items():
        rows, pid = [], 1
        for name, paras in items:
            qid = pid
            body = f"<p>{escape(paras[0])}</p><p>What does the documentation say about this?</p>"
            rows.append(
                dict(
                    Id=qid,
                    PostTypeId=1,
                    Score=len(paras),
                    Title=f"How does {name} work?",
                    Body=body,
                    AnswerCount=len(paras) - 1,
                )
            )
            pid += 1
            for a, p in enumerate(paras[1:4]):
                extra = "<ul><li>see the reference</li><li>try it in the REPL</li></ul>" if a == 0 else ""
                rows.append(
                    dict(
                        Id=pid,
                        PostTypeId=2,
                        ParentId=qid,
                        Score=(a * 7) % 5,
                        Body=f"<p>{escape(p)}</p>{extra}<pre><code>help({name!r})\n</code></pre>",
                    )
                )
                pid += 1
        rows.append(dict(Id=pid, PostTypeId=4, Body="<p>Questions about the standard library.</p>"))  # tag wiki
        rows.append(
            dict(Id=pid + 1, PostTypeId=2, ParentId=99999, Score=1, Body="<p>An answer whose question is gone.</p>")
        )  # orphan
        lines = ['<?xml version="1.0" encoding="utf-8"?>', "<posts>"]
        for r in rows:
            r.setdefault("CreationDate", CRAWL_DATE[:-1] + ".000")
            lines.append("  <row " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in r.items()) + " />")
        lines.append("</posts>\n")
        atomic_write_bytes(os.path.join(out, "stackexchange", f"{site}-Posts.xml"), "\n".join(lines).encode("utf-8"))
        n += len(rows)
    return n

"""StackExchange (docs/recipe/stackexchange.md): per-site Posts.xml → one document per question with its answers.

Input: `Posts.xml` files (the site from the file name `<site>-Posts.xml`, or the folder name for a
bare `Posts.xml`), or the site's `.7z` from the dump (the site from the archive's name; only its
Posts.xml is read, streamed). XML is parsed with defusedxml: a document that declares entities is
refused (counted as an error), never expanded.

Rules:
- Every row is an input record. Questions (PostTypeId 1) become documents; answers (PostTypeId 2)
  join their question through ParentId and are counted as `answer_merged`; other post types (tag
  wikis, …) are dropped as `other_post_type`; answers whose question is absent as `orphan_answer`.
- Only the `top_sites` largest sites by row count are kept (RP `count.py`: lines − 3 = rows; 28 by
  default, LLaMA "the 28 largest websites"); the rest are dropped as `not_top_site`.
- Text: `"Q: " + clean(Title + " " + Body) + "\\nA: " + "\\nA: ".join(clean(answer bodies))`
  (RP post_processing.py). Questions without answers are `"Q: …"` (RP emits them;
  `include_unanswered: false` drops them as `unanswered`).
- Answer order (option `score_sort`): `numeric` (default, the paper's "sorted by score, highest to
  lowest", ties by answer id) fixes RP's bug; `string` reproduces RP's sort of the score strings.
- HTML (RP cleanhtml + BeautifulSoup/lxml get_text, improved): list items become lines starting with
  "* " in both <ol> and <ul> (RP handled only <ol>/<li>), <br> becomes a newline, code blocks keep
  their line breaks; runs of blank lines collapse to one.
"""

from __future__ import annotations

import json
import math
import os
import pyexpat
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from corral.core import fs
from corral.core.outcome import dropped, error, kept
from corral.core.schema import make_record
from corral.manifests.options import Option
from corral.pipeline.inputs.spill import BucketRuns, read_buckets, run_names
from corral.pipeline.inputs.streams import guarded, open_input, open_raw
from corral.pipeline.rounds.stage import StagedSummary
from corral.pipeline.sources.base import Piece, Source, even_parts
from corral.pipeline.sources.html_text import post_text

SOURCE = "stackexchange"
EXCLUDED_REASON = "not_top_site"  # every row of a site outside the top `read.top_sites`
QUESTION, ANSWER = "1", "2"  # PostTypeId values of the public dump
_BLANK_RUNS = re.compile(r"\n\s*\n\s*\n+")
_LOOSE_ITEMS = re.compile(r"\n\s*\n(?=\* )")  # a blank line before a list item


# --- pure rules ---------------------------------------------------------------------------------


def site_from_path(path: str) -> str:
    """`beer.stackexchange.com-Posts.xml` / `beer.stackexchange.com.7z` / `beer…/Posts.xml` → the site."""
    name = os.path.basename(path.rstrip("/"))
    for suffix in (".7z", ".gz", ".bz2", ".xz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.lower() == "posts.xml":
        return os.path.basename(os.path.dirname(path.rstrip("/"))) or "unknown"
    for suffix in ("-Posts.xml", "_Posts.xml", ".Posts.xml", "-posts.xml"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def clean_html(html: str) -> str:
    """Post HTML → readable text: lists as "* " lines, code with its line breaks, no tags.

    The text is BeautifulSoup's (lxml) get_text() with the line marks of html_text.soup_text, taken
    from lxml's parse events by html_text.post_text (the same string, ~20× faster)."""
    if "<" not in html and "&" not in html:
        return html.strip()
    return _LOOSE_ITEMS.sub("\n", _BLANK_RUNS.sub("\n\n", post_text(html))).strip()


def sort_answers(answers: Iterable[tuple[str, int, str]], mode: str = "numeric") -> list[tuple[str, int, str]]:
    """Answers (score string, answer id, body), highest score first.

    `numeric`: by int(score) descending, ties by id ascending. `string`: RP's
    `sorted(key=score string, reverse=True)`, which puts "9" above "10" (docs/recipe/stackexchange.md quirk).
    """
    answers = list(answers)
    if mode == "string":
        return sorted(sorted(answers, key=lambda a: a[1]), key=lambda a: a[0], reverse=True)
    return sorted(answers, key=lambda a: (-int(a[0] or 0), a[1]))


def format_question(title: str, body: str, answer_bodies: list[str]) -> str:
    """docs/recipe/stackexchange.md: RP post_processing.py text layout."""
    text = "Q: " + clean_html(f"{title} {body}")
    if answer_bodies:
        text += "\nA: " + "\nA: ".join(clean_html(b) for b in answer_bodies)
    return text


def _entity_declared(name, _is_parameter, *value_base_sysid_pubid_notation):
    raise EntitiesForbidden(name, *value_base_sysid_pubid_notation)


def _unparsed_entity(name, base, sysid, pubid, notation):
    raise EntitiesForbidden(name, None, base, sysid, pubid, notation)


def _external_reference(context, base, sysid, pubid):
    raise ExternalReferenceForbidden(context, base, sysid, pubid)


def iter_rows(stream) -> Iterator[dict[str, str]]:
    """The attributes of every <row> of a Posts.xml stream, parsed 1 MB at a time.

    pyexpat directly, with no elements built: the deal of a 100 GB Posts.xml runs at parse speed
    (ElementTree's iterparse costs half as much again here). Entity declarations and external
    references raise defusedxml's own errors, through the handlers defusedxml itself sets."""
    rows: list[dict[str, str]] = []
    parser = pyexpat.ParserCreate()
    parser.StartElementHandler = lambda name, attrs: rows.append(attrs) if name == "row" else None
    parser.EntityDeclHandler = _entity_declared
    parser.UnparsedEntityDeclHandler = _unparsed_entity
    parser.ExternalEntityRefHandler = _external_reference
    while True:
        chunk = stream.read(1 << 20)
        try:
            parser.Parse(chunk, not chunk)
        except Exception:  # the rows before the damage still flow
            yield from rows
            raise
        yield from rows
        rows.clear()
        if not chunk:
            return


# --- reading ------------------------------------------------------------------------------------

XML_FORBIDDEN = (EntitiesForbidden, DTDForbidden, ExternalReferenceForbidden)


def read_posts(path: str) -> Iterator[dict[str, Any]]:
    """Posts of one input as {"site", "row"} dicts, or error outcomes."""
    site = site_from_path(path)
    if path.lower().endswith(".7z"):
        from corral.pipeline.inputs.archives import iter_7z_members

        members = iter_7z_members(lambda: open_raw(path), lambda n: os.path.basename(n) == "Posts.xml")
        found = False
        for name, stream in members:
            found = True
            yield from _rows(site, f"{path}!{name}", stream)
        if not found:
            yield error(SOURCE, "no_posts_xml", path)
        return
    with open_input(path) as stream:
        yield from _rows(site, path, stream)


def _rows(site: str, where: str, stream) -> Iterator[dict[str, Any]]:
    n = 0
    try:
        for row in iter_rows(stream):
            n += 1
            yield {"site": site, "row": row}
    except XML_FORBIDDEN as e:
        yield error(SOURCE, "xml_entities_forbidden", f"{where} after row {n}", type(e).__name__)
    except Exception as e:
        if isinstance(e, pyexpat.ExpatError):
            yield error(SOURCE, "malformed_xml", f"{where} after row {n}", str(e))
        else:
            raise


def group_key(post: dict[str, Any]) -> tuple[str, str]:
    """Questions under their own id, answers under their question's; other posts on their own."""
    row = post["row"]
    kind = row.get("PostTypeId")
    if kind == ANSWER:
        return (post["site"], row.get("ParentId", ""))
    if kind == QUESTION:
        return (post["site"], row.get("Id", ""))
    return (post["site"], f"other:{row.get('Id', '')}")


def assemble(key: tuple[str, str], rows: list[dict[str, str]], read: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One question's group of rows → its document (or drop) plus one outcome per merged answer."""
    site, qid = key
    questions = [r for r in rows if r.get("PostTypeId") == QUESTION]
    answers = [r for r in rows if r.get("PostTypeId") == ANSWER]
    for _ in range(len(rows) - len(questions) - len(answers)):
        yield dropped(SOURCE, "other_post_type")
    if not questions:
        for _ in answers:
            yield dropped(SOURCE, "orphan_answer")
        return
    for _ in questions[1:]:
        yield dropped(SOURCE, "duplicate_post_id")
    q = questions[0]
    for _ in answers:
        yield dropped(SOURCE, "answer_merged")
    if not answers and not read["include_unanswered"]:
        yield dropped(SOURCE, "unanswered")
        return
    ordered = sort_answers(
        ((a.get("Score", "0"), int(a.get("Id", "0") or 0), a.get("Body", "")) for a in answers), read["score_sort"]
    )
    text = format_question(q.get("Title", ""), q.get("Body", ""), [a[2] for a in ordered])
    meta = {
        "site": site,
        "question_id": qid,
        "answers": len(answers),
        "score": q.get("Score"),
        "created": q.get("CreationDate"),
        "tags": q.get("Tags"),
    }
    yield kept(make_record(SOURCE, f"{site}/{qid}", text, url=f"https://{site}/questions/{qid}", meta=meta))


def top_site_names(site_counts: Iterable[tuple[str, int]], n: int) -> list[str]:
    """The n largest sites by row count (ties by name, so the choice is deterministic)."""
    return [s for s, _ in sorted(site_counts, key=lambda sc: (-sc[1], sc[0]))[:n]]


# The fields of a row that assembling a question reads; nothing else of a post is kept.
KEPT_FIELDS = ("Id", "PostTypeId", "ParentId", "Score", "Title", "Body", "CreationDate", "Tags")
DEAL_ERRORS = "errors.json"  # what a deal could not read (error outcomes), given with the file's first piece
# Hash buckets of a site's posts (corral's choice): a site's questions come out bucket by bucket,
# in key order within each, whether one task reads the file or its buckets are dealt among tasks;
# a Posts.xml splits into at most this many pieces, and one bucket of stackoverflow.com's ~100 GB
# is ~25 MB of posts, what a task holds at once.
BUCKETS = 4096


def bucket_of(key: tuple[str, str]) -> int:
    return zlib.crc32(f"{key[0]}\0{key[1]}".encode("utf-8", "surrogatepass")) % BUCKETS


def deal_posts(path: str, runs: BucketRuns) -> Iterator[dict[str, Any]]:
    """Parse one input's posts (no HTML cleaning) and deal each, with only its KEPT_FIELDS, into the
    bucket of its question; yields what cannot be read (error outcomes) instead."""
    for item in guarded(SOURCE, path, read_posts(path)):
        if "status" in item:
            yield item
            continue
        key = group_key(item)
        runs.add(bucket_of(key), (key, {k: item["row"][k] for k in KEPT_FIELDS if k in item["row"]}))


def assembled(
    buckets: Iterable[Iterable[tuple[tuple[str, str], dict]]], read: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Each bucket's posts grouped by question, in key order → the questions' outcomes, each
    tagged with its `group` (the site)."""
    for posts in buckets:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for key, row in posts:
            groups.setdefault(key, []).append(row)
        for key in sorted(groups):
            for o in assemble(key, groups[key], read):
                yield {**o, "group": key[0]}


def read_site(path: str, stages: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One Posts.xml (one site) → its outcomes: a document per question with its answers, and one
    outcome per other row, each tagged with its `group` (the site), so that the build can count a
    site's rows and drop the sites outside the top `read.top_sites` as a whole. A site's posts are
    grouped by question in bounded memory (BucketRuns)."""
    runs = BucketRuns(BUCKETS)
    try:
        yield from deal_posts(path, runs)
        yield from assembled(runs.each(), stages["read"])
    finally:
        runs.close()


def read_dealt(folder: str, piece: Piece, read: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One piece of a dealt Posts.xml: its bucket range read from every run of the deal (the deal's
    own errors come with the file's first piece)."""
    if piece.part == 0:
        yield from json.loads(fs.read_bytes(fs.join(folder, DEAL_ERRORS)))
    yield from assembled(read_buckets(run_names(folder), piece.start, piece.end), read)


def site_rows(staged: Iterable[StagedSummary]) -> dict[str, int]:
    """Rows read per site, from the stage summaries."""
    rows: dict[str, int] = {}
    for s in staged:
        for group, n in s.groups.items():
            rows[group] = rows.get(group, 0) + n
    return rows


# --- the source ------------------------------------------------------------------------------

OPTIONS = {
    "read": {
        "top_sites": Option(28, "int", "the 28 largest sites", minimum=1),
        "score_sort": Option("numeric", "str", "quirk: RP sorted score strings", choices=("numeric", "string")),
        "include_unanswered": Option(True, "bool", "RP emits questions with no answer"),
    },
}


class StackExchange(Source):
    name = SOURCE
    options = OPTIONS
    excluded_reason = EXCLUDED_REASON

    def split(self, path: str, size: int, stages: dict[str, Any], piece_size: int) -> list[Piece]:
        """A Posts.xml larger than a piece: ranges of its buckets, each assembled by its own task
        once one pass has dealt the file's posts into them (`deal`)."""
        parts = min(math.ceil(size / piece_size), BUCKETS)
        return even_parts(path, "buckets", BUCKETS, size, parts) if parts > 1 else [Piece(path, size=size)]

    def prepare(self, piece: Piece, folder: str) -> None:
        """The one pass over a big Posts.xml: its posts dealt into BUCKETS buckets, as runs in
        `folder`, with what it could not read; at XML-parsing speed (no HTML cleaning)."""
        runs = BucketRuns(BUCKETS, folder)
        errors = list(deal_posts(piece.path, runs))
        runs.flush()
        fs.atomic_write_bytes(fs.join(folder, DEAL_ERRORS), json.dumps(errors).encode(), durable=False)

    def read(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if piece.whole:
            return read_site(piece.path, stages)
        return read_dealt(piece.prepared, piece, stages["read"])

    def excluded_groups(self, stages: dict[str, Any], staged: list[StagedSummary]) -> list[str]:
        """The sites outside the top `read.top_sites` by rows: every row of theirs is `not_top_site`."""
        rows = site_rows(staged)
        top = set(top_site_names(rows.items(), stages["read"]["top_sites"]))
        return sorted(set(rows) - top)

"""CommonCrawl's readers (docs/recipe/commoncrawl.md#order-of-stages): WET conversion records, or WARC
responses whose HTML Resiliparse extracts. One outcome per record: kept (a document with cc_net's fields in `meta`),
too_short (below `read.min_len` characters before dedup, as cc_net), or an error. The funnel's input
counts conversion (or response) records; warcinfo and request records are not documents.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from corral.core.outcome import dropped, error, kept
from corral.core.schema import make_record
from corral.pipeline.inputs.streams import open_input
from corral.pipeline.inputs.warc_records import MAX_RECORD_BYTES, WarcFormatError, records_then_error
from corral.pipeline.quality import ccnet_rules as rules

SOURCE = "commoncrawl"


@dataclass
class Page:
    """A crawled page as its record holds it: URL, WARC digest and date, and its body's title and lines."""

    url: str
    digest: str
    date: str | None
    title: str
    lines: list[str]
    length: int | None = None  # the record's declared Content-Length (WET)


def _record(page: Page, group: int, path: str, text: str | None = None) -> dict[str, Any]:
    text = "\n".join(page.lines) if text is None else text
    meta = {
        "title": page.title,
        "digest": page.digest,
        "date_download": page.date,
        "source_domain": rules.source_domain(page.url),
        "nlines": len(page.lines),
        "length": len(text),
        "content_length": page.length,
        "dedup_group": group,
        "wet_file": os.path.basename(path),
    }
    return make_record(SOURCE, f"{page.url} {page.digest}", text, url=page.url, meta=meta)


def read_wet(path: str, group: int, read: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One outcome per conversion record: kept, too_short, or an error."""
    n = 0
    with open_input(path) as f:
        for rec in records_then_error(f, MAX_RECORD_BYTES):
            if isinstance(rec, WarcFormatError):
                yield error(SOURCE, "bad_warc_record", f"{path} after record {n}", str(rec))
                return
            h = rec.headers
            if h.get("warc-type") != "conversion":
                continue
            n += 1
            url = h.get("warc-target-uri") or ""
            where = f"{path} {url}"
            data = rec.block
            if data is None:
                yield error(SOURCE, "too_large", where, f"more than {MAX_RECORD_BYTES:,} bytes")
                continue
            if len(data) < rec.declared:
                yield error(SOURCE, "short_record", where, f"{len(data)} of {rec.declared} bytes")
                continue
            try:
                body = data.decode("utf-8")
            except UnicodeDecodeError:
                yield error(SOURCE, "invalid_utf8", where)
                continue
            title, lines = rules.parse_wet_body(body)
            text = "\n".join(lines)
            if len(text) < read["min_len"]:
                yield dropped(SOURCE, "too_short", where)
                continue
            page = Page(url, h.get("warc-block-digest") or "", h.get("warc-date"), title, lines, length=rec.declared)
            yield kept(_record(page, group, path, text))


def read_warc_html(path: str, group: int, read: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One outcome per HTML response record, its main text extracted with Resiliparse."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from warcio.archiveiterator import ArchiveIterator

    with open_input(path) as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "response":
                continue
            url = rec.rec_headers.get_header("WARC-Target-URI") or ""
            where = f"{path} {url}"
            ctype = (rec.http_headers.get_header("Content-Type") or "") if rec.http_headers else ""
            if "html" not in ctype.lower():
                yield dropped(SOURCE, "not_html", where)
                continue
            raw = rec.content_stream().read(MAX_RECORD_BYTES + 1)
            if len(raw) > MAX_RECORD_BYTES:
                yield error(SOURCE, "too_large", where, f"more than {MAX_RECORD_BYTES:,} bytes")
                continue
            html = bytes_to_str(raw, detect_encoding(raw))
            text = extract_plain_text(html, main_content=True, alt_texts=False, links=False, list_bullets=True)
            title, lines = rules.parse_wet_body(text)
            if len("\n".join(lines)) < read["min_len"]:
                yield dropped(SOURCE, "too_short", where)
                continue
            digest = (
                rec.rec_headers.get_header("WARC-Payload-Digest")
                or rec.rec_headers.get_header("WARC-Block-Digest")
                or ""
            )
            yield kept(_record(Page(url, digest, rec.rec_headers.get_header("WARC-Date"), title, lines), group, path))

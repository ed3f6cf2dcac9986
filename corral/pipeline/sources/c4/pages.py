"""C4's pages as read: the published C4's JSON lines, or WET conversion records split as TFDS's
`split_wet_file` does (docs/recipe/c4.md#reading-wet)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from corral.core.outcome import dropped, error, kept
from corral.core.schema import make_record
from corral.pipeline.inputs.streams import iter_jsonl, open_input
from corral.pipeline.inputs.warc_records import MAX_RECORD_BYTES, WarcFormatError, records_then_error
from corral.pipeline.sources.c4.rules import SOURCE, split_of, split_wet_body


def page_record(text: str, url: str | None, timestamp: str | None, key: str, path: str | None = None) -> dict[str, Any]:
    meta = {"split": split_of(url, path)}
    if timestamp:
        meta["timestamp"] = timestamp
    return make_record(SOURCE, key, text, url=url, lang="en", meta=meta)


def read_c4_json(path: str, lines=None) -> Iterator[dict[str, Any]]:
    """Published C4 json lines → one outcome per line (of `lines`, a chunk's, when given)."""
    for where, i, obj, problem in lines or iter_jsonl(path, require_text=True):
        if problem:
            yield error(SOURCE, "bad_json_line", where, problem)
            continue
        text, url = obj["text"], obj.get("url")
        if not text.strip():
            yield dropped(SOURCE, "empty", where)
            continue
        ts = obj.get("timestamp") or obj.get("date")
        yield kept(page_record(text, url, ts, url or f"{os.path.basename(path)}:{i}", path))


def read_wet_pages(path: str) -> Iterator[dict[str, Any]]:
    """WET conversion records → one outcome per record, TFDS split_wet_file style."""
    with open_input(path) as f:
        for n, rec in enumerate(records_then_error(f, MAX_RECORD_BYTES)):
            if isinstance(rec, WarcFormatError):
                yield error(SOURCE, "bad_warc_record", f"{path} after record {n}", str(rec))
                return
            headers = rec.headers
            if headers.get("warc-type") != "conversion":
                yield dropped(SOURCE, "not_conversion_record", path)
                continue
            url = headers.get("warc-target-uri")
            if rec.block is None:
                yield error(SOURCE, "too_large", f"{path} {url}", f"more than {MAX_RECORD_BYTES:,} bytes")
                continue
            try:
                body = rec.block.decode("utf-8")
            except UnicodeDecodeError:
                yield error(SOURCE, "invalid_utf8", f"{path} {url}")
                continue
            text = split_wet_body(body)
            if not text:
                yield dropped(SOURCE, "empty", f"{path} {url}")
                continue
            key = f"{url} {headers.get('warc-block-digest') or ''}"
            yield kept(page_record(text, url, headers.get("warc-date"), key))

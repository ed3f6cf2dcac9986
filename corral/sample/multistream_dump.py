"""A MediaWiki XML dump written as Wikimedia writes its multistream dumps, with the index beside it.

`…-multistream.xml.bz2`: a first bz2 stream with the `<mediawiki>` opening and `<siteinfo>`, then
one stream per `per_stream` pages (Wikimedia's 100), then one with the closing tag;
`…-multistream-index.txt.bz2`: one `offset:page_id:title` line per page, `offset` being where its
stream starts. Tests and benchmarks make big dumps from small real ones with it.
"""

from __future__ import annotations

import bz2
import re
from collections.abc import Iterable, Iterator

PAGES_PER_STREAM = 100  # pages in each stream of Wikimedia's multistream dumps
_PAGE = re.compile(rb"<page>.*?</page>\s*", re.DOTALL)
_ID = re.compile(rb"<id>(\d+)</id>")
_TITLE = re.compile(rb"<title>(.*?)</title>", re.DOTALL)


def split_dump(xml: bytes) -> tuple[bytes, list[bytes], bytes]:
    """A whole dump's XML → (its text before the first page, each `<page>` element, the rest)."""
    pages = list(_PAGE.finditer(xml))
    if not pages:
        return xml, [], b""
    return xml[: pages[0].start()], [m.group(0) for m in pages], xml[pages[-1].end() :]


def page_fields(page: bytes) -> tuple[int, str]:
    """A `<page>` element's id and title (its first `<id>` is the page's)."""
    pid = _ID.search(page)
    title = _TITLE.search(page)
    return int(pid.group(1)) if pid else 0, title.group(1).decode("utf-8") if title else ""


def write_multistream(
    header: bytes,
    pages: Iterable[bytes],
    footer: bytes,
    path: str,
    index_path: str,
    *,
    per_stream: int = PAGES_PER_STREAM,
) -> int:
    """Write the dump and its index (local files); return how many pages it holds."""
    n = 0
    index = bz2.BZ2Compressor(9)
    with open(path, "wb") as dump, open(index_path, "wb") as index_file:
        offset = dump.write(bz2.compress(header, 9))
        for group in _groups(pages, per_stream):
            lines = [b"%d:%d:%s\n" % (offset, *_encoded(page_fields(page))) for page in group]
            index_file.write(index.compress(b"".join(lines)))
            offset += dump.write(bz2.compress(b"".join(group), 9))
            n += len(group)
        dump.write(bz2.compress(footer, 9))
        index_file.write(index.flush())
    return n


def _encoded(fields: tuple[int, str]) -> tuple[int, bytes]:
    return fields[0], fields[1].encode("utf-8")


def _groups(pages: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    group: list[bytes] = []
    for page in pages:
        group.append(page)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group

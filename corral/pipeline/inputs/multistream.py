"""Wikipedia's multistream dumps cut into pieces at bz2 stream boundaries, and one piece read back.

A `…-pages-articles-multistream.xml.bz2` dump is concatenated bz2 streams: the first holds the
`<mediawiki>` opening and `<siteinfo>`, each next one about 100 whole `<page>`s, the last the closing
tag. Wikimedia publishes `…-multistream-index.txt.bz2` beside it, one `offset:page_id:title` line per
page, where `offset` is the byte at which the page's stream starts. So a piece is a byte range from
one stream start to another, and reading it is decompressing the header stream, then the range,
then (unless the range is the file's end) a closing tag: a whole XML document of its pages.

Cuts come from the index when there is one (found beside the dump by name), else from a scan near
each cut for a bz2 stream header (`BZh1`…`BZh9` then the block magic `1AY&SY`) whose first bytes
decompress to a `<page>`: a concatenated bz2 file whose streams do not start at pages (pbzip2's)
is then never cut inside a page. Every read is a byte range (corral.core.fs.open_range), so a task
reads only its part of a 22 GB dump, from disk, a bucket or over HTTP.
"""

from __future__ import annotations

import bz2
import io
import logging
import re
from collections.abc import Callable, Iterator

from corral.core import fs

LOG = logging.getLogger("corral.build")
STREAM_START = re.compile(rb"BZh[1-9]1AY&SY")  # a bz2 stream header and its first block's magic
SCAN_WINDOW = 1 << 20  # bytes read at a time when scanning for a stream start (corral's choice)
HEADER_LIMIT = 4 << 20  # decompressed bytes of a first stream past which it is not a siteinfo header
PROBE_BYTES = 16 << 20  # compressed bytes read at most to see how a stream begins (a bz2 block is < 1 MB)
PROBE_WINDOW = 256 << 10  # compressed bytes asked for at a time while probing (one request each)
CLOSE = b"\n</mediawiki>\n"  # ends the document of a piece that is not the dump's last
INDEX_SUFFIX = "-index.txt.bz2"  # `…-multistream.xml.bz2` → `…-multistream-index.txt.bz2`


def index_of(path: str) -> str | None:
    """The name of a multistream dump's index, published beside it, or None for another file."""
    name = path.rsplit("/", 1)[-1]
    if "multistream" not in name or not name.endswith(".xml.bz2"):
        return None
    return path[: -len(".xml.bz2")] + INDEX_SUFFIX


def _decode(path: str, offset: int, enough: int) -> tuple[bytes, int | None]:
    """The decompressed start (at least `enough` bytes, or all) of the bz2 stream at `offset`, and
    the stream's compressed length when it ended there: (b"", None) when no stream starts there."""
    dec, out, read = bz2.BZ2Decompressor(), bytearray(), 0
    try:
        while not dec.eof and len(out) < enough and read < PROBE_BYTES:
            with fs.open_range(path, offset + read, offset + read + PROBE_WINDOW) as f:
                window = f.read()
            if not window:
                break
            read += len(window)
            out += dec.decompress(window, enough - len(out))  # bounded: a bz2 bomb stops here
            while not dec.eof and not dec.needs_input and len(out) < enough:
                out += dec.decompress(b"", enough - len(out))
    except (OSError, EOFError, ValueError):
        return b"", None
    return bytes(out), (read - len(dec.unused_data)) if dec.eof else None


def header_end(path: str) -> int | None:
    """Where the dump's first stream ends, when it is a header (a `<mediawiki>` opening with no
    page); None when it is not (a single-stream dump, or pages from the first stream on)."""
    head, length = _decode(path, 0, HEADER_LIMIT)
    if length is None or b"<mediawiki" not in head or b"<page>" in head:
        return None
    return length


def _starts_page(path: str, offset: int) -> bool:
    head, _ = _decode(path, offset, 64)
    return head.lstrip().startswith(b"<page>")


def cuts_from_index(index: str, first: int, size: int, piece_size: int) -> list[int]:
    """Piece starts from a dump's index: after `first`, the first stream start at or past each
    multiple of `piece_size`. Streamed: memory holds the cuts, not the index."""
    from corral.pipeline.inputs.streams import open_input

    cuts, target = [first], first + piece_size
    with open_input(index) as f:
        for line in f:
            head = line.split(b":", 1)[0]
            if not head.isdigit():
                continue
            offset = int(head)
            if offset >= target and offset > cuts[-1]:
                cuts.append(offset)
                target = offset + piece_size
    return [c for c in cuts if c < size]


def cuts_by_scan(path: str, first: int, size: int, piece_size: int) -> list[int]:
    """Piece starts found by scanning near each multiple of `piece_size` for a stream that starts
    with a `<page>`; a stretch with none is left in the piece before it."""
    cuts, target = [first], first + piece_size
    while target < size:
        found = _next_page_stream(path, target, min(size, target + piece_size))
        if found is None:
            target += piece_size
            continue
        cuts.append(found)
        target = found + piece_size
    return cuts


def _next_page_stream(path: str, start: int, stop: int) -> int | None:
    """The first stream start in [start, stop) whose content starts with a `<page>`."""
    pos = start
    while pos < stop:
        with fs.open_range(path, pos, min(stop + 16, pos + SCAN_WINDOW)) as f:
            window = f.read()
        for m in STREAM_START.finditer(window):
            if pos + m.start() < stop and _starts_page(path, pos + m.start()):
                return pos + m.start()
        if len(window) < 16:
            return None
        pos += len(window) - 15  # a header cut by the window's end is found in the next one
    return None


def multistream_cuts(path: str, size: int, piece_size: int) -> tuple[int, list[int]] | None:
    """(header length, piece starts) of a multistream dump larger than a piece, or None when it
    is not one that can be cut (or its server takes no Range requests)."""
    if not _ranges_served(path):
        return None
    header = header_end(path)
    if header is None:
        return None
    index = index_of(path)
    if index is not None and fs.exists(index):
        cuts = cuts_from_index(index, header, size, piece_size)
        if all(_starts_page(path, cut) for cut in cuts[1:]):
            LOG.info("%s: cut at stream boundaries by its index %s", path, index)
            return header, cuts
        LOG.warning("%s: its index %s names offsets where no stream of pages starts; scanning instead", path, index)
    return header, cuts_by_scan(path, header, size, piece_size)


def _ranges_served(path: str) -> bool:
    """Whether a file's pieces can be read alone: always, but over HTTP only from a server that
    takes Range requests (said with a warning when it does not)."""
    if not path.startswith(("http://", "https://")):
        return True
    from corral.core.http_fs import head

    if head(path)["ranges"]:
        return True
    LOG.warning("%s: the server takes no Range requests, so one task reads the whole file", path)
    return False


class _Chain(io.RawIOBase):
    """Streams opened one after another (by the callables), read as one."""

    def __init__(self, openers: list[Callable[[], io.IOBase]]):
        self.openers: Iterator[Callable[[], io.IOBase]] = iter(openers)
        self.current = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while True:
            if self.current is None:
                opener = next(self.openers, None)
                if opener is None:
                    return 0
                self.current = opener()
            data = self.current.read(len(buf))
            if data:
                buf[: len(data)] = data
                return len(data)
            self.current.close()
            self.current = None

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
        super().close()


def open_piece(path: str, header: int, start: int, end: int, last: bool):
    """The XML of one piece: the header stream's, the range's pages, then a closing tag unless the
    range ends the dump (whose last stream closes it)."""
    from corral.pipeline.inputs.streams import Metered, decompressing

    ranges = _Chain([lambda: fs.open_range(path, 0, header), lambda: fs.open_range(path, start, end)])
    xml = decompressing(Metered(ranges), ".bz2")
    if last:
        return xml
    return io.BufferedReader(_Chain([lambda: xml, lambda: io.BytesIO(CLOSE)]), 1 << 20)

"""WARC records as framed by the WARC/1.0 and 1.1 standard (ISO 28500 §4–5): a version line, header
lines up to a blank line, a block of exactly Content-Length bytes, then two CRLFs.

CommonCrawl's and C4's WET files are read with this rather than warcio: a conversion record needs its
named headers and its block, nothing that warcio parses beyond them (HTTP headers, digests,
chunked payloads), and warcio's general reader took 60% of reading a WET on one core. FastWARC
(Resiliparse) is fast but panics on unseekable streams, such as corral's tolerant decompressor
and remote inputs. The WARC files of HTML responses, whose HTTP headers matter, stay with warcio.

Every buffer is bounded: the read buffer by CHUNK, a record's headers by MAX_HEADER_BYTES, a
block longer than the caller's limit is skipped in pieces and handed on without its bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

MAX_RECORD_BYTES = 64 * 1024 * 1024  # corral's bound on a WET/WARC record's block: beyond it, one `too_large` error
MAX_HEADER_BYTES = 256 * 1024  # corral's bound on a record's header block (a 64 kB URL is already absurd)
CHUNK = 1 << 20  # bytes read from the stream at a time; headers are parsed from this buffer


class WarcFormatError(ValueError):
    """The stream is not framed as WARC records where a record should start or its headers are."""


@dataclass
class WarcRecord:
    headers: dict[str, str]  # names lowercased (WARC header names are case-insensitive)
    declared: int  # the Content-Length
    block: bytes | None  # the block, shorter than declared if the stream ended; None when too large

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class _Buffered:
    """A binary stream read CHUNK bytes at a time, its header blocks found in the buffer by one
    search each (no Python call per line), blocks handed on as read."""

    def __init__(self, f):
        self.f, self.buf, self.pos = f, b"", 0

    def _fill(self) -> bool:
        data = self.f.read(CHUNK)
        if not data:
            return False
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return True

    def skip_blank(self) -> bool:
        """Past the CRLFs that close a record (and stray blank lines); False at the end."""
        while True:
            buf, pos = self.buf, self.pos
            while pos < len(buf) and buf[pos] in b"\r\n":
                pos += 1
            self.pos = pos
            if pos < len(buf):
                return True
            if not self._fill():
                return False

    def header_block(self) -> bytes:
        """The version line and header lines, up to the blank line that ends them (CRLF as the
        standard writes it, or bare LF)."""
        while True:
            end = min(len(self.buf), self.pos + MAX_HEADER_BYTES)
            k, width = self.buf.find(b"\r\n\r\n", self.pos, end), 4
            lf = self.buf.find(b"\n\n", self.pos, k if k >= 0 else end)  # a CRLF block holds no "\n\n"
            if lf >= 0:  # bare LF ends the headers first (a "\r\n\r\n" after it is the block's)
                k, width = lf, 2
            if k >= 0:
                block, self.pos = self.buf[self.pos : k], k + width
                return block
            if end - self.pos >= MAX_HEADER_BYTES:
                raise WarcFormatError(f"a record's headers run past {MAX_HEADER_BYTES:,} bytes")
            if not self._fill():
                raise WarcFormatError("the stream ends inside a record's headers")

    def take(self, n: int) -> bytes:
        """The next n bytes, fewer only where the stream ends."""
        have = len(self.buf) - self.pos
        if n <= have:
            out, self.pos = self.buf[self.pos : self.pos + n], self.pos + n
            return out
        parts, need = [self.buf[self.pos :]], n - have
        self.buf, self.pos = b"", 0
        while need > 0:
            data = self.f.read(need)
            if not data:
                break
            parts.append(data)
            need -= len(data)
        return b"".join(parts)

    def skip(self, n: int) -> None:
        have = len(self.buf) - self.pos
        if n <= have:
            self.pos += n
            return
        n -= have
        self.buf, self.pos = b"", 0
        while n > 0:
            data = self.f.read(min(n, CHUNK))
            if not data:
                return
            n -= len(data)


def _headers(block: bytes) -> dict[str, str]:
    """Header names (lowercased) and values of a header block; its first line is the version."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("latin-1")  # as older writers meant non-UTF-8 header bytes
    lines = text.split("\n")
    if not lines[0].startswith("WARC/"):
        raise WarcFormatError(f"not a WARC record: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    last = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and last is not None:  # a folded continuation of the previous value
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise WarcFormatError(f"a header line without a colon: {line[:60]!r}")
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers


def iter_records(f, max_block: int) -> Iterator[WarcRecord]:
    """The records of a binary stream of WARC; a block over `max_block` bytes comes as block None
    (skipped unread). WarcFormatError where the framing breaks: what follows cannot be trusted."""
    stream = _Buffered(f)
    while stream.skip_blank():
        headers = _headers(stream.header_block())
        length = headers.get("content-length", "")
        if not length.isdigit():
            raise WarcFormatError(f"a record without a valid Content-Length: {length[:40]!r}")
        declared = int(length)
        if declared > max_block:
            stream.skip(declared)
            yield WarcRecord(headers, declared, None)
            continue
        block = stream.take(declared)
        if len(block) < declared:
            f.read(1)  # a damaged compressed tail raises here: the rest of the file is one error
        yield WarcRecord(headers, declared, block)


def records_then_error(f, max_block: int) -> Iterator[WarcRecord | WarcFormatError]:
    """`iter_records`, with a break in the framing as the last item instead of raised: a reader
    counts it under a reason and stops there."""
    try:
        yield from iter_records(f, max_block)
    except WarcFormatError as e:
        yield e

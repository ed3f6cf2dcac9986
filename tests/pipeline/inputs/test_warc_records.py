"""WARC framing (corral.pipeline.inputs.warc_records): records, headers and blocks as warcio reads
them, bounded buffers, and every break in the framing an error rather than a guess."""

import gzip
import io

import pytest

from corral.pipeline.inputs import warc_records as W
from corral.pipeline.inputs.streams import TruncatedInput, decompressing


def record(body: bytes, headers: str = "WARC-Type: conversion\r\nWARC-Target-URI: http://a/\r\n", eol="\r\n") -> bytes:
    head = f"WARC/1.0{eol}{headers.replace(chr(13) + chr(10), eol)}Content-Length: {len(body)}{eol}{eol}"
    return head.encode("latin-1") + body + (eol * 2).encode()


def read(data: bytes, max_block: int = 1 << 20) -> list[W.WarcRecord]:
    return list(W.iter_records(io.BytesIO(data), max_block))


def test_records_headers_and_blocks_agree_with_warcio():
    from warcio.archiveiterator import ArchiveIterator

    data = b"".join(
        record(f"line {i}\nWARC/1.0 inside a block\r\n\r\n".encode() * i, f"WARC-Type: conversion\r\nX-N: {i}\r\n")
        for i in range(5)
    )
    ours = read(data)
    theirs = [(r.rec_headers.headers, r.content_stream().read()) for r in ArchiveIterator(io.BytesIO(data))]
    assert len(ours) == len(theirs) == 5
    for r, (headers, block) in zip(ours, theirs):
        assert r.block == block and r.declared == len(block)
        assert r.headers == {k.lower(): v for k, v in headers}
        assert r.header("WARC-TYPE") == "conversion"


def test_bare_newlines_folded_headers_and_latin1_values():
    data = record(b"body", "WARC-Type: conversion\r\nX-Long: one\r\n  two\r\nX-Name: caf\xe9\r\n", eol="\n")
    [r] = read(data)
    assert r.block == b"body" and r.headers["x-long"] == "one two" and r.headers["x-name"] == "café"


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_any_read_size_gives_the_same_records(monkeypatch, chunk):
    data = b"\r\n".join(record(b"x" * n) for n in (0, 5, 100, 3000))
    monkeypatch.setattr(W, "CHUNK", chunk)
    assert [(r.declared, r.block) for r in read(data)] == [(n, b"x" * n) for n in (0, 5, 100, 3000)]


def test_a_block_over_the_limit_is_skipped_unread_and_reading_goes_on():
    data = record(b"a" * 10) + record(b"b" * 5000) + record(b"c" * 10)
    assert [r.block for r in read(data, max_block=1000)] == [b"a" * 10, None, b"c" * 10]


@pytest.mark.parametrize(
    "data, message",
    [
        (record(b"ok") + b"garbage between records\r\n\r\n" + record(b"x"), "not a WARC record"),
        (b"WARC/1.0\r\nWARC-Type: conversion\r\n\r\nbody", "Content-Length"),
        (b"WARC/1.0\r\nWARC-Type conversion\r\nContent-Length: 1\r\n\r\nx", "without a colon"),
        (b"WARC/1.0\r\nWARC-Type: conversion\r\n", "ends inside"),
    ],
)
def test_a_broken_frame_is_an_error_after_the_good_records(data, message):
    it = W.iter_records(io.BytesIO(data), 1 << 20)
    good = []
    with pytest.raises(W.WarcFormatError, match=message):
        for r in it:
            good.append(r)
    assert len(good) == (1 if data.startswith(record(b"ok")) else 0)


def test_headers_never_held_past_their_bound(monkeypatch):
    monkeypatch.setattr(W, "MAX_HEADER_BYTES", 100)
    with pytest.raises(W.WarcFormatError, match="run past"):
        read(b"WARC/1.0\r\nX-Url: " + b"u" * 500 + b"\r\n\r\n")


def test_a_short_block_at_the_end_comes_back_short():
    data = record(b"whole") + b"WARC/1.0\r\nContent-Length: 50\r\n\r\nonly part"
    assert [(r.declared, r.block) for r in read(data)] == [(5, b"whole"), (50, b"only part")]


def test_a_damaged_compressed_tail_raises_after_the_complete_records():
    whole = gzip.compress(record(b"first" * 100)) + gzip.compress(record(b"second" * 100))
    cut = whole[: len(whole) - 30]  # the second member loses its end
    it = W.iter_records(decompressing(io.BytesIO(cut), ".gz"), 1 << 20)
    assert next(it).block == b"first" * 100
    with pytest.raises(TruncatedInput):
        next(it)


def test_a_broken_frame_ends_the_records_as_an_item():
    items = list(W.records_then_error(io.BytesIO(record(b"ok") + b"not warc\r\n\r\n"), 1 << 20))
    assert items[0].block == b"ok" and isinstance(items[1], W.WarcFormatError) and len(items) == 2


@pytest.mark.parametrize("reader", ["commoncrawl", "c4"])
def test_wet_readers_count_a_broken_frame_and_keep_what_came_before(tmp_path, reader):
    from corral.pipeline.inputs.streams import guarded
    from corral.pipeline.sources.c4.pages import read_wet_pages
    from corral.pipeline.sources.commoncrawl.warc import read_wet

    body = b"Title\n" + b"A line of ordinary English text that is long enough to keep. " * 8
    path = tmp_path / "x.wet.gz"
    path.write_bytes(gzip.compress(record(body) + b"garbage where a record should start\r\n\r\n" + record(body)))
    read = read_wet(str(path), 0, {"min_len": 0}) if reader == "commoncrawl" else read_wet_pages(str(path))
    out = [(o["status"], o["reason"]) for o in guarded(reader, str(path), read)]
    assert out == [("kept", None), ("error", "bad_warc_record")]


def test_bare_newline_headers_end_at_their_own_blank_line():
    data = record(b"line\r\n\r\nafter a CRLF blank line", eol="\n")
    assert [r.block for r in read(data)] == [b"line\r\n\r\nafter a CRLF blank line"]

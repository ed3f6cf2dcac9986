"""Wikipedia's multistream dumps cut at stream boundaries (corral.pipeline.inputs.multistream): by
the index, by a scan, read from disk and over HTTP Range requests, with the same pages as one read."""

from __future__ import annotations

import bz2
import logging
import os

import pytest

from corral.pipeline.inputs import multistream
from corral.pipeline.sources.wikipedia import Wikipedia
from tests.helpers import multistream_dump, stages
from tests.http_server import LoopbackServer

NAME = "enwiki-20261101-pages-articles-multistream.xml.bz2"


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    """A multistream dump of the sample's English pages, repeated 3 times with new ids, 10 pages a
    stream, and its index."""
    return multistream_dump(tmp_path_factory.mktemp("ms"))


def _outcomes(pieces):
    source, st = Wikipedia(), stages(Wikipedia())
    return [
        (o["status"], (o.get("record") or {}).get("id"), (o.get("record") or {}).get("text"))
        for p in pieces
        for o in source.outcomes(p, st)
    ]


def _stream_starts(path) -> list[int]:
    with bz2.open(multistream.index_of(str(path))) as f:
        return sorted({int(line.split(b":")[0]) for line in f})


def test_index_and_scan_cut_at_the_same_stream_starts_and_read_the_same_pages(dump):
    size = os.path.getsize(dump)
    whole = _outcomes(Wikipedia().split(str(dump), size, stages(Wikipedia()), size))
    assert len(whole) > 100 and all(s != "error" for s, _, _ in whole)
    by_index = Wikipedia().split(str(dump), size, stages(Wikipedia()), size // 8)
    starts = set(_stream_starts(dump))
    assert len(by_index) >= 6 and {p.start for p in by_index} <= starts
    assert [p.end for p in by_index[:-1]] == [p.start for p in by_index[1:]] and by_index[-1].end == size
    assert _outcomes(by_index) == whole
    index = multistream.index_of(str(dump))
    os.rename(index, index + ".away")
    try:
        by_scan = Wikipedia().split(str(dump), size, stages(Wikipedia()), size // 8)
    finally:
        os.rename(index + ".away", index)
    assert [(p.start, p.end) for p in by_scan] == [(p.start, p.end) for p in by_index]
    assert _outcomes(by_scan) == whole


def test_a_dump_that_is_one_stream_or_pbzip2_chunks_is_not_cut_inside_a_page(tmp_path, dump):
    xml = bz2.decompress(dump.read_bytes())
    one = tmp_path / "enwiki-1-pages-articles.xml.bz2"
    one.write_bytes(bz2.compress(xml))
    assert len(Wikipedia().split(str(one), one.stat().st_size, stages(Wikipedia()), 1000)) == 1
    chunks = tmp_path / "enwiki-2-pages-articles.xml.bz2"  # streams cut every 5,000 bytes of XML
    chunks.write_bytes(b"".join(bz2.compress(xml[i : i + 5000]) for i in range(0, len(xml), 5000)))
    pieces = Wikipedia().split(str(chunks), chunks.stat().st_size, stages(Wikipedia()), 1000)
    assert len(pieces) == 1  # its first stream already holds pages: no header stream to repeat


def test_pieces_over_http_fetch_only_their_ranges(dump):
    size = os.path.getsize(dump)
    whole = _outcomes(Wikipedia().split(str(dump), size, stages(Wikipedia()), size))
    server = LoopbackServer(str(dump.parent))
    with server as url:
        remote = f"{url}/ok/{NAME}"
        pieces = Wikipedia().split(remote, size, stages(Wikipedia()), size // 8)
        server.handler.sent.clear()
        assert len(pieces) >= 6 and _outcomes(pieces) == whole
    sent = [(start, n) for path, start, n in server.handler.sent if path.endswith(NAME)]
    header = pieces[0].header
    assert sum(n for _, n in sent) == len(pieces) * header + (
        size - pieces[0].start
    )  # each byte once, the header per piece
    assert sorted((s, s + n) for s, n in sent if s) == [(p.start, p.end) for p in pieces]


def test_a_server_without_range_requests_gets_one_reader_and_a_warning(dump, caplog):
    size = os.path.getsize(dump)
    with LoopbackServer(str(dump.parent)) as url, caplog.at_level(logging.WARNING, "corral.build"):
        remote = f"{url}/norange/{NAME}"
        pieces = Wikipedia().split(remote, size, stages(Wikipedia()), size // 8)
        assert len(pieces) == 1 and pieces[0].whole
        assert len(_outcomes(pieces)) > 100
    assert "takes no Range requests" in caplog.text


def test_an_index_of_another_dump_is_checked_and_the_dump_scanned(dump, tmp_path, caplog):
    size = os.path.getsize(dump)
    by_index = [(p.start, p.end) for p in Wikipedia().split(str(dump), size, stages(Wikipedia()), size // 8)]
    copy = tmp_path / NAME
    copy.write_bytes(dump.read_bytes())
    with bz2.open(multistream.index_of(str(dump))) as f:
        shifted = b"".join(b"%d:%s" % (int(line.split(b":", 1)[0]) + 7, line.split(b":", 1)[1]) for line in f)
    with open(multistream.index_of(str(copy)), "wb") as f:
        f.write(bz2.compress(b"garbage line\n" + shifted))
    with caplog.at_level(logging.WARNING, "corral.build"):
        pieces = Wikipedia().split(str(copy), size, stages(Wikipedia()), size // 8)
    assert "no stream of pages starts" in caplog.text
    assert [(p.start, p.end) for p in pieces] == by_index


def test_a_build_over_http_in_pieces_equals_the_local_build_of_the_whole_dump(dump, tmp_path):
    from corral.engine.runners import Executor
    from corral.pipeline.build import build
    from tests.helpers import shard_records, write_manifest

    size = os.path.getsize(dump)
    local = write_manifest(tmp_path / "local.yaml", {"wikipedia": {"inputs": [str(dump)]}})
    build(local, str(tmp_path / "local"))
    server = LoopbackServer(str(dump.parent))
    with server as url:
        remote = write_manifest(
            tmp_path / "remote.yaml", {"wikipedia": {"inputs": [f"{url}/ok/{NAME}"], "piece_size": size // 6}}
        )
        built = build(remote, str(tmp_path / "remote"), Executor(workers=2))
    assert built.sources["wikipedia"].funnel.errors == {}
    assert [(r["id"], r["text"]) for r in shard_records(str(tmp_path / "remote"), "wikipedia")] == [
        (r["id"], r["text"]) for r in shard_records(str(tmp_path / "local"), "wikipedia")
    ]
    whole_reads = [n for path, start, n in server.handler.sent if path.endswith(NAME) and n == size]
    assert not whole_reads  # no task read the whole dump

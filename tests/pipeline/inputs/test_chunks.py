"""A big JSON-lines input cut into chunks by one pass (corral.pipeline.inputs.chunks): the pieces
give the same outcomes, ids and `file:line` locations as one task reading the whole file."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace

import pytest

from corral.pipeline.inputs import streams
from corral.pipeline.sources.books import Books
from tests.helpers import stages


def _books(n: int) -> list[bytes]:
    lines = []
    for i in range(n):
        if i % 17 == 5:
            lines.append(b"not json\n")
        elif i % 23 == 7:
            lines.append(b"\n")
        else:
            text = f"Book {i}. " + " ".join(f"word{i * 7 + k}" for k in range(200))
            lines.append(json.dumps({"text": text, "title": f"t{i}" if i % 3 else None}).encode() + b"\n")
    return lines


def _outcomes(path, piece_size, tmp_path):
    source, st = Books(), stages(Books())
    size = path.stat().st_size
    pieces = source.split(str(path), size, st, piece_size)
    folder = str(tmp_path / f"prepared-{piece_size}")
    if not pieces[0].whole:
        source.prepare(pieces[0], folder)
        pieces = [replace(p, prepared=folder) for p in pieces]
    return len(pieces), [json.loads(json.dumps(o)) for p in pieces for o in source.outcomes(p, st)]


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_chunked_pieces_read_what_the_whole_file_reads(tmp_path, suffix):
    data = b"".join(_books(400))
    path = tmp_path / f"books.jsonl{suffix}"
    if suffix == ".gz":
        data = gzip.compress(data)
    elif suffix == ".zst":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    n1, whole = _outcomes(path, len(data), tmp_path)
    n7, pieces = _outcomes(path, len(data) // 7 + 1, tmp_path)
    assert n1 == 1 and n7 == 7
    assert pieces == whole
    assert sum(o["status"] == "kept" for o in whole) > 300
    assert any(o["status"] == "error" and o["where"].endswith(":6") for o in whole)


def test_a_damaged_tail_and_an_oversize_line_are_the_same_errors_in_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(streams, "MAX_LINE_BYTES", 50_000)
    lines = _books(300)
    lines[100] = json.dumps({"text": "x" * 60_000}).encode() + b"\n"
    data = gzip.compress(b"".join(lines))
    path = tmp_path / "books.jsonl.gz"
    path.write_bytes(data[: len(data) * 2 // 3])  # cut inside the member
    _, whole = _outcomes(path, len(data), tmp_path)
    _, pieces = _outcomes(path, len(data) // 5, tmp_path)
    assert pieces[:-1] == whole[:-1]
    assert any(o["status"] == "error" and "oversize" in (o.get("detail") or "") for o in whole)
    for last in (whole[-1], pieces[-1]):  # where: the piece, and the records before it in the piece
        assert last["reason"] == "truncated_or_corrupt" and last["detail"] == whole[-1]["detail"]


def test_a_tar_of_books_split_into_member_chunks_reads_what_one_task_reads(tmp_path):
    """Books3 as published: a tar.gz of text files. Refused members (a link, an unsafe name) and a
    damaged tail are the same errors, in the same places, in pieces as in one read."""
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for i in range(120):
            data = (f"Book {i}\n\n" + " ".join(f"word{i * 13 + k}" for k in range(300))).encode()
            if i == 40:
                link = tarfile.TarInfo("books3/link.txt")
                link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(link)
            info = tarfile.TarInfo(f"books3/{'../evil' if i == 70 else 'b'}{i}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "books3.tar.gz"
    path.write_bytes(raw.getvalue())
    n1, whole = _outcomes(path, path.stat().st_size, tmp_path)
    n5, pieces = _outcomes(path, path.stat().st_size // 5, tmp_path)
    assert n1 == 1 and n5 >= 5 and pieces == whole
    assert [o["reason"] for o in whole if o["status"] == "error"] == ["unsafe_member", "unsafe_member"]
    assert sum(o["status"] == "kept" for o in whole) == 119
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(raw.getvalue()[: len(raw.getvalue()) * 3 // 4])
    _, whole = _outcomes(cut, cut.stat().st_size, tmp_path)
    _, pieces = _outcomes(cut, cut.stat().st_size // 4, tmp_path)
    assert pieces[:-1] == whole[:-1] and whole[-1]["reason"] == pieces[-1]["reason"] == "truncated_or_corrupt"


def test_an_uncompressed_file_is_only_indexed_and_its_parts_are_byte_ranges(tmp_path, monkeypatch):
    """No copy: one counting pass finds where each part's first line starts, and its number; over
    random files, part counts and read sizes, the parts give every line once, with its number."""
    import random

    from corral.pipeline.inputs import chunks

    rng = random.Random(1)
    path = tmp_path / "f.jsonl"
    for trial in range(200):
        lines = [json.dumps({"text": "x" * rng.randint(0, 40)}) for _ in range(rng.randint(0, 30))]
        path.write_text("\n".join(lines) + ("\n" if trial % 2 else ""))
        parts = rng.randint(1, 12)
        monkeypatch.setattr(chunks, "SCAN_BLOCK", rng.randint(1, 50))
        chunks.write_chunks(str(path), parts, str(tmp_path / "prepared"))
        assert not list((tmp_path / "prepared").glob("chunk-*"))
        got = [x for i in range(parts) for x in chunks.chunk_lines(str(path), str(tmp_path / "prepared"), i)]
        assert got == [(f"{path}:{i}", i, json.loads(line), None) for i, line in enumerate(lines, 1)], trial


def test_a_file_named_in_capitals_is_json_lines_whole_or_in_pieces(tmp_path):
    path = tmp_path / "BOOKS.JSONL"
    path.write_bytes(b"".join(_books(60)))
    size = path.stat().st_size
    _, whole = _outcomes(path, size, tmp_path)
    _, pieces = _outcomes(path, size // 3, tmp_path)
    assert whole == pieces and sum(o["status"] == "kept" for o in whole) > 40

"""Hostile inputs beyond the per-source tests: a 100 MB single line among good JSON lines. The
build finishes, the line is one counted, dead-lettered error, the good records beside it survive,
peak memory stays bounded (measured against the same build without the line), and nothing is
written outside OUT."""

import gzip
import json
import os
import subprocess
import sys

import yaml

GOOD = [
    {
        "text": f"Line one of page {i}, long enough to pass the cleaning rules of C4 today.\n"
        f"Line two of page {i} says a little more about the weather and the sea.\n"
        f"Line three of page {i} ends the page with a full stop as it should.",
        "url": f"https://example.org/{i}",
        "timestamp": "2019-04-25T00:00:00Z",
    }
    for i in range(50)
]


def _write(path, huge: bool):
    with gzip.open(path, "wb", compresslevel=1) as f:
        for i, rec in enumerate(GOOD):
            f.write((json.dumps(rec) + "\n").encode())
            if huge and i == 24:
                f.write(b'{"text": "')
                chunk = b"x" * (1 << 20)
                for _ in range(100):  # 100 MB in one line
                    f.write(chunk)
                f.write(b'", "url": "https://example.org/huge"}\n')


def _peak_build(tmp_path, name, huge):
    raw = tmp_path / name
    raw.mkdir()
    _write(raw / "c4-00000.json.gz", huge)
    m = tmp_path / f"{name}.yaml"
    m.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "target_tokens": 1000,
                "sources": {"c4": {"weight": 1.0, "inputs": [str(raw / "*.json.gz")]}},
            }
        )
    )
    out = tmp_path / f"{name}-out"
    code = (
        "import sys; from corral.pipeline.build import build; build(sys.argv[1], sys.argv[2]);"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(m), str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return int(res.stdout.split()[-1]) / 1024, out


def test_a_100_mb_line_is_one_error_in_bounded_memory(tmp_path):
    before = set(os.listdir(tmp_path))
    base_mb, _ = _peak_build(tmp_path, "plain", huge=False)
    huge_mb, out = _peak_build(tmp_path, "huge", huge=True)
    m = json.loads((out / "manifest.json").read_text())
    f = m["sources"]["c4"]["funnel"]
    assert f["input"] == 51 and f["kept"] == 50 and sum(f["errors"].values()) == 1
    letters = [json.loads(x) for x in (out / "errors" / "c4" / "errors.jsonl").read_text().splitlines()]
    assert len(letters) == 1 and letters[0]["where"].endswith(":26") and "oversize" in letters[0]["detail"]
    assert huge_mb - base_mb < 64, (base_mb, huge_mb)  # never the 100 MB line, let alone its parse
    made = set(os.listdir(tmp_path)) - before
    assert made == {"plain", "plain.yaml", "plain-out", "huge", "huge.yaml", "huge-out"}  # nothing else written


def test_a_decompression_bomb_book_is_one_error_in_bounded_memory(tmp_path, monkeypatch):
    import bz2
    import resource

    from corral.pipeline.sources import books

    bomb = tmp_path / "bomb.txt.bz2"
    comp = bz2.BZ2Compressor()
    with open(bomb, "wb") as f:
        for _ in range(64):
            f.write(comp.compress(b"\0" * (1 << 20)))
        f.write(comp.flush())
    assert bomb.stat().st_size < 10_000  # 64 MB of zeros in a few kB
    monkeypatch.setattr(books, "MAX_BOOK_BYTES", 8 * 1024 * 1024)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = list(books.read_books(str(bomb)))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert [(o["status"], o["reason"]) for o in out] == [("error", "too_large")]
    assert grown_mb < 40


def test_an_oversized_wet_record_is_one_error(tmp_path, monkeypatch):
    from io import BytesIO

    from warcio.warcwriter import WARCWriter

    from corral.pipeline.sources.commoncrawl import warc as commoncrawl

    buf = BytesIO()
    w = WARCWriter(buf, gzip=True)
    for i, size in enumerate((2000, 300_000, 2000)):
        body = ("Words of a page that are long enough to be kept by the length rule. " * (size // 70)).encode()
        rec = w.create_warc_record(
            f"https://example.org/{i}",
            "conversion",
            payload=BytesIO(body),
            warc_headers_dict={"Content-Type": "text/plain"},
        )
        w.write_record(rec)
    path = tmp_path / "x.warc.wet.gz"
    path.write_bytes(buf.getvalue())
    monkeypatch.setattr(commoncrawl, "MAX_RECORD_BYTES", 100_000)
    from helpers import stages

    read = stages("commoncrawl")["read"]
    outcomes = list(commoncrawl.read_wet(str(path), 0, read))
    assert [o["reason"] for o in outcomes].count("too_large") == 1 and len(outcomes) == 3

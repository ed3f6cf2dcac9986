"""`corral fetch` against a loopback server: byte-identical mirrors through faults, the publisher's
checksums, a local manifest that builds like the remote one, and a killed fetch that resumes
without downloading a finished file again."""

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from http_server import LoopbackServer

from corral.cli import main
from corral.core import http_fs

WIKI = "enwiki/20261101/enwiki-20261101-pages-articles.xml.bz2"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(http_fs, "BACKOFF_S", 0.01)


@pytest.fixture
def www(tmp_path) -> Path:
    """The real sample laid out as a crawl (a paths list and its files) and a Wikimedia dump folder."""
    from corral.sample import write_sample

    sample = tmp_path / "sample"
    write_sample(str(sample))
    root = tmp_path / "www"
    c4 = sorted((sample / "c4").iterdir())
    for p in c4:
        dest = root / "crawl-data" / "C4-X" / "segments" / p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
    lines = [f"crawl-data/C4-X/segments/{p.name}" for p in c4] + ["crawl-data/C4-X/segments/not-there.json.gz"]
    (root / "crawl-data" / "C4-X" / "c4.paths.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    dump = root / WIKI
    dump.parent.mkdir(parents=True)
    shutil.copy(sample / "wikipedia" / "enwiki-20261101-pages-articles.xml.bz2", dump)
    sha1 = hashlib.sha1(dump.read_bytes()).hexdigest()
    (dump.parent / "enwiki-20261101-sha1sums.txt").write_text(f"{sha1}  {dump.name}\n")
    return root


def _manifest(path: Path, url: str, fault: str = "drop") -> Path:
    path.write_text(
        json.dumps(
            {
                "name": "remote",
                "target_tokens": "1M",
                "sources": {
                    "c4": {
                        "weight": 0.5,
                        "inputs": [{"paths": f"{url}/flaky/crawl-data/C4-X/c4.paths.gz", "base": f"{url}/{fault}"}],
                    },
                    "wikipedia": {"weight": 0.5, "inputs": [f"{url}/norange/{WIKI}"]},
                },
            }
        )
    )
    return path


def _docs(out: Path) -> dict:
    from corral.core.shards import iter_records

    return {
        s.name: [(r["id"], r["text"]) for f in sorted(s.glob("*.arrow")) for r in iter_records(str(f))]
        for s in sorted((out / "docs").iterdir())
    }


def test_fetch_mirrors_byte_identical_files_and_writes_a_manifest_that_builds(www, tmp_path, capsys):
    from corral.pipeline.build import build

    to = tmp_path / "mirror"
    with LoopbackServer(str(www)) as url:
        m = _manifest(tmp_path / "remote.yaml", url)
        assert main(["fetch", str(m), "--to", str(to)]) == 0
        out = capsys.readouterr()
        assert "3 file(s) downloaded" in out.out and "1 missing at the publisher" in out.out
        host = to / url.split("://")[1]
        for p in (www / "crawl-data" / "C4-X" / "segments").iterdir():
            assert (host / "drop" / "crawl-data" / "C4-X" / "segments" / p.name).read_bytes() == p.read_bytes()
        assert (host / "norange" / WIKI).read_bytes() == (www / WIKI).read_bytes()  # and its sha1 checked
        remote = build(str(m), str(tmp_path / "remote-build"))
        assert main(["fetch", str(m), "--to", str(to)]) == 0  # again: nothing downloaded
        assert "0 file(s) downloaded" in capsys.readouterr().out
    copy = to / "remote.yaml"
    local = build(str(copy), str(tmp_path / "local-build"))  # the server is gone: the copy reads DIR
    assert _docs(tmp_path / "local-build") == _docs(tmp_path / "remote-build")
    for name, sb in local.sources.items():
        assert sb.funnel == remote.sources[name].funnel, name
    assert local.sources["c4"].funnel.errors == {"missing_input": 1}  # the 404, counted alike


def test_a_checksum_that_differs_from_the_publishers_fails_that_file(www, tmp_path, capsys):
    (www / WIKI).parent.joinpath("enwiki-20261101-sha1sums.txt").write_text(f"{'0' * 40}  {Path(WIKI).name}\n")
    to = tmp_path / "mirror"
    with LoopbackServer(str(www)) as url:
        assert main(["fetch", str(_manifest(tmp_path / "r.yaml", url)), "--to", str(to)]) == 1
    err = capsys.readouterr().err
    assert "differs from the publisher's" in err
    assert not list(to.rglob(Path(WIKI).name)) and not list(to.rglob("*.part"))


def test_a_killed_fetch_resumes_and_downloads_no_finished_file_again(www, tmp_path):
    big = www / "crawl-data" / "C4-X" / "segments" / "big.bin"
    big.write_bytes(os.urandom(3 << 20))  # ~2.5 s at the slow fault's pace
    listed = www / "crawl-data" / "C4-X" / "c4.paths.gz"
    lines = gzip.decompress(listed.read_bytes()).decode().splitlines()[:-1]  # no 404 this time
    listed.write_bytes(gzip.compress(("\n".join(lines + ["crawl-data/C4-X/segments/big.bin"]) + "\n").encode()))
    to = tmp_path / "mirror"
    server = LoopbackServer(str(www))
    with server as url:
        m = _manifest(tmp_path / "r.yaml", url, fault="slow")
        cmd = [sys.executable, "-m", "corral.cli", "fetch", str(m), "--to", str(to), "--parallel", "4"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        part, deadline = None, time.time() + 60
        while part is None and time.time() < deadline:  # the big file part-way, the dump whole
            parts = [p for p in to.rglob("big.bin.part") if p.stat().st_size > (512 << 10)]
            part = parts[0] if parts and list(to.rglob(Path(WIKI).name)) else None
            time.sleep(0.02)
        assert part is not None, "the big file never started"
        proc.send_signal(signal.SIGKILL)  # mid-download, with no chance to clean up
        proc.wait()
        assert part.exists() and not (part.parent / "big.bin").exists()
        finished = [p for p in to.rglob("*") if p.is_file() and p.suffix in (".gz", ".bz2") and p.name != "c4.paths.gz"]
        assert len(finished) == len(lines) + 1  # the C4 files and the dump were whole before the kill
        gets = {p: server.gets("/" + str(p.relative_to(to)).split("/", 1)[1]) for p in finished}
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        assert {p: server.gets("/" + str(p.relative_to(to)).split("/", 1)[1]) for p in finished} == gets
        assert "/slow/crawl-data/C4-X/segments/big.bin" in server.handler.ranged  # resumed, not restarted
    assert (part.parent / "big.bin").read_bytes() == big.read_bytes()
    assert not list(to.rglob("*.part"))
    assert "1 file(s) downloaded" in res.stdout and f"{len(lines) + 1} already complete" in res.stdout

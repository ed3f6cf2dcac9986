"""Resumable builds: a killed build, rerun, reuses what finished and equals an uninterrupted one;
a changed setting rebuilds only the source it belongs to."""

import json
import os
import signal
import subprocess
import sys
import time

import yaml
from helpers import raw_inputs, shard_records

from corral.pipeline.build import build


def manifest(path, sources, **books_extra):
    body = {"name": "resume", "target_tokens": 1000000, "output": {"shard_max_rows": 200}, "sources": {}}
    for name, spec in sources.items():
        body["sources"][name] = {"weight": 0.5, **spec, **(books_extra if name == "books" else {})}
    path.write_text(yaml.safe_dump(body))
    return str(path)


def killed_after(args, done, n: int) -> dict[str, int]:
    """Run `corral ARGS` and SIGKILL it once `done` holds `n` completion records; return the
    records it left, with their modification times."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list(done.glob("*.json"))) < n:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return {p.name: p.stat().st_mtime_ns for p in done.glob("*.json")}


def documents(out, source):
    return sorted((r["id"], r["text"]) for r in shard_records(str(out), source))


def test_killed_build_resumes_to_the_same_documents(tmp_path):
    sources = raw_inputs(tmp_path / "raw")
    m = manifest(tmp_path / "m.yaml", sources)
    whole = build(m, str(tmp_path / "whole"))
    # A build killed part-way (SIGKILL, at several moments), then rerun with the same arguments.
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "corral.cli", "build", m, "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=tmp_path)
    took = time.perf_counter() - t0
    import shutil

    shutil.rmtree(out)
    killed_running = 0
    # The second run reuses what the first finished, so it is killed sooner, before it can end.
    for fraction in (0.5, 0.35):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(took * fraction)
        killed_running += proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed_running == 2  # both runs really died part-way
    assert not (out / "manifest.json").exists()
    resumed = build(m, str(out))
    for source in ("c4", "books"):
        assert documents(out, source) == documents(tmp_path / "whole", source)
        assert resumed.sources[source].funnel == whole.sources[source].funnel
    from corral.manifests.verify import verify_build

    assert verify_build(str(out)).ok


def test_rerun_reuses_finished_sources_and_a_changed_setting_rebuilds_only_its_source(tmp_path, caplog):
    import logging

    sources = raw_inputs(tmp_path / "raw", n=100)
    out = tmp_path / "out"
    build(manifest(tmp_path / "m.yaml", sources), str(out))
    c4_shards = {p: os.stat(p).st_mtime_ns for p in (out / "docs" / "c4").iterdir()}
    caplog.set_level(logging.INFO, logger="corral.build")
    build(manifest(tmp_path / "m.yaml", sources), str(out))
    assert "0 source(s) built, 2 reused" in caplog.text
    caplog.clear()
    changed = build(manifest(tmp_path / "m2.yaml", sources, minhash={"enabled": False}), str(out))
    assert "1 source(s) built, 1 reused (c4)" in caplog.text
    assert {p: os.stat(p).st_mtime_ns for p in (out / "docs" / "c4").iterdir()} == c4_shards  # untouched
    assert changed.settings["sources"]["books"]["minhash"]["enabled"] is False
    # an input file that changes invalidates its source
    (tmp_path / "raw" / "books" / "book0.txt").write_text("A different book entirely. " * 400)
    caplog.clear()
    build(manifest(tmp_path / "m2.yaml", sources, minhash={"enabled": False}), str(out))
    assert "1 source(s) built, 1 reused (c4)" in caplog.text


def test_a_rebuild_keeps_the_tokenizer_and_the_token_shards_of_unchanged_sources(tmp_path):
    from corral.manifests.verify import verify_build
    from corral.tokenize.encode import tokenize_build
    from corral.tokenize.tokenizer import train_tokenizer

    sources = raw_inputs(tmp_path / "raw", n=60)
    out = tmp_path / "out"
    build(manifest(tmp_path / "m.yaml", sources), str(out))
    train_tokenizer(str(out), vocab_size=300, threads=1)
    first, _ = tokenize_build(str(out))
    again = build(manifest(tmp_path / "m.yaml", sources), str(out))
    assert again.models["tokenizer"] == first.models["tokenizer"]
    assert {s: sb.token_shards for s, sb in again.sources.items()} == {
        s: sb.token_shards for s, sb in first.sources.items()
    }
    assert verify_build(str(out)).ok
    changed = build(manifest(tmp_path / "m2.yaml", sources, minhash={"enabled": False}), str(out))
    assert changed.sources["c4"].token_shards and not changed.sources["books"].token_shards
    _, counts = tokenize_build(str(out))
    assert counts["resumed"] == len(first.sources["c4"].token_shards) and counts["tokenized"] >= 1
    assert verify_build(str(out)).ok


def test_killed_commoncrawl_build_redoes_only_unfinished_files(shared_data, tmp_path):
    """CommonCrawl with its side models trained on Wikipedia: a build SIGKILLed once its first
    pass is part-way through resumes from the completion records — the finished files' records are
    not rewritten — and gives the shards of an uninterrupted build."""
    wet = shared_data / "commoncrawl" / "CC-MAIN-20170720121902-20170720141902-00000.head43.warc.wet.gz"
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(12):
        (raw / f"part{i:02d}.warc.wet.gz").write_bytes(wet.read_bytes())
    wiki = shared_data / "wikipedia" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    body = {
        "name": "resume-cc",
        "target_tokens": 1000000,
        "sources": {
            "commoncrawl": {
                "weight": 0.5,
                "inputs": [str(raw / "*.wet.gz")],
                "line_dedup": {"num_shards": 12, "hash_in_mem": 1},  # a hash group per file
                "perplexity": {"sp_vocab_size": 2000},
                "quality": {"min_chars": 200, "threshold": 0.3},
            },
            "wikipedia": {"weight": 0.5, "inputs": [str(wiki)]},
        },
    }
    m = tmp_path / "m.yaml"
    m.write_text(yaml.safe_dump(body))
    whole = build(str(m), str(tmp_path / "whole"))
    out = tmp_path / "killed"
    done = out / "_build" / "commoncrawl" / "done" / "cc-tag"
    finished = killed_after(["build", str(m), "--out", str(out), "--workers", "1"], done, 3)
    assert 3 <= len(finished) < 12 and not (out / "manifest.json").exists()
    resumed = build(str(m), str(out))
    assert {p.name: p.stat().st_mtime_ns for p in done.glob("*.json") if p.name in finished} == finished
    for source in ("commoncrawl", "wikipedia"):
        assert documents(out, source) == documents(tmp_path / "whole", source)
        assert resumed.sources[source].funnel == whole.sources[source].funnel
        assert [s["sha256"] for s in resumed.sources[source].shards] == [
            s["sha256"] for s in whole.sources[source].shards
        ]


def test_a_build_killed_inside_one_big_file_redoes_only_its_unfinished_pieces(tmp_path):
    """A multistream dump cut into pieces, and a Posts.xml dealt into bucket ranges: SIGKILLed once
    some pieces are staged, the rerun keeps their completion records (not rewritten) and the shards
    equal an uninterrupted build's."""
    from helpers import multistream_dump

    dump = multistream_dump(tmp_path / "raw", copies=6, per_stream=10)
    posts = tmp_path / "raw/sample/stackexchange/python.stackexchange.com-Posts.xml"
    m = manifest(tmp_path / "m.yaml", {"wikipedia": {"inputs": [str(dump)]}, "stackexchange": {"inputs": [str(posts)]}})
    piece = str(min(dump.stat().st_size, posts.stat().st_size) // 8)
    whole = build(m, str(tmp_path / "whole"), piece_size=10**12)
    out = tmp_path / "killed"
    done = out / "_build" / "wikipedia" / "done" / "stage"
    finished = killed_after(["build", m, "--out", str(out), "--piece-size", piece], done, 3)
    assert 3 <= len(finished) and not (out / "manifest.json").exists()
    resumed = build(m, str(out), piece_size=int(piece))
    stage_records = list(done.glob("*.json"))
    parts = json.loads(stage_records[0].read_text())["item"]["piece"]["parts"]
    assert len(finished) < parts == len(stage_records) >= 8  # killed part-way; the rerun staged the rest
    assert {p.name: p.stat().st_mtime_ns for p in stage_records if p.name in finished} == finished
    for source in ("wikipedia", "stackexchange"):
        assert [(r["id"], r["text"]) for r in shard_records(str(out), source)] == [
            (r["id"], r["text"]) for r in shard_records(str(tmp_path / "whole"), source)
        ]
        assert resumed.sources[source].funnel.kept == whole.sources[source].funnel.kept

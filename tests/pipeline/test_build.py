"""`corral build` over all six non-CommonCrawl sources, and over hostile inputs for every reader."""

import bz2
import gzip
import json
import os

import pytest
from helpers import six_sources, write_manifest

from corral.cli import main
from corral.engine.runners import Executor
from corral.manifests.build_manifest import load_build
from corral.manifests.verify import verify_build
from corral.pipeline.build import BuildError, build


def test_build_six_sources_from_the_real_samples(shared_data, tmp_path, capsys):
    m = write_manifest(tmp_path / "m.yaml", six_sources(shared_data, tmp_path))
    assert main(["build", m, "--out", str(tmp_path / "out")]) == 0
    assert "build manifest:" in capsys.readouterr().out
    manifest = load_build(str(tmp_path / "out"))
    assert set(manifest.sources) == {"c4", "github", "wikipedia", "books", "arxiv", "stackexchange"}
    for name, s in manifest.sources.items():
        assert s.shards and s.documents > 0 and s.bytes > 0, name
        assert s.funnel.balanced() and s.funnel.kept == s.documents, name
    assert main(["verify", str(tmp_path / "out")]) == 0
    assert main(["inspect", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "StackExchange" in out and "answer_merged" in out

    # Deterministic: a second build (2 worker processes this time) writes byte-identical shards, and
    # so do the same phases as one Beam pipeline on the FnApiRunner (`--runner direct`).
    first = {n: [sh["sha256"] for sh in s.shards] for n, s in manifest.sources.items()}
    again = build(m, str(tmp_path / "out2"), Executor(workers=2))
    assert {n: [sh["sha256"] for sh in s.shards] for n, s in again.sources.items()} == first
    assert main(["build", m, "--out", str(tmp_path / "out3"), "--runner", "direct"]) == 0
    on_beam = load_build(str(tmp_path / "out3"))
    assert {n: [sh["sha256"] for sh in s.shards] for n, s in on_beam.sources.items()} == first
    assert {n: s.funnel for n, s in on_beam.sources.items()} == {n: s.funnel for n, s in manifest.sources.items()}


def test_a_pattern_matching_nothing_fails_fast(tmp_path, capsys):
    m = write_manifest(tmp_path / "m.yaml", {"books": {"inputs": [str(tmp_path / "nothing" / "*.txt")]}})
    with pytest.raises(BuildError, match=r"m.yaml: sources.books.inputs\[0\]: .* matches no file"):
        build(m, str(tmp_path / "out"))
    assert main(["build", m, "--out", str(tmp_path / "out")]) == 2
    assert "matches no file" in capsys.readouterr().err


def test_commoncrawl_side_models_need_a_wikipedia_source(tmp_path):
    (tmp_path / "x.wet.gz").write_bytes(b"")
    m = write_manifest(tmp_path / "m.yaml", {"commoncrawl": {"inputs": [str(tmp_path / "x.wet.gz")]}})
    with pytest.raises(
        BuildError, match=r"m.yaml: sources.commoncrawl.perplexity.sp_model/lm_model .* no wikipedia source"
    ):
        build(m, str(tmp_path / "out"))


def hostile_inputs(d):
    """For every reader: an empty file, truncated compression, binary junk, invalid UTF-8."""
    d.mkdir()
    junk = os.urandom(4096)
    good_json = json.dumps({"text": "A fine page.", "url": "https://x.org/1"}) + "\n"
    gz = gzip.compress(good_json.encode() * 200)
    files = {
        "c4": {
            "empty.json.gz": b"",
            "cut.json.gz": gz[: len(gz) // 2],
            "junk.json.gz": junk,
            "bad.json": b"\xff\xfe{not json}\n" + good_json.encode(),
        },
        "books": {"empty.txt": b"", "junk.txt": junk, "cut.txt.bz2": bz2.compress(b"story " * 5000)[:300]},
        "wikipedia": {"empty.xml": b"", "junk.xml.bz2": junk, "deep.xml": b"<m>" + b"<a>" * 50000 + b"</m>"},
        "stackexchange": {
            "x.stackexchange.com-Posts.xml": b"",
            "y.stackexchange.com.7z": junk,
            "z.stackexchange.com-Posts.xml": b"<posts><row Id='1' PostTypeId='1' Title='T' Body='&lt;p&gt;B'",
        },
        "arxiv": {"empty.tar": b"", "junk.gz": junk, "cut.tar.gz": gzip.compress(b"x" * 10000)[:50]},
    }
    for source, fs in files.items():
        (d / source).mkdir()
        for name, data in fs.items():
            (d / source / name).write_bytes(data)
    gh = d / "github" / "repo"
    gh.mkdir(parents=True)
    (gh / "LICENSE").write_text("Permission is hereby granted, free of charge, to any person obtaining a copy")
    (gh / "blob.py").write_bytes(junk)
    (gh / "empty.py").write_bytes(b"")
    os.symlink("/etc/shadow", gh / "secret.py")
    return {s: {"inputs": [str(d / s / "*")]} for s in [*files, "github"]}


def test_hostile_inputs_never_crash_and_are_counted(tmp_path):
    m = write_manifest(tmp_path / "m.yaml", hostile_inputs(tmp_path / "raw"))
    manifest = build(m, str(tmp_path / "out"))
    for name, s in manifest.sources.items():
        f = s.funnel
        assert f.balanced(), name
        assert f.errors or f.dropped, name  # every bad file shows up in the funnel
    assert manifest.sources["c4"].funnel.kept >= 1  # the good line after a bad one still flows
    assert manifest.sources["github"].funnel.errors == {"link": 1}
    assert verify_build(str(tmp_path / "out")).ok
    # Dead letters name where each error came from.
    lines = (tmp_path / "out" / "errors" / "c4" / "errors.jsonl").read_text().splitlines()
    assert any("cut.json.gz" in json.loads(x)["where"] for x in lines)
    # Nothing was written outside OUT (the tmp folder holds only what the test made).
    assert sorted(os.listdir(tmp_path)) == ["m.yaml", "out", "raw"]


def test_piece_size_and_workers_do_not_change_the_documents(tmp_path, capsys):
    """C4 json.gz files split into chunks: with `piece_size` in the manifest or `--piece-size`,
    on 1 or 2 workers, the shards hold the same ids and texts in the same order, the funnel is the
    same, and the build verifies."""
    from helpers import raw_inputs, shard_records

    sources = raw_inputs(tmp_path / "raw")
    plain = write_manifest(tmp_path / "m.yaml", {"c4": sources["c4"]})
    pieced = write_manifest(tmp_path / "p.yaml", {"c4": {**sources["c4"], "piece_size": "20KB"}})
    whole = build(plain, str(tmp_path / "whole"))
    small = build(pieced, str(tmp_path / "small"), Executor(workers=2))
    assert main(["build", plain, "--out", str(tmp_path / "cli"), "--piece-size", "30000", "--workers", "2"]) == 0
    docs = [[(r["id"], r["text"]) for r in shard_records(str(tmp_path / n), "c4")] for n in ("whole", "small", "cli")]
    assert docs[0] == docs[1] == docs[2] and len(docs[0]) == 1200
    assert small.sources["c4"].funnel == whole.sources["c4"].funnel
    records = list((tmp_path / "small/_build/c4/done/stage").glob("*.json"))
    assert len(records) > 3 and json.loads(records[0].read_text())["item"]["piece"]["kind"] == "chunks"
    assert verify_build(str(tmp_path / "small")).ok

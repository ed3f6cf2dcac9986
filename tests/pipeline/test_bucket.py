"""Builds in a bucket: the seven-source sample built with OUT on s3:// (an S3-compatible server on
127.0.0.1) equals the local build, and every command that follows a build runs on it — tokenizer
train, tokenize, verify (which catches a damaged object), inspect, report, export, dedup and train
(from token shards staged once to a local cache); a build killed mid-way redoes only what it had
not finished."""

import json
import os
import re
import signal
import subprocess
import sys
import time

from helpers import SAMPLE_MANIFEST as MANIFEST
from helpers import bucket_documents as documents

from corral.cli import main
from corral.core import fs, s3


def test_a_build_in_a_bucket_equals_the_local_one_and_every_command_runs_on_it(bucket, sample, tmp_path, capsys):
    local, remote = str(tmp_path / "local"), f"{bucket}/build"
    assert main(["build", MANIFEST, "--out", local, "--workers", "2"]) == 0
    assert main(["build", MANIFEST, "--out", remote, "--workers", "2"]) == 0
    assert documents(remote) == documents(local)
    working = re.compile(r"/_build/[^/]+/(stage|keys|shingles|decide)/")  # removed when a source is built
    assert not [p for p in fs.walk_files(remote) if fs.TMP_MARK in p or working.search(p)]
    assert main(["tokenizer", "train", remote, "--vocab-size", "2000"]) == 0
    assert main(["tokenize", remote, "--workers", "2"]) == 0
    assert main(["verify", remote]) == 0
    assert main(["inspect", remote]) == 0 and "commoncrawl" in capsys.readouterr().out
    assert main(["report", remote]) == 0 and fs.exists(f"{remote}/report.html")
    assert main(["export", remote, "--to", f"{bucket}/export", "--format", "jsonl", "--workers", "2"]) == 0
    assert fs.match(f"{bucket}/export/**/*.jsonl.gz")
    capsys.readouterr()
    books = [f"{remote}/docs/books", "--out", f"{bucket}/again", "--threshold", "0.9"]
    assert main(["dedup", *books, "--against", f"{remote}/near/books"]) == 0
    assert "duplicates of earlier outputs 3" in capsys.readouterr().out  # the build's books against themselves

    # train: token shards copied once into the cache, by their sha256, then memory-mapped
    cache = tmp_path / "cache"
    env = {**os.environ, "CORRAL_CACHE": str(cache)}
    args = [sys.executable, "-m", "corral.cli", "train", remote, "--model", "tiny", "--seq-len", "32"]
    args += ["--micro-batch", "2", "--steps", "2", "--run-dir", str(tmp_path / "run")]
    res = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    manifest = json.loads(fs.read_bytes(f"{remote}/manifest.json"))
    shas = {t["sha256"] for src in manifest["sources"].values() for t in src["token_shards"]}
    shas.add(manifest["models"]["tokenizer"]["sha256"])  # the export beside the checkpoint copies it
    assert {p.name.split(".")[0] for p in cache.iterdir()} == shas
    staged = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    args[-1] = str(tmp_path / "run2")  # a later run (2 ranks) takes the copies as they are
    res = subprocess.run([*args, "--nproc", "2"], capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == staged

    # a damaged object is caught
    shard = manifest["sources"]["c4"]["shards"][0]["path"]
    data = bytearray(fs.read_bytes(f"{remote}/{shard}"))
    data[len(data) // 2] ^= 0xFF
    fs.atomic_write_bytes(f"{remote}/{shard}", bytes(data))
    assert main(["verify", remote]) == 1
    assert f"{shard}: sha256" in capsys.readouterr().err


def test_a_build_killed_mid_way_redoes_only_what_it_had_not_finished(bucket, sample, tmp_path):
    remote = f"{bucket}/build"
    cmd = [sys.executable, "-m", "corral.cli", "build", MANIFEST, "--out", remote, "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    done = f"{remote}/_build"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len([p for p in fs.walk_files(done) if "/done/" in p]) < 12:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p: json.loads(fs.read_bytes(p))["written_ns"] for p in fs.walk_files(done) if "/done/" in p}
    assert before and not fs.exists(f"{remote}/manifest.json")
    assert subprocess.run(cmd, capture_output=True, timeout=600).returncode == 0
    after = {p: json.loads(fs.read_bytes(p))["written_ns"] for p in fs.walk_files(done) if "/done/" in p}
    # a record is written when its item finishes: every one written before the kill was taken as
    # done, not run again
    assert {p: after.get(p) for p in before} == before
    local = str(tmp_path / "local")
    assert main(["build", MANIFEST, "--out", local, "--workers", "2"]) == 0
    assert documents(remote) == documents(local)


def test_a_bucket_that_cannot_be_reached_is_one_line(bucket, sample, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    s3.reset()
    assert main(["build", MANIFEST, "--out", f"{bucket}/x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach http://127.0.0.1:9: check AWS_ENDPOINT_URL" in err[0]


def test_inputs_in_a_bucket_give_what_local_inputs_give(bucket, sample, tmp_path, monkeypatch):
    """The sample's file inputs read from s3:// (GitHub's inputs are repository folders on disk: left
    out), with piece sizes small enough that the big files are split and read by ranges: the same
    documents and funnels as from local disk."""
    import yaml

    for path in sample.rglob("*"):
        if path.is_file() and "github" not in path.relative_to(sample).parts:
            fs.atomic_write_bytes(f"{bucket}/raw/{path.relative_to(sample)}", path.read_bytes())
    spec = yaml.safe_load(open(MANIFEST))
    del spec["sources"]["github"]
    spec["sources"]["c4"]["weight"] += 0.045
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump(spec))
    assert main(["build", str(manifest), "--out", str(tmp_path / "local"), "--piece-size", "64KB"]) == 0
    monkeypatch.setenv("CORRAL_SAMPLE", f"{bucket}/raw")
    assert main(["build", str(manifest), "--out", str(tmp_path / "remote"), "--piece-size", "64KB"]) == 0

    def texts(out):  # ids may name the input path: compare funnels and texts
        return {n: (funnel, sorted(t for _, t in rows)) for n, (funnel, _, rows) in documents(out).items()}

    assert texts(str(tmp_path / "remote")) == texts(str(tmp_path / "local"))


def test_the_folder_claim_and_overwrite_in_a_bucket(bucket, sample, tmp_path, capsys):
    """A bucket folder holding another build, or objects corral did not write, is refused in one
    line; --overwrite clears the other build's objects first (its sources' shards are gone)."""
    from helpers import write_manifest

    books = write_manifest(tmp_path / "a.yaml", {"books": {"inputs": [str(sample / "books" / "*.txt")]}})
    c4 = write_manifest(tmp_path / "b.yaml", {"c4": {"inputs": [str(sample / "c4" / "*.json.gz")]}})
    other = tmp_path / "other.yaml"
    other.write_text(open(c4).read().replace("name: test", "name: other"))
    assert main(["build", books, "--out", f"{bucket}/b"]) == 0
    assert main(["build", str(other), "--out", f"{bucket}/b"]) == 2
    assert "holds build 'test', not build 'other'" in capsys.readouterr().err
    assert main(["build", str(other), "--out", f"{bucket}/b", "--overwrite"]) == 0
    assert not fs.walk_files(f"{bucket}/b/docs/books") and fs.walk_files(f"{bucket}/b/docs/c4")
    fs.atomic_write_bytes(f"{bucket}/c/notes.txt", b"mine")
    assert main(["build", books, "--out", f"{bucket}/c"]) == 2
    assert "holds files corral did not write (notes.txt)" in capsys.readouterr().err

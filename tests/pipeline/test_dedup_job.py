"""`corral dedup` and the NearDedup stage: planted duplicates, verification, formats, determinism,
edge cases, and books deduplicated at 0.9 inside `corral build`."""

import json
import random

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from helpers import shard_records, write_manifest

from corral.cli import main
from corral.dedup import minhash
from corral.manifests.verify import verify_build
from corral.pipeline.build import build
from corral.pipeline.dedup_job import DedupInputError, DedupSettings, dedup

VOCAB = [f"w{i}" for i in range(5000)]


def corpus(seed=0, n=60):
    """Originals, exact copies, near copies (1 substitution in 200 words: J ≈ 0.95), and far variants
    (every 4th word changed: J ≈ 0.2) that must stay."""
    rng = random.Random(seed)
    docs, near, far = [], set(), set()
    for i in range(n):
        base = [rng.choice(VOCAB) for _ in range(200)]
        docs.append({"id": f"doc{i:03d}", "text": " ".join(base)})
        if i % 3 == 0:
            v = list(base)
            v[rng.randrange(200)] = "changed"
            docs.append({"id": f"doc{i:03d}-near", "text": " ".join(v)})
            near.add(f"doc{i:03d}-near")
        if i % 5 == 0:
            docs.append({"id": f"doc{i:03d}-copy", "text": " ".join(base)})
            near.add(f"doc{i:03d}-copy")
        if i % 4 == 0:
            v = [w if k % 4 else "zz" for k, w in enumerate(base)]
            docs.append({"id": f"doc{i:03d}-far", "text": " ".join(v)})
            far.add(f"doc{i:03d}-far")
    return docs, near, far


def kept_ids(out):
    return {
        r["id"]
        for p in sorted((out / "docs").glob("*.arrow"))
        for r in ipc.open_file(pa.memory_map(str(p))).read_all().to_pylist()
    }


def test_planted_duplicates_jsonl(tmp_path):
    docs, near, far = corpus()
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(json.dumps(d) for d in docs) + "\n{not json}\n")
    m = dedup(str(p), str(tmp_path / "out"))
    f = m.sources["input"].funnel
    assert f.input == len(docs) + 1 and f.errors == {"bad_record": 1} and f.balanced()
    kept = kept_ids(tmp_path / "out")
    assert not (kept & near)  # every planted near/exact duplicate removed
    assert far <= kept  # J ≈ 0.2 variants stay
    assert len(kept) == len(docs) - len(near)
    assert verify_build(str(tmp_path / "out")).ok
    assert not (tmp_path / "out" / "_build").exists()  # the working files are removed
    clusters = ipc.open_file(pa.memory_map(str(tmp_path / "out" / "clusters.arrow"))).read_all().to_pylist()
    members = {c["id"]: c for c in clusters}
    assert set(members) >= near
    for c in clusters:
        assert c["representative"] == (c["id"] == c["cluster"])
    rec = [
        r
        for p in (tmp_path / "out" / "docs").glob("*.arrow")
        for r in ipc.open_file(pa.memory_map(str(p))).read_all().to_pylist()
        if r["id"] == "doc000"
    ][0]
    assert rec["dup_cluster"] == "doc000" and rec["dup_count"] == 3  # itself, its near copy, its exact copy


def test_parquet_and_arrow_inputs_give_the_same_result(tmp_path):
    docs, near, _ = corpus(seed=1, n=30)
    pq.write_table(pa.Table.from_pylist(docs), tmp_path / "c.parquet")
    dedup(str(tmp_path / "c.parquet"), str(tmp_path / "out-pq"))
    # The kept shards of that run are themselves a valid input (Arrow, with ids kept as given).
    dedup(str(tmp_path / "out-pq" / "docs"), str(tmp_path / "out-arrow"))
    assert kept_ids(tmp_path / "out-arrow") == kept_ids(tmp_path / "out-pq")
    assert not (kept_ids(tmp_path / "out-pq") & near)


def test_deterministic(tmp_path):
    docs, _, _ = corpus(seed=2, n=40)
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(json.dumps(d) for d in docs))
    a = dedup(str(p), str(tmp_path / "a"))
    b = dedup(str(p), str(tmp_path / "b"))
    assert [s["sha256"] for s in a.sources["input"].shards] == [s["sha256"] for s in b.sources["input"].shards]
    assert (tmp_path / "a" / "clusters.arrow").read_bytes() == (tmp_path / "b" / "clusters.arrow").read_bytes()


def test_verification_rejects_candidates_below_the_threshold(tmp_path):
    rng = random.Random(3)
    base = [rng.choice(VOCAB) for _ in range(300)]
    v = list(base)
    for k in range(0, 300, 12):  # J of 5-grams ≈ 0.6: a candidate often enough at loose banding
        v[k] = "qq"
    docs = [{"id": "a", "text": " ".join(base)}, {"id": "b", "text": " ".join(v)}]
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(json.dumps(d) for d in docs))
    sa, sb = minhash.shingles(docs[0]["text"]), minhash.shingles(docs[1]["text"])
    assert minhash.jaccard(sa, sb) < 0.8
    loose = dedup(str(p), str(tmp_path / "loose"), settings=DedupSettings(threshold=0.8, num_perm=64, verify=True))
    assert loose.sources["input"].funnel.kept == 2  # whatever the bands said, the exact check keeps both


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_document_inputs(tmp_path, n):
    p = tmp_path / "c.jsonl"
    p.write_text("".join(json.dumps({"text": f"only document {i}"}) + "\n" for i in range(n)))
    m = dedup(str(p), str(tmp_path / "out"))
    f = m.sources["input"].funnel
    assert (f.input, f.kept) == (n, n)
    assert verify_build(str(tmp_path / "out")).ok


def test_cli(tmp_path, capsys):
    docs, near, _ = corpus(seed=4, n=20)
    p = tmp_path / "c.jsonl.gz"
    import gzip

    p.write_bytes(gzip.compress("\n".join(json.dumps(d) for d in docs).encode()))
    assert main(["dedup", str(p), "--out", str(tmp_path / "out"), "--threshold", "0.8", "--ngram", "5"]) == 0
    out = capsys.readouterr().out
    assert "bands" in out and "false-positive area" in out and f"near duplicates {len(near)}" in out
    assert main(["dedup", str(tmp_path / "nothing-*.jsonl"), "--out", str(tmp_path / "o2")]) == 2
    with pytest.raises(DedupInputError):
        dedup(str(tmp_path / "nothing"), str(tmp_path / "o3"))


def test_books_near_duplicates_removed_in_build_at_0_9(tmp_path):
    rng = random.Random(5)
    book = " ".join(rng.choice(VOCAB) for _ in range(3000))
    words = book.split()
    edited = list(words)
    for k in range(0, 3000, 400):  # ~8 substitutions in 3000 words: > 90% overlap
        edited[k] = "edited"
    rewritten = [w if k % 5 else "new" for k, w in enumerate(words)]  # far below 90%
    d = tmp_path / "books"
    d.mkdir()
    (d / "a.txt").write_text(book)
    (d / "b.txt").write_text(" ".join(edited))
    (d / "c.txt").write_text(" ".join(rewritten))
    m = write_manifest(tmp_path / "m.yaml", {"books": {"inputs": [str(d / "*.txt")]}})
    manifest = build(m, str(tmp_path / "out"))
    f = manifest.sources["books"].funnel
    assert f.kept == 2 and f.dropped == {"near_duplicate": 1}
    assert manifest.settings["sources"]["books"]["minhash"]["threshold"] == 0.9
    recs = shard_records(str(tmp_path / "out"), "books")
    assert sorted(r["dup_count"] for r in recs) == [1, 2]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_file_larger_than_a_piece_is_split_and_gives_the_same_result(tmp_path, fmt, monkeypatch):
    """JSON lines by chunks of one pass, Parquet by ranges of row groups: the kept documents, the
    clusters and the ids made for rows without one are those of the whole file read by one task."""
    docs, near, far = corpus(seed=3, n=90)
    rows = [{"text": d["text"]} if i % 2 else d for i, d in enumerate(docs)]  # half without an id
    p = tmp_path / f"c.{fmt}"
    if fmt == "jsonl":
        p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist(rows), p, row_group_size=20)
    from corral.engine.runners import Executor
    from corral.pipeline import dedup_job

    whole = dedup(str(p), str(tmp_path / "whole"))
    read, kinds = dedup_job.read_records, []
    monkeypatch.setattr(dedup_job, "read_records", lambda piece: kinds.append(piece.kind) or read(piece))
    split = dedup(str(p), str(tmp_path / "split"), Executor(workers=1), piece_size=p.stat().st_size // 4)
    assert len(kinds) >= 3 and set(kinds) == {"chunks" if fmt == "jsonl" else "row_groups"}
    assert split.sources["input"].funnel.to_dict() == whole.sources["input"].funnel.to_dict()
    assert kept_ids(tmp_path / "split") == kept_ids(tmp_path / "whole")
    assert (tmp_path / "split" / "removed.jsonl").read_text() == (tmp_path / "whole" / "removed.jsonl").read_text()

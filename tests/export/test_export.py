"""`corral export`: every format read back with the libraries other tools use (pyarrow and
`datasets` for Parquet, gzip + json for JSONL and dolma, megatron-core's IndexedDataset for the
token files) and compared with the build's own shards; checked, atomic and resumable."""

import gzip
import hashlib
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import make_build

from corral.cli import main
from corral.core.shards import read_shard, read_token_shard
from corral.export import job as export_run
from corral.export.documents import NUMERIC, jsonl_row
from corral.manifests.build_manifest import load_build


@pytest.fixture
def build(tmp_path):
    out = make_build(tmp_path / "b", n_docs={"c4": 45, "books": 12}, signals=True)
    manifest = load_build(str(out))
    manifest.models["tokenizer"] = {"path": "tokenizer/tokenizer.model", "sha256": "0" * 64, "vocab_size": 300}
    manifest.save(str(out))
    return out


def shard_rows(out, source=None):
    m = load_build(str(out))
    rows = {}
    for s, sb in m.sources.items():
        if source in (None, s):
            rows[s] = [r for e in sb.shards for r in read_shard(str(out / e["path"])).to_pylist()]
    return rows


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def check_record(dest):
    record = json.loads((dest / "export.json").read_text())
    for rel, entry in record["files"].items():
        assert os.path.getsize(dest / rel) == entry["bytes"] and sha(dest / rel) == entry["sha256"], rel
    return record


def test_parquet_reads_back_in_pyarrow_and_datasets_as_the_shards(build, tmp_path):
    import datasets

    dest = tmp_path / "pq"
    assert main(["export", str(build), "--to", str(dest), "--format", "parquet"]) == 0
    record = check_record(dest)
    want = shard_rows(build)
    for s, rows in want.items():
        files = sorted(dest.glob(f"{s}/part-*.parquet"))
        assert len(files) == len(load_build(str(build)).sources[s].shards)
        assert [r for f in files for r in pq.read_table(f).to_pylist()] == rows
        ds = datasets.load_dataset(
            "parquet", data_files=[str(f) for f in files], split="train", cache_dir=str(tmp_path / "hf")
        )
        assert ds.to_list() == rows
        assert sum(e["rows"] for e in record["files"].values() if e["source"] == s) == len(rows)
    card = (dest / "README.md").read_text()
    assert (
        load_build(str(build)).mixture["name"] in card
        and hashlib.sha256((build / "manifest.json").read_bytes()).hexdigest() in card
        and "| c4 | 0.75 |" in card
    )


def test_datasets_reads_the_builds_own_arrow_shards(build, tmp_path):
    import datasets

    m = load_build(str(build))
    files = [str(build / e["path"]) for e in m.sources["c4"].shards]
    ds = datasets.load_dataset("arrow", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.to_list() == shard_rows(build)["c4"]
    token_file = str(build / m.sources["c4"].token_shards[0]["path"])
    toks = datasets.load_dataset("arrow", data_files=[token_file], split="train", cache_dir=str(tmp_path / "hf2"))
    shard = read_token_shard(token_file)
    assert [r["tokens"] for r in toks] == [shard.document(i).tolist() for i in range(len(shard))]


def test_jsonl_lines_are_the_rows_with_meta_as_an_object(build, tmp_path):
    dest = tmp_path / "j"
    assert main(["export", str(build), "--to", str(dest), "--format", "jsonl", "--source", "books"]) == 0
    check_record(dest)
    lines = [json.loads(x) for f in sorted(dest.glob("books/*.jsonl.gz")) for x in gzip.open(f, "rt", encoding="utf-8")]
    assert lines == [jsonl_row(r) for r in shard_rows(build, "books")["books"]]
    assert lines[3]["meta"] == {"date": "2022-04-01", "n": 3} and "ünïcode" in lines[0]["text"]
    assert not (dest / "c4").exists()


def test_dolma_documents_and_attributes(build, tmp_path):
    dest = tmp_path / "d"
    assert main(["export", str(build), "--to", str(dest), "--format", "dolma"]) == 0
    check_record(dest)
    rows = shard_rows(build)["c4"]
    docs = [json.loads(x) for f in sorted(dest.glob("documents/c4/*.jsonl.gz")) for x in gzip.open(f, "rt")]
    attrs = [json.loads(x) for f in sorted(dest.glob("attributes/corral/c4/*.jsonl.gz")) for x in gzip.open(f, "rt")]
    assert len(docs) == len(attrs) == len(rows)
    for d, a, r in zip(docs, attrs, rows):
        assert set(d) == {"id", "text", "source", "added", "created", "metadata"}
        assert (d["id"], d["text"], d["source"]) == (r["id"], r["text"], "c4") and a["id"] == r["id"]
        assert d["created"] == json.loads(r["meta"])["date"] and d["metadata"]["url"] == r["url"]
        assert d["metadata"]["bucket"] == r["bucket"] and d["metadata"]["dup_cluster"] == r["dup_cluster"]
        for k in NUMERIC:
            assert a["attributes"][f"corral__{k}"] == [[0, len(r["text"]), r[k]]]
    assert docs[0]["added"] == load_build(str(build)).created


def test_megatron_files_read_in_megatron_cores_indexed_dataset(build, tmp_path, capsys):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    dest = tmp_path / "m"
    assert main(["export", str(build), "--to", str(dest), "--format", "megatron"]) == 0
    out = capsys.readouterr().out
    data_path = next(line for line in out.splitlines() if line.startswith("--data-path")).split()[1:]
    assert data_path == ["0.75", str(dest / "c4_text_document"), "0.25", str(dest / "books_text_document")]
    check_record(dest)
    m = load_build(str(build))
    for s, sb in m.sources.items():
        ds = IndexedDataset(str(dest / f"{s}_text_document"))
        shard = read_token_shard(str(build / sb.token_shards[0]["path"]))
        assert len(ds) == len(shard) and ds.sequence_lengths.tolist() == np.diff(shard.offsets).tolist()
        assert ds.document_indices.tolist() == list(range(len(shard) + 1))
        for i in range(len(shard)):
            got = ds[i]
            assert got.dtype == np.uint16 and np.array_equal(got, shard.document(i))


def test_a_rerun_skips_finished_files_and_a_failed_export_leaves_no_partial_file(build, tmp_path, monkeypatch):
    dest = tmp_path / "p"
    real = export_run._export_shard
    calls = []

    def failing(fmt, shard, outs, added):
        if len(calls) == 2:
            raise OSError("disk full")
        calls.append(outs)
        return real(fmt, shard, outs, added)

    monkeypatch.setattr(export_run, "_export_shard", failing)
    with pytest.raises(OSError):
        export_run.export(str(build), str(dest), "parquet", say=lambda *_: None)
    finished = {str(p) for p in dest.rglob("*.parquet")}
    assert finished == {o for outs in calls for o in outs}  # nothing partial under a final name
    assert not [p for p in dest.rglob("*") if p.is_file() and p.name.startswith(".")]
    monkeypatch.setattr(export_run, "_export_shard", real)
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*.parquet")}
    result = export_run.export(str(build), str(dest), "parquet", say=lambda *_: None)
    assert len(result.skipped) == 2 and all(p.stat().st_mtime_ns == t for p, t in before.items())
    check_record(dest)
    assert len(list(dest.rglob("*.parquet"))) == sum(len(sb.shards) for sb in load_build(str(build)).sources.values())


def test_an_export_folder_of_another_kind_or_foreign_files_is_refused(build, tmp_path, capsys):
    dest = tmp_path / "x"
    assert main(["export", str(build), "--to", str(dest), "--format", "jsonl"]) == 0
    assert main(["export", str(build), "--to", str(dest), "--format", "parquet"]) == 2
    assert "holds a jsonl export" in capsys.readouterr().err
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "notes.txt").write_text("mine")
    assert main(["export", str(build), "--to", str(tmp_path / "y"), "--format", "jsonl"]) == 2
    assert "did not write" in capsys.readouterr().err
    assert main(["export", str(build), "--to", str(tmp_path / "z"), "--format", "jsonl", "--source", "wiki"]) == 2

"""`corral export`: every format read back with the libraries other tools use (pyarrow and
`datasets` for Parquet, gzip/zstandard + json and `datasets` for JSONL and dolma, megatron-core's
IndexedDataset for the token files) and compared with the build's own shards; checked, atomic and
resumable; JSON lines byte for byte json.dumps' lines, compressed alike on any number of threads."""

import gzip
import hashlib
import io
import json
import os
import random
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import make_build

from corral.cli import main
from corral.core.schema import DOC_SCHEMA, make_record
from corral.core.shards import read_shard, read_token_shard
from corral.engine.runners import Executor, usable_cpus
from corral.export import job as export_run
from corral.export.compressed import Compressed
from corral.export.documents import NUMERIC, dolma_attribute_lines, dolma_attributes, dolma_document, jsonl_row
from corral.export.json_lines import text_lines
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

    def failing(settings, shard, outs):
        if len(calls) == 2:
            raise OSError("disk full")
        calls.append(outs)
        return real(settings, shard, outs)

    monkeypatch.setattr(export_run, "_export_shard", failing)
    with pytest.raises(OSError):  # one worker: the calls are counted in this process
        export_run.export(str(build), str(dest), "parquet", how=Executor(), say=lambda *_: None)
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
    assert "holds a jsonl (gzip) export" in capsys.readouterr().err
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "notes.txt").write_text("mine")
    assert main(["export", str(build), "--to", str(tmp_path / "y"), "--format", "jsonl"]) == 2
    assert "did not write" in capsys.readouterr().err
    assert main(["export", str(build), "--to", str(tmp_path / "z"), "--format", "jsonl", "--source", "wiki"]) == 2


def read_lines(path):
    """The decompressed bytes of a .gz or .zst file, read as their consumers read them."""
    with open(path, "rb") as f:
        return (zstandard.ZstdDecompressor().stream_reader(f) if path.suffix == ".zst" else gzip.open(f)).read()


@pytest.mark.parametrize("fmt", ["jsonl", "dolma"])
def test_zstd_exports_hold_the_same_lines_as_gzip_and_read_in_datasets(build, tmp_path, fmt):
    import datasets

    gz, zst = tmp_path / "gz", tmp_path / "zst"
    assert main(["export", str(build), "--to", str(gz), "--format", fmt]) == 0
    assert main(["export", str(build), "--to", str(zst), "--format", fmt, "--compression", "zstd", "--level", "7"]) == 0
    check_record(zst)
    gz_files, zst_files = sorted(gz.rglob("part-*.jsonl.gz")), sorted(zst.rglob("part-*.jsonl.zst"))
    assert [p.relative_to(gz) for p in gz_files] == [p.relative_to(zst).with_suffix(".gz") for p in zst_files]
    assert len(zst_files) == (1 if fmt == "jsonl" else 2) * sum(
        len(sb.shards) for sb in load_build(str(build)).sources.values()
    )
    for a, b in zip(gz_files, zst_files):
        assert read_lines(a) == read_lines(b)
    docs = sorted((zst / "c4").glob("*.zst")) if fmt == "jsonl" else sorted(zst.glob("documents/c4/*.zst"))
    ds = datasets.load_dataset("json", data_files=[str(f) for f in docs], split="train", cache_dir=str(tmp_path / "hf"))
    assert ds["text"] == [r["text"] for r in shard_rows(build)["c4"]]
    card = (zst / "README.md").read_text()
    assert "part-*.jsonl.zst" in card and "jsonl.gz" not in card


def test_one_worker_and_all_cpus_write_the_same_files(build, tmp_path, monkeypatch):
    seen = []
    run_each = export_run.run_each
    monkeypatch.setattr(export_run, "run_each", lambda *a: seen.append(a[2]) or run_each(*a))
    files = {}
    for name, how in [("serial", Executor()), ("parallel", None)]:
        for codec in ("gzip", "zstd"):
            dest = tmp_path / f"{name}-{codec}"
            export_run.export(str(build), str(dest), "dolma", how=how, compression=codec, say=lambda *_: None)
            record = check_record(dest)
            files[name, codec] = {rel: e["sha256"] for rel, e in record["files"].items()}
    assert [h.workers for h in seen] == [1, 1, usable_cpus(), usable_cpus()]  # the default: every usable CPU
    assert files["serial", "gzip"] == files["parallel", "gzip"] and files["serial", "zstd"] == files["parallel", "zstd"]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_stream_is_the_same_bytes_on_any_number_of_threads(codec):
    rng = random.Random(0)
    words = ["corpus", "naïve", "données", "文本", "the", "of", "😀"]
    data = " ".join(rng.choice(words) for _ in range(600_000)).encode()  # several 1 MiB blocks
    outs = []
    for threads in (1, 3):
        raw = io.BytesIO()
        stream = Compressed(raw, codec, 3, threads)
        for i in range(0, len(data), 300_000):
            stream.write(data[i : i + 300_000])
        stream.close()
        outs.append(raw.getvalue())
    assert outs[0] == outs[1]
    unzstd = zstandard.ZstdDecompressor().stream_reader
    got = gzip.decompress(outs[0]) if codec == "gzip" else unzstd(io.BytesIO(outs[0])).read()
    assert got == data


def test_fast_json_lines_are_json_dumps_byte_for_byte():
    """Every byte JSON escapes, multi-byte characters, a `"text": ""` inside ids and meta, nulls and
    NaN: the fast lines equal json.dumps(line(row), ensure_ascii=False) row by row."""
    nasty = "".join(chr(c) for c in range(0x20)) + '"\\/ \x7f é 文 😀 \u2028 "text": "" \\u0041'
    rows = [
        make_record("c4", "a", nasty, url='x"y', lang="en", meta={"text": "", "q": 'say "hi"\n'}, lang_score=0.25),
        make_record("c4", 'b", "text": "', "plain text", perplexity=float("nan"), dup_count=3, bucket="head"),
        make_record("c4", "c", "", meta={"date": "2020-01-01"}, quality=1e-7),
        make_record("c4", "d", "\x1b[0m\x00 ends with a backslash \\", quality=float("-inf"), dup_count=0),
    ]
    batch = pa.RecordBatch.from_pylist(rows, schema=DOC_SCHEMA)
    dolma_doc = partial(dolma_document, added="2024-01-01")
    for line, fast in [(jsonl_row, text_lines(batch, jsonl_row)), (dolma_doc, text_lines(batch, dolma_doc))]:
        assert fast == "".join(json.dumps(line(r), ensure_ascii=False) + "\n" for r in rows).encode()
    attrs = "".join(json.dumps(dolma_attributes(r, len(r["text"])), ensure_ascii=False) + "\n" for r in rows)
    assert dolma_attribute_lines(batch) == attrs.encode()
    assert [json.loads(x)["text"] for x in text_lines(batch, jsonl_row).splitlines()] == [r["text"] for r in rows]


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--compression", "lz4"], "--compression 'lz4': choose one of gzip, zstd"),
        (["--level", "9"], "--level 9: gzip takes 0 to 3"),
        (["--compression", "zstd", "--level", "23"], "--level 23: zstd takes 1 to 22"),
        (["--format", "parquet", "--compression", "zstd"], "--compression and --level: only for --format jsonl"),
    ],
)
def test_a_bad_compression_is_one_line_naming_the_flag(build, tmp_path, capsys, flags, says):
    fmt = [] if "--format" in flags else ["--format", "jsonl"]
    assert main(["export", str(build), "--to", str(tmp_path / "e"), *fmt, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("corral export: ") and says in err[0], err
    assert not (tmp_path / "e").exists()


def test_a_gzip_export_folder_refuses_a_zstd_export(build, tmp_path, capsys):
    dest = tmp_path / "x"
    assert main(["export", str(build), "--to", str(dest), "--format", "jsonl"]) == 0
    assert main(["export", str(build), "--to", str(dest), "--format", "jsonl", "--compression", "zstd"]) == 2
    assert "holds a jsonl (gzip) export" in capsys.readouterr().err
    assert not list(dest.rglob("*.zst"))


@pytest.mark.parametrize("codec, most", [("gzip", 1.2), ("zstd", 1.1)])
def test_the_default_levels_keep_real_text_near_the_size_of_gzip_6(shared_data, codec, most):
    from corral.export.compressed import DEFAULT_LEVEL

    books = [(shared_data / "books" / f"pg{n}.txt").read_text(encoding="utf-8") for n in (11, 2701)]
    lines = "".join(
        json.dumps({"id": i, "text": b[i : i + 5000]}, ensure_ascii=False) + "\n"
        for b in books
        for i in range(0, len(b), 5000)
    )
    data = lines.encode()
    raw = io.BytesIO()
    stream = Compressed(raw, codec, DEFAULT_LEVEL[codec], 2)
    stream.write(data)
    stream.close()
    gzip6 = len(gzip.compress(data, 6, mtime=0))
    assert 0.8 < len(raw.getvalue()) / gzip6 < most

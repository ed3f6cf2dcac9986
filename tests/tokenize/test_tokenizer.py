"""The LLaMA tokenizer: trainer spec, sampling, round trips, `corral tokenize`, HF export."""

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import REAL_VOCAB, SHARED_DATA, make_build

from corral.cli import main
from corral.core.shards import read_token_shard
from corral.engine.runners import Executor
from corral.manifests.build_manifest import load_build
from corral.manifests.verify import verify_build
from corral.tokenize import encode, spec
from corral.tokenize.encode import tokenize_build
from corral.tokenize.tokenizer import (
    TokenizerError,
    adopt_tokenizer,
    quotas,
    split_long_line,
    tokenizer_path,
    train_tokenizer,
)

LLAMA_MODEL = SHARED_DATA / "tokenizer" / "tokenizer.model"


def _need_shared():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not present at {SHARED_DATA} (only on the project's own machines)")


def _texts(out: Path) -> list[str]:
    from helpers import shard_records

    return [r["text"] for s in load_build(str(out)).sources for r in shard_records(str(out), s)]


# --- the spec ---------------------------------------------------------------------------------


def test_llama_model_spec_is_the_recipes():
    _need_shared()
    assert spec.spec_differences(LLAMA_MODEL.read_bytes()) == []


def test_trained_model_has_every_field_of_llamas_spec(real_build):
    """Every trainer_spec and normalizer_spec field equals the original model's, except the
    vocabulary size, input paths (input, model_prefix) and thread count."""
    ours_t, ours_n = spec.read_spec((real_build / "tokenizer" / "tokenizer.model").read_bytes())
    theirs_t, theirs_n = spec.read_spec(LLAMA_MODEL.read_bytes())
    assert set(ours_t) == set(theirs_t) and len(ours_t) > 40
    skip = {"vocab_size", "input", "model_prefix", "num_threads"}
    different = {k: (ours_t[k], theirs_t[k]) for k in ours_t if k not in skip and ours_t[k] != theirs_t[k]}
    assert different == {}
    assert ours_n == theirs_n
    assert ours_t["vocab_size"] == REAL_VOCAB and ours_t["model_type"] == "BPE"


def test_trained_model_is_recorded_and_verified(real_build):
    m = load_build(str(real_build))
    entry = m.models["tokenizer"]
    assert entry["path"] == "tokenizer/tokenizer.model" and entry["vocab_size"] == REAL_VOCAB
    assert entry["spec_differences"] == [] and entry["origin"] == "trained"
    assert set(entry["sample"]["bytes"]) == set(m.sources)
    assert verify_build(str(real_build)).ok


def test_training_is_deterministic(tmp_path):
    out = make_build(tmp_path / "a", tokenize=False)
    model = out / "tokenizer" / "tokenizer.model"
    a = train_tokenizer(str(out), vocab_size=300, threads=2)["sha256"]
    pieces = list(spec.parse_model(model.read_bytes()).pieces)
    assert train_tokenizer(str(out), vocab_size=300, threads=2)["sha256"] == a  # same bytes
    train_tokenizer(str(out), vocab_size=300, threads=1)  # the spec records the thread count, the
    assert list(spec.parse_model(model.read_bytes()).pieces) == pieces  # vocabulary does not change


def test_vocabulary_bounds_fail_fast(tmp_path):
    out = make_build(tmp_path / "a", tokenize=False)
    with pytest.raises(TokenizerError, match="uint16"):
        train_tokenizer(str(out), vocab_size=70000)
    with pytest.raises(TokenizerError, match="vocab"):
        train_tokenizer(str(out), vocab_size=5000)  # more pieces than the tiny corpus can give


# --- the sample -------------------------------------------------------------------------------


def test_sample_follows_the_mixture_weights(tmp_path):
    out = make_build(tmp_path / "a", n_docs={"c4": 400, "books": 400}, tokenize=False)
    m = load_build(str(out))
    q = quotas(m, 4000)
    assert q == {"c4": 3000, "books": 1000}  # weights 0.75 / 0.25
    assert quotas(m, None) == {"c4": None, "books": None}
    entry = train_tokenizer(str(out), vocab_size=300, sample_bytes=4000, threads=1)
    got = entry["sample"]["bytes"]
    longest = max(len(f"{s} document number 399. ") * 5 for s in ("c4", "books"))
    for s in ("c4", "books"):
        assert q[s] <= got[s] <= q[s] + longest  # a source stops at its quota
    assert entry["sample"]["documents"]["c4"] < 400  # sampled, not the whole source


def test_long_lines_are_cut_at_whitespace_under_the_sentence_limit():
    line = ("word " * 2000).strip()
    parts = split_long_line(line, 4192)
    assert "".join(parts) == line and all(len(p.encode()) <= 4192 for p in parts) and len(parts) == 3
    assert all(p.startswith(" ") or i == 0 for i, p in enumerate(parts))
    dense = "字" * 3000  # 9,000 bytes, no whitespace: cut on character boundaries
    parts = split_long_line(dense, 4192)
    assert "".join(parts) == dense and all(len(p.encode()) <= 4192 for p in parts)
    assert split_long_line("short") == ["short"]


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["trained", "llama"])
def test_lossless_round_trip_of_every_real_document(real_build, which):
    import sentencepiece as spm

    model = real_build / "tokenizer" / "tokenizer.model" if which == "trained" else LLAMA_MODEL
    sp = spm.SentencePieceProcessor(model_file=str(model))
    texts = _texts(real_build)
    assert len(texts) > 1000
    ids = sp.encode(texts)
    assert sp.decode(ids) == texts
    byte_ids = {i for i in range(sp.get_piece_size()) if sp.is_byte(i)}
    assert sum(1 for doc in ids for t in doc if t in byte_ids) > 0  # byte fallback was exercised
    langs = {r["lang"] for r in __import__("helpers").shard_records(str(real_build), "wikipedia")}
    assert {"en", "bg", "zh"} <= langs


@pytest.mark.parametrize("which", ["trained", "llama"])
def test_numbers_split_into_single_digits(real_build, which):
    import sentencepiece as spm

    model = real_build / "tokenizer" / "tokenizer.model" if which == "trained" else LLAMA_MODEL
    sp = spm.SentencePieceProcessor(model_file=str(model))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_byte(i)]
    assert not [p for p in pieces if sum(c.isdigit() for c in p) > 1]
    assert [p for p in sp.encode("in 2023, 1400000 tokens", out_type=str) if p.strip("▁").isdigit()] == list(
        "2023"
    ) + list("1400000")


# --- corral tokenize -----------------------------------------------------------------------------


class FakeSP:
    """Stands in for SentencePiece: a text's ids are its bytes, 1 (BOS) and 2 (EOS) around them as
    asked; notes how many encodes run at once."""

    def __init__(self, pause: float = 0.0):
        self.pause, self.running, self.most, self.calls = pause, 0, 0, []
        self.lock = threading.Lock()

    def _ids(self, texts, add_bos, add_eos):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.calls.append(len(texts))
        time.sleep(self.pause)
        with self.lock:
            self.running -= 1
        return [[1] * add_bos + list(t) + [2] * add_eos for t in texts]

    def Encode(self, texts, num_threads=-1, add_bos=False, add_eos=False, return_type=int):
        ids = self._ids(texts, add_bos, add_eos)
        return [np.array(d, dtype=np.int32) for d in ids] if return_type == "numpy" else ids

    encode = Encode


class OlderFakeSP(FakeSP):
    """A SentencePiece whose encode gives Python lists only (no return_type)."""

    def Encode(self, texts, num_threads=-1, add_bos=False, add_eos=False):
        return self._ids(texts, add_bos, add_eos)

    encode = Encode


def _doc_batches(texts: list[str], per_batch: int) -> list[pa.RecordBatch]:
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    return [pa.RecordBatch.from_pylist(rows[i : i + per_batch], schema) for i in range(0, len(rows), per_batch)]


def test_chunks_cover_the_documents_in_order_within_the_budget():
    sizes = np.array([3, 4, 0, 10, 2, 2, 2, 9])
    ranges = encode.chunk_ranges(sizes, 6)
    assert ranges == [(0, 1), (1, 3), (3, 4), (4, 7), (7, 8)]  # a document over the budget goes alone
    assert [r for a, b in ranges for r in range(a, b)] == list(range(len(sizes)))
    assert encode.chunk_ranges(np.array([], dtype=np.int64), 6) == []
    assert encode.chunk_ranges(sizes, 100) == [(0, 8)]


@pytest.mark.parametrize("fake", [FakeSP, OlderFakeSP])
@pytest.mark.parametrize("threads", [1, 3])
def test_encode_batches_gives_each_document_its_ids_with_bos_and_eos_in_order(monkeypatch, fake, threads):
    monkeypatch.setattr(encode, "CHUNK_BYTES", 8)  # many chunks, and documents longer than one
    texts = ["ab", "", "cdefghijklmn", "ü", "o" * 7, "pq", "r", "", "stuvwxyz0123"]
    batches = _doc_batches(texts, 4)
    for bos, eos in [(True, True), (False, True), (False, False)]:
        sp = fake()
        ids, lengths, values = encode.encode_batches(sp, iter(batches), threads, bos=bos, eos=eos)
        expected = [[1] * bos + list(t.encode()) + [2] * eos for t in texts]
        assert ids.to_pylist() == [f"d{i}" for i in range(len(texts))] and ids.type == pa.string()
        assert lengths.tolist() == [len(e) for e in expected]
        assert values.dtype == np.uint16 and values.tolist() == [v for e in expected for v in e]
        assert len(sp.calls) > len(batches)  # chunked below a batch
    ids, lengths, values = encode.encode_batches(FakeSP(), iter([]), threads, bos=True, eos=True)
    assert len(ids) == lengths.size == values.size == 0 and values.dtype == np.uint16


def test_encodes_at_once_are_held_to_the_shared_cores(monkeypatch):
    monkeypatch.setattr(encode, "CHUNK_BYTES", 4)
    batches = _doc_batches(["abcd"] * 12, 6)
    sp = FakeSP(pause=0.02)
    encode.encode_batches(sp, iter(batches), 4, bos=True, eos=True)
    assert sp.most > 1  # the threads encode side by side
    monkeypatch.setattr(encode, "_CORES", threading.BoundedSemaphore(1))
    sp = FakeSP(pause=0.02)
    _, lengths, _ = encode.encode_batches(sp, iter(batches), 4, bos=True, eos=True)
    assert sp.most == 1 and lengths.tolist() == [6] * 12


def test_tokenize_with_llamas_model_gives_sentencepieces_ids_and_hf_agrees(real_build, tmp_path):
    import sentencepiece as spm

    out = tmp_path / "out"
    shutil.copytree(real_build, out, ignore=shutil.ignore_patterns("tokens", "_tokenize", "tokenizer"))
    adopt_tokenizer(str(out), str(LLAMA_MODEL))
    manifest, counts = tokenize_build(str(out), Executor(workers=2))
    assert counts == {"shards": 5, "resumed": 0, "tokenized": 5}
    sp = spm.SentencePieceProcessor(model_file=str(LLAMA_MODEL))
    from helpers import shard_records

    from corral.tokenize.hf_export import export_hf

    export_hf(str(LLAMA_MODEL), str(tmp_path / "hf"))
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    total = 0
    for source, sb in manifest.sources.items():
        records = shard_records(str(out), source)
        ts = read_token_shard(str(out / sb.token_shards[0]["path"]))
        assert ts.ids.to_pylist() == [r["id"] for r in records]
        texts = [r["text"] for r in records]
        direct = sp.encode(texts)
        via_hf = hf(texts, add_special_tokens=False)["input_ids"]
        for i, (ids, hf_ids) in enumerate(zip(direct, via_hf)):
            assert ts.document(i).tolist() == [1] + ids + [2]
            assert hf_ids == ids
        total += sum(len(d) + 2 for d in direct)
        assert sb.tokens == sum(len(d) + 2 for d in direct)
    assert total > 1_000_000
    assert verify_build(str(out)).ok
    assert load_build(str(out)).settings["tokenize"]["bos"] is True


def test_hf_export_of_the_trained_model_encodes_as_sentencepiece(real_build, tmp_path):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    assert main(["tokenizer", "export", str(real_build), "--to", str(tmp_path / "hf")]) == 0
    assert {p.name for p in (tmp_path / "hf").iterdir()} == {
        "tokenizer.model",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
    hf = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    sp = spm.SentencePieceProcessor(model_file=str(real_build / "tokenizer" / "tokenizer.model"))
    texts = _texts(real_build)
    assert hf(texts, add_special_tokens=False)["input_ids"] == sp.encode(texts)
    assert hf("Hello world")["input_ids"][0] == 1  # BOS added, as LLaMA's tokenizer does
    assert hf.decode(hf(texts[0], add_special_tokens=False)["input_ids"]) == texts[0]


def test_tokenize_resumes_per_shard(tmp_path):
    out = make_build(tmp_path / "a", tokenize=False)
    train_tokenizer(str(out), vocab_size=300, threads=1)
    m, counts = tokenize_build(str(out))
    assert counts["tokenized"] == counts["shards"] == 4 and verify_build(str(out)).ok
    first = {s: list(sb.token_shards) for s, sb in m.sources.items()}
    m, counts = tokenize_build(str(out))
    assert counts == {"shards": 4, "resumed": 4, "tokenized": 0}
    assert {s: sb.token_shards for s, sb in m.sources.items()} == first
    victim = out / first["c4"][1]["path"]
    victim.write_bytes(victim.read_bytes()[:-10])  # a damaged token shard is redone
    m, counts = tokenize_build(str(out))
    assert counts == {"shards": 4, "resumed": 3, "tokenized": 1} and verify_build(str(out)).ok
    assert {s: sb.token_shards for s, sb in m.sources.items()} == first
    train_tokenizer(str(out), vocab_size=290, threads=1)  # another tokenizer: everything is redone
    m, counts = tokenize_build(str(out))
    assert counts["tokenized"] == 4 and verify_build(str(out)).ok


def test_token_shards_are_the_same_bytes_whatever_the_workers_and_threads(tmp_path, monkeypatch):
    import sentencepiece as spm
    from helpers import shard_records

    monkeypatch.setattr(encode, "CHUNK_BYTES", 64)  # several chunks per batch (inherited by forked workers)
    out = make_build(tmp_path / "a", tokenize=False)
    train_tokenizer(str(out), vocab_size=300, threads=1)
    runs = []
    for how, threads in [(None, None), (None, 1), (Executor(workers=2), None), (Executor(workers=2), 3)]:
        shutil.rmtree(out / "tokens", ignore_errors=True)
        shutil.rmtree(out / "_tokenize", ignore_errors=True)
        m, _ = tokenize_build(str(out), how, threads=threads)
        runs.append({s: [(t["path"], t["sha256"]) for t in sb.token_shards] for s, sb in m.sources.items()})
    assert all(r == runs[0] for r in runs) and verify_build(str(out)).ok
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer" / "tokenizer.model"))
    for source, sb in m.sources.items():
        records = shard_records(str(out), source)  # the document shards in order, as the token shards
        docs = [read_token_shard(str(out / t["path"])) for t in sb.token_shards]
        got = [d.document(i).tolist() for d in docs for i in range(len(d.ids))]
        assert got == [[sp.bos_id()] + ids + [sp.eos_id()] for ids in sp.encode([r["text"] for r in records])]


def test_tokenize_refuses_a_tokenizer_without_the_bos_the_manifest_asks_for(tmp_path):
    out = make_build(tmp_path / "a", tokenize=False)
    train_tokenizer(str(out), vocab_size=300, threads=1)
    m = spec.parse_model((out / "tokenizer" / "tokenizer.model").read_bytes())
    m.trainer_spec.bos_piece = "<none>"  # no control piece of that name: bos_id() is -1
    model = tmp_path / "no-bos.model"
    model.write_bytes(m.SerializeToString())
    adopt_tokenizer(str(out), str(model))
    with pytest.raises(TokenizerError, match="tokenizer.bos"):
        tokenize_build(str(out))


def test_tokenize_refuses_a_vocabulary_beyond_uint16(tmp_path):
    _need_shared()
    out = make_build(tmp_path / "a", tokenize=False)
    m = spec.parse_model(LLAMA_MODEL.read_bytes())
    for i in range(spec.UINT16_VOCAB + 1 - len(m.pieces)):
        p = m.pieces.add()
        p.piece, p.score = f"extra{i}", -1e6 - i
    big = tmp_path / "big.model"
    big.write_bytes(m.SerializeToString())
    with pytest.raises(TokenizerError, match="uint16"):
        adopt_tokenizer(str(out), str(big))


def test_cli_tokenizer_and_tokenize(tmp_path, capsys):
    out = make_build(tmp_path / "a", tokenize=False)
    assert main(["tokenize", str(out)]) == 2
    assert "corral tokenizer train" in capsys.readouterr().err
    assert main(["tokenizer", "train", str(out), "--vocab-size", "300", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "300 pieces" in printed and "tokenizer/hf" in printed
    assert (out / "tokenizer" / "hf" / "tokenizer.json").is_file()
    assert main(["tokenize", str(out)]) == 0
    assert "4 shard(s) tokenized" in capsys.readouterr().out
    assert tokenizer_path(str(out)).endswith("tokenizer/tokenizer.model")
    assert main(["tokenizer", "train", str(out), "--tokenizer", str(tmp_path / "missing.model")]) == 2
    assert main(["tokenizer", "train", str(out), "--sample-bytes", "lots"]) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"]["c4"]["tokens"] > 0

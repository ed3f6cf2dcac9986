"""What a user meets: used folders refused and left byte-identical, one-line errors with exit code 2
(usage, configuration) or 1 (failures), Ctrl-C and SIGTERM that stop with 130/143 and keep what is
done, and a resumed run after SIGTERM that continues to the losses of an uninterrupted one."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHARED_DATA, make_build
from train_helpers import logged_losses

from corral.cli import ON_INTERRUPT, main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_MANIFEST = ROOT / "manifests" / "sample.yaml"


def corral(*args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "corral.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its sha256 (what must stay byte-identical)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def one_line(res: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The command failed with `code` and said so in one line of stderr, with no traceback."""
    err = res.stderr.strip()
    assert res.returncode == code, (res.returncode, res.stdout[-1500:], err[-3000:])
    assert "Traceback" not in err and "ChildFailedError" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("corral") or not ln.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1, err[-3000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


TINY = ["--model", "tiny", "--seq-len", "32", "--micro-batch", "2"]


# --- used folders ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_build(tmp_path_factory) -> tuple[Path, Path]:
    from corral.sample import write_sample

    tmp = tmp_path_factory.mktemp("sb")
    write_sample(str(tmp / "sample"))
    res = corral("build", str(SAMPLE_MANIFEST), "--out", str(tmp / "build"), env={"CORRAL_SAMPLE": str(tmp / "sample")})
    assert res.returncode == 0, res.stderr[-3000:]
    return tmp, tmp / "build"


def test_a_build_folder_of_another_mixture_is_refused_untouched(sample_build, tmp_path):
    tmp, out = sample_build
    other = tmp_path / "other.yaml"
    other.write_text(SAMPLE_MANIFEST.read_text().replace("name: sample", "name: other", 1))
    before = tree(out)
    res = corral("build", str(other), "--out", str(out), env={"CORRAL_SAMPLE": str(tmp / "sample")})
    one_line(res, 2, "holds build 'sample'", "--overwrite", "new --out")
    assert tree(out) == before
    stray = tmp_path / "mine"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    res = corral("build", str(other), "--out", str(stray), env={"CORRAL_SAMPLE": str(tmp / "sample")})
    one_line(res, 2, "files corral did not write", "notes.txt")
    assert (stray / "notes.txt").read_text() == "mine" and len(list(stray.iterdir())) == 1


def test_overwrite_clears_another_build_and_a_dropped_source_leaves_no_stale_shards(sample_build, tmp_path):
    import shutil

    from corral.manifests.verify import verify_build

    tmp, built = sample_build
    out = tmp_path / "build"
    shutil.copytree(built, out)
    small = tmp_path / "small.yaml"
    text = SAMPLE_MANIFEST.read_text()
    small.write_text(text.replace("name: sample", "name: small", 1))
    env = {"CORRAL_SAMPLE": str(tmp / "sample")}
    res = corral("build", str(small), "--out", str(out), "--overwrite", env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((out / "manifest.json").read_text())["mixture"]["name"] == "small"
    # the same mixture name without books: its shards go, and verify sees no stray shard
    lines = small.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "books:")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("  ") and not lines[i].startswith("    "))
    rest = "\n".join(lines[:start] + lines[end:]) + "\n"
    small.write_text(rest.replace("weight: 0.67", "weight: 0.715", 1))  # books' 4.5% to CommonCrawl
    res = corral("build", str(small), "--out", str(out), env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not (out / "docs" / "books").exists()
    report = verify_build(str(out))
    assert report.ok and not report.warnings, report.summary()


def test_a_used_run_folder_is_refused_untouched_and_resume_checks_write_nothing(tokenized, tmp_path):
    run = tmp_path / "run"
    res = corral("train", str(tokenized), *TINY, "--steps", "4", "--run-dir", str(run))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "finished: step 4 of 4" in res.stdout and "export" in res.stdout
    before = tree(run)
    one_line(
        corral("train", str(tokenized), *TINY, "--steps", "4", "--run-dir", str(run)),
        2,
        "holds another run",
        "--resume",
        "--overwrite",
    )
    one_line(
        corral("train", str(tokenized), *TINY, "--steps", "8", "--run-dir", str(run), "--resume"),
        2,
        "steps 4 → 8",
        "--reschedule",
    )
    one_line(
        corral(
            "train",
            str(tokenized),
            "--model",
            "small",
            "--seq-len",
            "32",
            "--micro-batch",
            "2",
            "--steps",
            "4",
            "--run-dir",
            str(run),
            "--resume",
        ),
        2,
        "model 'tiny' → 'small'",
    )
    assert tree(run) == before  # config.json included: a refused resume rewrites nothing
    res = corral("train", str(tokenized), *TINY, "--steps", "4", "--run-dir", str(run), "--resume")
    assert res.returncode == 0 and "finished at step 4 of 4" in res.stderr
    res = corral("train", str(tokenized), *TINY, "--steps", "6", "--run-dir", str(run), "--resume", "--reschedule")
    assert res.returncode == 0, res.stderr[-3000:]
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    res = corral("train", str(tokenized), *TINY, "--steps", "2", "--run-dir", str(run), "--overwrite")
    assert res.returncode == 0, res.stderr[-3000:]
    assert [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000001", "step-00000002"]
    fresh = tmp_path / "fresh"
    res = corral("train", str(tokenized), *TINY, "--steps", "2", "--run-dir", str(fresh), "--resume")
    assert res.returncode == 0 and "holds no complete checkpoint: starting at step 0" in res.stderr


# --- one-line errors --------------------------------------------------------------------------------


def test_training_mistakes_are_one_line_before_launch(tmp_path, tokenized):
    bare = make_build(tmp_path / "bare", tokenize=False)
    run = str(tmp_path / "r")
    one_line(corral("train", str(bare), "--run-dir", run), 2, "no tokenizer", "corral tokenizer train")
    from corral.tokenize.tokenizer import train_tokenizer

    train_tokenizer(str(bare), vocab_size=300, threads=1)
    one_line(corral("train", str(bare), "--run-dir", run), 2, "no token shards", "corral tokenize")
    one_line(corral("train", str(tmp_path / "nowhere"), "--run-dir", run), 2, "no build manifest")
    one_line(corral("train", str(tokenized), *TINY, "--attn", "xformers", "--run-dir", run), 2, "CUDA only")
    one_line(
        corral("train", str(tokenized), "--model", "65B", "--run-dir", run),
        2,
        "65B",
        "available",
        "--skip-memory-check",
    )
    one_line(corral("train", str(tokenized), *TINY, "--batch-tokens", "100", "--run-dir", run), 2, "batch_tokens")
    res = corral("train", str(tokenized), "--micro-batch", "0", "--run-dir", run)
    assert res.returncode == 2 and "0 is below 1" in res.stderr and "Traceback" not in res.stderr
    res = corral("train", str(tokenized), "--nproc", "0", "--run-dir", run)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line(corral("train", str(tokenized), "--run-dir", str(afile)), 2, "is a file")
    assert not (tmp_path / "r").exists()  # nothing was written by any of them


def test_build_and_dedup_into_a_file_are_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line(corral("build", str(SAMPLE_MANIFEST), "--out", str(afile)), 2, "is a file")
    one_line(corral("dedup", str(tmp_path), "--out", str(afile)), 2, "is a file")


def test_verify_reports_a_corrupted_zstd_shard(tmp_path):
    from corral.tokenize.encode import tokenize_build
    from corral.tokenize.tokenizer import train_tokenizer

    out = make_build(tmp_path / "b", tokenize=False)
    train_tokenizer(str(out), vocab_size=300, threads=1)
    tokenize_build(str(out))
    for kind in ("docs", "tokens"):
        shard = sorted((out / kind / "c4").glob("*.arrow"))[0]
        data = bytearray(shard.read_bytes())
        data[len(data) // 3] ^= 0xFF  # one flipped byte inside a compressed body
        shard.write_bytes(bytes(data))
    res = corral("verify", str(out))
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "FAILED" in res.stderr and "c4 document shard docs/c4/" in res.stderr and "sha256" in res.stderr
    assert "token shard tokens/c4/" in res.stderr


# --- interrupts ------------------------------------------------------------------------------------


def _wait_for(predicate, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_ctrl_c_in_build_says_how_to_resume_and_exits_130(tmp_path):
    from corral.sample import write_sample

    write_sample(str(tmp_path / "sample"))
    out = tmp_path / "build"
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.cli", "build", str(SAMPLE_MANIFEST), "--out", str(out), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CORRAL_SAMPLE": str(tmp_path / "sample")},
    )
    _wait_for(lambda: (out / "_build" / "commoncrawl" / "done").is_dir())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "interrupted" in err and "resume" in err
    res = corral("build", str(SAMPLE_MANIFEST), "--out", str(out), env={"CORRAL_SAMPLE": str(tmp_path / "sample")})
    assert res.returncode == 0, res.stderr[-3000:]


def _running_children(pids) -> list[int]:
    """The processes of `pids` still running (a killed one may linger as a zombie until it is reaped)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _ctrl_c(cmd: list[str], started) -> tuple[int, str, list[int]]:
    """Run `corral CMD` in a process group of its own, press Ctrl-C (SIGINT to the whole group, as a
    terminal does) once `started()` says its work is under way; its exit code, stderr and workers."""
    from corral.core.procs import children

    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.cli", *cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _wait_for(lambda: started() or proc.poll() is not None)
    workers = children(proc.pid)
    assert proc.poll() is None, f"{cmd[0]} finished before it was interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err, workers


@pytest.mark.parametrize("runner", ["local", "direct"])
def test_ctrl_c_in_tokenize_and_export_exits_130_in_one_line_five_times(tmp_path, runner):
    """Both run on the engine (the local pool by default, Beam's FnApiRunner with --runner direct):
    Ctrl-C mid-job leaves no worker, exits 130 and says in one line what is kept; a rerun finishes."""
    import shutil

    from corral.tokenize.tokenizer import train_tokenizer

    out = make_build(tmp_path / "b", n_docs={"c4": 3000, "books": 300}, tokenize=False)
    train_tokenizer(str(out), vocab_size=300, threads=1)
    flags = ["--workers", "2", "--runner", runner]
    for attempt in range(5):
        shutil.rmtree(out / "_tokenize", ignore_errors=True)
        code, err, workers = _ctrl_c(["tokenize", str(out), *flags], lambda: any((out / "_tokenize").rglob("*.json")))
        assert code == 130, (attempt, err[-3000:])
        assert err.strip().splitlines() == [f"corral tokenize: interrupted; {ON_INTERRUPT['tokenize']}"], err
        time.sleep(0.5)
        assert not _running_children(workers)
    assert main(["tokenize", str(out)]) == 0
    for attempt in range(5):
        dest = tmp_path / f"export-{attempt}"
        code, err, workers = _ctrl_c(
            ["export", str(out), "--to", str(dest), "--format", "jsonl", *flags],
            lambda dest=dest: any((dest / "_export").rglob("*.json")),
        )
        assert code == 130, (attempt, err[-3000:])
        assert err.strip().splitlines() == [f"corral export: interrupted; {ON_INTERRUPT['export']}"], err
        time.sleep(0.5)
        assert not _running_children(workers)
    assert main(["export", str(out), "--to", str(tmp_path / "export-0"), "--format", "jsonl"]) == 0


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_training_saves_a_checkpoint_that_resumes_to_the_same_losses(tokenized, tmp_path, sig, code):
    base = ["train", str(tokenized), *TINY, "--steps", "40", "--ckpt-every", "1000"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    res = corral(*base, "--run-dir", str(straight))
    assert res.returncode == 0, res.stderr[-3000:]
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.cli", *base, "--run-dir", str(stopped)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    metrics = stopped / "metrics.jsonl"
    _wait_for(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err and "--resume" in err, err[-3000:]
    saved = sorted((stopped / "checkpoints").glob("step-*"))
    assert len(saved) == 1 and (saved[0] / "meta.json").is_file()  # only the signal's checkpoint (every 1000)
    step = int(saved[0].name.split("-")[1])
    assert 5 <= step < 40 and f"{signal.Signals(sig).name} at step {step} of 40" in out
    res = corral(*base, "--run-dir", str(stopped), "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    assert logged_losses(stopped) == logged_losses(straight)


# --- the Hugging Face tokenizer on whitespace --------------------------------------------------------

WHITESPACE = [
    "   ",
    " ",
    " a",
    "a ",
    "a  b",
    "  hello   world  ",
    "\tx\t",
    "\t\tindented\n\tcode",
    "a\n\nb",
    "x\n ",
    "\n",
    " \n \n",
    "trailing   ",
    "   leading",
    "mixed \t \n  runs",
    "",
    "a" + " " * 17 + "b",
]


def _hf_matches_sentencepiece(model: Path, dest: Path) -> None:
    import sentencepiece as spm
    from transformers import AutoTokenizer

    from corral.tokenize.hf_export import export_hf

    export_hf(str(model), str(dest))
    sp = spm.SentencePieceProcessor(model_file=str(model))
    hf = AutoTokenizer.from_pretrained(str(dest))
    for text in WHITESPACE:
        assert hf(text, add_special_tokens=False)["input_ids"] == sp.encode(text), repr(text)
        assert hf(text)["input_ids"] == [sp.bos_id()] + sp.encode(text), repr(text)


def test_hf_tokenizer_equals_sentencepiece_on_whitespace_with_a_trained_model(tmp_path):
    from corral.tokenize.tokenizer import tokenizer_path, train_tokenizer

    out = make_build(tmp_path / "b", tokenize=False)
    train_tokenizer(str(out), vocab_size=300, threads=1)
    _hf_matches_sentencepiece(Path(tokenizer_path(str(out))), tmp_path / "hf")


def test_hf_tokenizer_equals_sentencepiece_on_whitespace_with_llamas_model(tmp_path):
    model = SHARED_DATA / "tokenizer" / "tokenizer.model"
    if not model.is_file():
        pytest.skip(f"LLaMA's tokenizer.model not present at {model} (only on the project's own machines)")
    _hf_matches_sentencepiece(model, tmp_path / "hf")


# --- corral dedup's outputs ---------------------------------------------------------------------------


def test_dedup_lists_removed_ids_and_refuses_another_jobs_folder(tmp_path, capsys):
    import pyarrow.ipc as ipc

    docs = tmp_path / "in.jsonl"
    base = "the quick brown fox jumps over the lazy dog and runs far away into the woods " * 4
    rows = [{"id": f"d{i}", "text": base + ("" if i < 3 else f" unique {i} " * 30)} for i in range(6)]
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    out = tmp_path / "out"
    assert main(["dedup", str(docs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "removed.jsonl" in printed and "errors.jsonl" in printed
    removed = [json.loads(ln) for ln in (out / "removed.jsonl").read_text().splitlines()]
    table = ipc.open_file(str(out / "clusters.arrow")).read_all().to_pylist()
    assert removed and sorted(r["id"] for r in removed) == sorted(r["id"] for r in table if not r["representative"])
    assert all(r["duplicate_of"] in {t["cluster"] for t in table} for r in removed)
    assert json.loads((out / "errors.jsonl").read_text().splitlines()[0])["reason"] == "bad_record"
    before = tree(out)
    assert main(["dedup", str(docs), "--out", str(out), "--threshold", "0.5"]) == 2
    assert "other inputs or settings" in capsys.readouterr().err and tree(out) == before
    assert main(["dedup", str(docs), "--out", str(out), "--threshold", "0.5", "--overwrite"]) == 0


# --- the small rules behind them ----------------------------------------------------------------------


def test_memory_estimate_counts_the_models_parameters_and_shards_the_state():
    import torch

    from corral.launch import memory
    from corral.train.metrics import count
    from corral.train.model import Transformer, model_args

    for name in ("tiny", "7B"):
        a = model_args(name)
        with torch.device("meta"):
            assert memory.num_params(a) == Transformer(a).num_params(), name
    a = model_args("7B")
    one = memory.estimate(a, 8, 2048, 1, ac="none", act_bytes=2, attention_probs=False)
    many = memory.estimate(a, 8, 2048, 64, ac="none", act_bytes=2, attention_probs=False)
    assert one.state_bytes == 16 * one.params and many.state_bytes == one.state_bytes // 64
    assert one.per_rank > 100 * 2**30
    full = memory.estimate(a, 8, 2048, 64, ac="full", act_bytes=2, attention_probs=False)
    assert full.activation_bytes < many.activation_bytes / 10  # full AC keeps each block's input only
    assert count(6_738_415_616) == "6.7B" and count(618_816) == "619K"


def test_a_tally_keeps_a_few_short_examples_per_drop_reason():
    from corral.core.outcome import DROPPED, apply_rule, kept
    from corral.pipeline.rounds.stage import EXAMPLE_CHARS, EXAMPLES_PER_REASON, Tally

    t = Tally()
    for i in range(EXAMPLES_PER_REASON + 2):
        o = apply_rule(kept({"source": "c4", "id": f"d{i}", "text": "x" * (EXAMPLE_CHARS + 50)}), lambda r: "too_short")
        t.add(o)
    t.reason(DROPPED, "badword", 1, example=("b1", "a bad word"))
    assert [e[0] for e in t.examples["too_short"]] == [f"d{i}" for i in range(EXAMPLES_PER_REASON)]
    assert {len(e[1]) for e in t.examples["too_short"]} == {EXAMPLE_CHARS}
    assert t.examples["badword"] == [["b1", "a bad word"]]
    assert ["dropped", "too_short", "", EXAMPLES_PER_REASON + 2] in t.rows()

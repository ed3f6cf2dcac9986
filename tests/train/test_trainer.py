"""corral.train.trainer under `corral train`: exact resume, refusals, non-finite losses, damaged
checkpoints, a killed run, compiled blocks, and a real build's falling validation loss."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from train_helpers import logged_losses

from corral.train.config import TrainConfig


@pytest.mark.parametrize("flags", [[], ["--doc-mask"]], ids=["packed", "doc-mask"])
def test_resume_continues_the_same_run_exactly(tmp_path, tokenized, flags):
    common = [
        "-m",
        "corral.cli",
        "train",
        str(tokenized),
        "--model",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch",
        "2",
        "--steps",
        "8",
        *flags,
    ]
    straight, split = tmp_path / "straight", tmp_path / "split"
    res = subprocess.run(
        [sys.executable, *common, "--run-dir", str(straight), "--nproc", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    res = subprocess.run(
        [sys.executable, *common, "--stop-at", "4", "--run-dir", str(split), "--nproc", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert not (split / "export").exists()  # not finished: no export yet
    res = subprocess.run(
        [sys.executable, *common, "--run-dir", str(split), "--nproc", "2", "--resume"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "resumed from" in res.stderr
    a, b = logged_losses(straight), logged_losses(split)
    assert [r[0] for r in b] == list(range(1, 9))
    assert a == b  # identical losses and tokens per source, step by step


def test_resume_against_another_build_is_refused(tmp_path, tokenized):
    import shutil

    run = tmp_path / "run"
    base = [
        sys.executable,
        "-m",
        "corral.cli",
        "train",
        "--model",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch",
        "2",
        "--steps",
        "2",
        "--run-dir",
        str(run),
    ]
    assert subprocess.run([*base[:4], str(tokenized), *base[4:]], capture_output=True, timeout=300).returncode == 0
    other = tmp_path / "other"
    shutil.copytree(tokenized, other)
    m = json.loads((other / "manifest.json").read_text())
    m["mixture"]["description"] = "changed"
    (other / "manifest.json").write_text(json.dumps(m))
    res = subprocess.run(
        [*base[:4], str(other), *base[4:], "--resume", "--steps", "3"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode != 0 and "same build" in res.stderr


def test_non_finite_loss_skips_the_update(tmp_path, tokenized, monkeypatch):
    from corral.train.trainer import NonFiniteError, Trainer

    monkeypatch.setenv("MASTER_PORT", str(21000 + os.getpid() % 5000))
    t = Trainer(
        TrainConfig(out=str(tokenized), model="tiny", seq_len=32, micro_batch=2, steps=5, run_dir=str(tmp_path / "r"))
    )
    try:
        with torch.no_grad():
            t.model.output.weight.to_local().fill_(float("nan"))
        before = t.model.layers[0].attention.wq.weight.to_local().clone()
        row = t.train_step()
        assert row["skipped"] == 1 and not np.isfinite(row["loss"])
        assert torch.equal(before, t.model.layers[0].attention.wq.weight.to_local())
        t.cfg.nonfinite = "stop"
        with pytest.raises(NonFiniteError):
            t.train_step()
    finally:
        torch.distributed.destroy_process_group()


def test_corral_train_on_a_real_build_lowers_validation_loss(tmp_path, real_build):
    run = tmp_path / "run"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral.cli",
            "train",
            str(real_build),
            "--model",
            "tiny",
            "--run-dir",
            str(run),
            "--steps",
            "300",
            "--seq-len",
            "128",
            "--micro-batch",
            "8",
            "--lr",
            "3e-3",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 300 and {
        "step",
        "loss",
        "lr",
        "grad_norm",
        "tokens_per_s",
        "mfu",
        "memory_mb",
        "tokens_seen",
    } <= set(rows[0])
    vals = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    first, last = vals[0][1], vals[-1][1]
    assert set(first) == {"c4", "wikipedia", "books", "arxiv", "stackexchange"}
    assert sum(last.values()) / 5 < sum(first.values()) / 5 - 0.5
    assert (run / "export" / "hf" / "model.safetensors").is_file()
    assert json.loads((run / "config.json").read_text())["steps"] == 300
    assert "step 300/300" in res.stdout


def test_a_damaged_checkpoint_falls_back_to_the_one_before(tmp_path, tokenized):
    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ckpt_every: 3\nkeep: 2\nexport: false\n")
    base = [
        sys.executable,
        "-m",
        "corral.cli",
        "train",
        str(tokenized),
        "--model",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch",
        "2",
        "--run-dir",
        str(run),
        "--config",
        str(cfg),
    ]
    assert subprocess.run([*base, "--steps", "6"], capture_output=True, timeout=300).returncode == 0
    newest = run / "checkpoints" / "step-00000006"
    for f in newest.glob("*.distcp"):
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])  # truncated
    res = subprocess.run(
        [*base, "--steps", "8", "--resume", "--reschedule"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "cannot be loaded" in res.stderr and "step-00000003 (step 3)" in res.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
    rank_file = run / "checkpoints" / "step-00000008" / "rank-0.pt"
    torch.load(rank_file, weights_only=True)  # RNG and loader state load without unpickling objects


def test_a_run_killed_mid_training_resumes_to_the_same_losses(tmp_path, tokenized):
    import signal
    import time

    cfg = tmp_path / "c.yaml"
    cfg.write_text("ckpt_every: 3\nkeep: 3\nexport: false\n")
    base = [
        sys.executable,
        "-m",
        "corral.cli",
        "train",
        str(tokenized),
        "--model",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch",
        "2",
        "--steps",
        "30",
        "--nproc",
        "2",
        "--config",
        str(cfg),
    ]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    res = subprocess.run([*base, "--run-dir", str(straight)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    proc = subprocess.Popen(
        [*base, "--run-dir", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "step-00000006" / "meta.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks, at once
    proc.wait()
    rows = (killed / "metrics.jsonl").read_text().splitlines()
    assert 6 <= len(rows) < 30  # it really died part-way
    res = subprocess.run([*base, "--run-dir", str(killed), "--resume"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert logged_losses(killed) == logged_losses(straight)


def test_compiled_blocks_train_like_eager_ones(tmp_path, tokenized):
    base = [
        sys.executable,
        "-m",
        "corral.cli",
        "train",
        str(tokenized),
        "--model",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch",
        "2",
        "--steps",
        "3",
    ]
    for name, extra in (("eager", []), ("compiled", ["--compile", "--ac", "selective"])):
        res = subprocess.run(
            [*base, "--run-dir", str(tmp_path / name), *extra], capture_output=True, text=True, timeout=600
        )
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    eager, compiled = logged_losses(tmp_path / "eager"), logged_losses(tmp_path / "compiled")
    assert [r[0] for r in compiled] == [1, 2, 3]
    for (_, a, seen_a), (_, b, seen_b) in zip(eager, compiled):
        assert abs(a - b) < 1e-4 and seen_a == seen_b

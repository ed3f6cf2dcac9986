"""`corral demo`: the whole recipe on the embedded sample, one stage after another.

sample (`corral sample`) → build (all seven sources in one build, the CommonCrawl side models
trained inside it) → tokenizer (LLaMA's SentencePiece spec) → tokenize → inspect (Table 1 of the
build) → train (a `tiny` LLaMA on CPU under torchrun) → report (`report.html`). Every stage prints a
line when it starts and one with its counts and time when it ends; the last lines say where the
build, the checkpoint and the report are.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

DEMO_STEPS = 300  # optimizer steps of the demo's tiny model (a few minutes on 2 cores)
DEMO_SEQ_LEN = 128  # context of the demo's model
DEMO_MICRO_BATCH = 8
DEMO_LR = 3e-3  # a tiny model learns at a higher rate than the paper's sizes
STAGES = ("sample", "build", "tokenizer", "tokenize", "inspect", "train", "report")


class _Progress:
    def __init__(self, out=sys.stdout):
        self.out, self.t0, self.i = out, time.perf_counter(), 0

    def start(self, name: str, what: str) -> float:
        self.i += 1
        print(f"[demo {self.i}/{len(STAGES)}] {name}: {what} …", file=self.out, flush=True)
        return time.perf_counter()

    def done(self, name: str, started: float, summary: str) -> None:
        dt = time.perf_counter() - started
        print(
            f"[demo {self.i}/{len(STAGES)}] {name}: {summary} ({dt:.1f} s; {time.perf_counter() - self.t0:.0f} s "
            f"in all)",
            file=self.out,
            flush=True,
        )


def run_demo(out_dir: str = "demo", steps: int = DEMO_STEPS, nproc: int = 1) -> dict[str, str]:
    """Run every stage into `out_dir` (sample/, build/, run/); returns the paths it made."""
    from corral.manifests.build_manifest import load_build
    from corral.manifests.mixture import shipped_manifest
    from corral.manifests.render import inspect_data, render_table
    from corral.pipeline.build import build
    from corral.pipeline.sources.registry import SOURCES
    from corral.report.html import write_report
    from corral.sample import write_sample
    from corral.tokenize.encode import tokenize_build
    from corral.tokenize.tokenizer import tokenizer_path, train_tokenizer

    out = Path(out_dir).resolve()
    sample, build_out, run = out / "sample", out / "build", out / "run"
    p = _Progress()

    t = p.start("sample", f"writing the raw sample of all seven sources to {sample}")
    counts = write_sample(str(sample))
    p.done("sample", t, ", ".join(f"{k} {v}" for k, v in counts.items()) + " raw records")

    t = p.start("build", "the phases of all seven sources, on this machine")
    os.environ["CORRAL_SAMPLE"] = str(sample)
    manifest = build(shipped_manifest("sample.yaml"), str(build_out))
    kept = {name: sb.funnel.kept for name, sb in manifest.sources.items()}
    p.done("build", t, ", ".join(f"{k} {v}" for k, v in kept.items()) + " documents kept")

    t = p.start("tokenizer", "SentencePiece BPE with LLaMA's trainer spec")
    train_tokenizer(str(build_out), threads=os.cpu_count() or 1)
    p.done("tokenizer", t, tokenizer_path(str(build_out)))

    t = p.start("tokenize", "token shards of every source")
    tokenize_build(str(build_out))
    tokens = {name: sb.tokens for name, sb in load_build(str(build_out)).sources.items()}
    p.done("tokenize", t, ", ".join(f"{k} {v:,}" for k, v in tokens.items() if v) + " tokens")

    t = p.start("inspect", "Table 1 of this build")
    print(render_table(inspect_data(str(build_out), SOURCES)), flush=True)
    p.done("inspect", t, "printed")

    t = p.start("train", f"a tiny LLaMA for {steps} steps on CPU (torchrun, {nproc} process(es))")
    checkpoint = _train(build_out, run, steps, nproc)
    p.done("train", t, f"last checkpoint {checkpoint or 'none'}")

    t = p.start("report", "report.html with the funnels, distributions and training curves")
    report = write_report(str(build_out), run_dir=str(run))
    p.done("report", t, report)

    from corral.train.weights import HF_DIR, export_dir  # torch: imported once the build's workers are done

    paths = {
        "sample": str(sample),
        "build": str(build_out),
        "checkpoint": str(checkpoint or ""),
        "run": str(run),
        "export": os.path.join(export_dir(str(run)), HF_DIR),
        "report": report,
    }
    _say_where(paths)
    return paths


def _say_where(paths: dict[str, str]) -> None:
    print(
        f"\nDone. The build:      {paths['build']}"
        f"\n      the checkpoint: {paths['checkpoint']}"
        f"\n      the export:     {paths['export']} (AutoTokenizer, AutoModelForCausalLM)"
        f"\n      the report:     {paths['report']}",
        flush=True,
    )


def _train(build_out: Path, run: Path, steps: int, nproc: int) -> Path | None:
    """`corral train` of the demo's tiny model, afresh on every run of the demo; its last checkpoint."""
    from corral.train.checkpoint import complete_checkpoints

    flags = {
        "--model": "tiny",
        "--run-dir": run,
        "--steps": steps,
        "--seq-len": DEMO_SEQ_LEN,
        "--micro-batch": DEMO_MICRO_BATCH,
        "--lr": DEMO_LR,
        "--nproc": nproc,
    }
    cmd = [sys.executable, "-m", "corral.cli", "train", str(build_out), "--overwrite"]
    cmd += [str(part) for flag in flags.items() for part in flag]
    train = subprocess.Popen(cmd)
    try:
        code = train.wait()
    except KeyboardInterrupt:  # Ctrl-C reached `corral train` too: let it save its checkpoint first
        train.wait()
        raise
    if code != 0:
        raise RuntimeError(f"corral train exited with {code}")
    found = complete_checkpoints(str(run))
    return Path(found[-1][1]) if found else None

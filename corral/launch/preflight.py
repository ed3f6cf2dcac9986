"""What `corral train` checks before torchrun starts, so that a mistake is one line, not a traceback
from every rank: the build (a manifest, a tokenizer, token shards for every weighted source), the
attention backend on this machine, the memory the run needs against what the host or GPU has, and
the run folder (a new one, a run to resume, or another run that is refused).

Nothing is written here. `prepare_run_dir` clears a folder only when `--overwrite` asked for it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

from corral.core.errors import UsageError
from corral.core.fs import exists as file_exists
from corral.core.fs import join
from corral.launch import memory
from corral.manifests.build_manifest import BuildManifest, BuildManifestError, load_build, manifest_sha256
from corral.train.attention import CUDA_ONLY, NO_CPU_BACKWARD
from corral.train.checkpoint import CKPT_DIR, complete_checkpoints
from corral.train.config import TrainConfig
from corral.train.metrics import count
from corral.train.model import model_args
from corral.train.weights import EXPORT_DIR, HF_DIR, export_dir

# Fields a resumed run must share with its checkpoint (the shapes and the data order) …
SAME_RUN = ("model", "seq_len", "micro_batch", "batch_tokens", "seed", "val_fraction", "doc_mask")
# … and those that change the learning-rate schedule: refused unless --reschedule.
SCHEDULE = ("steps", "lr", "warmup")
SHAPE = ("dim", "n_layers", "n_heads", "vocab_size", "multiple_of")
RUN_FILES = ("config.json", "metrics.jsonl", CKPT_DIR, EXPORT_DIR)  # what marks a folder as a run's


class PreflightError(UsageError):
    """The run cannot start as asked: the message says what to fix."""


@dataclass
class RunPlan:
    """What the launch will do with the run folder."""

    finished: bool = False  # --resume of a run already at its last step, export written
    clear: bool = False  # --overwrite of a used folder
    notes: list[str] = field(default_factory=list)


def check_build(cfg: TrainConfig) -> BuildManifest:
    """The build has a manifest, a tokenizer and token shards for every source with a weight."""
    out = cfg.out
    if not file_exists(join(out, "manifest.json")):
        raise PreflightError(f"{out}: no build manifest (manifest.json) there: build one with `corral build`")
    try:
        manifest = load_build(out)
    except BuildManifestError as e:
        raise PreflightError(str(e)) from e
    tok = manifest.models.get("tokenizer")
    if not tok:
        raise PreflightError(
            f"{out}: the build has no tokenizer: run `corral tokenizer train {out}`, then `corral tokenize {out}`"
        )
    if not file_exists(join(out, tok["path"])):
        raise PreflightError(
            f"{out}: the tokenizer {tok['path']} named in its manifest is missing: "
            f"run `corral tokenizer train {out}` again"
        )
    weighted = {n: sb for n, sb in manifest.sources.items() if sb.weight > 0}
    untokenized = [n for n, sb in weighted.items() if not sb.token_shards]
    if untokenized:
        raise PreflightError(f"{out}: no token shards for {', '.join(untokenized)}: run `corral tokenize {out}`")
    empty = [n for n, sb in weighted.items() if not sb.tokens]
    if empty:
        raise PreflightError(
            f"{out}: {', '.join(empty)} has a mixture weight but no tokens (no documents kept): "
            "give it weight 0 in the manifest, or rebuild with more input"
        )
    missing = [e["path"] for sb in weighted.values() for e in sb.token_shards if not file_exists(join(out, e["path"]))]
    if missing:
        raise PreflightError(
            f"{out}: token shard {missing[0]} is missing ({len(missing)} in all): "
            f"run `corral verify {out}`, then `corral tokenize {out}`"
        )
    return manifest


# Why an attention backend does not train on a CPU (corral.train.attention's CUDA_ONLY and NO_CPU_BACKWARD).
WHY_CUDA = {
    "flex": "PyTorch's flex_attention has no backward on CPU; its forward runs here for evaluation",
    "varlen": "flash attention's varlen kernel",
    "xformers": "xformers has no CPU kernel",
}


def check_backend(cfg: TrainConfig, cuda: bool) -> None:
    """The attention backend can train here: on CUDA for those with no CPU kernel or backward, and
    xformers installed when it is asked for."""
    if not cuda and cfg.attn in (*CUDA_ONLY, *NO_CPU_BACKWARD):
        raise PreflightError(
            f"--attn {cfg.attn} trains on CUDA only ({WHY_CUDA[cfg.attn]}) and this machine has no GPU: use --attn sdpa"
        )
    if cfg.attn == "xformers":
        import importlib.util

        if importlib.util.find_spec("xformers") is None:
            raise PreflightError("--attn xformers: xformers is not installed: pip install -e '.[gpu]'")


def check_memory(cfg: TrainConfig, vocab_size: int, nproc: int, nnodes: int, cuda: bool) -> str:
    """The run's estimated memory against the GPU (per rank) or the host (all ranks of this node);
    returns the one-line estimate."""
    world = nproc * nnodes
    args = model_args(cfg.model, vocab_size=vocab_size)
    bf16 = cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and cuda)
    est = memory.estimate(
        args,
        cfg.micro_batch,
        cfg.seq_len,
        world,
        ac=cfg.ac,
        act_bytes=2 if bf16 else 4,
        attention_probs=not cuda,
        cuda=cuda,
    )
    if cuda:
        have, need, where = memory.gpu_total(), est.per_rank, "each GPU"
    else:
        have, need, where = memory.host_available(), est.per_rank * nproc, "this host"
    line = (
        f"model {cfg.model}: {count(est.params)} parameters; about {memory.gib(need)} on {where} "
        f"({memory.gib(est.state_bytes)} weights, gradients and AdamW state per rank, "
        f"{memory.gib(est.activation_bytes)} activations per micro-batch of {cfg.micro_batch} × {cfg.seq_len})"
    )
    if have is not None and need > have:
        raise PreflightError(
            f"{line}, but {where} has {memory.gib(have)} available: choose a smaller --model or "
            "--micro-batch, add ranks or nodes (FSDP shards the state), turn on --ac full, or pass "
            "--skip-memory-check"
        )
    return line


def _read_meta(path: str) -> dict[str, Any]:
    with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
        return json.load(f)


def _used(run_dir: str) -> list[str]:
    return [n for n in RUN_FILES if os.path.exists(os.path.join(run_dir, n))] if os.path.isdir(run_dir) else []


def _changes(then: dict[str, Any], cfg: TrainConfig, fields: tuple[str, ...]) -> list[str]:
    return [f"{k} {then.get(k)!r} → {getattr(cfg, k)!r}" for k in fields if k in then and then[k] != getattr(cfg, k)]


def _resumable(cfg: TrainConfig, path: str, world: int, reschedule: bool) -> list[str]:
    """Refuse to resume checkpoint `path` under `cfg` unless it is the same run (build, ranks,
    shape, data order); return the schedule changes that --reschedule accepts."""
    meta = _read_meta(path)
    sha = manifest_sha256(cfg.out)
    if meta.get("manifest_sha256") != sha:
        raise PreflightError(
            f"--resume: {path} was trained on another build (manifest sha256 "
            f"{str(meta.get('manifest_sha256'))[:12]}…, this build's {sha[:12]}…): resume with the "
            "same build, or start a new --run-dir"
        )
    if meta.get("world_size") != world:
        raise PreflightError(
            f"--resume: {path} was written by {meta.get('world_size')} rank(s); this launch has "
            f"{world}: resume with the same --nproc × --nnodes"
        )
    then = meta.get("config", {})
    shape = {k: v for k, v in meta.get("model_args", {}).items() if k in SHAPE}
    args = model_args(cfg.model, vocab_size=shape.get("vocab_size", 32000))  # cfg is resolved: a known model
    now = {k: getattr(args, k) for k in shape}
    changed = _changes(then, cfg, SAME_RUN)
    changed += [f"{k} {shape[k]} → {now[k]}" for k in shape if shape[k] != now[k]]
    if changed:
        raise PreflightError(
            f"--resume: {path} is another run's shape or data order ({'; '.join(changed)}): "
            "resume with its settings (RUN/config.json), or start a new --run-dir"
        )
    schedule = _changes(then, cfg, SCHEDULE)
    if schedule and not reschedule:
        raise PreflightError(
            f"--resume: the schedule differs from the checkpoint's ({'; '.join(schedule)}), which "
            "would bend the learning-rate curve mid-run: pass --reschedule to accept it, or resume "
            "with the run's own settings"
        )
    return schedule


def plan_run_dir(cfg: TrainConfig, world: int, overwrite: bool, reschedule: bool) -> RunPlan:
    """Decide what happens to RUN: a new run, a resume, or a refusal naming the choices."""
    run = cfg.run_dir
    used = _used(run)
    if overwrite:
        return RunPlan(clear=bool(used), notes=[f"--overwrite: clearing {run}"] if used else [])
    found = complete_checkpoints(run) if used else []
    if not cfg.resume:
        if used:
            what = f"checkpoints up to step {found[-1][0]}" if found else ", ".join(used)
            raise PreflightError(
                f"--run-dir {run} holds another run ({what}): continue it with --resume, "
                "train into a new --run-dir, or pass --overwrite to clear it"
            )
        return RunPlan()
    if not found:
        note = f"--resume: {run} holds no complete checkpoint: starting at step 0"
        return RunPlan(clear=bool(used), notes=[note])
    step, path = found[-1]
    schedule = _resumable(cfg, path, world, reschedule)
    finished = step >= cfg.steps and (not cfg.export or os.path.isdir(os.path.join(export_dir(run), HF_DIR)))
    notes = [f"--resume: {path} is at step {step} of {cfg.steps}"]
    if schedule:
        notes.append(f"--reschedule: {'; '.join(schedule)} from step {step}")
    if finished:
        notes = [
            f"{run} finished at step {step} of {cfg.steps}: nothing to train (a larger --steps with "
            "--reschedule trains on)"
        ]
    return RunPlan(finished=finished, notes=notes)


def prepare_run_dir(run_dir: str, plan: RunPlan) -> None:
    """Clear what `plan` says to clear (after every check has passed)."""
    if plan.clear:
        for name in RUN_FILES:
            target = os.path.join(run_dir, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)

"""The training run's configuration: defaults per model, a YAML/JSON file, command-line overrides.

The resolved configuration is saved as RUN/config.json and inside every checkpoint's meta.json.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from corral.core.errors import UsageError
from corral.train.attention import BACKENDS
from corral.train.model import CONFIGS
from corral.train.optim import ADAM_EPS, GRAD_CLIP, WARMUP_STEPS, WEIGHT_DECAY
from corral.train.parallel import AC_MODES

# docs/recipe/training.md#model, Table 2: peak learning rate; batch 4M tokens for every paper size.
PAPER_LR = {"7B": 3.0e-4, "13B": 3.0e-4, "33B": 1.5e-4, "65B": 1.5e-4}
PAPER_BATCH_TOKENS = 4 * 1024 * 1024
PAPER_SEQ_LEN = 2048  # LLaMA-1's released context (docs/recipe/training.md#tokenizer: not stated in the paper)
DEFAULT_MICRO_BATCH = 8  # corral's choice off GPUs and for the small shapes
CKPT_EVERY = 200  # corral's choice: the most steps between checkpoints (short runs save every tenth)


class ConfigError(UsageError):
    """A configuration file or flag is wrong: the message names the file and field."""


@dataclass
class TrainConfig:
    out: str = ""  # the build folder (token shards + manifest)
    model: str = "tiny"
    run_dir: str = "run"
    steps: int = 1000
    seq_len: int | None = None  # default: 2048 for paper sizes, the model's max_seq_len otherwise
    micro_batch: int | None = None  # sequences per forward/backward on each rank (default: see resolved)
    batch_tokens: int | None = None  # tokens per optimizer step (all ranks, all micro-batches)
    lr: float | None = None
    warmup: int | None = None  # default: LLaMA's WARMUP_STEPS, capped at a tenth of the steps
    weight_decay: float = WEIGHT_DECAY
    adam_eps: float = ADAM_EPS
    grad_clip: float = GRAD_CLIP
    attn: str = "sdpa"
    doc_mask: bool = False  # mask attention across packed documents
    ac: str | None = None  # activation checkpointing: none | full | selective
    compile: bool | None = None  # torch.compile each block
    replicas: int | None = None  # HSDP replica groups (default: one per node; 1 is plain FSDP)
    async_checkpoint: bool = True  # dcp.async_save: training goes on while a checkpoint is written
    dtype: str = "auto"  # auto: bf16 parameters with fp32 reductions on CUDA, fp32 on CPU
    seed: int = 0
    val_fraction: float = 0.01
    val_every: int = 50
    val_windows: int = 8
    log_every: int = 10
    ckpt_every: int | None = None  # default: every tenth of the run, at most every 200 steps
    keep: int = 2
    nonfinite: str = "skip"  # skip | stop: a non-finite loss or gradient norm
    resume: bool = False
    stop_at: int | None = None  # leave after this step with a checkpoint (time-limited jobs; resume later)
    export: bool = True

    def resolved(self, world: int) -> TrainConfig:
        """Fill the defaults that depend on the model and the world size; check every field. What the
        config leaves open of micro-batch, activation checkpointing and compile is micro-batch 8, no
        checkpointing, eager (on GPUs, `corral train` first fills them with the setting that fits a
        paper size: corral.launch.plan.fitted)."""
        c = TrainConfig(**asdict(self))
        if c.model not in CONFIGS:
            raise ConfigError(f"model: {c.model!r} is not one of {', '.join(CONFIGS)}")
        paper = c.model in PAPER_LR
        c.seq_len = c.seq_len or (PAPER_SEQ_LEN if paper else CONFIGS[c.model].get("max_seq_len", 2048))
        c.micro_batch = c.micro_batch or DEFAULT_MICRO_BATCH
        c.ac = c.ac or "none"
        c.compile = bool(c.compile)
        c.batch_tokens = c.batch_tokens or (PAPER_BATCH_TOKENS if paper else c.micro_batch * c.seq_len * world)
        c.lr = c.lr or PAPER_LR.get(c.model, 3e-3 if c.model == "tiny" else 1e-3)
        c.warmup = c.warmup if c.warmup is not None else min(WARMUP_STEPS, max(1, c.steps // 10))
        c.ckpt_every = c.ckpt_every if c.ckpt_every is not None else min(CKPT_EVERY, max(1, c.steps // 10))
        per_micro = world * c.micro_batch * c.seq_len
        if c.batch_tokens % per_micro:
            raise ConfigError(
                f"batch_tokens: {c.batch_tokens} is not a multiple of ranks × micro_batch × seq_len "
                f"= {world} × {c.micro_batch} × {c.seq_len} = {per_micro}"
            )
        checks = [
            ("attn", c.attn in BACKENDS, f"one of {', '.join(BACKENDS)}"),
            ("ac", c.ac in AC_MODES, f"one of {', '.join(AC_MODES)}"),
            ("nonfinite", c.nonfinite in ("skip", "stop"), "skip or stop"),
            ("dtype", c.dtype in ("auto", "float32", "bfloat16"), "auto, float32 or bfloat16"),
            ("steps", c.steps >= 1, "≥ 1"),
            ("micro_batch", c.micro_batch >= 1, "≥ 1"),
            ("seq_len", c.seq_len >= 8, "≥ 8"),
            ("keep", c.keep >= 1, "≥ 1"),
            ("ckpt_every", c.ckpt_every >= 1, "≥ 1"),
            (
                "replicas",
                c.replicas is None or (c.replicas >= 1 and world % c.replicas == 0),
                f"≥ 1 and divide the {world} ranks",
            ),
            ("val_fraction", 0 <= c.val_fraction < 1, "in [0, 1)"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise ConfigError(f"{name}: {getattr(c, name)!r} must be {want}")
        return c

    def accum(self, world: int) -> int:
        return self.batch_tokens // (world * self.micro_batch * self.seq_len)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: str | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the file (YAML or JSON), then the non-None overrides."""
    data: dict[str, Any] = {}
    if path:
        import yaml

        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of training settings")
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        for f in fields(TrainConfig):
            if f.name in data and data[f.name] is not None:
                default = getattr(TrainConfig(), f.name)
                if isinstance(default, bool) and not isinstance(data[f.name], bool):
                    raise ConfigError(f"{path}: field {f.name}: expected true or false, got {data[f.name]!r}")
    merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(**merged)


def save_config(cfg: TrainConfig, run_dir: str) -> str:
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, "config.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg.to_dict(), f, indent=2)
    return path

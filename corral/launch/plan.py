"""Sizing a GPU run before it starts: the settings that fit a model on a GPU, and `corral train --plan`.

For a model, a number of GPUs and their memory, the plan takes activation checkpointing
(selective, else full), `torch.compile` and the largest micro-batch whose estimated memory per GPU
(`corral.launch.memory`) fits, then prints that memory split into parameters and optimizer state,
activations, gathered weights and the loss, the tokens per step, and the days the paper's token
count takes at a given MFU, beside the paper's own figure for 65B.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from corral.launch import memory
from corral.train.config import PAPER_BATCH_TOKENS, PAPER_LR, PAPER_SEQ_LEN, TrainConfig
from corral.train.metrics import count, flops_per_token
from corral.train.model import ModelArgs, model_args

PAPER_SIZES = ("7B", "13B", "33B", "65B")
# LLaMA Table 2 / Fig. 1: tokens each size was trained on
PAPER_TOKENS = {"7B": 1.0e12, "13B": 1.0e12, "33B": 1.4e12, "65B": 1.4e12}
# LLaMA §2.4: 65B "processes around 380 tokens/sec/GPU on 2048 A100 GPU with 80GB of RAM", 1.4T in ~21 days
PAPER_65B = {"tokens_per_s_per_gpu": 380.0, "gpus": 2048, "gpu_bytes": 80 * 10**9, "peak": 312e12, "days": 21}
FIT_FRACTION = 0.90  # use at most this share of a GPU's memory (the allocator's own reserve, NCCL buffers)
MICRO_BATCHES = (16, 8, 4, 2, 1)
DEFAULT_MFU = 0.40  # corral's assumption for a well-tuned bf16 run (the paper's 65B works out at ~0.49)
VOCAB = 32000  # LLaMA's vocabulary (§2.1)


@dataclass
class Fit:
    micro_batch: int
    ac: str
    compile: bool
    estimate: memory.Estimate
    fits: bool


def fit(args: ModelArgs, seq_len: int, gpus: int, gpu_bytes: int, batch_tokens: int = 4 * 1024 * 1024) -> Fit:
    """The largest micro-batch (selective AC first, then full) whose estimate fits `gpu_bytes` and
    that divides a step's sequences per GPU; the smallest setting, marked as not fitting, when none does."""
    budget = gpu_bytes * FIT_FRACTION
    per_gpu = max(1, batch_tokens // (gpus * seq_len))  # sequences each GPU takes per step
    last = None
    for ac in ("selective", "full"):
        for mb in (m for m in MICRO_BATCHES if per_gpu % m == 0):
            est = memory.estimate(args, mb, seq_len, gpus, ac=ac, act_bytes=2, attention_probs=False, cuda=True)
            last = Fit(mb, ac, True, est, est.per_rank <= budget)
            if last.fits:
                return last
    return last


def fitted(cfg: TrainConfig, world: int, gpu_bytes: int | None) -> TrainConfig:
    """A paper size on GPUs of `gpu_bytes` with the setting that fits (`fit`: micro-batch, activation
    checkpointing, compile) wherever the config leaves them open; any other config as it is."""
    if cfg.model not in PAPER_LR or not gpu_bytes or None not in (cfg.micro_batch, cfg.ac, cfg.compile):
        return cfg
    seq_len = cfg.seq_len or PAPER_SEQ_LEN
    f = fit(
        model_args(cfg.model, max_seq_len=seq_len), seq_len, world, gpu_bytes, cfg.batch_tokens or PAPER_BATCH_TOKENS
    )
    return replace(
        cfg,
        micro_batch=cfg.micro_batch or f.micro_batch,
        ac=cfg.ac or f.ac,
        compile=f.compile if cfg.compile is None else cfg.compile,
    )


def paper_mfu() -> float:
    """The MFU the paper's 65B figure implies (380 tokens/s/GPU on A100s at seq 2048)."""
    a = model_args("65B", vocab_size=VOCAB)
    per_token = flops_per_token(memory.num_params(a) - 2 * VOCAB * a.dim + VOCAB * a.dim, a.n_layers, a.dim, 2048)
    return PAPER_65B["tokens_per_s_per_gpu"] * per_token / PAPER_65B["peak"]


def plan_lines(
    models: list[str],
    gpus: int,
    gpu_bytes: int,
    *,
    mfu: float,
    peak: float,
    seq_len: int = 2048,
    batch_tokens: int = 4 * 1024 * 1024,
) -> list[str]:
    lines = [
        f"plan: {gpus} GPUs of {memory.gib(gpu_bytes)}, peak {peak / 1e12:.0f} TFLOP/s bf16, MFU {mfu:.0%}, "
        f"sequence {seq_len}, {count(batch_tokens)} tokens a step",
        f"{'model':>6} {'params':>7} {'fits':>4} {'micro':>5} {'ac':>9} {'state':>10} {'activ.':>10} "
        f"{'gathered':>10} {'loss':>9} {'total/GPU':>10} {'tok/s/GPU':>9} {'tokens':>6} {'days':>6}",
    ]
    for name in models:
        a = model_args(name, vocab_size=VOCAB, max_seq_len=seq_len)
        f = fit(a, seq_len, gpus, gpu_bytes, batch_tokens)
        e = f.estimate
        # the output projection is a matmul and counts; the embedding table is a lookup and does not
        per_token = flops_per_token(e.params - VOCAB * a.dim, a.n_layers, a.dim, seq_len)
        tps = mfu * peak / per_token
        tokens = PAPER_TOKENS.get(name, 1.0e12)
        days = tokens / (tps * gpus) / 86400
        lines.append(
            f"{name:>6} {count(e.params):>7} {'yes' if f.fits else 'NO':>4} {f.micro_batch:>5} "
            f"{f.ac:>9} {memory.gib(e.state_bytes):>10} {memory.gib(e.activation_bytes):>10} "
            f"{memory.gib(e.gathered_bytes):>10} {memory.gib(e.logits_bytes):>9} "
            f"{memory.gib(e.per_rank):>10} {tps:>9,.0f} {count(int(tokens)):>6} {days:>6.1f}"
        )
    p = PAPER_65B
    lines.append(
        f"paper (LLaMA §2.4): 65B at {p['tokens_per_s_per_gpu']:.0f} tokens/s/GPU on {p['gpus']:,} A100 80GB, "
        f"1.4T tokens in ~{p['days']} days (MFU ≈ {paper_mfu():.0%} by this table's formula)"
    )
    return lines

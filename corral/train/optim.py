"""AdamW and the schedule of LLaMA §2.3 (docs/recipe/training.md#optimizer-and-schedule)."""

from __future__ import annotations

import math

import torch
from torch import nn

BETAS = (0.9, 0.95)  # LLaMA §2.3: AdamW β1 = 0.9, β2 = 0.95
WEIGHT_DECAY = 0.1  # LLaMA §2.3
GRAD_CLIP = 1.0  # LLaMA §2.3
WARMUP_STEPS = 2000  # LLaMA §2.3
FINAL_LR_FRACTION = 0.1  # LLaMA §2.3: "the final learning rate is equal to 10% of the maximal learning rate"
ADAM_EPS = 1e-8  # not in the paper; PyTorch's default, configurable


def param_groups(model: nn.Module, weight_decay: float = WEIGHT_DECAY) -> list[dict]:
    """Weight decay on matrices (linear weights, embeddings) only; none on norm gains."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(
    model: nn.Module, lr: float, eps: float = ADAM_EPS, weight_decay: float = WEIGHT_DECAY
) -> torch.optim.AdamW:
    """AdamW with PyTorch's fused kernel (one pass over each parameter, on CPU and CUDA, sharded
    DTensors included); the multi-tensor `foreach` path where a parameter's device has no fused kernel."""
    fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
    return torch.optim.AdamW(
        param_groups(model, weight_decay), lr=lr, betas=BETAS, eps=eps, fused=fused, foreach=None if fused else True
    )


def lr_factor(step: int, warmup: int, total: int, final: float = FINAL_LR_FRACTION) -> float:
    """Multiplier of the peak rate at optimizer step `step` (0-based): linear warmup over `warmup`
    steps, then cosine from 1 to `final` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup))
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(opt: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, total))

"""Throughput and model-flops utilisation, and the metrics file.

One flops formula (PaLM, Chowdhery et al. 2022, App. B): per trained token, 6·N for the weights
(N excludes the embedding table, a lookup) plus 12·layers·dim·seq for attention scores and values
(forward and backward, no causal discount). MFU = flops per token × tokens/s ÷ (peak × devices).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

# Dense bf16 peak FLOP/s per device, from the vendors' datasheets (no sparsity). Names are matched
# longest prefix first, so "NVIDIA H200 NVL" is not taken for the SXM "NVIDIA H200".
PEAK_FLOPS: dict[str, float] = {
    "NVIDIA B200": 2250e12,
    "NVIDIA B100": 1750e12,
    "NVIDIA GB200": 2500e12,
    "NVIDIA GH200": 989e12,
    "NVIDIA H200 NVL": 835e12,
    "NVIDIA H200": 989e12,  # H200 SXM
    "NVIDIA H100 80GB HBM3": 989e12,  # H100 SXM
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H100": 989e12,
    "NVIDIA H800 PCIe": 756e12,
    "NVIDIA H800": 989e12,  # H800 SXM
    "NVIDIA H20": 148e12,
    "NVIDIA A100": 312e12,  # every A100 (SXM4/PCIe, 40/80 GB)
    "NVIDIA A800": 312e12,
    "NVIDIA L40S": 362e12,
    "NVIDIA L40": 181e12,
    "NVIDIA L4": 121e12,
    "NVIDIA A10G": 125e12,
    "NVIDIA A10": 125e12,
    "NVIDIA RTX 6000 Ada Generation": 364e12,
    "NVIDIA RTX A6000": 155e12,
}


def peak_of(name: str) -> float | None:
    """The bf16 peak of a device name (as torch.cuda.get_device_name spells it), longest prefix first."""
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):
        if name.startswith(key):
            return PEAK_FLOPS[key]
    return None


def peak_flops(device: torch.device) -> float | None:
    """The device's bf16 peak, or None for an unknown device (and for CPUs)."""
    if device.type != "cuda":
        return None
    return peak_of(torch.cuda.get_device_name(device))


def flops_per_token(n_params_no_embedding: int, n_layers: int, dim: int, seq_len: int) -> float:
    return 6.0 * n_params_no_embedding + 12.0 * n_layers * dim * seq_len


def mfu(tokens_per_s: float, per_token: float, peak: float | None, devices: int) -> float | None:
    return None if not peak else tokens_per_s * per_token / (peak * devices)


class MetricsFile:
    """RUN/metrics.jsonl: one JSON object a line, appended and flushed (rank 0 only)."""

    def __init__(self, path: str, enabled: bool):
        self.path, self.enabled = path, enabled
        if enabled:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    def write(self, row: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    def truncate_after(self, step: int) -> None:
        """On resume: drop rows written after the checkpoint's step (they will be written again)."""
        if not self.enabled or not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            rows = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
        with open(self.path, "w", encoding="utf-8") as f:
            f.writelines(rows)


def count(n: int) -> str:
    """A count the way papers write it: 6.7B, 125M, 619K."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.{1 if n < 100 * size else 0}f}{unit}"
    return str(n)

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

# Dense bf16 peak FLOP/s per device, from the vendors' datasheets (no sparsity).
PEAK_FLOPS: dict[str, float] = {
    "NVIDIA H100 80GB HBM3": 989e12,   # H100 SXM
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12,
    "NVIDIA A100-PCIE-40GB": 312e12,
    "NVIDIA L40S": 362e12,
    "NVIDIA A10G": 125e12,
}


def peak_flops(device: torch.device) -> float | None:
    """The device's bf16 peak, or None for an unknown device (and for CPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return PEAK_FLOPS.get(name) or next((v for k, v in PEAK_FLOPS.items() if name.startswith(k)), None)


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

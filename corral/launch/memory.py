"""How much memory a training run needs, estimated from its shapes before anything is allocated.

Per rank: the sharded training state (fp32 parameters, fp32 gradients and AdamW's two fp32
moments: 16 bytes a parameter, divided over the ranks by FSDP), plus the activations one
micro-batch keeps for its backward pass, plus the chunked output logits. The activation count per
layer is that of Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
Models", §4.1) adapted to LLaMA's block: the inputs of the two norms and four projections, q, k,
v, the attention output, and the three SwiGLU tensors of width ffn_hidden (plus the seq² attention
probabilities where the kernel keeps them, the CPU math path). Full activation checkpointing keeps
only each block's input; selective keeps every other matmul output and the attention output
(torchtitan's policy, `corral.train.parallel`). With bf16 compute, FSDP also holds gathered bf16
copies of two blocks (the one computing and the one prefetched) and of the root's embedding and
output matrices; the fused loss holds one chunk of logits and an fp32 output-weight gradient.
It is an estimate meant to catch a run that cannot fit (a 7B model on a laptop) and to size a GPU
run (`corral train --plan`), not to place the last gigabyte.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from corral.train.loss import chunk_elements
from corral.train.model import ModelArgs, ffn_hidden_dim

STATE_BYTES_PER_PARAM = 16  # fp32 weight + fp32 gradient + AdamW exp_avg + exp_avg_sq (4 bytes each)
OVERHEAD = 1.10  # allocator fragmentation and framework buffers, on top of the estimate


def num_params(a: ModelArgs) -> int:
    """Parameters of the LLaMA model with these shapes (embedding, blocks, final norm, output)."""
    f = ffn_hidden_dim(a.dim, a.multiple_of)
    per_layer = 4 * a.dim * a.dim + 3 * a.dim * f + 2 * a.dim
    return 2 * a.vocab_size * a.dim + a.n_layers * per_layer + a.dim


@dataclass
class Estimate:
    params: int
    state_bytes: int  # per rank
    activation_bytes: int  # per rank
    logits_bytes: int  # per rank
    gathered_bytes: int = 0  # per rank: FSDP's unsharded bf16 blocks and root

    @property
    def per_rank(self) -> int:
        return int((self.state_bytes + self.activation_bytes + self.logits_bytes + self.gathered_bytes) * OVERHEAD)


def estimate(
    a: ModelArgs,
    micro_batch: int,
    seq_len: int,
    world: int,
    *,
    ac: str,
    act_bytes: int,
    attention_probs: bool,
    cuda: bool = False,
) -> Estimate:
    """Memory per rank for one micro-batch's forward and backward with FSDP over `world` ranks."""
    p = num_params(a)
    tokens = micro_batch * seq_len
    f = ffn_hidden_dim(a.dim, a.multiple_of)
    saved = 10 * a.dim + 3 * f  # per token per layer: norms, q/k/v/o, projections, SwiGLU
    probs = a.n_heads * seq_len * act_bytes if attention_probs else 0  # per token per layer
    per_layer = tokens * (saved * act_bytes + probs)
    if ac == "full":
        acts = a.n_layers * tokens * a.dim * act_bytes + per_layer
    elif ac == "selective":
        acts = a.n_layers * tokens * (4 * a.dim + f) * act_bytes + tokens * probs
    else:
        acts = a.n_layers * per_layer
    # one chunk of fp32 logits and its gradient, and the fp32 output-weight gradient (corral.train.loss)
    logits = chunk_elements(cuda) * 4 * 2 + a.vocab_size * a.dim * 4
    block = 4 * a.dim * a.dim + 3 * a.dim * f
    gathered = (2 * block + 2 * a.vocab_size * a.dim) * act_bytes if act_bytes < 4 or world > 1 else 0
    return Estimate(p, STATE_BYTES_PER_PARAM * p // world, acts, logits, gathered)


def host_available() -> int | None:
    """Bytes of memory the kernel reports available now (MemAvailable), or None off Linux."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def gpu_total() -> int | None:
    """Bytes of memory of the first GPU, from nvidia-smi (so the launcher creates no CUDA context)."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        res = subprocess.run(
            [smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ},
        )
        return int(res.stdout.split()[0]) * 2**20 if res.returncode == 0 and res.stdout.strip() else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def gib(n: int | float) -> str:
    return f"{n / 2**30:,.1f} GiB"

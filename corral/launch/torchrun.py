"""How `corral train` starts its workers: the torchrun command line (through corral.launch.agent) and
the workers' environment.

CPU training allocates and frees the same large activation buffers every step. glibc serves
buffers that large with fresh `mmap`s, so each step page-faults them in again, 4 KB at a time (in
a profile of a 768-dim model, a 16 MB SwiGLU product took 12 ms, almost all of it faults).
PyTorch's CPU allocator can ask for transparent huge pages for buffers of 2 MB and more
(`THP_MEM_ALLOC_ENABLE`, read once when torch loads), which cuts those faults 512-fold; the
workers get it unless the caller's environment says otherwise. It changes no numbers, and CUDA
memory does not go through that allocator. On CUDA the caching allocator gets expandable segments,
so memory freed between micro-batches of different shapes is reused rather than fragmented
(torchtitan's default).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

# PyTorch c10 alloc_cpu: madvise(MADV_HUGEPAGE) on CPU buffers ≥ 2 MB when this is "1"
WORKER_ENV_DEFAULTS = {
    "THP_MEM_ALLOC_ENABLE": "1",
    # PyTorch CUDA caching allocator: grow segments in place instead of new blocks
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
}


def worker_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for training processes: the caller's, plus the defaults it does not set."""
    env = dict(os.environ if environ is None else environ)
    for key, value in WORKER_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    return env


def torchrun_command(
    config_path: str,
    nproc: int,
    *,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str = "127.0.0.1",
    master_port: int = 29500,
) -> list[str]:
    """`python -m corral.launch.agent … -m corral.train.trainer CONFIG` (torchrun's arguments; standalone
    on one node)."""
    cmd = [sys.executable, "-m", "corral.launch.agent", f"--nproc-per-node={nproc}"]
    if nnodes > 1:
        cmd += [
            f"--nnodes={nnodes}",
            f"--node-rank={node_rank}",
            f"--master-addr={master_addr}",
            f"--master-port={master_port}",
        ]
    else:
        cmd += ["--standalone"]
    return cmd + ["-m", "corral.train.trainer", config_path]

"""Under torchrun: the full gradients of one fixed batch under each activation-checkpointing mode
(and, on several ranks, under HSDP with one replica per rank), saved by rank 0 to
ARGV[1]/grads-<world>.pt (the batch is split across ranks)."""

import os
import sys

import torch
import torch.nn.functional as F

from corral.train import parallel as par
from corral.train.model import Transformer, model_args

rank, world, dev = par.init_distributed()
result = {}
runs = [(ac, ac, 1) for ac in par.AC_MODES] + ([("hsdp", "none", world)] if world > 1 else [])
for key, ac, replicas in runs:
    with torch.device("meta"):
        m = Transformer(model_args("tiny", vocab_size=300))
    par.apply_activation_checkpointing(m, ac)
    par.apply_fsdp(m, dev, bf16=False, replicas=replicas)
    par.materialize(m, dev, seed=7)
    tokens = torch.randint(0, 300, (4, 65), generator=torch.Generator().manual_seed(0))
    mine = tokens[rank * 4 // world : (rank + 1) * 4 // world]
    out = m(mine[:, :-1])
    per_rank = tokens[:, 1:].numel() / world  # global token count ÷ world: FSDP's averaging makes it the mean
    loss = F.cross_entropy(out.reshape(-1, 300), mine[:, 1:].reshape(-1), reduction="sum") / per_rank
    loss.backward()
    result[key] = {par._canonical(n): p.grad.full_tensor().clone() for n, p in m.named_parameters()}
if rank == 0:
    torch.save(result, f"{sys.argv[1]}/grads-{world}.pt")
torch.distributed.destroy_process_group()
os._exit(0)  # as corral.train.trainer does: no interpreter finalisation with gloo threads about

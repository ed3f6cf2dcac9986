"""Parallelism for the model, kept out of the model: process group, activation checkpointing,
per-block `torch.compile`, FSDP2 `fully_shard` per block and at the root (HSDP over a
(replicas, shards) mesh on several nodes), and initialisation after sharding.

The model is built on the meta device, wrapped, then materialised with `to_empty` and
initialised parameter by parameter: each full initial value comes from a generator seeded by the
run seed and the parameter's name, and each rank keeps its shard of it. The weights are therefore
the same for any world size (tests compare 1 and 2 ranks).
"""

from __future__ import annotations

import datetime
import logging
import os
import zlib

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)
AC_MODES = ("none", "full", "selective")


def init_distributed(backend: str | None = None) -> tuple[int, int, torch.device]:
    """(rank, world size, device): joins torchrun's process group, or makes a one-process group."""
    if not dist.is_initialized():
        if "RANK" not in os.environ:
            os.environ.update(
                RANK="0",
                WORLD_SIZE="1",
                LOCAL_RANK="0",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=os.environ.get("MASTER_PORT", str(29500 + os.getpid() % 20000)),
            )
        cuda = torch.cuda.is_available()
        backend = backend or ("nccl" if cuda else "gloo")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    return rank, world, device


# --- activation checkpointing -------------------------------------------------------------------


# Selective (torchtitan's op-level policy): keep the attention kernels' outputs and every other
# matmul output, recompute the rest (norms, RoPE, SiLU, products and the other matmuls) in the
# backward pass: LLaMA §2.4's "checkpointing of expensive activations" at about half the memory of
# keeping every matmul, for about one matmul in four recomputed.
def _save_list():
    ops = [
        torch.ops.aten._scaled_dot_product_flash_attention.default,
        torch.ops.aten._scaled_dot_product_efficient_attention.default,
    ]
    for name in ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_cudnn_attention"):
        if hasattr(torch.ops.aten, name):
            ops.append(getattr(torch.ops.aten, name).default)
    return set(ops)


MATMULS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}


def _selective_context():
    from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

    save = _save_list()
    counts = {"forward": 0, "recompute": 0}

    def policy(ctx, op, *args, **kwargs):
        if op in save:
            return CheckpointPolicy.MUST_SAVE
        if op in MATMULS:
            key = "recompute" if ctx.is_recompute else "forward"
            counts[key] += 1
            # the same matmuls are saved in forward and skipped in recompute: count each pass alike
            return CheckpointPolicy.MUST_SAVE if counts[key] % 2 == 1 else CheckpointPolicy.PREFER_RECOMPUTE
        return CheckpointPolicy.PREFER_RECOMPUTE

    return create_selective_checkpoint_contexts(policy)


def apply_activation_checkpointing(model: nn.Module, mode: str) -> None:
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    if mode not in AC_MODES:
        raise ValueError(f"activation checkpointing {mode!r}: choose one of {', '.join(AC_MODES)}")
    if mode == "none":
        return
    for i, block in enumerate(model.layers):
        if mode == "full":
            wrapped = checkpoint_wrapper(block, preserve_rng_state=False)
        else:
            wrapped = checkpoint_wrapper(block, preserve_rng_state=False, context_fn=_selective_context)
        model.layers[i] = wrapped


def apply_compile(model: nn.Module) -> None:
    for i, block in enumerate(model.layers):
        model.layers[i] = torch.compile(block, fullgraph=False)


# --- FSDP2 ----------------------------------------------------------------------------------------


def replica_groups(world: int, replicas: int | None) -> int:
    """How many HSDP replicas: as asked, else one per node (torchrun's LOCAL_WORLD_SIZE ranks a node)."""
    if replicas is None:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        replicas = world // local if local and world % local == 0 else 1
    if replicas < 1 or world % replicas:
        raise ValueError(f"replicas: {replicas} does not divide the {world} ranks")
    return replicas


def device_mesh(device: torch.device, replicas: int):
    """FSDP over every rank (replicas 1), or HSDP: parameters sharded within each group of
    world/replicas ranks (a node), gradients all-reduced across the groups."""
    from torch.distributed.device_mesh import init_device_mesh

    world = dist.get_world_size()
    if replicas == 1:
        return init_device_mesh(device.type, (world,), mesh_dim_names=("shard",))
    return init_device_mesh(device.type, (replicas, world // replicas), mesh_dim_names=("replicate", "shard"))


def apply_fsdp(model: nn.Module, device: torch.device, bf16: bool, replicas: int = 1) -> None:
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = device_mesh(device, replicas)
    mp = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
    )
    n = len(model.layers)
    for i, block in enumerate(model.layers):
        # the last block stays gathered for the root's backward: no reshard after forward
        fully_shard(block, mesh=mesh, mp_policy=mp, reshard_after_forward=i < n - 1)
    fully_shard(model, mesh=mesh, mp_policy=mp)


def _canonical(name: str) -> str:
    """A parameter's name without the wrappers' prefixes (checkpoint, compile)."""
    for junk in ("_checkpoint_wrapped_module.", "_orig_mod."):
        name = name.replace(junk, "")
    return name


@torch.no_grad()
def materialize(model: nn.Module, device: torch.device, seed: int) -> None:
    """Allocate a meta-device (possibly sharded) model on `device` and initialise it identically for
    any world size: full values from per-name generators, each rank copying its shard."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    model.to_empty(device=device)
    for name, p in model.named_parameters():
        canon = _canonical(name)
        gen = torch.Generator(device=device)
        gen.manual_seed((seed * 1_000_003 + zlib.crc32(canon.encode())) % (2**63))
        full = model.init_value(canon, p.shape, gen, device)
        if isinstance(p, DTensor):
            p.to_local().copy_(distribute_tensor(full, p.device_mesh, p.placements).to_local())
        else:
            p.copy_(full)
    model.reset_buffers(device)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter in full, on CPU, under Meta's names (collective: every rank calls it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {_canonical(k): v for k, v in sd.items()}

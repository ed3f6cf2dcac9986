"""Checkpoints with torch.distributed.checkpoint (the finished model's export: corral.train.weights).

RUN/checkpoints/step-NNNNNNNN/ holds the sharded model and optimizer (DCP files), one
`rank-R.pt` per rank (its RNG states and loader state) and `meta.json` (step, scheduler, the
build manifest's sha256, the resolved config, counters). A checkpoint is written under a temporary
name and renamed when every rank has finished; `meta.json` inside it is the mark of a complete
one. The last `keep` are kept. Resuming against a different build is refused.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

CKPT_DIR = "checkpoints"
PREFIX = "step-"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be resumed (another build, another model)."""


def _name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def checkpoint_path(run_dir: str, step: int) -> str:
    return os.path.join(run_dir, CKPT_DIR, _name(step))


def complete_checkpoints(run_dir: str) -> list[tuple[int, str]]:
    root = os.path.join(run_dir, CKPT_DIR)
    if not os.path.isdir(root):
        return []
    out = []
    for d in os.listdir(root):
        if d.startswith(PREFIX) and d[len(PREFIX) :].isdigit() and os.path.exists(os.path.join(root, d, "meta.json")):
            out.append((int(d[len(PREFIX) :]), os.path.join(root, d)))
    return sorted(out)


def _rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain values, so `torch.load(weights_only=True)` reads it."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


@dataclass
class Trained:
    """What a checkpoint holds of training besides the loader and the RNGs: the (sharded) model, its
    optimizer and the learning-rate schedule."""

    model: Any
    optimizer: Any
    scheduler: Any


class Checkpointer:
    """Writes checkpoints, with `dcp.async_save` when `asynchronous`: the state is staged to host
    memory while training waits, then written by a background thread over a gloo process group of
    its own (so its collectives never interleave with training's), while training goes on. A
    checkpoint becomes complete (meta.json, rename, pruning) when its writes have finished: at the
    next save, or at `wait()`, which the trainer calls before it exits."""

    def __init__(self, run_dir: str, keep: int, asynchronous: bool):
        self.run_dir, self.keep, self.asynchronous = run_dir, keep, asynchronous
        self._group = dist.new_group(backend="gloo") if asynchronous else None
        self._pending: tuple[Any, str, str, dict[str, Any]] | None = None

    def save(self, step: int, trained: Trained, loader_state: dict[str, Any], meta: dict[str, Any]) -> str:
        """Start checkpoint `step` (collective: every rank calls it); return its final folder."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        self.wait()
        rank = dist.get_rank()
        final = checkpoint_path(self.run_dir, step)
        tmp = final + ".tmp"
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp, exist_ok=True)
        dist.barrier()
        model_sd, optim_sd = get_state_dict(trained.model, trained.optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        if self.asynchronous:
            future = dcp.async_save(state, checkpoint_id=tmp, process_group=self._group)
        else:
            dcp.save(state, checkpoint_id=tmp)
            future = None
        torch.save({"rng": _rng_state(), "loader": loader_state}, os.path.join(tmp, f"rank-{rank}.pt"))
        full_meta = {
            **meta,
            "step": step,
            "scheduler": trained.scheduler.state_dict(),
            "world_size": dist.get_world_size(),
        }
        self._pending = (future, tmp, final, full_meta)
        if not self.asynchronous:
            self.wait()
        return final

    def wait(self) -> None:
        """Finish the checkpoint in flight, if any (collective)."""
        if self._pending is None:
            return
        future, tmp, final, meta = self._pending
        self._pending = None
        if future is not None:
            future.result()
        dist.barrier()
        if dist.get_rank() == 0:
            with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=2, default=str)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for _, old in complete_checkpoints(self.run_dir)[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        dist.barrier()


def load(path: str, trained: Trained, loader, manifest_sha256: str) -> dict[str, Any]:
    """Restore a checkpoint into the (already sharded) model and optimizer; return its meta."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("manifest_sha256") != manifest_sha256:
        raise CheckpointError(
            f"{path} was trained on a build whose manifest sha256 is "
            f"{meta.get('manifest_sha256')}; this build's is {manifest_sha256}: "
            "resume with the same build, or start a new run directory"
        )
    model_sd, optim_sd = get_state_dict(trained.model, trained.optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=path)
    set_state_dict(trained.model, trained.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    trained.scheduler.load_state_dict(meta["scheduler"])
    rank = dist.get_rank()
    own = os.path.join(path, f"rank-{rank}.pt")
    if meta.get("world_size") != dist.get_world_size() or not os.path.exists(own):
        raise CheckpointError(f"{path} was written by {meta.get('world_size')} ranks; resume with the same number")
    extra = torch.load(own, weights_only=True)  # never unpickle arbitrary objects from a checkpoint
    loader.load_state_dict(extra["loader"])
    _set_rng_state(extra["rng"])
    return meta

"""The training loop, run on every rank under torchrun (`python -m corral.train.trainer CONFIG`).

Each optimizer step takes `accum` micro-batches from the mixture loader. The loss of a micro-batch
is the sum of its token losses divided by the step's global token count (times the world size,
which FSDP's gradient averaging divides away), so the gradient is that of the mean over every
token of the step. Then the gradient norm is clipped at `grad_clip` (LLaMA: 1.0); a non-finite loss
or norm skips the update (counted) or stops the run, as configured; AdamW steps and the schedule
advances.

SIGINT and SIGTERM (Ctrl-C, a scheduler's preemption) only set a flag. The flag rides on the
step's loss all-reduce, so every rank sees the same answer at the same step; then the run saves a
checkpoint and leaves with 128 + the signal's number, and `--resume` continues it exactly.
Expected failures (a checkpoint of another run, a non-finite loss with `nonfinite: stop`, the
data) end in one line on stderr and exit code 1.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import signal
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.api import CheckpointException

from corral.core.fs import join, local_copy
from corral.manifests.build_manifest import build_dir, load_build, manifest_sha256
from corral.train import checkpoint as ckpt
from corral.train import parallel as par
from corral.train import weights
from corral.train.attention import documents
from corral.train.config import TrainConfig, save_config
from corral.train.data import Batch, DataError, MixtureLoader
from corral.train.metrics import MetricsFile, count, flops_per_token, mfu, peak_flops
from corral.train.model import CONFIGS, Transformer, model_args
from corral.train.optim import make_optimizer, make_scheduler
from corral.train.prefetch import HostBatch, Prefetcher

log = logging.getLogger("corral.train")


class NonFiniteError(RuntimeError):
    """A non-finite loss or gradient with `nonfinite: stop`."""


class StopSignal:
    """Once installed, SIGINT/SIGTERM set `signum`; the training loop checks it between steps."""

    def __init__(self):
        self.signum = 0

    def install(self) -> StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._set)
        return self

    def _set(self, signum, frame) -> None:
        self.signum = self.signum or signum


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _tensor(a: np.ndarray | torch.Tensor, device) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    return t.to(device, dtype=torch.long, non_blocking=True)


def vocab_size_of(manifest) -> int:
    entry = manifest.models.get("tokenizer")
    if not entry:
        raise ValueError(
            "the build has no tokenizer in its manifest (run `corral tokenizer train` and `corral tokenize` first)"
        )
    return int(entry["vocab_size"])


class Trainer:
    def __init__(self, cfg: TrainConfig, stop: StopSignal | None = None):
        self.rank, self.world, self.device = par.init_distributed()
        self.cfg = cfg = cfg.resolved(self.world)
        self.out = build_dir(cfg.out)
        manifest = load_build(self.out)
        self.manifest_sha = manifest_sha256(self.out)
        tokenizer = manifest.models.get("tokenizer")  # a local copy when the build is in a bucket
        self.tokenizer_model = local_copy(join(self.out, tokenizer["path"]), tokenizer["sha256"]) if tokenizer else None
        bf16 = cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and self.device.type == "cuda")
        self.args = model_args(
            cfg.model,
            vocab_size=vocab_size_of(manifest),
            attn=cfg.attn,
            max_seq_len=max(cfg.seq_len, CONFIGS[cfg.model].get("max_seq_len", 2048)),
        )
        self.model = self._build_model(bf16)
        model = self.model
        self.opt = make_optimizer(model, cfg.lr, cfg.adam_eps, cfg.weight_decay)
        self.sched = make_scheduler(self.opt, cfg.warmup, cfg.steps)
        self.loader = MixtureLoader(
            self.out,
            cfg.seq_len,
            cfg.micro_batch,
            rank=self.rank,
            world=self.world,
            seed=cfg.seed,
            val_fraction=cfg.val_fraction,
            manifest=manifest,
            doc_ids=cfg.doc_mask,
        )
        self.accum = cfg.accum(self.world)
        self.checkpointer = ckpt.Checkpointer(cfg.run_dir, cfg.keep, cfg.async_checkpoint)
        self.prefetch: Prefetcher | None = None  # started at the first step, after any resume
        self.loader_state = self.loader.state_dict()  # the data consumed so far
        self.metrics = MetricsFile(os.path.join(cfg.run_dir, "metrics.jsonl"), self.rank == 0)
        self.step, self.skipped = 0, 0
        self.stop = stop or StopSignal()
        self.stop_signum = 0  # the signal every rank agreed to stop on (0: none)
        self.per_token = flops_per_token(self.n_params_no_emb, self.args.n_layers, self.args.dim, cfg.seq_len)
        self.peak = peak_flops(self.device)
        self.val = self.loader.validation(cfg.val_windows)
        if self.rank == 0:
            save_config(cfg, cfg.run_dir)
            self._log_start()
        if cfg.resume:
            self._resume()

    def _build_model(self, bf16: bool) -> Transformer:
        """The model built on the meta device, wrapped (checkpointing, compile, FSDP), then
        materialised on this rank's device from the run's seed."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        with torch.device("meta"):
            model = Transformer(self.args)
        self.n_params = model.num_params()
        self.n_params_no_emb = model.num_params(embeddings=False)
        par.apply_activation_checkpointing(model, cfg.ac)
        if cfg.compile:
            par.apply_compile(model)
        self.replicas = par.replica_groups(self.world, cfg.replicas)
        par.apply_fsdp(model, self.device, bf16, self.replicas)
        par.materialize(model, self.device, cfg.seed)
        return model

    def _log_start(self) -> None:
        cfg = self.cfg
        mesh = f"HSDP {self.replicas} × {self.world // self.replicas}" if self.replicas > 1 else "FSDP"
        log.info(
            "model %s: %s parameters; %d ranks on %s (%s); %d micro-batches of %d × %d per step; "
            "attention %s; activation checkpointing %s; compile %s",
            cfg.model,
            f"{self.n_params:,}",
            self.world,
            self.device,
            mesh,
            self.accum,
            cfg.micro_batch,
            cfg.seq_len,
            cfg.attn,
            cfg.ac,
            cfg.compile,
        )

    def _resume(self) -> None:
        """Load the newest checkpoint that loads; a damaged one is reported and the one before tried.
        A checkpoint of another build stops the run (CheckpointError)."""
        found = ckpt.complete_checkpoints(self.cfg.run_dir)
        for _step, path in reversed(found):
            try:
                meta = ckpt.load(path, ckpt.Trained(self.model, self.opt, self.sched), self.loader, self.manifest_sha)
            except ckpt.CheckpointError:
                raise
            except (Exception, CheckpointException) as e:  # truncated or corrupt files (DCP's is a BaseException)
                log.warning("checkpoint %s cannot be loaded (%s: %s); trying the one before", path, type(e).__name__, e)
                continue
            self.step, self.skipped = int(meta["step"]), int(meta.get("skipped", 0))
            self.loader_state = self.loader.state_dict()
            self.metrics.truncate_after(self.step)
            if self.rank == 0:
                log.info("resumed from %s (step %d)", path, self.step)
            return
        if found:
            raise ckpt.CheckpointError(
                f"{self.cfg.run_dir}: no checkpoint could be loaded ({', '.join(p for _, p in found)})"
            )

    # --- one step --------------------------------------------------------------------------------
    def _loss(self, b: Batch | HostBatch, normaliser: float) -> torch.Tensor:
        x, y = _tensor(b.inputs, self.device), _tensor(b.targets, self.device)
        # the document structure, built once for every layer of this micro-batch from the host's ids
        docs = documents(self.cfg.attn, b.doc_lengths, self.device) if self.cfg.doc_mask else None
        return self.model(x, docs, targets=y) / normaliser

    def train_step(self) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        if self.prefetch is None:
            self.prefetch = Prefetcher(self.loader, self.accum, pin=self.device.type == "cuda")
        ready = self.prefetch.get()
        batches, self.loader_state = ready.batches, ready.state
        global_tokens = self.world * self.accum * cfg.micro_batch * cfg.seq_len
        total = torch.zeros((), device=self.device)
        for b in batches:
            loss = self._loss(b, global_tokens / self.world)
            loss.backward()
            total += loss.detach()
        total = torch.stack([total, torch.tensor(float(self.stop.signum), device=self.device)])
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip, foreach=True)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        dist.all_reduce(total)
        loss_value, norm_value = float(total[0]) / self.world, float(grad_norm)
        if float(total[1]) and not self.stop_signum:  # some rank was signalled: all stop after this step
            self.stop_signum = self.stop.signum or int(signal.SIGTERM)
        finite = math.isfinite(loss_value) and math.isfinite(norm_value)
        if finite:
            self.opt.step()
        else:
            self.skipped += 1
            if cfg.nonfinite == "stop":
                raise NonFiniteError(f"step {self.step + 1}: loss {loss_value}, gradient norm {norm_value}")
            log.warning(
                "step %d: non-finite loss %s / gradient norm %s: update skipped (%d so far)",
                self.step + 1,
                loss_value,
                norm_value,
                self.skipped,
            )
        self.opt.zero_grad(set_to_none=True)
        lr = self.opt.param_groups[0]["lr"]
        self.sched.step()
        self.step += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        tps = global_tokens / dt
        taken = {n: t * cfg.seq_len for n, t in zip(self.loader.names, self.loader_state["taken"])}
        row = {
            "step": self.step,
            "loss": loss_value,
            "lr": lr,
            "grad_norm": norm_value,
            "tokens_per_s": tps,
            "mfu": mfu(tps, self.per_token, self.peak, self.world),
            "skipped": self.skipped,
            "tokens_seen": taken,
            "memory_mb": self._memory_mb(),
            "seconds": dt,
        }
        return row

    def _memory_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean token loss on each source's held-out windows (windows split across ranks)."""
        out = {}
        for name, b in self.val.items():
            mine = list(range(self.rank, len(b.inputs), self.world))
            total = torch.zeros(2, device=self.device, dtype=torch.float64)
            # every rank runs the same number of forwards: FSDP gathers are collective
            for i in range(0, -(-len(b.inputs) // self.world)):
                idx = mine[i] if i < len(mine) else mine[0] if mine else 0
                sub = b.rows(idx, idx + 1)
                loss = self._loss(sub, 1.0)
                if i < len(mine):
                    total += torch.tensor([float(loss), sub.targets.size], device=self.device, dtype=torch.float64)
            dist.all_reduce(total)
            out[name] = float(total[0] / total[1])
        return out

    def save(self) -> None:
        meta = {
            "manifest_sha256": self.manifest_sha,
            "config": self.cfg.to_dict(),
            "skipped": self.skipped,
            "model_args": self.args.to_dict(),
            "build": self.out,
        }
        self.checkpointer.save(self.step, ckpt.Trained(self.model, self.opt, self.sched), self.loader_state, meta)

    def run(self) -> int:
        """Train to the last step (or --stop-at, or a signal); returns the exit code."""
        cfg = self.cfg
        last_saved, first = self.step, self.step
        end = min(cfg.steps, cfg.stop_at) if cfg.stop_at else cfg.steps
        t_start, t_second = time.perf_counter(), None
        while self.step < end and not self.stop_signum:
            row = self.train_step()
            if self.step == first + 1:
                t_second = time.perf_counter()  # the first step pays for warm-up and compilation
            if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                row["val_loss"] = self.validate()
            self.metrics.write(row)
            if self.rank == 0 and (self.step % cfg.log_every == 0 or self.step == cfg.steps or self.step == 1):
                self._print_progress(row, first, t_second)
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                self.save()
                last_saved = self.step
        if last_saved != self.step:
            self.save()
        if self.prefetch is not None:
            self.prefetch.close()
        self.checkpointer.wait()
        ckpt_path = ckpt.checkpoint_path(cfg.run_dir, self.step)
        dest = weights.export_dir(cfg.run_dir)
        if cfg.export and self.step == cfg.steps and not self.stop_signum:
            sd = par.full_state_dict(self.model)
            if self.rank == 0:
                weights.export(sd, self.args, dest, self.tokenizer_model)
        dist.barrier()
        if self.rank == 0:
            took = _duration(time.perf_counter() - t_start)
            if self.stop_signum:
                name = signal.Signals(self.stop_signum).name
                print(
                    f"{name} at step {self.step} of {cfg.steps}: checkpoint {ckpt_path} ({took}); "
                    "continue with --resume",
                    flush=True,
                )
            elif self.step < cfg.steps:
                print(
                    f"stopped at step {self.step} of {cfg.steps} (--stop-at): checkpoint {ckpt_path} ({took}); "
                    "continue with --resume",
                    flush=True,
                )
            else:
                print(
                    f"finished: step {self.step} of {cfg.steps} in {took}; checkpoint {ckpt_path}"
                    + (
                        f"; export {dest}/{weights.HF_DIR} (transformers' AutoModelForCausalLM and AutoTokenizer) "
                        f"and {dest}/{weights.META_DIR} (Meta's layout)"
                        if cfg.export
                        else ""
                    ),
                    flush=True,
                )
        return 128 + self.stop_signum if self.stop_signum else 0

    def _print_progress(self, row: dict, first: int, t_second: float | None) -> None:
        cfg = self.cfg
        val = row.get("val_loss")
        m = f"  mfu {row['mfu']:.1%}" if row["mfu"] is not None else ""
        seen = self.step * cfg.batch_tokens  # batch_tokens = ranks × accumulation × micro-batch × seq_len
        eta = ""
        done_since = self.step - first - 1
        if t_second is not None and done_since > 0:
            per_step = (time.perf_counter() - t_second) / done_since
            eta = f"  ETA {_duration(per_step * (cfg.steps - self.step))}"
        print(
            f"step {self.step}/{cfg.steps}  loss {row['loss']:.4f}  lr {row['lr']:.2e}  "
            f"grad {row['grad_norm']:.3f}  {row['tokens_per_s']:,.0f} tok/s{m}  {count(seen)} tokens seen"
            + (f"  val {sum(val.values()) / len(val):.4f}" if val else "")
            + eta,
            flush=True,
        )


def _die_with_launcher() -> None:
    """Linux: the kernel kills this rank when torchrun's agent dies, even by SIGKILL (torchrun starts
    each rank in a session of its own, so a signal to the launcher's process group misses it)."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1  # prctl(2)
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    import json

    from corral.manifests.build_manifest import BuildManifestError
    from corral.train.config import ConfigError

    _die_with_launcher()
    argv = argv if argv is not None else sys.argv[1:]
    logging.basicConfig(
        level=logging.INFO if int(os.environ.get("RANK", 0)) == 0 else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    with open(argv[0], encoding="utf-8") as f:
        cfg = TrainConfig(**json.load(f))
    stop = StopSignal().install()  # before the model is built: a signal during start-up waits for step 1
    try:
        code = Trainer(cfg, stop).run()
        dist.barrier()
        dist.destroy_process_group()
    except (ckpt.CheckpointError, NonFiniteError, DataError, ConfigError, BuildManifestError) as e:
        print(f"corral train: {e}", file=sys.stderr, flush=True)
        code = 1
    # Leave without interpreter finalisation: gloo's worker threads can still hold tensors whose
    # destruction needs the GIL while the interpreter is torn down, which aborts the process now
    # and then (SIGABRT, "terminate called without an active exception"). Everything is written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())

"""corral's GPU checks, in one script: `python benchmarks/gpu.py` (under 8 minutes on one GPU).

1. Attention backends against each other on packed documents (bf16, seq 2048, a 1024-wide
   model): each backend's loss against SDPA's with its boolean document mask, and training
   tokens/s (forward + backward). `xformers` is checked when the `gpu` extra is installed.
2. FSDP2 on CUDA in bf16 (a one-rank NCCL group): three AdamW steps of the sharded model, whose
   first loss equals the unsharded model's and whose losses are finite.
3. The MFU of a 7B-shaped model (dim 4096, 32 heads, full width, 4 layers) at seq 2048 in bf16,
   compiled, with selective activation checkpointing, over timed steps after warm-up.
A table is printed. Without CUDA the script says so and exits 0 (CI runs that path).
"""

from __future__ import annotations

import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SEQ = 2048
ROWS: list[tuple[str, str, str, str]] = []  # check, setting, figure, verdict


def row(check: str, setting: str, figure: str, ok: bool | None) -> None:
    ROWS.append((check, setting, figure, "ok" if ok else "n/a" if ok is None else "FAIL"))
    print(f"  {check}: {setting}: {figure}", flush=True)


def packed_ids(batch: int, seq: int, device) -> torch.Tensor:
    """Document ids of packed rows: documents of 50 to 1,500 tokens."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(batch):
        lengths, total = [], 0
        while total < seq:
            n = int(torch.randint(50, 1500, (1,), generator=g))
            lengths.append(min(n, seq - total))
            total += lengths[-1]
        rows.append(torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)))
    return torch.stack(rows).to(device)


def check_attention(device) -> None:
    from corral.train import attention
    from corral.train.model import Transformer, model_args

    args = dict(dim=1024, n_heads=16, n_layers=4, multiple_of=256, vocab_size=32000, max_seq_len=SEQ)
    batch = 4
    tokens = torch.randint(0, 32000, (batch, SEQ + 1), generator=torch.Generator().manual_seed(1)).to(device)
    ids = packed_ids(batch, SEQ, device)
    backends = ["sdpa", "flex", "varlen"]
    try:
        import xformers  # noqa: F401

        backends.append("xformers")
    except ImportError:
        row("attention xformers", "not installed", "pip install -e '.[gpu]' to check it", None)
    base = None
    for impl in backends:
        torch.manual_seed(0)
        m = Transformer(model_args("tiny", **{**args, "attn": impl})).to(device, torch.bfloat16)
        m.reset_buffers(device)  # the rotary table stays complex64 (a dtype cast would drop its imaginary part)
        x, y = tokens[:, :-1], tokens[:, 1:]
        try:
            with torch.no_grad():
                loss = float(m(x, attention.documents(impl, ids.cpu().numpy(), device), targets=y)) / y.numel()
            for _ in range(2):  # warm-up (compilation for flex)
                m(x, attention.documents(impl, ids.cpu().numpy(), device), targets=y).backward()
            torch.cuda.synchronize()
            t0, n = time.perf_counter(), 5
            for _ in range(n):
                m(x, attention.documents(impl, ids.cpu().numpy(), device), targets=y).backward()
            torch.cuda.synchronize()
            tps = n * batch * SEQ / (time.perf_counter() - t0)
        except Exception as e:  # a backend that cannot run here is a row, not the end of the checks
            row(f"attention {impl}", "doc mask, bf16", f"{type(e).__name__}: {str(e)[:80]}", False)
            continue
        base = loss if base is None else base
        rel = abs(loss - base) / base
        row(
            f"attention {impl}",
            f"doc mask, bf16, {batch}×{SEQ}",
            f"loss {loss:.5f} (Δ {rel:.1e} vs sdpa), {tps:,.0f} tok/s train",
            rel < 2e-2,
        )
        del m
        torch.cuda.empty_cache()


def check_fsdp(device) -> None:
    from corral.train import parallel as par
    from corral.train.model import Transformer, model_args
    from corral.train.optim import make_optimizer

    shape = model_args("small", vocab_size=32000, max_seq_len=SEQ)
    tokens = torch.randint(0, 32000, (2, 1025), generator=torch.Generator().manual_seed(2)).to(device)
    x, y = tokens[:, :-1], tokens[:, 1:]
    with torch.device("meta"):
        m = Transformer(shape)
    par.apply_fsdp(m, device, bf16=True)
    par.materialize(m, device, seed=3)
    plain = Transformer(shape).to(device)
    plain.load_state_dict(par.full_state_dict(m))
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        ref = float(plain(x, targets=y)) / y.numel()
    opt = make_optimizer(m, 1e-3)
    losses = []
    for _ in range(3):
        loss = m(x, targets=y) / y.numel()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    ok = all(torch.isfinite(torch.tensor(losses))) and abs(losses[0] - ref) / ref < 2e-2 and losses[-1] < losses[0]
    row(
        "FSDP2 bf16",
        "small model, 1 rank NCCL, 3 AdamW steps",
        f"losses {', '.join(f'{v:.4f}' for v in losses)} (unsharded first loss {ref:.4f})",
        ok,
    )


def check_mfu(device) -> None:
    from corral.train import parallel as par
    from corral.train.metrics import flops_per_token, peak_flops
    from corral.train.model import Transformer, model_args
    from corral.train.optim import make_optimizer

    shape = model_args("7B", n_layers=4, vocab_size=32000, max_seq_len=SEQ)
    with torch.device("meta"):
        m = Transformer(shape)
    par.apply_activation_checkpointing(m, "selective")
    par.apply_compile(m)
    par.apply_fsdp(m, device, bf16=True)
    par.materialize(m, device, seed=0)
    opt = make_optimizer(m, 1e-4)
    batch = 4
    tokens = torch.randint(0, 32000, (batch, SEQ + 1), generator=torch.Generator().manual_seed(4)).to(device)
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step():
        (m(x, targets=y) / y.numel()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    n, t0 = 10, time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    tps = n * batch * SEQ / (time.perf_counter() - t0)
    per_token = flops_per_token(m.num_params(embeddings=False), shape.n_layers, shape.dim, SEQ)
    peak = peak_flops(device)
    mem = torch.cuda.max_memory_allocated(device) / 2**30
    mfu = tps * per_token / peak if peak else None
    row(
        "MFU 7B-shaped",
        f"dim 4096, 4 layers, {batch}×{SEQ}, bf16, compile, selective AC",
        f"{tps:,.0f} tok/s, MFU {mfu:.1%}, peak memory {mem:.1f} GiB"
        if mfu is not None
        else f"{tps:,.0f} tok/s (no peak known for {torch.cuda.get_device_name(device)})",
        mfu is None or mfu > 0.25,
    )


def main() -> int:
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device on this machine: the GPU checks did not run")
        return 0
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    from corral.train import parallel as par

    _, _, device = par.init_distributed()
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}", flush=True)
    t0 = time.perf_counter()
    for check in (check_attention, check_fsdp, check_mfu):
        try:
            check(device)
        except Exception as e:
            row(check.__name__, "crashed", f"{type(e).__name__}: {str(e)[:120]}", False)
        torch.cuda.empty_cache()
    print("\n| check | setting | figure | |\n|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    torch.distributed.destroy_process_group()
    return 1 if any(r[3] == "FAIL" for r in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main())

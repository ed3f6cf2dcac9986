"""Training tokens/s on CPU: corral's LLaMA model against transformers' LlamaForCausalLM.

The same shape (default: dim 512, 8 heads, 8 layers, vocabulary 32,000, SwiGLU 1,536), the same
batch (8 × 256 tokens), fp32, AdamW, one process using every core; each side in a fresh process,
3 warm-up steps, then `--steps` timed full steps (forward, loss, backward, optimizer step), the
best of `--repeat` fresh processes per side. corral runs its trainer's step (the loss fused with
the output projection, `corral.train.loss`; fused AdamW from `corral.train.optim`), eager and
with `torch.compile` per block; transformers runs as one uses it: `model(input_ids,
labels=labels).loss` with its default (SDPA) attention and the fused AdamW that its `Trainer`
picks by default on torch ≥ 2.8. corral's processes get the environment `corral train` gives its
workers (`corral.launch.torchrun.worker_env`: transparent huge pages for large CPU buffers); so that
the share of that setting is plain, transformers also runs a second time with it. Prints tokens/s,
ratios against transformers as one runs it, and each side's peak RSS.

Run: .venv/bin/python benchmarks/train_cpu.py [--dim 512 --layers 8 --steps 10 --repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
kind, dim, heads, layers, vocab, seq, batch, steps = sys.argv[1], *map(int, sys.argv[2:9])
torch.manual_seed(0)
tokens = torch.randint(0, vocab, (batch, seq + 1))
if kind.startswith("corral"):
    from corral.train.model import ModelArgs, Transformer
    from corral.train.optim import make_optimizer
    model = Transformer(ModelArgs(dim=dim, n_heads=heads, n_layers=layers, vocab_size=vocab, multiple_of=256,
                                  max_seq_len=seq))
    if kind == "corral-compile":
        for i, b in enumerate(model.layers):
            model.layers[i] = torch.compile(b)
    opt = make_optimizer(model, 1e-4)
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    def step():
        loss = model(inputs, targets=targets) / targets.numel()
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
else:
    from transformers import LlamaConfig, LlamaForCausalLM
    from corral.train.model import ffn_hidden_dim
    cfg = LlamaConfig(hidden_size=dim, num_attention_heads=heads, num_hidden_layers=layers, vocab_size=vocab,
                      intermediate_size=ffn_hidden_dim(dim, 256), max_position_embeddings=seq, rms_norm_eps=1e-6,
                      tie_word_embeddings=False, attn_implementation="sdpa")
    model = LlamaForCausalLM(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=True)
    inputs = tokens[:, :-1].contiguous()
    def step():
        loss = model(input_ids=inputs, labels=inputs).loss
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
for _ in range(3):
    step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
dt = time.perf_counter() - t0
print(json.dumps({"tokens_per_s": batch * seq * steps / dt,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(kind: str, a, env: dict | None = None) -> dict:
    """The best of `a.repeat` fresh processes (tokens/s), with the largest peak RSS among them."""
    args = [kind, a.dim, a.heads, a.layers, a.vocab, a.seq, a.batch, a.steps]
    runs = []
    for _ in range(a.repeat):
        res = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise SystemExit(f"{kind} failed:\n{res.stderr[-2000:]}")
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return {"tokens_per_s": max(r["tokens_per_s"] for r in runs), "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2, help="fresh processes per side; the best is kept")
    a = ap.parse_args()
    import torch

    print(
        f"dim {a.dim}, {a.heads} heads, {a.layers} layers, vocab {a.vocab}, batch {a.batch} × {a.seq}, fp32, "
        f"{torch.get_num_threads()} threads"
    )
    from corral.launch.torchrun import worker_env

    plain = {k: v for k, v in os.environ.items() if k not in worker_env({})}
    hf = run("hf", a, plain)
    hf_env = run("hf", a, worker_env(plain))
    eager = run("corral", a, worker_env(plain))
    compiled = run("corral-compile", a, worker_env(plain))
    base = hf["tokens_per_s"]
    rows = (
        ("transformers LlamaForCausalLM", hf),
        ("transformers, corral's worker env", hf_env),
        ("corral eager", eager),
        ("corral --compile", compiled),
    )
    for name, r in rows:
        ratio = "" if r is hf else f"   ratio {r['tokens_per_s'] / base:.2f}x"
        print(f"{name:<34} {r['tokens_per_s']:10,.0f} tokens/s   peak RSS {r['peak_rss_mb']:6,.0f} MB{ratio}")


if __name__ == "__main__":
    main()

"""Training tokens/s on CPU: corral's LLaMA model against transformers' LlamaForCausalLM.

The same shape (default: dim 512, 8 heads, 8 layers, vocabulary 32,000, SwiGLU 1,536), the same
batch (8 × 256 tokens), fp32, AdamW, one process using every core; each side in a fresh process,
3 warm-up steps, then `--steps` timed full steps (forward, loss, backward, optimizer step).
corral runs eager and with `torch.compile` per block; transformers runs as one uses it:
`model(input_ids, labels=labels).loss` with its default (SDPA) attention. Prints tokens/s and
ratios.

Run: .venv/bin/python benchmarks/train_cpu.py [--dim 512 --layers 8 --steps 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
import torch
import torch.nn.functional as F
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
    def step():
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), tokens[:, 1:].reshape(-1))
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
else:
    from transformers import LlamaConfig, LlamaForCausalLM
    from corral.train.model import ffn_hidden_dim
    cfg = LlamaConfig(hidden_size=dim, num_attention_heads=heads, num_hidden_layers=layers, vocab_size=vocab,
                      intermediate_size=ffn_hidden_dim(dim, 256), max_position_embeddings=seq, rms_norm_eps=1e-6,
                      tie_word_embeddings=False, attn_implementation="sdpa")
    model = LlamaForCausalLM(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), foreach=True)
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
print(json.dumps({"tokens_per_s": batch * seq * steps / dt}))
"""


def run(kind: str, a) -> float:
    args = [kind, a.dim, a.heads, a.layers, a.vocab, a.seq, a.batch, a.steps]
    res = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["tokens_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    import torch

    print(f"dim {a.dim}, {a.heads} heads, {a.layers} layers, vocab {a.vocab}, batch {a.batch} × {a.seq}, fp32, "
          f"{torch.get_num_threads()} threads")
    hf = run("hf", a)
    eager = run("corral", a)
    compiled = run("corral-compile", a)
    print(f"transformers LlamaForCausalLM  {hf:10,.0f} tokens/s")
    print(f"corral eager                   {eager:10,.0f} tokens/s   ratio {eager / hf:.2f}x")
    print(f"corral --compile               {compiled:10,.0f} tokens/s   ratio {compiled / hf:.2f}x")


if __name__ == "__main__":
    main()

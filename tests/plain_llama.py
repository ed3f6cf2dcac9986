"""The LLaMA-1 equations written out independently of corral.train.model, for tests: explicit
sin/cos rotation of interleaved pairs, explicit masked softmax, RMSNorm and SwiGLU from the paper."""

import math

import torch


def rms_norm(x, w, eps):
    x32 = x.double()
    return (x32 / torch.sqrt((x32 * x32).mean(-1, keepdim=True) + eps)) * w.double()


def rotate(x, theta=10000.0):
    """x: (seq, heads, d). Pair (2j, 2j+1) at position t turns by t·θ^(-2j/d)."""
    seq, _, d = x.shape
    out = torch.empty_like(x)
    for j in range(d // 2):
        freq = theta ** (-2.0 * j / d)
        ang = torch.arange(seq, dtype=torch.float64)[:, None] * freq
        c, s = torch.cos(ang), torch.sin(ang)
        a, b = x[..., 2 * j], x[..., 2 * j + 1]
        out[..., 2 * j] = a * c - b * s
        out[..., 2 * j + 1] = a * s + b * c
    return out


def logits(sd, n_layers, n_heads, eps, tokens):
    """tokens: (seq,) → (seq, vocab) in float64, from a Meta-named state dict."""
    w = {k: v.double() for k, v in sd.items()}
    h = w["tok_embeddings.weight"][tokens]
    seq, dim = h.shape
    hd = dim // n_heads
    mask = torch.full((seq, seq), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(n_layers):
        p = f"layers.{i}."
        x = rms_norm(h, w[p + "attention_norm.weight"], eps)
        q = rotate((x @ w[p + "attention.wq.weight"].T).view(seq, n_heads, hd))
        k = rotate((x @ w[p + "attention.wk.weight"].T).view(seq, n_heads, hd))
        v = (x @ w[p + "attention.wv.weight"].T).view(seq, n_heads, hd)
        heads = []
        for hh in range(n_heads):
            scores = q[:, hh] @ k[:, hh].T / math.sqrt(hd) + mask
            heads.append(torch.softmax(scores, dim=-1) @ v[:, hh])
        h = h + torch.cat(heads, dim=-1) @ w[p + "attention.wo.weight"].T
        x = rms_norm(h, w[p + "ffn_norm.weight"], eps)
        gate = x @ w[p + "feed_forward.w1.weight"].T
        up = x @ w[p + "feed_forward.w3.weight"].T
        h = h + ((gate * torch.sigmoid(gate)) * up) @ w[p + "feed_forward.w2.weight"].T
    return rms_norm(h, w["norm.weight"], eps) @ w["output.weight"].T

"""Causal self-attention kernels behind one flag: `sdpa` (default), `xformers`, `reference`.

All take q, k, v of shape (batch, seq, heads, head_dim) and return the same shape. `doc_ids`
(batch, seq), when given, masks attention across packed documents: a token attends only to
earlier tokens of its own document (SDPA with a boolean mask; xformers' block-diagonal causal
mask; the reference adds -inf). The first call of each kernel is logged.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)
BACKENDS = ("sdpa", "xformers", "reference")
_logged: set[str] = set()


def _once(name: str, detail: str) -> None:
    if name not in _logged:
        _logged.add(name)
        log.info("attention kernel: %s (%s)", name, detail)


def doc_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """(batch, 1, seq, seq) boolean: causal and within one document."""
    seq = doc_ids.shape[1]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=doc_ids.device).tril()
    same = doc_ids[:, :, None] == doc_ids[:, None, :]
    return (causal & same)[:, None]


def sdpa(q, k, v, doc_ids=None):
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if doc_ids is None:
        _once("sdpa", "torch scaled_dot_product_attention, is_causal")
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        _once("sdpa+docmask", "torch scaled_dot_product_attention, boolean document mask")
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=doc_mask(doc_ids))
    return out.transpose(1, 2)


def xformers(q, k, v, doc_ids=None):
    if not q.is_cuda:
        raise RuntimeError("attention 'xformers' runs on CUDA only: use --attn sdpa on this device")
    try:
        from xformers.ops import fmha
    except ImportError as e:
        raise RuntimeError("attention 'xformers' needs the gpu extra: pip install -e '.[gpu]'") from e
    if doc_ids is None:
        _once("xformers", "memory_efficient_attention, LowerTriangularMask")
        return fmha.memory_efficient_attention(q, k, v, attn_bias=fmha.LowerTriangularMask())
    _once("xformers+docmask", "memory_efficient_attention, BlockDiagonalCausalMask")
    b, s = doc_ids.shape
    starts = torch.ones_like(doc_ids, dtype=torch.bool)
    starts[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    idx = torch.nonzero(starts.reshape(-1)).flatten().tolist() + [b * s]
    seqlens = [idx[i + 1] - idx[i] for i in range(len(idx) - 1)]
    bias = fmha.attn_bias.BlockDiagonalCausalMask.from_seqlens(seqlens)
    out = fmha.memory_efficient_attention(*(t.reshape(1, b * s, *t.shape[2:]) for t in (q, k, v)), attn_bias=bias)
    return out.reshape(q.shape)


def reference(q, k, v, doc_ids=None):
    """The equations, in fp32: softmax(q kᵀ / √d + mask) v."""
    _once("reference", "plain softmax attention in fp32")
    qf, kf, vf = (t.float().transpose(1, 2) for t in (q, k, v))
    scores = qf @ kf.transpose(-1, -2) / math.sqrt(q.shape[-1])
    seq = q.shape[1]
    if doc_ids is None:
        allowed = torch.ones(seq, seq, dtype=torch.bool, device=q.device).tril()
    else:
        allowed = doc_mask(doc_ids)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ vf).transpose(1, 2).to(q.dtype)


def attend(impl: str, q, k, v, doc_ids=None):
    if impl == "sdpa":
        return sdpa(q, k, v, doc_ids)
    if impl == "xformers":
        return xformers(q, k, v, doc_ids)
    if impl == "reference":
        return reference(q, k, v, doc_ids)
    raise ValueError(f"attention backend {impl!r}: choose one of {', '.join(BACKENDS)}")

"""Causal self-attention kernels behind one flag: `sdpa` (default), `flex`, `varlen`, `xformers`,
`reference`.

All take q, k, v of shape (batch, seq, heads, head_dim) and return the same shape. Packed
documents are described once per micro-batch by `Documents`, built from the host-side document
boundaries the loader already has, and handed to every layer (and to activation-checkpoint
recompute) unchanged: a token attends only to earlier tokens of its own document.

- `sdpa`: without documents, `is_causal=True`, with cuDNN and flash attention preferred on CUDA;
  with documents, one boolean (batch, 1, seq, seq) mask per micro-batch (the T×T square is
  computed: use `flex` or `varlen` on a GPU).
- `flex`: `torch.nn.attention.flex_attention`, compiled, with a document × causal BlockMask built
  at 128-token block granularity (empty blocks are skipped, full ones run unmasked). PyTorch has no
  flex backward on CPU: there it evaluates (forward) only.
- `varlen`: `torch.nn.attention.varlen.varlen_attn` (flash) over the batch as one sequence of
  documents cut by `cu_seqlens` (CUDA only).
- `xformers`: `memory_efficient_attention` with a BlockDiagonalCausalMask from the host lengths
  (CUDA only, the `gpu` extra).
- `reference`: the equations in fp32, for tests.
The first call of each kernel is logged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)
BACKENDS = ("sdpa", "flex", "varlen", "xformers", "reference")
CUDA_ONLY = ("varlen", "xformers")  # no CPU kernel at all
NO_CPU_BACKWARD = ("flex",)  # PyTorch 2.13's flex_attention: forward only on CPU
FLEX_BLOCK = 128  # flex_attention's default (and only fast) block size
_logged: set[str] = set()
_flex = None
_causal_masks: dict[tuple, Any] = {}  # flex without documents: (batch, seq, device) → its causal BlockMask


def _once(name: str, detail: str) -> None:
    if name not in _logged:
        _logged.add(name)
        log.info("attention kernel: %s (%s)", name, detail)


@dataclass
class Documents:
    """The packed-document structure of one micro-batch, in the form its backend needs."""

    doc_ids: torch.Tensor | None  # (batch, seq) int, non-decreasing along seq, on the device
    dense: torch.Tensor | None = None  # sdpa/reference: (batch, 1, seq, seq) bool
    block_mask: Any = None  # flex: BlockMask
    cu_seqlens: torch.Tensor | None = None  # varlen: int32 (documents + 1,)
    max_seqlen: int = 0  # varlen
    bias: Any = None  # xformers: BlockDiagonalCausalMask


def doc_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """(batch, 1, seq, seq) boolean: causal and within one document."""
    seq = doc_ids.shape[1]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=doc_ids.device).tril()
    same = doc_ids[:, :, None] == doc_ids[:, None, :]
    return (causal & same)[:, None]


def doc_block_mask(doc_ids: torch.Tensor, block: int = FLEX_BLOCK):
    """flex_attention's BlockMask for document × causal attention, from block-level facts only: the
    first and last document of each block (ids are non-decreasing), never a seq × seq tensor."""
    from torch.nn.attention.flex_attention import BlockMask

    b, seq = doc_ids.shape
    nb = -(-seq // block)
    first = doc_ids[:, ::block]  # (b, nb)
    last = doc_ids[:, torch.clamp(torch.arange(1, nb + 1, device=doc_ids.device) * block, max=seq) - 1]
    q_first, q_last = first[:, :, None], last[:, :, None]  # query block i
    k_first, k_last = first[:, None, :], last[:, None, :]  # key block j
    idx = torch.arange(nb, device=doc_ids.device)
    below = idx[None, :, None] > idx[None, None, :]  # j < i
    diagonal = idx[None, :, None] == idx[None, None, :]
    touches = (k_last >= q_first) & (below | diagonal)  # some query in i sees some key in j
    full = below & (q_first == q_last) & (k_first == k_last) & (q_first == k_first)
    partial = touches & ~full

    def kv(blocks: torch.Tensor):
        num = blocks.sum(-1, dtype=torch.int32)[:, None]
        order = torch.argsort(blocks.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
        return num, order[:, None]

    def mask_mod(bi, h, q, k):
        return (doc_ids[bi, q] == doc_ids[bi, k]) & (q >= k)

    num, ind = kv(partial)
    full_num, full_ind = kv(full)
    return BlockMask.from_kv_blocks(
        num, ind, full_num, full_ind, BLOCK_SIZE=block, mask_mod=mask_mod, seq_lengths=(seq, seq)
    )


def lengths_of(ids: np.ndarray) -> np.ndarray:
    """The run lengths of a row of non-decreasing document numbers (int32)."""
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    return np.diff(np.concatenate(([0], change, [len(ids)]))).astype(np.int32)


def documents(impl: str, docs: list[np.ndarray] | np.ndarray | torch.Tensor, device: torch.device | str) -> Documents:
    """Build the structure `impl` needs for a micro-batch's packed documents, once for every layer.
    `docs` is what the loader gives, each row's document lengths (host arrays summing to the
    sequence length), or a (batch, seq) tensor or array of non-decreasing document ids. Document ids
    are made on the device from the lengths (numbered across the whole batch); varlen and xformers
    take the host lengths as they are."""
    if isinstance(docs, (np.ndarray, torch.Tensor)):
        host = docs if isinstance(docs, np.ndarray) else docs.cpu().numpy()
        docs = [lengths_of(row) for row in host]
    b, seq = len(docs), int(docs[0].sum())
    flat = np.concatenate(docs).astype(np.int64)
    if impl in ("sdpa", "reference", "flex"):
        lengths = torch.from_numpy(flat).to(device, non_blocking=True)
        ids = torch.repeat_interleave(torch.arange(len(flat), device=device), lengths, output_size=b * seq)
        ids = ids.view(b, seq)
        if impl == "flex":
            return Documents(ids, block_mask=doc_block_mask(ids))
        return Documents(ids, dense=doc_mask(ids))
    if impl == "varlen":
        cu = torch.from_numpy(np.concatenate([[0], np.cumsum(flat)]).astype(np.int32))
        return Documents(None, cu_seqlens=cu.to(device, non_blocking=True), max_seqlen=int(flat.max()))
    if impl == "xformers":
        from xformers.ops import fmha

        return Documents(None, bias=fmha.attn_bias.BlockDiagonalCausalMask.from_seqlens(flat.tolist()))
    raise ValueError(f"attention backend {impl!r}: choose one of {', '.join(BACKENDS)}")


def sdpa(q, k, v, docs: Documents | None = None):
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if docs is None:
        _once("sdpa", "torch scaled_dot_product_attention, is_causal")
        if q.is_cuda:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            order = [
                SDPBackend.CUDNN_ATTENTION,
                SDPBackend.FLASH_ATTENTION,
                SDPBackend.EFFICIENT_ATTENTION,
                SDPBackend.MATH,
            ]
            with sdpa_kernel(order, set_priority=True):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        _once("sdpa+docmask", "torch scaled_dot_product_attention, boolean document mask")
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=docs.dense)
    return out.transpose(1, 2)


def _causal_docs(q: torch.Tensor) -> Documents:
    """Plain causal attention as one document per row (for the kernels that always take a mask)."""
    b, s = q.shape[:2]
    return Documents(torch.arange(b, device=q.device)[:, None].expand(b, s))


def flex(q, k, v, docs: Documents | None = None):
    global _flex
    if q.requires_grad and not q.is_cuda:
        raise RuntimeError(
            "attention 'flex' trains on CUDA only (PyTorch's flex_attention has no CPU backward): use --attn sdpa here"
        )
    if _flex is None:
        from torch.nn.attention.flex_attention import flex_attention

        _flex = torch.compile(flex_attention, dynamic=False)
    _once("flex", "torch flex_attention (compiled), document × causal BlockMask")
    if docs is not None and docs.block_mask is not None:
        mask = docs.block_mask
    else:  # plain causal: one block mask per shape, not one per layer
        key = (q.shape[0], q.shape[1], str(q.device))
        if key not in _causal_masks:
            _causal_masks[key] = doc_block_mask(_causal_docs(q).doc_ids)
        mask = _causal_masks[key]
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    return _flex(q, k, v, block_mask=mask).transpose(1, 2)


def varlen(q, k, v, docs: Documents | None = None):
    if not q.is_cuda:
        raise RuntimeError("attention 'varlen' runs on CUDA only (flash attention): use --attn sdpa on this device")
    from torch.nn.attention.varlen import varlen_attn

    b, s = q.shape[:2]
    if docs is None or docs.cu_seqlens is None:
        cu = torch.arange(0, (b + 1) * s, s, device=q.device, dtype=torch.int32)
        max_len = s
    else:
        cu, max_len = docs.cu_seqlens, docs.max_seqlen
    _once("varlen", "torch varlen_attn (flash), cu_seqlens")
    flat = [t.reshape(b * s, *t.shape[2:]) for t in (q, k, v)]
    return varlen_attn(*flat, cu, cu, max_len, max_len, window_size=(-1, 0)).reshape(q.shape)


def xformers(q, k, v, docs: Documents | None = None):
    if not q.is_cuda:
        raise RuntimeError("attention 'xformers' runs on CUDA only: use --attn sdpa on this device")
    try:
        from xformers.ops import fmha
    except ImportError as e:
        raise RuntimeError("attention 'xformers' needs the gpu extra: pip install -e '.[gpu]'") from e
    if docs is None:
        _once("xformers", "memory_efficient_attention, LowerTriangularMask")
        return fmha.memory_efficient_attention(q, k, v, attn_bias=fmha.LowerTriangularMask())
    _once("xformers+docmask", "memory_efficient_attention, BlockDiagonalCausalMask from host lengths")
    b, s = q.shape[:2]
    out = fmha.memory_efficient_attention(*(t.reshape(1, b * s, *t.shape[2:]) for t in (q, k, v)), attn_bias=docs.bias)
    return out.reshape(q.shape)


def reference(q, k, v, docs: Documents | None = None):
    """The equations, in fp32: softmax(q kᵀ / √d + mask) v."""
    _once("reference", "plain softmax attention in fp32")
    qf, kf, vf = (t.float().transpose(1, 2) for t in (q, k, v))
    scores = qf @ kf.transpose(-1, -2) / math.sqrt(q.shape[-1])
    seq = q.shape[1]
    if docs is None:
        allowed = torch.ones(seq, seq, dtype=torch.bool, device=q.device).tril()
    else:
        allowed = docs.dense if docs.dense is not None else doc_mask(docs.doc_ids)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ vf).transpose(1, 2).to(q.dtype)


KERNELS = {"sdpa": sdpa, "flex": flex, "varlen": varlen, "xformers": xformers, "reference": reference}


def attend(impl: str, q, k, v, docs: Documents | None = None):
    if impl not in KERNELS:
        raise ValueError(f"attention backend {impl!r}: choose one of {', '.join(BACKENDS)}")
    return KERNELS[impl](q, k, v, docs)

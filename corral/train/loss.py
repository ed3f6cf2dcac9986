"""Next-token cross-entropy fused with the output projection, computed in row chunks.

The plain way (`F.cross_entropy(model(x))`) materialises fp32 logits of shape (tokens, vocab),
their log-softmax and, in backward, a gradient of the same size: for 2,048 tokens and LLaMA's
32,000-token vocabulary that is three 262 MB tensors per micro-batch, freshly allocated (and
page-faulted) every step. Here the projection and the loss run over chunks of rows small enough
to stay in cache: each chunk's logits are made, reduced to their log-sum-exp, turned in place into
the gradient of the loss (softmax − one-hot) and multiplied straight into the gradients of the
hidden states and of the output weight, so no (tokens, vocab) tensor outlives its chunk. The same
GEMMs run as in the plain way; the gradients are computed during the forward pass (as Liger's
fused linear cross-entropy does) and scaled by the incoming gradient in backward.

Chunks are sized by device: on a CPU, to stay in cache; on a GPU, large enough that each chunk's
GEMMs fill the device. On CUDA the output-weight gradient is accumulated in fp32 straight from the
bf16 GEMM (`torch.mm(..., out_dtype=float32)`, no bf16 round trip), and the chunk function is
compiled (its element-wise softmax steps fuse into one kernel).

The loss is the **sum** over target tokens (the trainer divides by the global token count);
targets equal to `IGNORE_INDEX` contribute neither loss nor gradient. Logits are formed in the
weights' dtype and reduced in fp32, as Meta's `self.output(h).float()` does.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100  # PyTorch's cross_entropy default for targets without a loss
CHUNK_ELEMENTS = 1 << 23  # CPU: logits per chunk (32 MB in fp32, ~L3-sized); 2^20…2^24 measured, this fastest
CUDA_CHUNK_ELEMENTS = 1 << 27  # CUDA: 4,096 rows of a 32,000 vocabulary (512 MB fp32): GEMMs of full-device size
_compiled: dict[str, object] = {}


def chunk_elements(cuda: bool) -> int:
    return CUDA_CHUNK_ELEMENTS if cuda else CHUNK_ELEMENTS


def _rows(vocab: int, cuda: bool = False) -> int:
    return max(16, chunk_elements(cuda) // vocab)


def _chunk_fn(cuda: bool):
    """The chunk function: compiled once on CUDA, eager on CPU (where it measured no faster)."""
    if not cuda:
        return _chunk
    if "cuda" not in _compiled:
        _compiled["cuda"] = torch.compile(_chunk, dynamic=True)
    return _compiled["cuda"]


def _accumulate(grad_w: torch.Tensor, g: torch.Tensor, hc: torch.Tensor, first: bool) -> None:
    """grad_w (fp32) += gᵀ hc, or = on the first chunk."""
    if g.dtype == torch.float32:
        torch.mm(g.t(), hc, out=grad_w) if first else grad_w.addmm_(g.t(), hc)
    elif g.is_cuda:  # bf16 GEMM with an fp32 result: no bf16 rounding of the partial sum
        part = torch.mm(g.t(), hc, out_dtype=torch.float32)
        grad_w.copy_(part) if first else grad_w.add_(part)
    else:  # bf16 on CPU (no fp32-output GEMM there): the bf16 product, summed in fp32
        part = torch.mm(g.t(), hc).float()
        grad_w.copy_(part) if first else grad_w.add_(part)


def _chunk(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor):
    """One chunk: its summed loss, and its fp32 logits turned in place into softmax − one-hot
    (zero on ignored rows), the gradient of that sum with respect to the logits."""
    logits = (h @ weight.t()).float()
    valid = targets != IGNORE_INDEX
    safe = torch.where(valid, targets, 0)
    rows = torch.arange(logits.shape[0], device=logits.device)
    picked = logits[rows, safe]
    peak = logits.amax(dim=-1, keepdim=True)
    probs = logits.sub_(peak).exp_()  # e^(z − max), in place
    norm = probs.sum(dim=-1, keepdim=True)
    lse = (peak + norm.log()).squeeze(1)
    loss = ((lse - picked) * valid).sum()
    probs.mul_(valid[:, None] / norm)  # softmax, zeroed on ignored rows
    probs[rows, safe] -= valid.to(probs.dtype)
    return loss, probs


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        rows, chunk = _rows(weight.shape[0], h.is_cuda), _chunk_fn(h.is_cuda)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        grad_w = (
            torch.empty(weight.shape, dtype=torch.float32, device=weight.device) if ctx.needs_input_grad[1] else None
        )
        for s in range(0, h.shape[0], rows):
            hc, tc = h[s : s + rows], targets[s : s + rows]
            loss, g = chunk(hc, weight, tc)
            total += loss
            g = g.to(h.dtype)
            if grad_h is not None:
                torch.mm(g, weight, out=grad_h[s : s + rows])
            if grad_w is not None:
                _accumulate(grad_w, g, hc, s == 0)
        if grad_w is not None and h.shape[0] == 0:
            grad_w.zero_()  # no rows: the loop never wrote it
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(grad_h, grad_w)
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        # The saved gradients are scaled in place: this graph can be back-propagated once.
        if getattr(ctx, "used", False):
            raise RuntimeError("linear_cross_entropy: its graph can be back-propagated only once")
        ctx.used = True
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h.mul_(grad_out.to(grad_h.dtype)) if grad_h is not None else None
        gw = grad_w.mul_(grad_out).to(ctx.weight_dtype) if grad_w is not None else None
        return gh, gw, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Σ over rows of −log softmax(h Wᵀ)[target]: h (..., dim), weight (vocab, dim), targets (...)."""
    h, targets = h.reshape(-1, h.shape[-1]), targets.reshape(-1)
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        return _FusedLinearCrossEntropy.apply(h, weight, targets)
    rows, chunk = _rows(weight.shape[0], h.is_cuda), _chunk_fn(h.is_cuda)
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    for s in range(0, h.shape[0], rows):
        total += chunk(h[s : s + rows], weight, targets[s : s + rows])[0]
    return total

"""The LLaMA-1 model, top to bottom (Touvron et al. 2023 §2.2; docs/recipe/training.md#model).

Pre-normalisation with RMSNorm (eps 1e-6, computed in fp32), SwiGLU feed-forward with hidden size
multiple_of·⌈int(2·4·dim/3) / multiple_of⌉, rotary embeddings (θ = 10000) rotating interleaved
pairs of each head's dimensions as Meta's reference does, no biases, output projection not tied
to the embedding. Names and the API follow Meta's `llama/model.py`, so its checkpoints load with
no mapping. Attention runs through `corral.train.attention` (one flag); parallelism, mixed
precision and checkpointing are applied from outside (`corral.train.parallel`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from corral.train.attention import Documents, attend, documents
from corral.train.loss import linear_cross_entropy

ROPE_THETA = 10000.0  # RoPE base (Su et al.; Meta's reference code)
INIT_STD = 0.02  # weights ~ N(0, 0.02); residual projections (wo, w2) scaled by 1/√(2·n_layers)


@dataclass
class ModelArgs:
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    vocab_size: int = 32000
    multiple_of: int = 256  # SwiGLU hidden size is rounded up to a multiple of this
    norm_eps: float = 1e-6
    max_seq_len: int = 2048
    attn: str = "sdpa"  # attention backend: sdpa | flex | varlen | xformers | reference

    def to_dict(self) -> dict:
        return asdict(self)


# docs/recipe/training.md#model, Table 2 (dim, heads, layers); vocabulary 32000 (docs/recipe/training.md#tokenizer).
CONFIGS: dict[str, dict] = {
    "7B": dict(dim=4096, n_heads=32, n_layers=32),
    "13B": dict(dim=5120, n_heads=40, n_layers=40),
    "33B": dict(dim=6656, n_heads=52, n_layers=60),
    "65B": dict(dim=8192, n_heads=64, n_layers=80),
    # small shapes for tests, the demo and CPU experiments (not in the paper)
    "tiny": dict(dim=64, n_heads=4, n_layers=2, multiple_of=32, max_seq_len=256),
    "small": dict(dim=256, n_heads=8, n_layers=4, multiple_of=64, max_seq_len=512),
    "base": dict(dim=768, n_heads=12, n_layers=12, multiple_of=256, max_seq_len=1024),
}


def model_args(name: str, **overrides) -> ModelArgs:
    if name not in CONFIGS:
        raise ValueError(f"model {name!r}: choose one of {', '.join(CONFIGS)}")
    return ModelArgs(**{**CONFIGS[name], **overrides})


def ffn_hidden_dim(dim: int, multiple_of: int) -> int:
    hidden = int(2 * (4 * dim) / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._norm(x.float()).type_as(x) * self.weight


def precompute_freqs_cis(dim: int, end: int, theta: float = ROPE_THETA) -> torch.Tensor:
    """e^{i·t·θ^(-2j/dim)} for positions t < end and pairs j < dim/2 (complex64)."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    t = torch.arange(end, dtype=torch.float32)
    freqs = torch.outer(t, freqs)
    return torch.polar(torch.ones_like(freqs), freqs)


def apply_rotary_emb(xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor):
    """Rotate interleaved pairs (x0, x1), (x2, x3), … of each head by the position's angles."""
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
    xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    freqs = freqs_cis.view(1, xq_.shape[1], 1, xq_.shape[-1])
    xq_out = torch.view_as_real(xq_ * freqs).flatten(3)
    xk_out = torch.view_as_real(xk_ * freqs).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.n_heads
        self.head_dim = args.dim // args.n_heads
        self.attn = args.attn
        self.wq = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * self.head_dim, args.dim, bias=False)

    def forward(self, x: torch.Tensor, freqs_cis: torch.Tensor, docs: Documents | None = None):
        bsz, seqlen, _ = x.shape
        xq = self.wq(x).view(bsz, seqlen, self.n_heads, self.head_dim)
        xk = self.wk(x).view(bsz, seqlen, self.n_heads, self.head_dim)
        xv = self.wv(x).view(bsz, seqlen, self.n_heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, freqs_cis)
        out = attend(self.attn, xq, xk, xv, docs)
        return self.wo(out.reshape(bsz, seqlen, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.layer_id = layer_id
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, ffn_hidden_dim(args.dim, args.multiple_of))
        self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

    def forward(self, x: torch.Tensor, freqs_cis: torch.Tensor, docs: Documents | None = None):
        h = x + self.attention(self.attention_norm(x), freqs_cis, docs)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, params: ModelArgs):
        super().__init__()
        self.params = params
        self.vocab_size = params.vocab_size
        self.n_layers = params.n_layers
        self.tok_embeddings = nn.Embedding(params.vocab_size, params.dim)
        self.layers = nn.ModuleList(TransformerBlock(i, params) for i in range(params.n_layers))
        self.norm = RMSNorm(params.dim, eps=params.norm_eps)
        self.output = nn.Linear(params.dim, params.vocab_size, bias=False)
        # Meta's reference precomputes twice the context; not saved with the weights.
        self.register_buffer("freqs_cis", self._freqs(), persistent=False)

    def _freqs(self) -> torch.Tensor:
        return precompute_freqs_cis(self.params.dim // self.params.n_heads, self.params.max_seq_len * 2)

    def forward(
        self, tokens: torch.Tensor, docs: Documents | torch.Tensor | None = None, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """int64 tokens (batch, seq) → logits (batch, seq, vocab). `docs` masks attention across packed
        documents: their structure (`attention.documents`), or the (batch, seq) document ids, from
        which it is built here, once for every layer.

        With `targets` (batch, seq) it returns instead the summed next-token cross-entropy, fused
        with the output projection so that no (batch·seq, vocab) tensor is ever held
        (`corral.train.loss`); the logits are the same either way."""
        seqlen = tokens.shape[1]
        if docs is not None and not isinstance(docs, Documents):
            docs = documents(self.params.attn, docs, tokens.device)
        h = self.tok_embeddings(tokens)
        freqs_cis = self.freqs_cis[:seqlen]
        for layer in self.layers:
            h = layer(h, freqs_cis, docs)
        h = self.norm(h)
        if targets is not None:
            return linear_cross_entropy(h, self.output.weight, targets)
        return self.output(h).float()

    # --- initialisation (called after the parameters are materialised, on any device) ----------

    def reset_buffers(self, device: torch.device | str | None = None) -> None:
        self.freqs_cis = self._freqs().to(device or self.output.weight.device)

    def init_value(self, name: str, shape: torch.Size, generator: torch.Generator, device) -> torch.Tensor:
        """The full initial value of parameter `name`: norms 1, other weights N(0, σ)."""
        if name.endswith("norm.weight"):
            return torch.ones(shape, device=device)
        std = INIT_STD
        if name.endswith(("attention.wo.weight", "feed_forward.w2.weight")):
            std = INIT_STD / math.sqrt(2 * self.n_layers)
        return torch.empty(shape, device=device).normal_(0.0, std, generator=generator)

    def num_params(self, embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embeddings else n - self.tok_embeddings.weight.numel()

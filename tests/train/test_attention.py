"""corral.train.attention: every backend gives the same output, with and without document masks."""

import pytest
import torch

from corral.train import attention


@pytest.mark.parametrize("impl", ["sdpa", "flex", "reference"])
def test_attention_backends_agree_with_and_without_document_masks(impl):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 64 + 64, 4, 16, generator=g) for _ in range(3))  # seq % 128 == 0 and 64 tails
    for seq in (128, 64 + 1):
        qs, ks, vs = q[:, :seq], k[:, :seq], v[:, :seq]
        ref = attention.reference(qs, ks, vs)
        assert torch.allclose(attention.attend(impl, qs, ks, vs), ref, atol=1e-5)
        doc = torch.tensor([[0] * 20 + [1] * (seq - 20), [0] * seq])
        masked = attention.attend(impl, qs, ks, vs, attention.documents(impl, doc, "cpu"))
        assert torch.isfinite(masked).all()
        # the first token of document 1 attends only to itself
        assert torch.allclose(masked[0, 20], vs[0, 20], atol=1e-5)
        assert torch.allclose(masked[1], ref[1], atol=1e-5)


def test_gpu_kernels_refuse_cpu_clearly():
    q = torch.randn(1, 8, 2, 8)
    for impl in ("xformers", "varlen"):
        with pytest.raises(RuntimeError, match="CUDA only"):
            attention.attend(impl, q, q, q)
    with pytest.raises(RuntimeError, match="trains on CUDA only"):
        attention.attend("flex", q.requires_grad_(), q, q)
    with pytest.raises(ValueError, match="sdpa"):
        attention.attend("flash9", q, q, q)

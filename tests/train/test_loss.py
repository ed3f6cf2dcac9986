"""The cross-entropy fused with the output projection against PyTorch's plain one."""

import pytest
import torch
import torch.nn.functional as F

from corral.train import loss as fused
from corral.train.model import Transformer, model_args


def _inputs(n=70, dim=24, vocab=50, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, dim, generator=g).to(dtype)
    w = (torch.randn(vocab, dim, generator=g) * 0.3).to(dtype)
    t = torch.randint(0, vocab, (n,), generator=g)
    return h, w, t


def _plain(h, w, t):
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss = F.cross_entropy((h @ w.t()).float(), t, reduction="sum", ignore_index=fused.IGNORE_INDEX)
    (loss * 0.37).backward()
    return loss.detach(), h.grad, w.grad


def _fused(h, w, t):
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss = fused.linear_cross_entropy(h, w, t)
    (loss * 0.37).backward()
    return loss.detach(), h.grad, w.grad


@pytest.mark.parametrize("chunk", [1 << 22, 16 * 50, 50 * 50])  # one chunk; 16-row chunks with a ragged last one
def test_loss_and_gradients_equal_plain_cross_entropy(monkeypatch, chunk):
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", chunk)
    h, w, t = _inputs()
    t[[3, 40, 69]] = fused.IGNORE_INDEX  # ignored targets: no loss, no gradient
    for a, b in zip(_plain(h, w, t), _fused(h, w, t)):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    assert _fused(h, w, t)[1][[3, 40, 69]].abs().max() == 0


def test_no_grad_path_gives_the_same_loss(monkeypatch):
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 16 * 50)
    h, w, t = _inputs()
    with torch.no_grad():
        got = fused.linear_cross_entropy(h, w, t)
    torch.testing.assert_close(got, _plain(h, w, t)[0])


def test_bf16_follows_fp32_and_keeps_dtypes():
    h, w, t = _inputs(dtype=torch.bfloat16)
    loss, gh, gw = _fused(h, w, t)
    ref_loss, ref_gh, ref_gw = _plain(h.float(), w.float(), t)
    assert loss.dtype == torch.float32 and gh.dtype == gw.dtype == torch.bfloat16
    torch.testing.assert_close(loss, ref_loss, rtol=2e-2, atol=0)
    torch.testing.assert_close(gw.float(), ref_gw, rtol=0, atol=3e-2)
    torch.testing.assert_close(gh.float(), ref_gh, rtol=0, atol=3e-2)


def test_no_rows_give_zero_loss_and_gradients():
    h, w, t = _inputs(n=0)
    loss, gh, gw = _fused(h, w, t)
    assert float(loss) == 0 and gh.shape == (0, 24) and gw.abs().max() == 0


def test_graph_backpropagates_once_only():
    h, w, t = _inputs()
    h.requires_grad_()
    loss = fused.linear_cross_entropy(h, w, t)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()


def test_model_loss_equals_cross_entropy_of_its_logits(monkeypatch):
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 7 * 300)  # several chunks over 2 × 16 tokens
    torch.manual_seed(0)
    model = Transformer(model_args("tiny", vocab_size=300))
    x, y = torch.randint(0, 300, (2, 16)), torch.randint(0, 300, (2, 16))
    plain = F.cross_entropy(model(x).reshape(-1, 300), y.reshape(-1), reduction="sum")
    plain.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    got = model(x, targets=y)
    got.backward()
    torch.testing.assert_close(got, plain, rtol=1e-5, atol=1e-5)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], rtol=1e-4, atol=1e-6, msg=n)

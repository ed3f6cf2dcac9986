"""corral.train.model: Table 2's shapes, Meta's parameter names, and the logits of the plain equations."""

import plain_llama
import torch
from train_helpers import small_model

from corral.train.model import Transformer, ffn_hidden_dim, model_args


def test_configs_follow_table_2_and_the_swiglu_rule():
    assert ffn_hidden_dim(4096, 256) == 11008  # LLaMA 7B
    a = model_args("65B")
    assert (a.dim, a.n_heads, a.n_layers, a.vocab_size, a.norm_eps) == (8192, 64, 80, 32000, 1e-6)
    with torch.device("meta"):
        n = Transformer(model_args("7B")).num_params()
    assert 6.7e9 < n < 6.8e9  # Table 2: 6.7B


def test_parameter_names_are_metas():
    names = set(dict(small_model().named_parameters()))
    assert {
        "tok_embeddings.weight",
        "layers.0.attention.wq.weight",
        "layers.1.feed_forward.w3.weight",
        "layers.0.attention_norm.weight",
        "layers.0.ffn_norm.weight",
        "norm.weight",
        "output.weight",
    } <= names
    assert "freqs_cis" not in small_model().state_dict()  # a non-persistent buffer
    assert not [n for n in names if "bias" in n]


def test_logits_equal_the_plain_equations():
    m = small_model()
    tokens = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(1))
    got = m(tokens).double()
    sd = m.state_dict()
    for b in range(2):
        want = plain_llama.logits(sd, 2, 4, 1e-6, tokens[b])
        assert torch.allclose(got[b], want, atol=2e-5), (got[b] - want).abs().max()

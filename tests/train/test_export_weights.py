"""corral.train.weights: the Hugging Face export loads in transformers with the same logits."""

import torch
from train_helpers import small_model

from corral.train.model import Transformer
from corral.train.weights import export


def test_hf_export_loads_in_transformers_with_the_same_logits(tmp_path):
    from transformers import LlamaForCausalLM

    m = small_model()
    export(m.state_dict(), m.params, str(tmp_path))
    hf = LlamaForCausalLM.from_pretrained(str(tmp_path / "hf"), torch_dtype=torch.float32).eval()
    tokens = torch.randint(0, 300, (2, 50), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(hf(tokens).logits, m(tokens), atol=1e-4)
    from safetensors.torch import load_file

    again = Transformer(m.params)
    again.load_state_dict(load_file(str(tmp_path / "meta" / "consolidated.safetensors")))  # Meta names: no mapping
    assert torch.equal(again(tokens), m(tokens))

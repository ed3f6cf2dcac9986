"""The finished model's weights, written for others to load: RUN/export/.

- `meta/`: one safetensors file in Meta's names (`consolidated.safetensors` + `params.json`),
  loadable by `Transformer.load_state_dict` as is, and the build's `tokenizer.model`.
- `hf/`: Hugging Face's Llama layout (`model.safetensors` + `config.json`, q/k rows permuted from
  Meta's interleaved rotary pairs to HF's rotate-half layout) with the tokenizer files, for
  `transformers.AutoModelForCausalLM` and `AutoTokenizer` on the same folder.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import torch

EXPORT_DIR = "export"  # RUN/export: the folder the trainer writes when a run finishes
META_DIR, HF_DIR = "meta", "hf"  # its two layouts


def export_dir(run_dir: str) -> str:
    return os.path.join(run_dir, EXPORT_DIR)


def hf_permute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Meta's q/k rows (interleaved rotary pairs) → HF's rotate-half order, per head."""
    dim1, dim2 = w.shape
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def hf_state_dict(sd: dict[str, torch.Tensor], n_heads: int) -> dict[str, torch.Tensor]:
    out = {
        "model.embed_tokens.weight": sd["tok_embeddings.weight"],
        "model.norm.weight": sd["norm.weight"],
        "lm_head.weight": sd["output.weight"],
    }
    names = {
        "attention.wq": "self_attn.q_proj",
        "attention.wk": "self_attn.k_proj",
        "attention.wv": "self_attn.v_proj",
        "attention.wo": "self_attn.o_proj",
        "feed_forward.w1": "mlp.gate_proj",
        "feed_forward.w2": "mlp.down_proj",
        "feed_forward.w3": "mlp.up_proj",
        "attention_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
    }
    for key, value in sd.items():
        if not key.startswith("layers."):
            continue
        _, i, rest = key.split(".", 2)
        module = rest.rsplit(".", 1)[0]
        if module in ("attention.wq", "attention.wk"):
            value = hf_permute(value, n_heads)
        out[f"model.layers.{i}.{names[module]}.weight"] = value
    return out


def hf_config(args, dtype: str = "float32") -> dict[str, Any]:
    from corral.train.model import ROPE_THETA, ffn_hidden_dim

    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": args.dim,
        "intermediate_size": ffn_hidden_dim(args.dim, args.multiple_of),
        "num_attention_heads": args.n_heads,
        "num_key_value_heads": args.n_heads,
        "num_hidden_layers": args.n_layers,
        "rms_norm_eps": args.norm_eps,
        "vocab_size": args.vocab_size,
        "max_position_embeddings": args.max_seq_len,
        "rope_theta": ROPE_THETA,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": dtype,
    }


def export(sd: dict[str, torch.Tensor], args, dest: str, tokenizer_model: str | None = None) -> list[str]:
    """Write DEST/meta/{consolidated.safetensors, params.json} and DEST/hf/{model.safetensors,
    config.json} from a full state dict; with the build's SentencePiece model, its tokenizer.model
    goes to DEST/meta and its Hugging Face tokenizer files to DEST/hf, so `AutoTokenizer` loads
    the same folder as `AutoModelForCausalLM`."""
    from safetensors.torch import save_file

    from corral.tokenize.hf_export import export_hf

    meta_dir, hf_dir = os.path.join(dest, META_DIR), os.path.join(dest, HF_DIR)
    os.makedirs(meta_dir, exist_ok=True)
    os.makedirs(hf_dir, exist_ok=True)
    sd = {k: v.detach().contiguous().cpu() for k, v in sd.items()}
    save_file(sd, os.path.join(meta_dir, "consolidated.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(meta_dir, "params.json"), "w", encoding="utf-8") as f:
        json.dump({k: v for k, v in args.to_dict().items() if k != "attn"}, f, indent=2)
    save_file(
        {k: v.contiguous() for k, v in hf_state_dict(sd, args.n_heads).items()},
        os.path.join(hf_dir, "model.safetensors"),
        metadata={"format": "pt"},
    )
    with open(os.path.join(hf_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config(args, str(next(iter(sd.values())).dtype).replace("torch.", "")), f, indent=2)
    if tokenizer_model:
        shutil.copy(tokenizer_model, os.path.join(meta_dir, "tokenizer.model"))
        export_hf(tokenizer_model, hf_dir)
    return [meta_dir, hf_dir]

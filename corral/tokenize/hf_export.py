"""Export a SentencePiece BPE model as Hugging Face LLaMA tokenizer files.

OUT/tokenizer/hf/ gets what `transformers.AutoTokenizer.from_pretrained` reads for a LLaMA
tokenizer: the SentencePiece `tokenizer.model` itself (for the sentencepiece-backed class),
`tokenizer.json` (the fast tokenizer), `tokenizer_config.json` and `special_tokens_map.json`.

tokenizer.json is built with the `tokenizers` library, the way transformers converts LLaMA's
tokenizer: a BPE model over the same vocabulary with byte fallback and `<unk>` fused; the
normalizer prepends "▁" (SentencePiece's dummy prefix) and turns spaces into "▁"; no
pre-tokenizer; the decoder undoes both and reassembles fallback bytes. The merges are recovered
from the vocabulary: every split of a normal piece into two pieces of the vocabulary is a merge,
ranked by the merged piece's score (SentencePiece merges the best-scoring pair first), ties by
the pair's ids. A test encodes the real samples and runs of spaces, tabs and newlines both ways
and compares the ids.

tokenizer_config.json names `PreTrainedTokenizerFast`, which loads tokenizer.json as written.
transformers' `LlamaTokenizer` would rebuild the pipeline with a Metaspace pre-tokenizer, which
adds the dummy prefix only when the text does not already start with a space: on `'   '` it gives
`▁▁▁` where SentencePiece gives `▁▁▁▁`, so every text with leading whitespace would get other ids.
"""

from __future__ import annotations

import json
from typing import Any

from corral.core.fs import atomic_write_bytes, join, read_bytes
from corral.tokenize import spec

HF_DIR = "tokenizer/hf"
# LLaMA-1 release (params.json max_seq_len); docs/recipe/training.md#tokenizer: not in the paper
MODEL_MAX_LENGTH = 2048
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6  # ModelProto.SentencePiece.Type


def vocab_and_merges(model_bytes: bytes) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The BPE vocabulary (piece → id) and the ranked merges of a SentencePiece BPE model."""
    m = spec.parse_model(model_bytes)
    if m.trainer_spec.model_type != 2:  # TrainerSpec.ModelType.BPE
        raise ValueError("only SentencePiece BPE models convert to a Hugging Face BPE tokenizer")
    vocab = {p.piece: i for i, p in enumerate(m.pieces)}
    ranked = []
    for i, p in enumerate(m.pieces):
        if p.type != NORMAL or len(p.piece) < 2:
            continue
        pairs = [(p.piece[:k], p.piece[k:]) for k in range(1, len(p.piece))]
        pairs = sorted((vocab[a], vocab[b], a, b) for a, b in pairs if a in vocab and b in vocab)
        ranked += [(-p.score, i, ia, ib, a, b) for ia, ib, a, b in pairs]
    ranked.sort()
    return vocab, [(a, b) for *_, a, b in ranked]


def build_fast_tokenizer(model_bytes: bytes):
    """A `tokenizers.Tokenizer` that encodes as the SentencePiece model does."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    m = spec.parse_model(model_bytes)
    ts = m.trainer_spec
    vocab, merges = vocab_and_merges(model_bytes)
    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token=ts.unk_piece, fuse_unk=True, byte_fallback=ts.byte_fallback)
    )
    steps = []
    if m.normalizer_spec.add_dummy_prefix:
        steps.append(normalizers.Prepend("▁"))
    steps.append(normalizers.Replace(" ", "▁"))
    tok.normalizer = normalizers.Sequence(steps)
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1 if m.normalizer_spec.add_dummy_prefix else 0, 0),
        ]
    )
    tok.add_special_tokens(
        [AddedToken(p, normalized=False, special=True) for p in (ts.unk_piece, ts.bos_piece, ts.eos_piece)]
    )
    tok.post_processor = processors.TemplateProcessing(
        single=f"{ts.bos_piece} $A",
        pair=f"{ts.bos_piece} $A {ts.bos_piece} $B",
        special_tokens=[(ts.bos_piece, ts.bos_id)],
    )
    return tok


def export_hf(model_path: str, dest: str) -> list[str]:
    """Write the Hugging Face LLaMA tokenizer files for a SentencePiece model into `dest` (any
    Beam filesystem); return their paths."""
    data = read_bytes(model_path)
    ts = spec.parse_model(data).trainer_spec
    written = []

    def put(name: str, content: bytes) -> None:
        path = join(dest, name)
        atomic_write_bytes(path, content)
        written.append(path)

    put("tokenizer.model", data)
    put("tokenizer.json", build_fast_tokenizer(data).to_str(pretty=True).encode("utf-8"))
    special = {"bos_token": ts.bos_piece, "eos_token": ts.eos_piece, "unk_token": ts.unk_piece}
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        "pad_token": None,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MODEL_MAX_LENGTH,
    }
    put("tokenizer_config.json", json.dumps(config, indent=2, ensure_ascii=False).encode("utf-8"))
    put("special_tokens_map.json", json.dumps(special, indent=2, ensure_ascii=False).encode("utf-8"))
    return written

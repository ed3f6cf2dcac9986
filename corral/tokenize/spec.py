"""LLaMA's SentencePiece trainer and normalizer spec, and reading the spec back out of a model file.

Every value below was read from the released LLaMA `tokenizer.model` (its `trainer_spec` and
`normalizer_spec` protobuf fields; docs/recipe/training.md#tokenizer). Only the vocabulary size is a parameter; the
input path, model prefix and thread count describe where and how a model was trained, not what it is.

sentencepiece's own `sentencepiece_model_pb2` refuses the protobuf runtime Beam pins (its generated
code demands a newer one), so `model_proto` builds the message class from the serialized file
descriptor that module carries, in a private descriptor pool, without importing it.
"""

from __future__ import annotations

import ast
import functools
import math
import os
from typing import Any

# docs/recipe/training.md#tokenizer: trainer_spec of LLaMA's tokenizer.model, field for field.
LLAMA_TRAINER_SPEC: dict[str, Any] = {
    "model_type": "BPE",  # "byte-pair encoding (BPE) … the implementation from SentencePiece"
    "vocab_size": 32000,  # Llama 2 §2.2: "vocabulary size is 32k tokens"
    "self_test_sample_size": 0,
    "input_format": "text",
    "character_coverage": 0.99995,
    "input_sentence_size": 200_000_000,  # model prefix "…_200M_…": a 200M-sentence sample
    "seed_sentencepiece_size": 1_000_000,
    "shrinking_factor": 0.75,
    "num_sub_iterations": 2,
    "max_sentence_length": 4192,
    "shuffle_input_sentence": True,
    "max_sentencepiece_length": 16,
    "split_by_unicode_script": True,
    "split_by_whitespace": True,
    "split_by_number": True,
    "treat_whitespace_as_suffix": False,
    "split_digits": True,  # LLaMA §2.1: "we split all numbers into individual digits"
    "allow_whitespace_only_pieces": True,
    "vocabulary_output_piece_score": True,
    "hard_vocab_limit": True,
    "use_all_vocab": False,
    "byte_fallback": True,  # LLaMA §2.1: "fallback to bytes to decompose unknown UTF-8 characters"
    "required_chars": "",
    "unk_id": 0,
    "bos_id": 1,
    "eos_id": 2,
    "pad_id": -1,
    "unk_surface": " \u2047 ",
    "unk_piece": "<unk>",
    "bos_piece": "<s>",
    "eos_piece": "</s>",
    "pad_piece": "<pad>",
    "train_extremely_large_corpus": False,
}

# docs/recipe/training.md#tokenizer: normalizer_spec of LLaMA's tokenizer.model (identity: no NFKC, whitespace kept).
LLAMA_NORMALIZER_SPEC: dict[str, Any] = {
    "name": "identity",
    "add_dummy_prefix": True,
    "remove_extra_whitespaces": False,
}

UINT16_VOCAB = 1 << 16  # token shards store ids as uint16


def trainer_kwargs(vocab_size: int, threads: int) -> dict[str, Any]:
    """Keyword arguments for `SentencePieceTrainer.train` giving LLaMA's spec at `vocab_size`."""
    kw = {k: v for k, v in LLAMA_TRAINER_SPEC.items() if k not in ("model_type",)}
    kw.update(
        model_type="bpe",
        vocab_size=vocab_size,
        num_threads=threads,
        normalization_rule_name=LLAMA_NORMALIZER_SPEC["name"],
        add_dummy_prefix=LLAMA_NORMALIZER_SPEC["add_dummy_prefix"],
        remove_extra_whitespaces=LLAMA_NORMALIZER_SPEC["remove_extra_whitespaces"],
    )
    return kw


@functools.lru_cache(maxsize=1)
def model_proto():
    """sentencepiece's `ModelProto` message class, built without importing its generated module."""
    import sentencepiece
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    path = os.path.join(os.path.dirname(sentencepiece.__file__), "sentencepiece_model_pb2.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    blob = next(
        (
            node.args[0].value
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile"
        ),
        None,
    )
    if not isinstance(blob, bytes):
        raise RuntimeError(f"{path}: no serialized descriptor found (sentencepiece's layout changed)")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(blob))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("sentencepiece.ModelProto"))


def parse_model(data: bytes):
    """A SentencePiece model file's bytes as a `ModelProto` message."""
    return model_proto().FromString(data)


def _fields(message) -> dict[str, Any]:
    out = {}
    for fd in message.DESCRIPTOR.fields:
        value = getattr(message, fd.name)
        if fd.is_repeated:
            value = list(value)
        elif fd.enum_type is not None:
            value = fd.enum_type.values_by_number[value].name
        out[fd.name] = value
    return out


def read_spec(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainer_spec, normalizer_spec) of a model file, every field with its effective value."""
    m = parse_model(data)
    return _fields(m.trainer_spec), _fields(m.normalizer_spec)


def spec_differences(data: bytes, vocab_size: int | None = None) -> list[str]:
    """Where a model's spec departs from LLaMA's (vocabulary size as given, circumstantial fields
    ignored): an empty list for a faithful model."""
    trainer, normalizer = read_spec(data)
    want = dict(LLAMA_TRAINER_SPEC)
    if vocab_size is not None:
        want["vocab_size"] = vocab_size
    diffs = [f"trainer_spec.{k}: {trainer.get(k)!r} ≠ {v!r}" for k, v in want.items() if not same(trainer.get(k), v)]
    diffs += [
        f"normalizer_spec.{k}: {normalizer.get(k)!r} ≠ {v!r}"
        for k, v in LLAMA_NORMALIZER_SPEC.items()
        if not same(normalizer.get(k), v)
    ]
    return diffs


def same(stored: Any, wanted: Any) -> bool:
    """Field equality, floats compared at the protobuf's float32 precision."""
    if isinstance(wanted, float) and isinstance(stored, float):
        return math.isclose(stored, wanted, rel_tol=1e-6)
    return stored == wanted

"""`corral tokenizer train OUT`: SentencePiece BPE with LLaMA's spec on a mixture-weighted sample.

The sample: each source gets `weight × sample_bytes` of text (weights renormalised over the
sources that have documents). A document is in it when a seeded hash of its id falls below
`quota / source bytes`, so the choice depends on neither shard order nor runner, and a source
stops at its quota. A source smaller than its quota gives all it has (the manifest records what
each gave). Without `sample_bytes` every document is used.

SentencePiece reads sentences, one a line: documents are split at newlines, empty lines dropped,
and a line longer than `max_sentence_length` (4,192 bytes, which the trainer would silently skip)
is cut at whitespace into pieces that fit. Training runs from an iterator into memory, with a
fixed random seed, so the same sample gives the same model bytes.

`--tokenizer PATH` adopts an existing model instead (LLaMA's own tokenizer.model, say): it is
copied into the build and recorded the same way; its spec differences from LLaMA's are reported.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from corral.core.errors import UsageError
from corral.core.fs import atomic_write_bytes, join, read_bytes
from corral.core.shards import iter_batches
from corral.manifests.build_manifest import BuildManifest, load_build
from corral.tokenize import spec

TOKENIZER_PATH = "tokenizer/tokenizer.model"  # where a build keeps its tokenizer
MODEL_KEY = "tokenizer"  # its entry in the build manifest's `models`
SAMPLE_SEED = 0x5EED  # seeds the document sample and SentencePiece's RNG
_SPACE = (" ", "\t")


class TokenizerError(UsageError):
    """A tokenizer cannot be trained or adopted (no documents, a vocabulary too small or too large)."""


@dataclass
class Sample:
    """What the tokenizer was trained on, per source."""

    quotas: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    sentences: int = 0
    split_lines: int = 0

    def to_dict(self) -> dict[str, Any]:
        counts = {"bytes": self.bytes, "documents": self.documents, "sentences": self.sentences}
        return {"quota_bytes": self.quotas, **counts, "long_lines_split": self.split_lines}


def quotas(manifest: BuildManifest, sample_bytes: int | None) -> dict[str, int | None]:
    """Bytes of text each source contributes (None: all of it)."""
    present = {n: s.weight for n, s in manifest.sources.items() if s.documents > 0 and s.weight > 0}
    total = sum(present.values())
    if sample_bytes is None:
        return {n: None for n in present}
    return {n: int(round(sample_bytes * w / total)) for n, w in present.items()}


def _kept(doc_id: str, rate: float) -> bool:
    h = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8, key=SAMPLE_SEED.to_bytes(8, "little")).digest()
    return int.from_bytes(h, "little") < rate * 2.0**64


def split_long_line(line: str, limit: int = spec.LLAMA_TRAINER_SPEC["max_sentence_length"]) -> list[str]:
    """Cut a line into pieces of at most `limit` UTF-8 bytes, at whitespace where there is some."""
    if len(line) * 4 <= limit or len(line.encode("utf-8")) <= limit:
        return [line]
    pieces, rest = [], line
    while len(rest.encode("utf-8")) > limit:
        head = rest.encode("utf-8")[:limit].decode("utf-8", "ignore")
        cut = max(head.rfind(" "), head.rfind("\t"))
        cut = cut if cut > 0 else len(head)
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        pieces.append(rest)
    return pieces


def sentences(out: str, manifest: BuildManifest, sample_bytes: int | None, sample: Sample) -> Iterator[str]:
    """The training sentences, source by source, shard by shard, in manifest order."""
    for name, quota in quotas(manifest, sample_bytes).items():
        src = manifest.sources[name]
        rate = 1.0 if quota is None or src.bytes <= 0 else min(1.0, quota / src.bytes)
        sample.quotas[name] = quota if quota is not None else src.bytes
        got = docs = 0
        for shard in src.shards:
            if quota is not None and got >= quota:
                break
            for batch in iter_batches(join(out, shard["path"])):
                for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
                    if quota is not None and got >= quota:
                        break
                    if rate < 1.0 and not _kept(doc_id, rate):
                        continue
                    docs += 1
                    got += len(text.encode("utf-8", "surrogatepass"))
                    for line in text.split("\n"):
                        if not line:
                            continue
                        parts = split_long_line(line)
                        sample.split_lines += len(parts) > 1
                        for part in parts:
                            sample.sentences += 1
                            yield part
        sample.bytes[name], sample.documents[name] = got, docs


def train_model(lines, vocab_size: int, threads: int = 1) -> bytes:
    """Train SentencePiece BPE with LLaMA's spec on an iterable of sentences; the model's bytes."""
    import sentencepiece as spm

    spm.set_random_generator_seed(SAMPLE_SEED)
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=buf, minloglevel=2, **spec.trainer_kwargs(vocab_size, threads)
        )
    except RuntimeError as e:
        raise TokenizerError(
            f"SentencePiece could not train a {vocab_size}-piece BPE vocabulary "
            f"(tokenizer.vocab_size, tokenizer.sample_bytes): {e}"
        ) from e
    return buf.getvalue()


def _record(out: str, manifest: BuildManifest, data: bytes, info: dict[str, Any]) -> dict[str, Any]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=data)
    if sp.get_piece_size() > spec.UINT16_VOCAB:
        raise TokenizerError(
            f"the tokenizer has {sp.get_piece_size():,} pieces: token shards hold uint16 ids "
            f"(at most {spec.UINT16_VOCAB:,})"
        )
    from corral.tokenize.hf_export import HF_DIR, export_hf

    model_path = join(out, TOKENIZER_PATH)
    entry = {
        "path": TOKENIZER_PATH,
        "sha256": atomic_write_bytes(model_path, data),
        "bytes": len(data),
        "kind": "sentencepiece",
        "vocab_size": sp.get_piece_size(),
        "spec_differences": spec.spec_differences(data, sp.get_piece_size()),
        **info,
    }
    try:  # the Hugging Face files beside it, so every export of this build can carry them
        export_hf(model_path, join(out, HF_DIR))
    except ValueError as e:
        raise TokenizerError(f"{model_path}: {e}") from e
    manifest.models[MODEL_KEY] = entry
    manifest.save(out)
    return entry


def train_tokenizer(
    out: str, vocab_size: int | None = None, sample_bytes: int | None = None, threads: int | None = None
) -> dict[str, Any]:
    """Train OUT's tokenizer from its documents; write OUT/tokenizer/tokenizer.model with its
    Hugging Face files in OUT/tokenizer/hf, and record it."""
    manifest = load_build(out)
    section = manifest.settings.get("tokenizer", {})
    vocab_size = int(vocab_size or section.get("vocab_size") or spec.LLAMA_TRAINER_SPEC["vocab_size"])
    if sample_bytes is None:
        sample_bytes = section.get("sample_bytes")
    if not 259 < vocab_size <= spec.UINT16_VOCAB:
        raise TokenizerError(
            f"vocab_size {vocab_size}: must exceed the 259 special and byte pieces and fit "
            f"uint16 token ids (≤ {spec.UINT16_VOCAB})"
        )
    if not quotas(manifest, sample_bytes):
        raise TokenizerError(f"{out}: the build has no documents to train a tokenizer on")
    sample = Sample()
    data = train_model(
        sentences(out, manifest, sample_bytes, sample), vocab_size, threads or max(1, os.cpu_count() or 1)
    )
    return _record(out, manifest, data, {"origin": "trained", "sample_bytes": sample_bytes, "sample": sample.to_dict()})


def adopt_tokenizer(out: str, path: str) -> dict[str, Any]:
    """Use an existing SentencePiece model as OUT's tokenizer (copied into the build)."""
    manifest = load_build(out)
    try:
        data = read_bytes(path)
        spec.parse_model(data)
    except Exception as e:  # OSError, or protobuf's DecodeError (not a ValueError)
        raise TokenizerError(f"{path}: not a readable SentencePiece model ({e})") from e
    return _record(out, manifest, data, {"origin": f"given: {path}"})


def tokenizer_path(out: str) -> str:
    """OUT's recorded tokenizer model, or a clear error when there is none."""
    manifest = load_build(out)
    entry = manifest.models.get(MODEL_KEY)
    if not entry:
        raise TokenizerError(f"{out}: no tokenizer in the build manifest (run `corral tokenizer train {out}`)")
    return join(out, entry["path"])

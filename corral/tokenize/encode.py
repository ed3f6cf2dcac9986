"""`corral tokenize OUT`: document shards → token shards, as phases on the engine (corral.engine).

One task per document shard: its documents are encoded with OUT's tokenizer in batches
(SentencePiece's batched `encode`, `threads` native threads), BOS/EOS added as the manifest's
`tokenizer` section says, and written as one uncompressed token shard
`OUT/tokens/<source>/<the document shard's name>` (TOKEN_SCHEMA: id, list<uint16>), in the
document shard's order. The tasks run on the local pool or any Beam runner, like a build's. Each
finished shard leaves a completion record under `OUT/_tokenize/<source>/` naming the document
shard's and the tokenizer's sha256 and the token shard's checksum; a rerun skips every shard whose
record and token shard still match, so an interrupted job resumes per shard.

At the end the build manifest gets each source's `token_shards` and `tokens`, and
`settings.tokenize` (tokenizer sha256, bos, eos); token shards no longer listed are removed.
A tokenizer with more than 65,536 pieces is refused: token ids are uint16.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import numpy as np

from corral.core.fs import exists as file_exists
from corral.core.fs import is_remote, join, read_bytes, sha256_of, size
from corral.core.schema import TOKEN_SCHEMA
from corral.core.shards import ShardError, ShardInfo, iter_batches, token_batch_flat, write_shard
from corral.engine.execute import run_each
from corral.engine.graph import Item, Ledger, Summary, Task
from corral.engine.runners import Executor
from corral.manifests.build_manifest import BuildManifest, load_build
from corral.tokenize import spec
from corral.tokenize.tokenizer import MODEL_KEY, TokenizerError

TOKENS_DIR = "tokens"
PROGRESS_DIR = "_tokenize"  # OUT/_tokenize/<source>/done/tokenize/<shard>.json: the completion records
ENCODE_BATCH = 256  # documents per batched encode call: bounds the Python lists of ids held at once


def pack(encoded: list[list[int]], bos: int | None, eos: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, uint16 values) of encoded documents back to back, BOS/EOS added around each."""
    n = len(encoded)
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
    body = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.uint16, count=int(lengths.sum()))
    extra = (bos is not None) + (eos is not None)
    if not extra:
        return lengths, body
    lengths = lengths + extra
    ends = np.cumsum(lengths)
    values = np.empty(int(ends[-1]) if n else 0, dtype=np.uint16)
    mask = np.ones(len(values), dtype=bool)
    if bos is not None:
        values[ends - lengths] = bos
        mask[ends - lengths] = False
    if eos is not None:
        values[ends - 1] = eos
        mask[ends - 1] = False
    values[mask] = body
    return lengths, values


@dataclass(frozen=True)
class ShardItem(Item):
    """One document shard to tokenize, with what its token shard depends on."""

    source: str = ""
    doc_path: str = ""  # relative to OUT
    doc_sha256: str = ""
    documents: int = 0
    bos: bool = True
    eos: bool = True


@dataclass
class TokenSummary(Summary):
    source: str = ""
    path: str = ""  # the token shard, relative to OUT
    sha256: str = ""
    documents: int = 0
    bytes: int = 0
    tokens: int = 0


class TokenizeShard(Task):
    """A document shard → its token shard."""

    phase = "tokenize"
    summary = TokenSummary

    def __init__(self, out: str, threads: int):
        self.out, self.threads, self.sp = out, threads, None

    def setup(self) -> None:
        import sentencepiece as spm

        manifest = load_build(self.out)
        self.sp = spm.SentencePieceProcessor(model_proto=read_bytes(join(self.out, manifest.models[MODEL_KEY]["path"])))

    def still_done(self, item: ShardItem, summary: TokenSummary) -> bool:
        """The recorded token shard is still there, the same bytes."""
        path = join(self.out, summary.path)
        return file_exists(path) and size(path) == summary.bytes and sha256_of(path) == summary.sha256

    def run(self, item: ShardItem, *earlier) -> TokenSummary:
        if self.sp is None:
            self.setup()
        bos = self.sp.bos_id() if item.bos else None
        eos = self.sp.eos_id() if item.eos else None
        ids: list[str] = []
        lengths, values = [], []
        for batch in iter_batches(join(self.out, item.doc_path)):
            texts = batch.column("text").to_pylist()
            for i in range(0, len(texts), ENCODE_BATCH):
                n, v = pack(self.sp.encode(texts[i : i + ENCODE_BATCH], num_threads=self.threads), bos, eos)
                lengths.append(n)
                values.append(v)
            ids += batch.column("id").to_pylist()
        lengths_all = np.concatenate(lengths) if lengths else np.empty(0, dtype=np.int64)
        values_all = np.concatenate(values) if values else np.empty(0, dtype=np.uint16)
        del lengths, values
        rel = f"{TOKENS_DIR}/{item.source}/{os.path.basename(item.doc_path)}"
        batch = token_batch_flat(ids, lengths_all, values_all)
        info = write_shard(join(self.out, rel), [batch], schema=TOKEN_SCHEMA, compression=None)
        return TokenSummary(
            source=item.source,
            path=rel,
            sha256=info.sha256,
            documents=info.documents,
            bytes=info.bytes,
            tokens=int(values_all.size),
            records=info.documents,
        )


def shard_items(manifest: BuildManifest) -> dict[str, list[ShardItem]]:
    """Per source, its document shards to tokenize."""
    section = manifest.settings.get("tokenizer", {})
    bos, eos = bool(section.get("bos", True)), bool(section.get("eos", True))
    return {
        source: [
            ShardItem(
                os.path.basename(shard["path"]),
                source,
                shard["path"],
                doc_sha256=shard["sha256"],
                documents=shard["documents"],
                bos=bos,
                eos=eos,
            )
            for shard in sb.shards
        ]
        for source, sb in manifest.sources.items()
    }


def check_tokenizer(out: str, manifest: BuildManifest) -> None:
    import sentencepiece as spm

    entry = manifest.models.get(MODEL_KEY)
    if not entry:
        raise TokenizerError(f"{out}: no tokenizer in the build manifest (run `corral tokenizer train {out}` first)")
    path = join(out, entry["path"])
    if not file_exists(path):
        raise TokenizerError(f"{path}: the build manifest's tokenizer is missing")
    data = read_bytes(path)
    if sha256_of(path) != entry["sha256"]:
        raise TokenizerError(f"{path}: sha256 differs from the build manifest's (models.{MODEL_KEY}.sha256)")
    size = spm.SentencePieceProcessor(model_proto=data).get_piece_size()
    if size > spec.UINT16_VOCAB:
        raise TokenizerError(f"{path}: {size:,} pieces do not fit uint16 token ids (at most {spec.UINT16_VOCAB:,})")


def _remove_stale(out: str, keep: set[str]) -> None:
    if is_remote(out):
        return
    root = os.path.join(out, TOKENS_DIR)
    for dirpath, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), out)
            if f.endswith(".arrow") and rel not in keep:
                os.remove(os.path.join(dirpath, f))


def tokenize_build(
    out: str, how: Executor | None = None, *, threads: int | None = None
) -> tuple[BuildManifest, dict[str, int]]:
    """Tokenize every document shard of OUT on `how` (the local pool, one worker, by default);
    update the build manifest; return it and the counts of shards tokenized and resumed."""
    manifest = load_build(out)
    check_tokenizer(out, manifest)
    how = how or Executor()
    threads = threads or max(1, (os.cpu_count() or 1) // how.workers)
    sha = manifest.models[MODEL_KEY]["sha256"]
    units = {Ledger(join(out, PROGRESS_DIR), source, sha): todo for source, todo in shard_items(manifest).items()}
    by_source = run_each(TokenizeShard(out, threads), units, how, "tokenize")
    for source, sb in manifest.sources.items():
        rows = sorted(by_source[source], key=lambda r: r.path)
        sb.token_shards = [ShardInfo(r.path, r.sha256, r.documents, r.bytes).to_dict() for r in rows]
        sb.tokens = sum(r.tokens for r in rows)
        if sum(r.documents for r in rows) != sb.documents:
            raise ShardError(
                f"{source}: {sum(r.documents for r in rows)} documents tokenized, the manifest lists {sb.documents}"
            )
    section = manifest.settings.get("tokenizer", {})
    manifest.settings["tokenize"] = {
        "tokenizer_sha256": manifest.models[MODEL_KEY]["sha256"],
        "bos": bool(section.get("bos", True)),
        "eos": bool(section.get("eos", True)),
    }
    manifest.save(out)
    _remove_stale(out, {os.path.normpath(r.path) for rows in by_source.values() for r in rows})
    shards = sum(len(rows) for rows in by_source.values())
    resumed = sum(r.reused for rows in by_source.values() for r in rows)
    return manifest, {"shards": shards, "resumed": resumed, "tokenized": shards - resumed}

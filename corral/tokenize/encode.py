"""`corral tokenize OUT`: document shards → token shards, as phases on the engine (corral.engine).

One task per document shard: its texts are read once per record batch (Arrow → a Python list of
UTF-8 bytes) and encoded by OUT's tokenizer with SentencePiece's batched `encode`, which adds
BOS/EOS as the manifest's `tokenizer` section says, in chunks that `threads` threads take as they
free up (encode_batches); each chunk's ids become uint16 in one numpy pass, and the shard's values
back to back are the token shard's buffer as written: one uncompressed token shard
`OUT/tokens/<source>/<the document shard's name>` (TOKEN_SCHEMA: id, list<uint16>), in the
document shard's order. The tasks run on the local pool or any Beam runner, like a build's. Each
finished shard leaves a completion record under `OUT/_tokenize/<source>/` naming the document
shard's and the tokenizer's sha256 and the token shard's checksum; a rerun skips every shard whose
record and token shard still match, so an interrupted job resumes per shard.

Threads: given, each worker uses that many. Not given, on the local pool every worker may use
every CPU this process may use, and a semaphore the workers inherit holds the encodes running at
once to that many, so when the last shards are left their workers still use every core; on a Beam
runner, CPUs / workers.

At the end the build manifest gets each source's `token_shards` and `tokens`, and
`settings.tokenize` (tokenizer sha256, bos, eos); token shards no longer listed are removed.
A tokenizer with more than 65,536 pieces is refused (token ids are uint16), and one without the
BOS or EOS piece the manifest asks for.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corral.core import fs
from corral.core.fs import exists as file_exists
from corral.core.fs import join, read_bytes, sha256_of, size
from corral.core.schema import TOKEN_SCHEMA
from corral.core.shards import ShardError, ShardInfo, iter_batches, token_batch_flat, write_shard
from corral.engine.execute import run_each
from corral.engine.graph import Item, Ledger, Summary, Task
from corral.engine.runners import Executor, usable_cpus
from corral.manifests.build_manifest import BuildManifest, load_build
from corral.tokenize import spec
from corral.tokenize.tokenizer import MODEL_KEY, TokenizerError

TOKENS_DIR = "tokens"
PROGRESS_DIR = "_tokenize"  # OUT/_tokenize/<source>/done/tokenize/<shard>.json: the completion records
CHUNK_BYTES = 1 << 20  # text per encode call: many chunks per shard for the threads to share, few calls
_CORES: Any = None  # set by tokenize_build on the local pool: a semaphore of the cores the encodes share


def chunk_ranges(sizes: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive document ranges [a, b) holding at most `budget` bytes of text each (a longer
    document alone), from the documents' sizes in bytes."""
    ends = np.cumsum(sizes, dtype=np.int64)
    ranges, a = [], 0
    while a < len(ends):
        before = int(ends[a - 1]) if a else 0
        b = max(a + 1, int(np.searchsorted(ends, before + budget, side="right")))
        ranges.append((a, b))
        a = b
    return ranges


@functools.cache
def returns_numpy(processor: type) -> bool:
    """Whether this SentencePiece's encode takes return_type="numpy" (ids as int32 buffers)."""
    return "return_type" in inspect.signature(processor.Encode).parameters


def encode_chunk(sp, texts: list, bos: bool, eos: bool) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, uint16 values) of texts encoded by one batched call, back to back, the encoder
    adding BOS/EOS. Ids fit uint16: check_tokenizer refuses larger vocabularies."""
    if returns_numpy(type(sp)):  # each document's ids as one int32 buffer, no Python int per token
        encoded = sp.encode(texts, num_threads=1, add_bos=bos, add_eos=eos, return_type="numpy")
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        return lengths, np.concatenate(encoded, dtype=np.uint16, casting="unsafe")
    encoded = sp.encode(texts, num_threads=1, add_bos=bos, add_eos=eos)
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    return lengths, np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.uint16, count=int(lengths.sum()))


def _on_a_core(sp, texts: list, bos: bool, eos: bool) -> tuple[np.ndarray, np.ndarray]:
    """encode_chunk, holding one of the job's cores while it encodes where tokenize_build shares them."""
    if _CORES is None:
        return encode_chunk(sp, texts, bos, eos)
    with _CORES:
        return encode_chunk(sp, texts, bos, eos)


def encode_batches(sp, batches: Iterable[pa.RecordBatch], threads: int = 1, *, bos: bool, eos: bool):
    """A document shard's ids (one Arrow array) and its texts encoded: (lengths, uint16 values),
    back to back in document order, the shard read one record batch at a time.

    A batch's texts are read once, Arrow to a Python list of UTF-8 bytes (the encoder's input), and
    go to the encoder in chunks of about CHUNK_BYTES. With several threads each thread takes the
    next chunk as it frees up, a batch's largest chunks first, and the next batch is queued behind
    the one still encoding, so no thread waits for another's long book (a call with
    SentencePiece's own `num_threads` returns only when its slowest document is done) and at most
    two batches' texts are held. The encoder releases the GIL while it encodes."""
    ids, parts, encoding = [], [], []
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        for batch in batches:
            ids.append(batch.column("id"))
            column = batch.column("text")
            texts = column.cast(pa.binary()).to_pylist()
            sizes = pc.binary_length(column).to_numpy()
            ranges = chunk_ranges(sizes, CHUNK_BYTES)
            if pool is None:
                parts += [_on_a_core(sp, texts[a:b], bos, eos) for a, b in ranges]
                continue
            largest_first = sorted(ranges, key=lambda r: int(sizes[r[0] : r[1]].sum()), reverse=True)
            queued = {r: pool.submit(_on_a_core, sp, texts[r[0] : r[1]], bos, eos) for r in largest_first}
            parts += [f.result() for f in encoding]
            encoding = [queued[r] for r in ranges]
        parts += [f.result() for f in encoding]
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if not parts:
        return pa.array([], pa.string()), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint16)
    lengths, values = zip(*parts)
    return pa.concat_arrays(ids), np.concatenate(lengths), np.concatenate(values)


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
        batches = iter_batches(join(self.out, item.doc_path))
        ids, lengths, values = encode_batches(self.sp, batches, self.threads, bos=item.bos, eos=item.eos)
        rel = f"{TOKENS_DIR}/{item.source}/{os.path.basename(item.doc_path)}"
        batch = token_batch_flat(ids, lengths, values)
        info = write_shard(join(self.out, rel), [batch], TOKEN_SCHEMA, compression=None)
        return TokenSummary(
            source=item.source,
            path=rel,
            sha256=info.sha256,
            documents=info.documents,
            bytes=info.bytes,
            tokens=int(values.size),
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
    sp = spm.SentencePieceProcessor(model_proto=data)
    if sp.get_piece_size() > spec.UINT16_VOCAB:
        raise TokenizerError(
            f"{path}: {sp.get_piece_size():,} pieces do not fit uint16 token ids (at most {spec.UINT16_VOCAB:,})"
        )
    section = manifest.settings.get("tokenizer", {})
    for mark, piece_id in (("bos", sp.bos_id()), ("eos", sp.eos_id())):
        if section.get(mark, True) and piece_id < 0:
            raise TokenizerError(f"{path}: the manifest's tokenizer.{mark} adds a piece this tokenizer does not have")


def _remove_stale(out: str, keep: set[str]) -> None:
    """Remove the token shards under OUT/tokens that the manifest no longer lists (`keep`: paths
    relative to OUT)."""
    prefix = out.rstrip("/") + "/"
    stale = [
        p
        for p in fs.walk_files(join(out, TOKENS_DIR))
        if p.endswith(".arrow") and os.path.normpath(p[len(prefix) :] if p.startswith(prefix) else p) not in keep
    ]
    fs.remove(stale)


def _core_semaphore():
    """A semaphore of the CPUs this process may use, for the local pool's workers to inherit when
    it forks them; None where the platform has no fork or no shared semaphores."""
    try:
        return multiprocessing.get_context("fork").BoundedSemaphore(usable_cpus())
    except (ValueError, OSError):
        return None


def tokenize_build(
    out: str, how: Executor | None = None, *, threads: int | None = None
) -> tuple[BuildManifest, dict[str, int]]:
    """Tokenize every document shard of OUT on `how` (the local pool, one worker, by default);
    update the build manifest; return it and the counts of shards tokenized and resumed."""
    manifest = load_build(out)
    check_tokenizer(out, manifest)
    how = how or Executor()
    cores = _core_semaphore() if threads is None and how.runner is None else None
    threads = threads or (usable_cpus() if cores is not None else max(1, usable_cpus() // how.workers))
    sha = manifest.models[MODEL_KEY]["sha256"]
    units = {Ledger(join(out, PROGRESS_DIR), source, sha): todo for source, todo in shard_items(manifest).items()}
    global _CORES
    _CORES = cores  # the local pool forks its workers in run_each: they inherit it
    try:
        by_source = run_each(TokenizeShard(out, threads), units, how, "tokenize")
    finally:
        _CORES = None
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

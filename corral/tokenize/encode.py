"""`corral tokenize OUT`: a Beam job from document shards to token shards.

One task per document shard: its documents are encoded with OUT's tokenizer in batches
(SentencePiece's batched `encode`, `threads` native threads), BOS/EOS added as the manifest's
`tokenizer` section says, and written as one uncompressed token shard
`OUT/tokens/<source>/<the document shard's name>` (TOKEN_SCHEMA: id, list<uint16>), in the
document shard's order. After each shard a progress record `OUT/_tokenize/<source>/<name>.json`
names the document shard's and the tokenizer's sha256 and the token shard's checksum; a rerun skips
every shard whose record and token shard still match, so an interrupted job resumes per shard.

At the end the build manifest gets each source's `token_shards` and `tokens`, and
`settings.tokenize` (tokenizer sha256, bos, eos); token shards no longer listed are removed.
A tokenizer with more than 65,536 pieces is refused: token ids are uint16.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np

from corral.fs import atomic_write_bytes, is_remote, read_bytes, sha256_of
from corral.fs import exists as file_exists
from corral.manifests.build import BuildManifest, join, load_build
from corral.schema import TOKEN_SCHEMA
from corral.shards import ShardError, ShardInfo, iter_batches, token_batch_flat, write_shard
from corral.tokenize import spec
from corral.tokenize.train import MODEL_KEY, TokenizerError

TOKENS_DIR = "tokens"
PROGRESS_DIR = "_tokenize"
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


def _progress_path(out: str, source: str, name: str) -> str:
    return join(out, f"{PROGRESS_DIR}/{source}/{name}.json")


def _done(out: str, task: dict[str, Any]) -> dict[str, Any] | None:
    """The shard's progress record if it and its token shard still match this task."""
    path = _progress_path(out, task["source"], task["name"])
    if not file_exists(path):
        return None
    try:
        rec = json.loads(read_bytes(path))
    except (OSError, ValueError):
        return None
    same = all(rec.get(k) == task[k] for k in ("doc_sha256", "tokenizer_sha256", "bos", "eos"))
    token_path = join(out, rec.get("path", ""))
    if not same or not file_exists(token_path) or sha256_of(token_path) != rec.get("sha256"):
        return None
    return rec


class TokenizeShard(beam.DoFn):
    """task → the token shard's summary (written, or found done)."""

    def __init__(self, out: str, threads: int):
        self.out, self.threads, self.sp = out, threads, None

    def setup(self):
        import sentencepiece as spm

        manifest = load_build(self.out)
        self.sp = spm.SentencePieceProcessor(model_proto=read_bytes(join(self.out, manifest.models[MODEL_KEY]["path"])))

    def process(self, task: dict[str, Any]) -> Iterator[dict[str, Any]]:
        done = _done(self.out, task)
        if done is not None:
            yield {**done, "resumed": True}
            return
        bos = self.sp.bos_id() if task["bos"] else None
        eos = self.sp.eos_id() if task["eos"] else None
        ids: list[str] = []
        lengths, values = [], []
        for batch in iter_batches(join(self.out, task["doc_path"])):
            texts = batch.column("text").to_pylist()
            doc_ids = batch.column("id").to_pylist()
            for i in range(0, len(texts), ENCODE_BATCH):
                encoded = self.sp.encode(texts[i : i + ENCODE_BATCH], num_threads=self.threads)
                n, v = pack(encoded, bos, eos)
                lengths.append(n)
                values.append(v)
            ids += doc_ids
        lengths_all = np.concatenate(lengths) if lengths else np.empty(0, dtype=np.int64)
        values_all = np.concatenate(values) if values else np.empty(0, dtype=np.uint16)
        del lengths, values
        rel = f"{TOKENS_DIR}/{task['source']}/{task['name']}"
        info = write_shard(
            join(self.out, rel), [token_batch_flat(ids, lengths_all, values_all)], schema=TOKEN_SCHEMA, compression=None
        )
        rec = {
            "source": task["source"],
            "path": rel,
            "sha256": info.sha256,
            "documents": info.documents,
            "bytes": info.bytes,
            "tokens": int(values_all.size),
            "doc_sha256": task["doc_sha256"],
            "tokenizer_sha256": task["tokenizer_sha256"],
            "bos": task["bos"],
            "eos": task["eos"],
        }
        atomic_write_bytes(_progress_path(self.out, task["source"], task["name"]), json.dumps(rec).encode())
        yield {**rec, "resumed": False}


def tasks(out: str, manifest: BuildManifest) -> list[dict[str, Any]]:
    entry = manifest.models.get(MODEL_KEY)
    if not entry:
        raise TokenizerError(f"{out}: no tokenizer in the build manifest (run `corral tokenizer train {out}` first)")
    section = manifest.settings.get("tokenizer", {})
    bos, eos = bool(section.get("bos", True)), bool(section.get("eos", True))
    out_tasks = []
    for source, sb in manifest.sources.items():
        for shard in sb.shards:
            out_tasks.append(
                {
                    "source": source,
                    "doc_path": shard["path"],
                    "name": os.path.basename(shard["path"]),
                    "doc_sha256": shard["sha256"],
                    "documents": shard["documents"],
                    "tokenizer_sha256": entry["sha256"],
                    "bos": bos,
                    "eos": eos,
                }
            )
    return out_tasks


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
    out: str, workers: int | None = None, threads: int | None = None
) -> tuple[BuildManifest, dict[str, int]]:
    """Tokenize every document shard of OUT; update the build manifest; return it and the counts
    of shards tokenized and resumed."""
    from corral.beam_local import local_runner

    manifest = load_build(out)
    check_tokenizer(out, manifest)
    todo = tasks(out, manifest)
    workers = workers or 1
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    summaries_path = join(out, f"{PROGRESS_DIR}/summary.json")
    runner, options = local_runner(workers)
    with beam.Pipeline(runner=runner, options=options) as p:
        (
            p
            | "Shards" >> beam.Create(todo)
            | "Spread" >> beam.Reshuffle()
            | "Tokenize" >> beam.ParDo(TokenizeShard(out, threads))
            | "All" >> beam.combiners.ToList()
            | "Save" >> beam.Map(lambda s: atomic_write_bytes(summaries_path, json.dumps(s).encode()))
        )
    summaries = json.loads(read_bytes(summaries_path)) if todo else []
    by_source: dict[str, list[dict[str, Any]]] = {s: [] for s in manifest.sources}
    for s in summaries:
        by_source[s["source"]].append(s)
    for source, sb in manifest.sources.items():
        rows = sorted(by_source[source], key=lambda r: r["path"])
        sb.token_shards = [ShardInfo(r["path"], r["sha256"], r["documents"], r["bytes"]).to_dict() for r in rows]
        sb.tokens = sum(int(r["tokens"]) for r in rows)
        if sum(r["documents"] for r in rows) != sb.documents:
            raise ShardError(
                f"{source}: {sum(r['documents'] for r in rows)} documents tokenized, the manifest lists {sb.documents}"
            )
    first = todo[0] if todo else {}
    manifest.settings["tokenize"] = {
        "tokenizer_sha256": manifest.models[MODEL_KEY]["sha256"],
        "bos": first.get("bos", True),
        "eos": first.get("eos", True),
    }
    manifest.save(out)
    _remove_stale(out, {os.path.normpath(r["path"]) for rows in by_source.values() for r in rows})
    resumed = sum(1 for s in summaries if s.get("resumed"))
    return manifest, {"shards": len(todo), "resumed": resumed, "tokenized": len(todo) - resumed}

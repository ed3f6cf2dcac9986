"""Megatron-LM's indexed dataset: a `.bin` of token ids back to back and its `.idx`, written streaming.

The `.idx` layout (Megatron-LM `megatron/core/datasets/indexed_dataset.py`, "MMIDIDX"): the magic
bytes, version 1 (<Q), the dtype code (<B), the sequence count (<Q), the document count (<Q), then
each sequence's length (int32), each sequence's byte offset in the `.bin` (int64) and the document
indices (int64: the sequence number each document starts at, then the total). corral writes one
sequence per document, so the document indices are 0, 1, …, n. Lengths go to a side file while
the `.bin` streams, so memory stays bounded whatever the number of documents.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from collections.abc import Iterable

import numpy as np

MAGIC = b"MMIDIDX\x00\x00"  # Megatron-LM _INDEX_HEADER
VERSION = 1
# Megatron-LM DType codes
DTYPE_CODES = {
    np.uint8: 1,
    np.int8: 2,
    np.int16: 3,
    np.int32: 4,
    np.int64: 5,
    np.float64: 6,
    np.float32: 7,
    np.uint16: 8,
}
CHUNK = 1 << 20  # sequences per pass when the index is assembled


def dtype_for(vocab_size: int) -> type:
    """uint16 for a vocabulary of at most 65,536 ids (Megatron's own choice), int32 above."""
    return np.uint16 if vocab_size <= 65536 else np.int32


def write_indexed(prefix: str, documents: Iterable[tuple[np.ndarray, np.ndarray]], dtype: type) -> tuple[int, int]:
    """Write PREFIX.bin and PREFIX.idx from (tokens, offsets) pieces (each piece: its documents'
    tokens back to back and offsets of len(documents) + 1); return (documents, tokens). The files
    are written under temporary names and renamed only when both are whole."""
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    bin_tmp, idx_tmp = prefix + ".bin.part", prefix + ".idx.part"
    n_docs = n_tokens = 0
    with open(bin_tmp, "wb") as out, tempfile.TemporaryFile(dir=folder) as lengths:
        for tokens, offsets in documents:
            tokens = np.ascontiguousarray(tokens, dtype=dtype)
            out.write(memoryview(tokens).cast("B"))
            lengths.write(np.diff(offsets).astype(np.int32).tobytes())
            n_docs += len(offsets) - 1
            n_tokens += len(tokens)
        out.flush()
        os.fsync(out.fileno())
        lengths.seek(0)
        with open(idx_tmp, "wb") as idx:
            idx.write(MAGIC + struct.pack("<Q", VERSION) + struct.pack("<B", DTYPE_CODES[dtype]))
            idx.write(struct.pack("<Q", n_docs) + struct.pack("<Q", n_docs + 1))
            shutil.copyfileobj(lengths, idx, 4 * CHUNK)  # the int32 lengths, a chunk at a time
            lengths.seek(0)
            item, start = np.dtype(dtype).itemsize, 0
            while chunk := lengths.read(4 * CHUNK):
                lens = np.frombuffer(chunk, dtype=np.int32).astype(np.int64)
                pointers = start + np.concatenate(([0], np.cumsum(lens[:-1]))) * item
                idx.write(pointers.astype(np.int64).tobytes())
                start = int(pointers[-1] + lens[-1] * item)
            for s in range(0, n_docs + 1, CHUNK):
                idx.write(np.arange(s, min(s + CHUNK, n_docs + 1), dtype=np.int64).tobytes())
            idx.flush()
            os.fsync(idx.fileno())
    os.replace(bin_tmp, prefix + ".bin")
    os.replace(idx_tmp, prefix + ".idx")
    return n_docs, n_tokens


def data_path(weights: dict[str, float], prefixes: dict[str, str]) -> str:
    """Megatron-LM / NeMo `--data-path`: weight and prefix pairs, weights summing to 1."""
    total = sum(weights[s] for s in prefixes)
    return " ".join(f"{weights[s] / total:.6g} {prefixes[s]}" for s in prefixes)

"""The mixture-weighted, resumable loader over a build's token shards.

- Token shards are memory-mapped (`read_token_shard`): a window is copied out of the mapped file,
  never the shard.
- Each source's training documents are read in a seeded permutation, a new one per epoch, and
  joined into one stream (an EOS is added after each document only when the build's documents do
  not end with one already). The stream is cut into windows of seq_len + 1 tokens: inputs are the
  first seq_len, targets the last seq_len. A source whose epochs exceed 1 simply cycles.
- Windows are numbered globally. Window g goes to the source with the largest deficit
  (g + 1)·w − taken (ties to the first source), so that after any number of windows every source
  has its weight's share to within one window: sampling is token-weighted (windows have equal
  length) and deterministic.
- A step takes the next world × accum × micro_batch windows; rank r takes every world-th one, so
  ranks never share a window.
- The state is a few integers: the next window and the windows taken per source.
- Each source holds out a validation slice: a seeded `val_fraction` of its documents (at least one
  when it has two or more), never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corral.manifests.build import BuildManifest, join, load_build
from corral.shards import TokenShard, read_token_shard

EOS_ID = 2  # RECIPE.md §1.2: </s>


class DataError(ValueError):
    """The build cannot feed training (no token shards, a source without tokens)."""


@dataclass
class Batch:
    inputs: np.ndarray    # (B, L) int64
    targets: np.ndarray   # (B, L) int64
    doc_ids: np.ndarray   # (B, L) int32: which packed document each input token belongs to
    sources: list[str]    # the source of each row


@dataclass
class _Source:
    name: str
    weight: float
    shards: list[TokenShard]
    doc_shard: np.ndarray
    doc_index: np.ndarray
    doc_len: np.ndarray          # tokens, including an added EOS when the build adds none
    train: np.ndarray            # document numbers used for training
    val: np.ndarray              # held out
    add_eos: bool
    _epochs: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def train_tokens(self) -> int:
        return int(self.doc_len[self.train].sum())

    def _epoch(self, seed: int, index: int, e: int) -> tuple[np.ndarray, np.ndarray]:
        if e not in self._epochs:
            if len(self._epochs) > 2:
                self._epochs.pop(min(self._epochs))
            rng = np.random.default_rng([seed, index, e])
            order = self.train[rng.permutation(len(self.train))]
            self._epochs[e] = (order, np.cumsum(self.doc_len[order]))
        return self._epochs[e]

    def _doc(self, d: int) -> np.ndarray:
        toks = self.shards[self.doc_shard[d]].document(int(self.doc_index[d]))
        if self.add_eos:
            return np.concatenate([toks, np.array([EOS_ID], dtype=toks.dtype)])
        return toks

    def window(self, seed: int, index: int, k: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """The k-th window of `length` tokens of the training stream, and its document numbering."""
        total = self.train_tokens
        out = np.empty(length, dtype=np.int64)
        docs = np.empty(length, dtype=np.int32)
        pos, start, doc_no = 0, k * length, 0
        while pos < length:
            e, off = divmod(start + pos, total)
            order, ends = self._epoch(seed, index, e)
            i = int(np.searchsorted(ends, off, side="right"))
            doc_start = int(ends[i] - self.doc_len[order[i]])
            piece = self._doc(int(order[i]))[off - doc_start:]
            n = min(len(piece), length - pos)
            out[pos:pos + n] = piece[:n]
            docs[pos:pos + n] = doc_no
            doc_no += 1
            pos += n
        return out, docs

    def val_stream(self, length: int, n_windows: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The first n windows of the held-out documents in order (cycled when short)."""
        if not len(self.val):
            return []
        toks = np.concatenate([self._doc(int(d)) for d in self.val]).astype(np.int64)
        bounds = np.cumsum([self.doc_len[d] for d in self.val])
        doc_of = np.searchsorted(bounds, np.arange(len(toks)), side="right").astype(np.int32)
        need = n_windows * length
        reps = -(-need // len(toks))
        toks, doc_of = np.tile(toks, reps)[:need], np.tile(doc_of, reps)[:need]
        return [(toks[i * length:(i + 1) * length], doc_of[i * length:(i + 1) * length]) for i in range(n_windows)]


def _load_source(out: str, name: str, weight: float, entries: list[dict], add_eos: bool, val_fraction: float,
                 seed: int) -> _Source:
    shards = [read_token_shard(join(out, e["path"])) for e in entries]
    doc_shard = np.concatenate([np.full(len(s), i, dtype=np.int32) for i, s in enumerate(shards)] or
                               [np.empty(0, np.int32)])
    doc_index = np.concatenate([np.arange(len(s), dtype=np.int64) for s in shards] or [np.empty(0, np.int64)])
    doc_len = np.concatenate([np.diff(s.offsets).astype(np.int64) for s in shards] or [np.empty(0, np.int64)])
    doc_len = doc_len + int(add_eos)
    nonempty = np.flatnonzero(doc_len > 0)
    if not len(nonempty):
        raise DataError(f"source {name!r} has weight {weight} but no tokens in its token shards")
    rng = np.random.default_rng([seed, 0x7A1])
    shuffled = nonempty[rng.permutation(len(nonempty))]
    n_val = 0 if len(shuffled) < 2 else min(len(shuffled) - 1, max(1, int(round(val_fraction * len(shuffled)))))
    return _Source(name, weight, shards, doc_shard, doc_index, doc_len, np.sort(shuffled[n_val:]),
                   np.sort(shuffled[:n_val]), add_eos)


class MixtureLoader:
    """Batches of windows from a build's token shards, in the mixture's proportions."""

    def __init__(self, out: str, seq_len: int, micro_batch: int, rank: int = 0, world: int = 1, seed: int = 0,
                 val_fraction: float = 0.01, manifest: BuildManifest | None = None):
        manifest = manifest or load_build(out)
        sources = {n: sb for n, sb in manifest.sources.items() if sb.weight > 0}
        if not any(sb.token_shards for sb in sources.values()):
            raise DataError(f"{out}: no token shards (run `corral tokenize {out}` first)")
        add_eos = not manifest.settings.get("tokenize", {}).get("eos", True)
        self.sources = [_load_source(out, n, sb.weight, sb.token_shards, add_eos, val_fraction, seed)
                        for n, sb in sources.items()]
        total = sum(s.weight for s in self.sources)
        self.weights = np.array([s.weight / total for s in self.sources])
        self.names = [s.name for s in self.sources]
        self.seq_len, self.micro_batch, self.rank, self.world, self.seed = seq_len, micro_batch, rank, world, seed
        self.window = 0                               # next global window
        self.taken = np.zeros(len(self.sources), dtype=np.int64)  # windows given to each source so far

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"window": self.window, "taken": self.taken.tolist(), "names": self.names, "seed": self.seed,
                "seq_len": self.seq_len}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["names"] != self.names or state["seq_len"] != self.seq_len or state["seed"] != self.seed:
            raise DataError(f"loader state is for sources {state['names']}, seq_len {state['seq_len']}, seed "
                            f"{state['seed']}; this run has {self.names}, {self.seq_len}, {self.seed}")
        self.window, self.taken = int(state["window"]), np.array(state["taken"], dtype=np.int64)

    # --- schedule ---------------------------------------------------------------------------------
    def _next_source(self) -> tuple[int, int]:
        """(source, its window number) of the next global window: the largest deficit goes first."""
        deficit = (self.window + 1) * self.weights - self.taken
        s = int(np.argmax(deficit))
        k = int(self.taken[s])
        self.taken[s] += 1
        self.window += 1
        return s, k

    def next_step(self, accum: int) -> list[Batch]:
        """The micro-batches of one optimizer step for this rank (every rank advances alike)."""
        length = self.seq_len + 1
        batches = []
        for _ in range(accum):
            rows, docs, names = [], [], []
            for _ in range(self.micro_batch):
                for r in range(self.world):
                    s, k = self._next_source()
                    if r == self.rank:
                        toks, doc = self.sources[s].window(self.seed, s, k, length)
                        rows.append(toks)
                        docs.append(doc)
                        names.append(self.names[s])
            x = np.stack(rows)
            batches.append(Batch(x[:, :-1], x[:, 1:], np.stack(docs)[:, :-1], names))
        return batches

    def validation(self, n_windows: int) -> dict[str, Batch]:
        """Per source, its held-out windows (the same every call)."""
        out = {}
        for s in self.sources:
            wins = s.val_stream(self.seq_len + 1, n_windows)
            if wins:
                x = np.stack([w[0] for w in wins])
                out[s.name] = Batch(x[:, :-1], x[:, 1:], np.stack([w[1] for w in wins])[:, :-1], [s.name] * len(wins))
        return out

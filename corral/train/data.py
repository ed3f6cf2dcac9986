"""The mixture-weighted, resumable loader over a build's token shards, O(1) per batch in the corpus.

- Token shards are memory-mapped (`read_token_shard`): a window is copied out of the mapped file,
  never the shard. The loader keeps O(shards) integers per source and no per-document array, so
  its start-up time and memory do not grow with the number of documents; a window costs two
  binary searches over a shard's mapped offsets and one copy.
- A source's training stream is its training documents in shard order, joined (an EOS is added
  after each document only when the build's documents do not end with one already), cut into
  windows of seq_len + 1 tokens: inputs are the first seq_len, targets the last seq_len. Each epoch
  visits every whole window once, in a seeded order of its own (a Feistel bijection over the window
  numbers, so no permutation array is held); the tail shorter than a window waits for no one. A
  source shorter than one window is read cyclically. Shuffling windows rather than documents is
  what Megatron-LM's GPT dataset does with its sample index.
- Window g of the mixture goes to the source with the largest deficit (g + 1)·w − taken (ties to
  the first source), so that after any number of windows every source has its weight's share to
  within one window: sampling is token-weighted and deterministic.
- A step takes the next world × accum × micro_batch windows; rank r takes every world-th one, so
  ranks never share a window. The state is a few integers: the next window and the windows taken
  per source.
- Each source holds out `val_fraction` of its documents (at least one when it has two or more,
  never all): the last documents of each shard, spread over the shards in proportion to their
  sizes (contiguous ranges, as Megatron's train/valid split takes). They are never trained on, and
  validation reads only the windows it uses.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

import numpy as np

from corral.manifests.build import BuildManifest, join, load_build
from corral.shards import TokenShard, read_token_shard

EOS_ID = 2  # RECIPE.md §1.2: </s>
_MASK64 = (1 << 64) - 1
_ROUNDS = 4  # Feistel rounds: 4 make a pseudo-random permutation (Luby and Rackoff 1988)


class DataError(ValueError):
    """The build cannot feed training (no token shards, a source without tokens)."""


@dataclass
class Batch:
    inputs: np.ndarray    # (B, L) int64
    targets: np.ndarray   # (B, L) int64
    doc_ids: np.ndarray   # (B, L) int32: which packed document each input token belongs to (non-decreasing)
    sources: list[str]    # the source of each row


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-mixed 64-bit hash of an integer (Steele et al. 2014)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def permute(i: int, n: int, key: int) -> int:
    """Position of i (0 ≤ i < n) in a seeded permutation of range(n), without building it: a
    balanced Feistel network on the smallest even number of bits covering n, cycle-walked back into
    range (each walk step lands in range with probability > 1/4)."""
    if n <= 1:
        return 0
    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    x = i
    while True:
        left, right = x >> half, x & mask
        for r in range(_ROUNDS):
            left, right = right, left ^ (_mix(right ^ (key + r * 0x632BE59BD9B4E019) & _MASK64) & mask)
        x = (left << half) | right
        if x < n:
            return x


class _Shard:
    """One token shard's split: documents [0, cut) train, [cut, n) held out."""

    def __init__(self, shard: TokenShard, cut: int, extra: int):
        self.shard, self.cut, self.n, self.extra = shard, cut, len(shard), extra

    def start(self, d: int) -> int:
        """Stream offset of document d in this shard (its tokens, plus one EOS per earlier document
        when EOS is added)."""
        return int(self.shard.offsets[d]) + self.extra * d

    def doc_at(self, p: int, lo: int, hi: int) -> int:
        """The last document d in [lo, hi) with start(d) ≤ p (binary search over the mapped offsets)."""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.start(mid) <= p:
                lo = mid
            else:
                hi = mid
        return lo

    def read(self, a: int, b: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Stream tokens [a, b) of documents [lo, hi) and their document numbers (from 0)."""
        base = self.start(lo)
        d0, d1 = self.doc_at(a, lo, hi), self.doc_at(b - 1, lo, hi)
        off = self.shard.offsets
        toks = self.shard.tokens[off[d0]:off[d1 + 1]]
        lens = np.diff(off[d0:d1 + 2]).astype(np.int64) + self.extra
        if self.extra:
            toks = np.insert(toks, np.asarray(off[d0 + 1:d1 + 2], dtype=np.int64) - int(off[d0]), EOS_ID)
        first = self.start(d0) - base
        i, j = a - base - first, b - base - first
        return toks[i:j], np.repeat(np.arange(d1 - d0 + 1, dtype=np.int32), lens)[i:j]


class _Stream:
    """Documents [lo_s, hi_s) of each shard, joined in shard order: O(shards) to build, a bisect to seek."""

    def __init__(self, parts: list[tuple[_Shard, int, int]]):
        self.parts = [(s, lo, hi) for s, lo, hi in parts if hi > lo]
        lengths = [s.start(hi) - s.start(lo) for s, lo, hi in self.parts]
        self.ends = np.cumsum(lengths, dtype=np.int64).tolist()
        self.total = self.ends[-1] if self.ends else 0

    def read(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Tokens [a, b) of the stream (0 ≤ a < b ≤ total) and document numbers increasing across them."""
        toks, docs, doc_no = [], [], 0
        i = bisect.bisect_right(self.ends, a)
        while a < b:
            s, lo, hi = self.parts[i]
            begin = self.ends[i] - (s.start(hi) - s.start(lo))
            stop = min(b, self.ends[i])
            t, d = s.read(s.start(lo) + a - begin, s.start(lo) + stop - begin, lo, hi)
            toks.append(t)
            docs.append(d + doc_no)
            doc_no += int(d[-1]) + 1
            a, i = stop, i + 1
        if len(toks) == 1:
            return toks[0].astype(np.int64), docs[0]
        return np.concatenate(toks).astype(np.int64), np.concatenate(docs)

    def cyclic(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """`length` tokens from `start`, wrapping around the end (document numbers keep increasing)."""
        out, ids, pos, doc_no = [], [], start % self.total, 0
        while length > 0:
            n = min(length, self.total - pos)
            t, d = self.read(pos, pos + n)
            out.append(t)
            ids.append(d + doc_no)
            doc_no += int(d[-1]) + 1
            length, pos = length - n, 0
        return np.concatenate(out), np.concatenate(ids)


@dataclass
class _Source:
    name: str
    weight: float
    train: _Stream
    val: _Stream
    held_out: int                # documents held out

    @property
    def train_tokens(self) -> int:
        return self.train.total

    def windows_per_epoch(self, length: int) -> int:
        return max(1, self.train.total // length)

    def window(self, seed: int, index: int, k: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """The k-th training window of `length` tokens of this source, and its document numbering."""
        n = self.windows_per_epoch(length)
        e, j = divmod(k, n)
        w = permute(j, n, _mix((seed << 32) ^ (index << 16) ^ e))
        if self.train.total >= length:
            return self.train.read(w * length, (w + 1) * length)
        return self.train.cyclic(k * length, length)

    def val_stream(self, length: int, n_windows: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The first n windows of the held-out documents in order (cycled when short): only as many
        tokens as those windows hold are read."""
        if not self.val.total:
            return []
        toks, docs = self.val.cyclic(0, n_windows * length)
        return [(toks[i * length:(i + 1) * length], docs[i * length:(i + 1) * length]) for i in range(n_windows)]


def held_out_counts(sizes: list[int], fraction: float) -> list[int]:
    """Documents each shard holds out: `fraction` of the source's documents (at least one when it has
    two or more, never all), in proportion to shard sizes, remainders to the largest fractions."""
    total = sum(sizes)
    n_val = 0 if total < 2 or fraction <= 0 else min(total - 1, max(1, int(round(fraction * total))))
    exact = [n_val * s / total if total else 0.0 for s in sizes]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(sizes)), key=lambda i: counts[i] - exact[i])[:n_val - sum(counts)]:
        counts[i] += 1
    return counts


def _load_source(out: str, name: str, weight: float, entries: list[dict], add_eos: bool, val_fraction: float) -> _Source:
    shards = [read_token_shard(join(out, e["path"])) for e in entries]
    held = held_out_counts([len(s) for s in shards], val_fraction)
    parts = [_Shard(s, len(s) - v, int(add_eos)) for s, v in zip(shards, held)]
    train = _Stream([(p, 0, p.cut) for p in parts])
    val = _Stream([(p, p.cut, p.n) for p in parts])
    if not train.total + val.total:
        raise DataError(f"source {name!r} has weight {weight} but no tokens in its token shards")
    if not train.total:
        raise DataError(f"source {name!r}: its training documents hold no tokens (val_fraction {val_fraction})")
    return _Source(name, weight, train, val, sum(held))


class MixtureLoader:
    """Batches of windows from a build's token shards, in the mixture's proportions."""

    def __init__(self, out: str, seq_len: int, micro_batch: int, rank: int = 0, world: int = 1, seed: int = 0,
                 val_fraction: float = 0.01, manifest: BuildManifest | None = None):
        manifest = manifest or load_build(out)
        sources = {n: sb for n, sb in manifest.sources.items() if sb.weight > 0}
        if not any(sb.token_shards for sb in sources.values()):
            raise DataError(f"{out}: no token shards (run `corral tokenize {out}` first)")
        add_eos = not manifest.settings.get("tokenize", {}).get("eos", True)
        self.sources = [_load_source(out, n, sb.weight, sb.token_shards, add_eos, val_fraction)
                        for n, sb in sources.items()]
        total = sum(s.weight for s in self.sources)
        self.weights = [s.weight / total for s in self.sources]
        self.names = [s.name for s in self.sources]
        self.seq_len, self.micro_batch, self.rank, self.world, self.seed = seq_len, micro_batch, rank, world, seed
        self.window = 0                                # next global window
        self.taken = [0] * len(self.sources)           # windows given to each source so far

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"window": self.window, "taken": list(self.taken), "names": self.names, "seed": self.seed,
                "seq_len": self.seq_len}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["names"] != self.names or state["seq_len"] != self.seq_len or state["seed"] != self.seed:
            raise DataError(f"loader state is for sources {state['names']}, seq_len {state['seq_len']}, seed "
                            f"{state['seed']}; this run has {self.names}, {self.seq_len}, {self.seed}")
        self.window, self.taken = int(state["window"]), [int(t) for t in state["taken"]]

    # --- schedule ---------------------------------------------------------------------------------
    def _next_source(self) -> tuple[int, int]:
        """(source, its window number) of the next global window: the largest deficit goes first."""
        g = self.window + 1
        s = max(range(len(self.weights)), key=lambda i: (g * self.weights[i] - self.taken[i], -i))
        k = self.taken[s]
        self.taken[s] += 1
        self.window = g
        return s, k

    def next_step(self, accum: int) -> list[Batch]:
        """The micro-batches of one optimizer step for this rank (every rank advances alike: the
        schedule costs a few operations per global window, the reads are this rank's only)."""
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

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corral.core.fs import join, local_copy
from corral.core.permute import mix64, permute_many
from corral.core.shards import TokenShard, read_token_shard
from corral.manifests.build_manifest import BuildManifest, SourceBuild, load_build
from corral.train.attention import lengths_of

EOS_ID = 2  # docs/recipe/training.md#tokenizer: </s>
START_CHUNK = 4096  # training windows whose stream offsets are computed together (32 KB)


class DataError(ValueError):
    """The build cannot feed training (no token shards, a source without tokens)."""


@dataclass
class Batch:
    inputs: np.ndarray  # (B, L) int64
    targets: np.ndarray  # (B, L) int64
    doc_lengths: list[np.ndarray] | None  # per row, the lengths of the packed documents its inputs hold
    # (int32, summing to L); None from a loader asked for none
    sources: list[str]  # the source of each row

    @property
    def doc_ids(self) -> np.ndarray:
        """(B, L) int32: each input token's document, numbered 0, 1, … along each row (host side)."""
        return np.stack([np.repeat(np.arange(len(n), dtype=np.int32), n) for n in self.doc_lengths])

    def rows(self, i: int, j: int) -> Batch:
        lengths = self.doc_lengths[i:j] if self.doc_lengths is not None else None
        return Batch(self.inputs[i:j], self.targets[i:j], lengths, self.sources[i:j])


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
        toks = self.shard.tokens[off[d0] : off[d1 + 1]]
        lens = np.diff(off[d0 : d1 + 2]).astype(np.int64) + self.extra
        if self.extra:
            toks = np.insert(toks, np.asarray(off[d0 + 1 : d1 + 2], dtype=np.int64) - int(off[d0]), EOS_ID)
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


def _starts_inside(offsets: np.ndarray, pos: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """For windows [pos, pos + length) of one shard's tokens: how many documents start strictly
    inside each, and where (relative to its window, rows one after another), by binary search in
    the mapped offsets: O(documents), not O(tokens)."""
    # searched in the offsets' own dtype: a wider needle would make numpy convert the whole array
    first = np.searchsorted(offsets, pos.astype(offsets.dtype), side="right")  # first start after pos
    last = np.searchsorted(offsets, (pos + length - 1).astype(offsets.dtype), side="right")
    count = last - first
    within = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    rel = np.asarray(offsets[np.repeat(first, count) + within], dtype=np.int64) - np.repeat(pos, count)
    return count, rel


def _doc_lengths(count: np.ndarray, rel: np.ndarray, length: int) -> list[np.ndarray]:
    """Each row's document lengths (int32) from the starts inside it (`_starts_inside`), all rows at once."""
    per = count + 2  # each row's edges: 0, those starts, length
    row_start = np.cumsum(per) - per
    edges = np.empty(int(per.sum()), dtype=np.int64)
    edges[row_start] = 0
    edges[row_start + per - 1] = length
    if len(rel):
        row = np.repeat(np.arange(len(count)), count)
        edges[row_start[row] + 1 + (np.arange(len(rel)) - np.repeat(np.cumsum(count) - count, count))] = rel
    diffs = np.diff(edges).astype(np.int32)
    keep = np.ones(len(diffs), dtype=bool)
    keep[row_start[1:] - 1] = False  # the step from one row's end to the next's 0
    diffs = diffs[keep]
    bounds = np.concatenate(([0], np.cumsum(per - 1))).tolist()
    rows = [diffs[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return rows if diffs.all() else [p[p > 0] for p in rows]  # empty documents hold no tokens


@dataclass
class _Source:
    name: str
    weight: float
    train: _Stream
    val: _Stream
    held_out: int  # documents held out
    _start_chunks: dict = field(default_factory=dict)  # (seed, index, length, chunk) → window offsets

    @property
    def train_tokens(self) -> int:
        return self.train.total

    def windows_per_epoch(self, length: int) -> int:
        return max(1, self.train.total // length)

    def _starts(self, seed: int, index: int, ks: np.ndarray, length: int) -> np.ndarray:
        """Stream offsets of training windows ks, computed START_CHUNK windows at a time (a source's
        window numbers only grow, so the current chunk serves many steps; two are kept)."""
        chunks = ks // START_CHUNK
        if len(ks) and chunks[0] == chunks[-1]:
            return self._chunk(seed, index, int(chunks[0]), length)[ks - chunks[0] * START_CHUNK]
        out = np.empty(len(ks), dtype=np.int64)
        for c in np.unique(chunks).tolist():
            sel = chunks == c
            out[sel] = self._chunk(seed, index, c, length)[ks[sel] - c * START_CHUNK]
        return out

    def _chunk(self, seed: int, index: int, c: int, length: int) -> np.ndarray:
        key = (seed, index, length, c)
        if key not in self._start_chunks:
            if len(self._start_chunks) >= 2:
                self._start_chunks.pop(next(iter(self._start_chunks)))
            ks = np.arange(c * START_CHUNK, (c + 1) * START_CHUNK, dtype=np.int64)
            self._start_chunks[key] = self._compute_starts(seed, index, ks, length)
        return self._start_chunks[key]

    def _compute_starts(self, seed: int, index: int, ks: np.ndarray, length: int) -> np.ndarray:
        """Stream offsets of training windows ks: window j of epoch e is the permuted j-th."""
        n = self.windows_per_epoch(length)
        epochs, j = np.divmod(ks, n)
        uniq, which = np.unique(epochs, return_inverse=True)  # a step spans one epoch, or two
        keys = np.array([mix64((seed << 32) ^ (index << 16) ^ int(e)) for e in uniq], dtype=np.uint64)[which]
        return permute_many(j, n, keys) * length

    def window(self, seed: int, index: int, k: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """The k-th training window of `length` tokens of this source, and its document numbering."""
        if self.train.total < length:
            return self.train.cyclic(k * length, length)
        a = int(self._starts(seed, index, np.array([k]), length)[0])
        return self.train.read(a, a + length)

    def windows(
        self,
        seed: int,
        index: int,
        ks: list[int],
        length: int,
        *,
        toks: np.ndarray,
        lengths: list | None,
        rows: list[int],
    ) -> None:
        """Write windows ks into rows `rows` of toks and, unless None, the lengths of the documents
        in each row's first length − 1 tokens (the inputs) into lengths[row]: one converting copy a
        window and vectorised boundaries per shard when documents carry their own EOS and a window
        lies in one shard, `window` otherwise."""
        rows_arr = np.asarray(rows)

        def one(r: int, t: np.ndarray, d: np.ndarray) -> None:
            toks[r] = t
            if lengths is not None:
                lengths[r] = lengths_of(d[:-1])

        if self.train.total < length:
            for r, k in zip(rows, ks):
                one(r, *self.window(seed, index, k, length))
            return
        starts = self._starts(seed, index, np.asarray(ks, dtype=np.int64), length)
        ends = np.asarray(self.train.ends, dtype=np.int64)
        part = np.searchsorted(ends, starts, side="right")
        slow = starts + length > ends[part]  # windows across two shards
        order = np.argsort(part, kind="stable")
        cuts = np.searchsorted(part[order], np.arange(len(ends) + 1)).tolist()
        done_rows, counts, rels = [], [], []
        for i in np.unique(part).tolist():
            shard, lo, hi = self.train.parts[i]
            group = order[cuts[i] : cuts[i + 1]]
            mine = group[~slow[group]]
            if not len(mine):
                continue
            if shard.extra:
                slow[mine] = True
                continue
            pos = starts[mine] - (int(ends[i]) - (shard.start(hi) - shard.start(lo))) + shard.start(lo)
            tokens = shard.shard.tokens
            where = rows_arr[mine].tolist()
            for r, p in zip(where, pos.tolist()):
                toks[r] = tokens[p : p + length]
            if lengths is not None:
                count, rel = _starts_inside(shard.shard.offsets, pos, length - 1)
                done_rows += where
                counts.append(count)
                rels.append(rel)
        if done_rows:
            for r, n in zip(done_rows, _doc_lengths(np.concatenate(counts), np.concatenate(rels), length - 1)):
                lengths[r] = n
        for j in np.flatnonzero(slow).tolist():
            a = int(starts[j])
            one(rows[j], *self.train.read(a, a + length))

    def window_spans(self, seed: int, index: int, k: int, length: int) -> list[tuple[np.ndarray, int, int]]:
        """Where window k lies in the shards' mapped token arrays: (tokens, start, end) pieces (for
        benchmarks/loader.py's raw copy of the same windows; documents carrying their own EOS)."""
        a = int(self._starts(seed, index, np.array([k]), length)[0]) if self.train.total >= length else 0
        b, out = a + length, []
        i = bisect.bisect_right(self.train.ends, a)
        while a < b:
            shard, lo, hi = self.train.parts[i]
            begin = self.train.ends[i] - (shard.start(hi) - shard.start(lo))
            stop = min(b, self.train.ends[i])
            out.append((shard.shard.tokens, a - begin + shard.start(lo), stop - begin + shard.start(lo)))
            a, i = stop, i + 1
        return out

    def val_stream(self, length: int, n_windows: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The first n windows of the held-out documents in order (cycled when short): only as many
        tokens as those windows hold are read."""
        if not self.val.total:
            return []
        toks, docs = self.val.cyclic(0, n_windows * length)
        return [(toks[i * length : (i + 1) * length], docs[i * length : (i + 1) * length]) for i in range(n_windows)]


def held_out_counts(sizes: list[int], fraction: float) -> list[int]:
    """Documents each shard holds out: `fraction` of the source's documents (at least one when it has
    two or more, never all), in proportion to shard sizes, remainders to the largest fractions."""
    total = sum(sizes)
    n_val = 0 if total < 2 or fraction <= 0 else min(total - 1, max(1, int(round(fraction * total))))
    exact = [n_val * s / total if total else 0.0 for s in sizes]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(sizes)), key=lambda i: counts[i] - exact[i])[: n_val - sum(counts)]:
        counts[i] += 1
    return counts


def _load_source(out: str, name: str, sb: SourceBuild, *, add_eos: bool, val_fraction: float) -> _Source:
    weight = sb.weight
    # A build in a bucket: each token shard copied once to the local cache, checked by its sha256,
    # then memory-mapped like a local one.
    shards = [read_token_shard(local_copy(join(out, e["path"]), e["sha256"])) for e in sb.token_shards]
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

    def __init__(
        self,
        out: str,
        seq_len: int,
        micro_batch: int,
        *,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
        val_fraction: float = 0.01,
        manifest: BuildManifest | None = None,
        doc_ids: bool = True,
    ):
        manifest = manifest or load_build(out)
        sources = {n: sb for n, sb in manifest.sources.items() if sb.weight > 0}
        if not any(sb.token_shards for sb in sources.values()):
            raise DataError(f"{out}: no token shards (run `corral tokenize {out}` first)")
        add_eos = not manifest.settings.get("tokenize", {}).get("eos", True)
        self.sources = [
            _load_source(out, n, sb, add_eos=add_eos, val_fraction=val_fraction) for n, sb in sources.items()
        ]
        total = sum(s.weight for s in self.sources)
        self.weights = [s.weight / total for s in self.sources]
        self.names = [s.name for s in self.sources]
        self.seq_len, self.micro_batch, self.rank, self.world, self.seed = seq_len, micro_batch, rank, world, seed
        self.doc_ids = doc_ids  # whether batches carry their documents' lengths
        self.window = 0  # next global window
        self.taken = [0] * len(self.sources)  # windows given to each source so far

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "taken": list(self.taken),
            "names": self.names,
            "seed": self.seed,
            "seq_len": self.seq_len,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["names"] != self.names or state["seq_len"] != self.seq_len or state["seed"] != self.seed:
            raise DataError(
                f"loader state is for sources {state['names']}, seq_len {state['seq_len']}, seed "
                f"{state['seed']}; this run has {self.names}, {self.seq_len}, {self.seed}"
            )
        self.window, self.taken = int(state["window"]), [int(t) for t in state["taken"]]

    # --- schedule ---------------------------------------------------------------------------------
    def _schedule(self, count: int) -> list[tuple[int, int]]:
        """The next `count` global windows as (source, its window number): each goes to the source
        with the largest deficit (g + 1)·w − taken, ties to the first."""
        weights, taken, g = self.weights, self.taken, self.window
        order = range(len(weights))
        out = []
        for _ in range(count):
            g += 1
            best, s = -1e300, 0
            for i in order:
                d = g * weights[i] - taken[i]
                if d > best:
                    best, s = d, i
            out.append((s, taken[s]))
            taken[s] += 1
        self.window = g
        return out

    def next_step(self, accum: int) -> list[Batch]:
        """The micro-batches of one optimizer step for this rank (every rank advances alike: the
        schedule costs a few operations per global window, the reads are this rank's only)."""
        length = self.seq_len + 1
        glob = self._schedule(accum * self.micro_batch * self.world)
        mine = glob[self.rank :: self.world]  # rank r takes every world-th window
        x = np.empty((len(mine), length), dtype=np.int64)
        docs = [None] * len(mine) if self.doc_ids else None
        by_source: dict[int, list[int]] = {}
        for i, (s, _) in enumerate(mine):
            by_source.setdefault(s, []).append(i)
        for s, rows in by_source.items():  # each source's windows read together
            self.sources[s].windows(self.seed, s, [mine[i][1] for i in rows], length, toks=x, lengths=docs, rows=rows)
        batches = []
        for i in range(0, len(mine), self.micro_batch):
            xs = x[i : i + self.micro_batch]
            ds = docs[i : i + self.micro_batch] if docs is not None else None
            batches.append(Batch(xs[:, :-1], xs[:, 1:], ds, [self.names[s] for s, _ in mine[i : i + self.micro_batch]]))
        return batches

    def validation(self, n_windows: int) -> dict[str, Batch]:
        """Per source, its held-out windows (the same every call)."""
        out = {}
        for s in self.sources:
            wins = s.val_stream(self.seq_len + 1, n_windows)
            if wins:
                x = np.stack([w[0] for w in wins])
                out[s.name] = Batch(x[:, :-1], x[:, 1:], [lengths_of(w[1][:-1]) for w in wins], [s.name] * len(wins))
        return out

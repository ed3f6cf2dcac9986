"""The training loader against a raw memory-mapped copy of the same windows, at 10⁵ and 10⁷ documents.

For each size a synthetic build is written: one source of --tokens tokens in all (default 2·10⁸,
400 MB), cut into that many documents of random lengths (mean tokens ÷ documents), each ending in
EOS as `corral tokenize` writes them, in SHARDS shards (a build's shards are bounded by size, not
by document count). The corpus's bytes and shards stay the same at every size, so the memory
hierarchy treats both alike and what changes is the number of documents alone. Then one process per size measures:
  start-up   MixtureLoader construction and its validation windows (seconds)
  loader     tokens/s of `next_step` (seq 2048, micro-batch 8, 32 micro-batches a step:
             one rank's share of a 4M-token step on 8 GPUs), as training reads it without
             --doc-mask (tokens only)
  +docs      the same with each row's document lengths (what --doc-mask's attention needs)
  memmap     tokens/s of copying the very same windows (same shards, same offsets) out of the
             memory-mapped token arrays into an int64 batch: the floor any loader pays
  peak RSS   of the measuring process (MB), and its anonymous part at the end (RssAnon: memory
             the loader allocated, as opposed to pages of the mapped shards it has read)
Each is the best of --repeat rounds, loaders and baseline alternating over warm pages. Targets:
loader ≥ 0.8× memmap at both sizes, the two sizes' loader rates within 1.2× of each other, start-up
and peak RSS flat in the corpus size.

    .venv/bin/python benchmarks/loader.py [--sizes 100000 10000000] [--tokens 2e8] [--steps 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARDS = 4  # token shards per build, at every size
SEQ, MICRO, ACCUM = 2048, 8, 32  # one rank's share of a 7B step on 8 GPUs: 256 windows (4M tokens / 8)


def make_build(out: Path, docs: int, total_tokens: int, seed: int = 0) -> None:
    from corral.core.schema import TOKEN_SCHEMA
    from corral.core.shards import token_batch_flat, write_shard
    from corral.manifests.build_manifest import BuildManifest, Funnel, SourceBuild, relative_shard
    from corral.manifests.mixture import parse_mixture
    from corral.pipeline.sources.registry import SOURCES

    rng = np.random.default_rng(seed)
    mixture = parse_mixture(
        "name: bench\ntarget_tokens: 1M\nsources:\n  c4:\n    weight: 1\n    inputs: [x]\n", SOURCES
    )
    entries, tokens = [], 0
    mean = total_tokens / docs
    per_shard = -(-docs // SHARDS)
    for k, start in enumerate(range(0, docs, per_shard)):
        n = min(per_shard, docs - start)
        lengths = rng.integers(1, max(2, int(2 * mean)), n)
        values = rng.integers(3, 32000, int(lengths.sum()), dtype=np.uint16)
        values[np.cumsum(lengths) - 1] = 2  # EOS ends every document
        ids = [str(i) for i in range(start, start + n)]
        info = write_shard(
            str(out / "tokens" / "c4" / f"part-{k:05d}.arrow"),
            [token_batch_flat(ids, lengths, values)],
            schema=TOKEN_SCHEMA,
            compression=None,
        )
        entries.append(relative_shard(info, str(out)))
        tokens += int(lengths.sum())
    sources = {
        "c4": SourceBuild(weight=1.0, documents=docs, funnel=Funnel(docs, docs), token_shards=entries, tokens=tokens)
    }
    BuildManifest(
        mixture=mixture.to_dict(), settings={**mixture.settings(), "tokenize": {"eos": True}}, sources=sources
    ).save(str(out))


def measure(out: str, steps: int, repeat: int) -> dict:
    """Run in a fresh process: start-up, loader and memmap rates, peak RSS."""
    from corral.train.data import MixtureLoader

    try:  # pyarrow imports pandas on first use where it is installed: a one-off, the same at any size
        import pandas  # noqa: F401
    except ImportError:
        pass
    t0 = time.perf_counter()
    loader = MixtureLoader(out, SEQ, MICRO, seed=0, doc_ids=False)
    loader.validation(8)
    startup = time.perf_counter() - t0
    with_docs = MixtureLoader(out, SEQ, MICRO, seed=0)
    src = loader.sources[0]
    length = SEQ + 1
    tokens = steps * ACCUM * MICRO * SEQ
    # the windows the loader will read, as (shard tokens, start) pairs, for the baseline
    spans = []
    for k in range(steps * ACCUM * MICRO):
        spans.extend(src.window_spans(0, 0, k, length))
    best_loader = best_docs = best_raw = 0.0
    for _ in range(repeat):
        for ld in (loader, with_docs):
            ld.load_state_dict({**ld.state_dict(), "window": 0, "taken": [0]})
        t = time.perf_counter()
        for _ in range(steps):
            loader.next_step(ACCUM)
        best_loader = max(best_loader, tokens / (time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(steps):
            with_docs.next_step(ACCUM)
        best_docs = max(best_docs, tokens / (time.perf_counter() - t))
        t = time.perf_counter()
        for i in range(0, len(spans), MICRO):
            rows = [arr[a:b] for arr, a, b in spans[i : i + MICRO]]
            np.stack([np.asarray(r, dtype=np.int64) for r in rows])
        best_raw = max(best_raw, tokens / (time.perf_counter() - t))
    with open("/proc/self/status", encoding="ascii") as f:
        anon = next((int(line.split()[1]) for line in f if line.startswith("RssAnon:")), 0)
    return {
        "startup_s": startup,
        "loader_tps": best_loader,
        "docs_tps": best_docs,
        "memmap_tps": best_raw,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "anon_mb": anon / 1024,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 10_000_000])
    p.add_argument("--tokens", type=float, default=2e8, help="tokens in each build (all sizes alike)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.measure:
        print(json.dumps(measure(a.measure[0], int(a.measure[1]), int(a.measure[2]))))
        return 0
    results = {}
    with tempfile.TemporaryDirectory(prefix="corral-loader-") as tmp:
        for docs in a.sizes:
            out = Path(tmp) / f"b{docs}"
            t = time.perf_counter()
            make_build(out, docs, int(a.tokens))
            print(f"wrote {docs:,} documents in {time.perf_counter() - t:.0f} s", flush=True)
            res = subprocess.run(
                [sys.executable, __file__, "--measure", str(out), str(a.steps), str(a.repeat)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[docs] = json.loads(res.stdout.strip().splitlines()[-1])
    print(
        f"\n{'documents':>11} {'start-up s':>10} {'loader tok/s':>13} {'+docs tok/s':>12} {'memmap tok/s':>13} "
        f"{'ratio':>6} {'+docs':>6} {'peak RSS MB':>11} {'anon MB':>8}"
    )
    for docs, r in results.items():
        print(
            f"{docs:>11,} {r['startup_s']:>10.3f} {r['loader_tps']:>13,.0f} {r['docs_tps']:>12,.0f} "
            f"{r['memmap_tps']:>13,.0f} {r['loader_tps'] / r['memmap_tps']:>5.2f}× "
            f"{r['docs_tps'] / r['memmap_tps']:>5.2f}× {r['peak_rss_mb']:>11.0f} {r['anon_mb']:>8.0f}"
        )
    rates = [r["loader_tps"] for r in results.values()]
    print(f"loader rate across sizes: {max(rates) / min(rates):.2f}× (target ≤ 1.2×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

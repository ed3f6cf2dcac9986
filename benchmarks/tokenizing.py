"""`corral tokenize` against raw SentencePiece batched encoding of the same texts, in one run.
(Named tokenizing.py: a script named tokenize.py would shadow the standard library module for
everything it imports.)

The corpus: the real samples' documents (C4, English/Bulgarian/Chinese Wikipedia, books, arXiv,
StackExchange, from ../shared/data) built once, then copied `--copies` times into document shards
of a fresh build folder (distinct ids, same texts), so that the job's start-up is a small part of
the time. The tokenizer is LLaMA's own tokenizer.model. Without ../shared/data the documents are
synthetic word salad and the tokenizer is trained on them.

Two settings, each timed on the same texts:
  one core:   raw `sp.encode(texts, num_threads=1)` on texts already in memory, against
              `corral tokenize --workers 1 --threads 1` (reads the shards, encodes, adds BOS/EOS,
              writes uint16 token shards, updates the manifest)
  all cores:  raw `num_threads=<cores>` against `corral tokenize --workers 1 --threads <cores>`
It prints tokens/s for both and the ratio corral / raw (target ≥ 0.9), and corral's peak RSS.

Run: .venv/bin/python benchmarks/tokenizing.py [--copies 6]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def real_texts(tmp: Path) -> list[str]:
    from corral.core.shards import iter_records
    from corral.pipeline.build import build

    d = SHARED
    (tmp / "m.yaml").write_text(
        "name: bench\ntarget_tokens: 1M\nsources:\n"
        f"  c4: {{weight: 0.3, inputs: ['{d}/c4/c4-sample.*.json.gz']}}\n"
        f"  wikipedia: {{weight: 0.2, inputs: ['{d}/wikipedia/*'], read: {{languages: [en, bg, zh]}}}}\n"
        f"  books: {{weight: 0.2, inputs: ['{d}/books/*']}}\n"
        f"  arxiv: {{weight: 0.1, inputs: ['{d}/arxiv/*']}}\n"
        f"  stackexchange: {{weight: 0.2, inputs: ['{d}/stackexchange/*']}}\n"
    )
    out = tmp / "real"
    m = build(str(tmp / "m.yaml"), str(out))
    return [r["text"] for sb in m.sources.values() for s in sb.shards for r in iter_records(str(out / s["path"]))]


def synthetic_texts(n: int = 2000) -> list[str]:
    rng = random.Random(0)
    words = ["".join(rng.choice("etaoinshrdlucmfwypvbgkqjxz") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(50, 800))) + f" {i}." for i in range(n)]


def make_build(out: Path, texts: list[str], copies: int) -> None:
    from corral.core.schema import make_record
    from corral.core.shards import ShardWriter
    from corral.manifests.build_manifest import BuildManifest, Funnel, SourceBuild, relative_shard
    from corral.manifests.mixture import parse_mixture
    from corral.pipeline.sources.registry import SOURCES

    mixture = parse_mixture(
        "name: bench\ntarget_tokens: 1M\nsources:\n  c4:\n    weight: 1.0\n    inputs: [x]\n", SOURCES
    )
    w = ShardWriter(str(out / "docs" / "c4"), max_rows=2000)
    n = 0
    with w:
        for c in range(copies):
            for i, t in enumerate(texts):
                w.write(make_record("c4", f"{c}-{i}", t))
                n += 1
    sb = SourceBuild(
        weight=1.0,
        documents=n,
        bytes=sum(len(t.encode()) for t in texts) * copies,
        funnel=Funnel(input=n, kept=n),
        shards=[relative_shard(s, str(out)) for s in w.shards],
    )
    BuildManifest(mixture=mixture.to_dict(), settings=mixture.settings(), sources={"c4": sb}).save(str(out))


CORRAL = """
import json, sys, time
from corral.tokenize.encode import tokenize_build
t0 = time.perf_counter()
m, counts = tokenize_build(sys.argv[1], threads=int(sys.argv[2]))
dt = time.perf_counter() - t0
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": dt, "tokens": m.sources["c4"].tokens, "rss_mb": int(hwm.split()[1]) / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=6)
    a = ap.parse_args()
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    import sentencepiece as spm

    from corral.tokenize.tokenizer import adopt_tokenizer, train_tokenizer

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        texts = real_texts(tmp) if SHARED.is_dir() else synthetic_texts()
        out = tmp / "out"
        make_build(out, texts, a.copies)
        if SHARED.is_dir():
            entry = adopt_tokenizer(str(out), str(SHARED / "tokenizer" / "tokenizer.model"))
        else:
            entry = train_tokenizer(str(out), vocab_size=8000, threads=cores)
        sp = spm.SentencePieceProcessor(model_file=str(out / entry["path"]))
        corpus = texts * a.copies
        mb = sum(len(t.encode()) for t in corpus) / 1e6
        print(
            f"corpus: {len(corpus):,} documents, {mb:.1f} MB of text "
            f"({'real samples' if SHARED.is_dir() else 'synthetic'}), tokenizer {entry['vocab_size']:,} pieces"
        )
        for label, threads in (("one core", 1), (f"{cores} cores", cores)):
            t0 = time.perf_counter()
            ids = sp.encode(corpus, num_threads=threads)
            raw_s = time.perf_counter() - t0
            raw_tokens = sum(map(len, ids)) + 2 * len(ids)  # the same BOS/EOS corral adds
            del ids
            shutil.rmtree(out / "tokens", ignore_errors=True)
            shutil.rmtree(out / "_tokenize", ignore_errors=True)
            res = json.loads(
                subprocess.run(
                    [sys.executable, "-c", CORRAL, str(out), str(threads)], check=True, capture_output=True, text=True
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            assert res["tokens"] == raw_tokens, (res["tokens"], raw_tokens)
            raw_rate, corral_rate = raw_tokens / raw_s, res["tokens"] / res["seconds"]
            print(
                f"{label:9s} raw sentencepiece {raw_rate:12,.0f} tokens/s   corral tokenize {corral_rate:12,.0f} "
                f"tokens/s   ratio {corral_rate / raw_rate:.2f}x   corral peak RSS {res['rss_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()

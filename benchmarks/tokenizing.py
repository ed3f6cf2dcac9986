"""`corral tokenize` against raw SentencePiece batched encoding of the same document shards, in one run.
(Named tokenizing.py: a script named tokenize.py would shadow the standard library module for
everything it imports.)

The corpus: the real samples' documents (C4, English/Bulgarian/Chinese Wikipedia, books, arXiv,
StackExchange, from ../shared/data) built once, then copied `--copies` times into document shards
of a fresh build folder (distinct ids, same texts), so that the job's start-up is a small part of
the time. The tokenizer is LLaMA's own tokenizer.model. Without ../shared/data the documents are
synthetic word salad and the tokenizer is trained on them.

Each side is its own fresh process on the same document shards, and is timed from after its imports
to after its last output is written (interpreter start-up and imports are left out on both sides;
each process's whole wall time is printed beside it):
  raw:    load tokenizer.model; read every shard's text column with pyarrow into one Python list;
          `sp.encode(texts, num_threads=N, add_bos=True, add_eos=True)`; write all ids back to back
          into one flat uint16 np.memmap (np.fromiter over the lists), flushed.
  corral: `corral tokenize OUT [flags]` through corral.cli.main: load and check the manifest and
          tokenizer, read each shard, encode, add BOS/EOS, write uint16 token shards (fsynced, with
          sha256 and a completion record each), update the manifest.
Two settings:
  one core:   both processes pinned to one CPU (sched_setaffinity): raw N=1; corral `--workers 1`
              (its threads default to the CPUs it may use: 1).
  all cores:  unpinned: raw N = the CPUs this process may use; corral with no flags (its default:
              a worker per CPU, the encodes sharing the CPUs).
Each round runs both settings, raw and corral back to back (which goes first alternates per round);
it prints tokens/s (and MB/s of text) of each, their CPU seconds (user + system, pool workers
included), the ratio corral / raw of tokens/s (goal ≥ 1.0), and each side's peak RSS (its largest
process). On a machine shared with other work, compare rounds' ratios, not their absolute rates.
The last lines give each setting's range and median over the rounds. The first round also checks that
corral's token shards hold exactly the raw memmap's tokens.

Run: .venv/bin/python benchmarks/tokenizing.py [--copies 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
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


# Each side prints one JSON line: {"seconds": its work, "cpu": the CPU seconds of it, "tokens", "rss_mb"}. VmHWM, not
# ru_maxrss, for the process itself: Linux carries ru_maxrss over from the parent across fork and exec.
PEAK = """
import resource
def peak_mb():
    own = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
    return max(int(own.split()[1]), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
def cpu_s():  # user + system seconds of this process and its finished children (corral's pool workers)
    usage = map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return sum(r.ru_utime + r.ru_stime for r in usage)
"""

RAW = (
    PEAK
    + """
import glob, itertools, json, sys, time
import numpy as np, pyarrow as pa, sentencepiece as spm
out, threads, dest = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0, c0 = time.perf_counter(), cpu_s()
sp = spm.SentencePieceProcessor(model_file=glob.glob(f"{out}/tokenizer/*.model")[0])
texts = []
for path in sorted(glob.glob(f"{out}/docs/*/*.arrow")):
    with pa.memory_map(path) as f:
        texts += pa.ipc.open_file(f).read_all().column("text").to_pylist()
ids = sp.encode(texts, num_threads=threads, add_bos=True, add_eos=True)
n = sum(map(len, ids))
tokens = np.memmap(dest, dtype=np.uint16, mode="w+", shape=(n,))
tokens[:] = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.uint16, count=n)
tokens.flush()
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "cpu": cpu_s() - c0, "tokens": n, "rss_mb": peak_mb()}))
"""
)

CORRAL = (
    PEAK
    + """
import json, sys, time
import corral.commands, corral.engine.execute, corral.tokenize.encode  # the command's imports
from corral.cli import main
from corral.manifests.build_manifest import load_build
t0, c0 = time.perf_counter(), cpu_s()
assert main(["tokenize", *sys.argv[1:]]) == 0
dt = time.perf_counter() - t0
tokens = sum(sb.tokens for sb in load_build(sys.argv[1]).sources.values())
print(json.dumps({"seconds": dt, "cpu": cpu_s() - c0, "tokens": tokens, "rss_mb": peak_mb()}))
"""
)


def run_side(script: str, args: list[str], cpus: set[int] | None) -> dict:
    """Run one side's script in a fresh process (pinned to `cpus` if given); its JSON line and
    the process's whole wall time."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{args}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall": wall}


def same_tokens(out: Path, raw: Path) -> bool:
    """Corral's token shards, values back to back in the manifest's order, equal the raw memmap."""
    import numpy as np

    from corral.core.shards import read_token_shard
    from corral.manifests.build_manifest import load_build

    m = load_build(str(out))
    values = [read_token_shard(str(out / s["path"])).tokens for sb in m.sources.values() for s in sb.token_shards]
    return bool(np.array_equal(np.concatenate(values), np.memmap(raw, dtype=np.uint16, mode="r")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    import logging

    logging.getLogger().setLevel(logging.ERROR)

    from corral.engine.runners import usable_cpus
    from corral.tokenize.tokenizer import adopt_tokenizer, train_tokenizer

    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        texts = real_texts(tmp) if SHARED.is_dir() else synthetic_texts()
        out = tmp / "out"
        make_build(out, texts, a.copies)
        if SHARED.is_dir():
            entry = adopt_tokenizer(str(out), str(SHARED / "tokenizer" / "tokenizer.model"))
        else:
            entry = train_tokenizer(str(out), vocab_size=8000, threads=usable_cpus())
        mb = sum(len(t.encode()) for t in texts) * a.copies / 1e6
        print(
            f"corpus: {len(texts) * a.copies:,} documents in {len(list((out / 'docs').rglob('*.arrow')))} shards, "
            f"{mb:.1f} MB of text ({'real samples' if SHARED.is_dir() else 'synthetic'}), "
            f"tokenizer {entry['vocab_size']:,} pieces; {len(cpus)} CPUs"
        )
        settings = [("one core", {cpus[0]}, 1, ["--workers", "1"]), (f"{len(cpus)} cores", None, len(cpus), [])]
        ratios: dict[str, list[tuple[float, float, float]]] = {label: [] for label, *_ in settings}
        dest = tmp / "raw.uint16"
        for r in range(a.rounds):
            for label, pin, threads, flags in settings:
                shutil.rmtree(out / "tokens", ignore_errors=True)
                shutil.rmtree(out / "_tokenize", ignore_errors=True)
                sides = [("raw", RAW, [str(out), str(threads), str(dest)]), ("corral", CORRAL, [str(out), *flags])]
                order = sides if r % 2 == 0 else sides[::-1]
                got = {name: run_side(script, args, pin) for name, script, args in order}
                raw, corral = got["raw"], got["corral"]
                assert corral["tokens"] == raw["tokens"], (corral["tokens"], raw["tokens"])
                if r == 0:
                    assert same_tokens(out, dest), "corral's token shards differ from raw SentencePiece's ids"
                dest.unlink()
                raw_rate, corral_rate = raw["tokens"] / raw["seconds"], corral["tokens"] / corral["seconds"]
                ratios[label].append((corral_rate / raw_rate, raw_rate, corral_rate))
                print(
                    f"round {r + 1} {label:9s} raw {raw_rate:10,.0f} tokens/s {mb / raw['seconds']:5.2f} MB/s "
                    f"{raw['seconds']:5.1f} s, cpu {raw['cpu']:5.1f} s (process {raw['wall']:5.1f} s, "
                    f"{raw['rss_mb']:5.0f} MB)   corral {corral_rate:10,.0f} tokens/s {mb / corral['seconds']:5.2f} "
                    f"MB/s {corral['seconds']:5.1f} s, cpu {corral['cpu']:5.1f} s (process {corral['wall']:5.1f} s, "
                    f"{corral['rss_mb']:5.0f} MB)   ratio {corral_rate / raw_rate:.2f}x",
                    flush=True,
                )
        for label, rows in ratios.items():
            ratio, raw_rate, corral_rate = zip(*rows)
            print(
                f"{label:9s} over {len(rows)} rounds: ratio {min(ratio):.2f}-{max(ratio):.2f}x "
                f"(median {statistics.median(ratio):.2f}x), "
                f"raw {min(raw_rate):,.0f}-{max(raw_rate):,.0f} tokens/s, "
                f"corral {min(corral_rate):,.0f}-{max(corral_rate):,.0f} tokens/s"
            )


if __name__ == "__main__":
    main()

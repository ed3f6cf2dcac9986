"""`corral export` against a plain pyarrow read + Parquet write of the same shards.

A synthetic build of --mb MB of document text (shards of 64 MB, zstd Arrow IPC as `corral build`
writes them; texts of 200–6,000 characters with every signal column and a meta object) is written
at 1× and 4× its size. For each, in fresh processes: the baseline, which reads each shard with
pyarrow (`ipc.open_file(...).read_all()`) and writes it with `pq.write_table(..., compression="zstd")`,
and corral's export with its default settings (a worker per usable CPU) in each format: parquet
(target ≥ 0.8× the baseline), jsonl and dolma, gzipped (the default) and zstd (targets ≥ 0.5×).
Each process's time includes its imports. Prints MB/s of text, the ratio to the baseline, the
peak RSS of the process and of its largest worker (both must stay flat from 1× to 4×), and, for
the JSON lines, their size against the same lines at gzip level 6 (zlib, what exports wrote before).

    .venv/bin/python benchmarks/export.py [--mb 200] [--repeat 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARD_MB = 64
KINDS = ("parquet", "jsonl", "dolma", "jsonl-zstd", "dolma-zstd")

CHILD = r"""
import json, resource, sys, time
kind, out, dest = sys.argv[1:4]
t = time.perf_counter()
if kind == "pyarrow":
    import pyarrow.ipc as ipc, pyarrow.parquet as pq, pyarrow as pa, os
    from corral.manifests.build_manifest import load_build
    m = load_build(out)
    for s, sb in m.sources.items():
        for i, e in enumerate(sb.shards):
            table = ipc.open_file(pa.memory_map(os.path.join(out, e["path"]))).read_all()
            os.makedirs(os.path.join(dest, s), exist_ok=True)
            pq.write_table(table, os.path.join(dest, s, f"part-{i:05d}.parquet"), compression="zstd")
else:
    from corral.export.job import export
    fmt, codec, level = (kind.split("-") + ["", ""])[:3]
    export(out, dest, fmt, compression=codec or None, level=int(level) if level else None, say=lambda *a: None)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def make_build(out: Path, mb: int, seed: int = 0) -> int:
    """A one-source build of about `mb` MB of text; returns the text bytes."""
    from corral.core.schema import make_record
    from corral.core.shards import ShardWriter
    from corral.manifests.build_manifest import BuildManifest, Funnel, SourceBuild, relative_shard
    from corral.manifests.mixture import parse_mixture
    from corral.pipeline.sources.registry import SOURCES

    rng = np.random.default_rng(seed)
    words = np.array(
        [
            "the",
            "corpus",
            "of",
            "documents",
            "was",
            "cleaned",
            "and",
            "deduplicated",
            "by",
            "rules",
            "from",
            "a",
            "paper",
            "über",
            "naïve",
            "données",
        ]
    )
    mixture = parse_mixture(
        "name: bench\ntarget_tokens: 1M\nsources:\n  c4:\n    weight: 1\n    inputs: [x]\n", SOURCES
    )
    w = ShardWriter(str(out / "docs" / "c4"), max_bytes=SHARD_MB << 20)
    total, i = 0, 0
    with w:
        while total < mb << 20:
            text = " ".join(words[rng.integers(0, len(words), int(rng.integers(30, 900)))])
            w.write(
                make_record(
                    "c4",
                    f"d{i}",
                    text,
                    url=f"https://example.org/{i}",
                    lang="en",
                    meta={"date": "2019-07-01", "n": i},
                    lang_score=0.9,
                    perplexity=210.5,
                    bucket="head",
                    quality=0.7,
                    dup_cluster=f"d{i}",
                    dup_count=1,
                )
            )
            total += len(text.encode())
            i += 1
    sb = SourceBuild(
        weight=1.0,
        documents=i,
        bytes=total,
        funnel=Funnel(i, i),
        shards=[relative_shard(s, str(out)) for s in w.shards],
    )
    BuildManifest(mixture=mixture.to_dict(), settings=mixture.settings(), sources={"c4": sb}).save(str(out))
    return total


def run(kind: str, out: Path, dest: Path) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(out), str(dest)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    got = json.loads(res.stdout.strip().splitlines()[-1])
    got["bytes"] = sum(p.stat().st_size for p in dest.rglob("part-*") if p.is_file())
    return got


def gzip6_bytes(dest: Path) -> int:
    """The bytes of an export's JSON lines (.gz or .zst) compressed by zlib at level 6, as exports
    were before."""
    import zstandard

    total = 0
    for path in sorted(dest.rglob("part-*.jsonl.*")):
        z = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip container
        raw = open(path, "rb")
        with gzip.open(raw) if path.suffix == ".gz" else zstandard.ZstdDecompressor().stream_reader(raw) as f:
            while chunk := f.read(1 << 20):
                total += len(z.compress(chunk))
        total += len(z.flush())
    return total


def report(scale: int, text: int, best: dict[str, dict], dirs: dict[str, Path]) -> None:
    """One line a kind: MB/s of text, the ratio to the baseline, peak RSS, size against gzip -6."""
    base = text / 2**20 / best["pyarrow"]["seconds"]
    gzip6: dict[str, int] = {}
    for kind, got in best.items():
        fmt = kind.split("-")[0]
        size = ""
        if fmt in ("jsonl", "dolma"):
            gzip6.setdefault(fmt, gzip6_bytes(dirs[kind]))
            size = f"{got['bytes'] / gzip6[fmt]:.2f}×"
        rate = text / 2**20 / got["seconds"]
        print(
            f"{scale:>5}× {kind:>12} {rate:>8.1f} {rate / base:>5.2f}× {got['rss_mb']:>7.0f} "
            f"{got['worker_rss_mb']:>7.0f} {size:>9}",
            flush=True,
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--kinds", nargs="+", default=KINDS, help="FORMAT[-CODEC[-LEVEL]] (default: %(default)s)")
    a = p.parse_args()
    print(f"{'size':>6} {'kind':>12} {'MB/s':>8} {'ratio':>6} {'RSS MB':>7} {'worker':>7} {'vs gzip-6':>9}")
    with tempfile.TemporaryDirectory(prefix="corral-export-") as tmp:
        for scale in (1, 4):
            out = Path(tmp) / f"b{scale}"
            text = make_build(out, a.mb * scale)
            best: dict[str, dict] = {}
            dirs = {kind: Path(tmp) / f"x{scale}-{kind}" for kind in ("pyarrow", *a.kinds)}
            for _ in range(a.repeat):
                for kind, dest in dirs.items():
                    shutil.rmtree(dest, ignore_errors=True)  # each run writes a new export
                    got = run(kind, out, dest)
                    if kind not in best or got["seconds"] < best[kind]["seconds"]:
                        best[kind] = got
            report(scale, text, best, dirs)
            shutil.rmtree(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

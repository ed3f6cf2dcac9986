"""`corral export --format parquet` against a plain pyarrow read + write of the same shards.

A synthetic build of --mb MB of document text (shards of 64 MB, zstd Arrow IPC as `corral build`
writes them; texts of 200–6,000 characters with every signal column and a meta object) is written
at 1× and 4× its size. For each, in fresh processes: corral's export, and the baseline, which
reads each shard with pyarrow (`ipc.open_file(...).read_all()`) and writes it with
`pq.write_table(..., compression="zstd")`. Prints MB/s of text for both, their ratio (target
≥ 0.8×), and each process's peak RSS (corral's must stay flat from 1× to 4×). The other formats
(jsonl, dolma, megatron) are timed alongside, for the record.

    .venv/bin/python benchmarks/export.py [--mb 200] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARD_MB = 64

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
    export(out, dest, kind, say=lambda *a: None)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
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
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args()
    print(f"{'size':>6} {'kind':>9} {'MB/s':>8} {'ratio':>6} {'peak RSS MB':>11}")
    with tempfile.TemporaryDirectory(prefix="corral-export-") as tmp:
        for scale in (1, 4):
            out = Path(tmp) / f"b{scale}"
            text = make_build(out, a.mb * scale)
            best: dict[str, dict] = {}
            for r in range(a.repeat):
                for kind in ("pyarrow", "parquet", "jsonl", "dolma"):
                    got = run(kind, out, Path(tmp) / f"x{scale}-{kind}-{r}")
                    if kind not in best or got["seconds"] < best[kind]["seconds"]:
                        best[kind] = got
            base = text / 2**20 / best["pyarrow"]["seconds"]
            for kind, got in best.items():
                rate = text / 2**20 / got["seconds"]
                print(f"{scale:>5}× {kind:>9} {rate:>8.1f} {rate / base:>5.2f}× {got['rss_mb']:>11.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

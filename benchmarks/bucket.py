"""A build into a bucket against the same build on local disk: wall time, and the ratio.

The S3-compatible server is moto's (the dev extra), started on 127.0.0.1 in this process; the AWS
environment points at it, so corral reaches it as it would reach S3 (corral.core.s3). Inputs:
  real    (with ../shared/data) CommonCrawl — the real WET in `--wet-files` files of distinct records
          (benchmarks/ccnet_fidelity.make_inputs), its side models trained in the build — beside
          Wikipedia's real sample, and C4's real sample in tagged copies (`--c4-copies`) in one file:
          files of real sizes' worth of work each
  sample  corral's embedded seven-source sample, `--copies` times (each copy its own folder): many
          tiny files, where the requests per file weigh most
The two builds alternate, `--repeat` times each, with the same `--workers`; printed: each round's wall
times and ratio (bucket / local), and the range. Target: ≤ 2×. Note that the server runs on this
machine's cores too: its work per request is counted against the bucket.

    .venv/bin/python benchmarks/bucket.py [--input real|sample] [--repeat 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SAMPLE_MANIFEST = HERE.parent / "manifests" / "sample.yaml"


def server() -> str:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s.start()
    host, port = s.get_host_and_port()
    return f"http://{host}:{port}"


def copies_manifest(folder: Path, copies: int) -> Path:
    """The sample written `copies` times, and sample.yaml with each input pattern once per copy."""
    from corral.sample import write_sample

    for i in range(copies):
        write_sample(str(folder / f"copy{i}"))
    spec = yaml.safe_load(SAMPLE_MANIFEST.read_text())
    for source in spec["sources"].values():
        source["inputs"] = [
            p.replace("${CORRAL_SAMPLE}", str(folder / f"copy{i}")) for p in source["inputs"] for i in range(copies)
        ]
    path = folder / "copies.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def real_manifest(folder: Path, wet_files: int, c4_copies: int) -> Path:
    """CommonCrawl (distinct WET files) with Wikipedia, and C4, from ../shared/data."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "tests"))
    from ccnet_fidelity import WIKI, make_inputs
    from memory import c4_inputs

    wet = make_inputs(folder, wet_files, distinct=True)
    c4, _ = c4_inputs(folder, c4_copies)
    cc = {"inputs": wet, "perplexity": {"sp_vocab_size": 2000}, "quality": {"min_chars": 200}}
    spec = {"name": "bucket", "target_tokens": 1000000, "sources": {}}
    for name, source in (("commoncrawl", cc), ("wikipedia", {"inputs": [str(WIKI)]}), ("c4", {"inputs": c4})):
        spec["sources"][name] = {"weight": round(1 / 3, 9) if name != "c4" else 1 - 2 * round(1 / 3, 9), **source}
    path = folder / "real.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def timed_build(manifest: Path, out: str, workers: int, env: dict) -> float:
    """A fresh build (OUT emptied first, so nothing is reused), in a subprocess; its wall time."""
    from corral.core import fs

    fs.remove([out])
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "corral.cli", "build", str(manifest), "--out", out, "--workers", str(workers)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = HERE.parent.parent / "shared" / "data"
    ap.add_argument("--input", choices=("real", "sample"), default="real" if data.is_dir() else "sample")
    ap.add_argument("--copies", type=int, default=4, help="sample: copies of the embedded sample")
    ap.add_argument("--wet-files", type=int, default=8, help="real: WET files of 430 distinct records")
    ap.add_argument("--c4-copies", type=int, default=100, help="real: tagged copies of C4's sample pages")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    url = server()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url})
    os.environ.update(env)
    import boto3

    boto3.client("s3").create_bucket(Bucket="bench")
    with tempfile.TemporaryDirectory() as tmp:
        if a.input == "real":
            manifest = real_manifest(Path(tmp), a.wet_files, a.c4_copies)
            what = f"CommonCrawl ({a.wet_files} WET files) + Wikipedia + C4 ({a.c4_copies} copies)"
        else:
            manifest = copies_manifest(Path(tmp), a.copies)
            what = f"the embedded sample × {a.copies}"
        print(f"{what}, {a.workers} workers; S3: moto on {url}")
        ratios = []
        for r in range(a.repeat):
            local = timed_build(manifest, str(Path(tmp) / "local"), a.workers, env)
            remote = timed_build(manifest, "s3://bench/build", a.workers, env)
            ratios.append(remote / local)
            print(f"  round {r + 1}: local disk {local:6.1f} s, bucket {remote:6.1f} s, ratio {remote / local:.2f}x")
    print(f"bucket / local: {min(ratios):.2f}–{max(ratios):.2f}x (target ≤ 2x)")


if __name__ == "__main__":
    main()

"""Shard I/O: corral's writer and readers against plain pyarrow on the same data, in one run.

  write  corral ShardWriter (bounded shards, sha256 as written, fsync + atomic rename, zstd)
         vs  pyarrow.ipc.new_file on the same record batches (zstd, no hash, no fsync)
  read   corral read_token_shard (memory-mapped, zero-copy numpy view of every token)
         vs  pyarrow reading the file into memory and flattening the list column to numpy

Each measurement runs in its own process so its peak RSS is its own. Text is real English from
Python's bundled documentation (pydoc_data.topics), repeated to the requested size.

    .venv/bin/python benchmarks/shards.py [--mb 200] [--tokens-m 200]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROWS_PER_BATCH = 1024


def _docs_batches(mb: int):
    import pydoc_data.topics
    import random

    from corral.core.schema import make_record, records_to_batch

    # Each document draws 5-60 lines at random from the docs, so documents differ the way real
    # ones do and zstd sees realistic redundancy rather than the same text repeated.
    lines = [ln for t in pydoc_data.topics.topics.values() for ln in t.splitlines() if len(ln) > 20]
    rng = random.Random(0)
    target, produced, i, batch = mb * 1024**2, 0, 0, []
    while produced < target:
        t = "\n".join(rng.choices(lines, k=rng.randint(5, 60)))
        batch.append(make_record("c4", f"doc-{i}", t, url=f"https://docs.python.org/{i}"))
        produced += len(t)
        i += 1
        if len(batch) == ROWS_PER_BATCH:
            yield records_to_batch(batch)
            batch = []
    if batch:
        yield records_to_batch(batch)


def _peak_mb() -> float:
    """Peak RSS of this process (VmHWM: per address space; ru_maxrss would carry the forking parent's)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_write(kind: str, mb: int, out: str) -> dict:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from corral.core.schema import DOC_SCHEMA
    from corral.core.shards import ShardWriter

    batches = list(_docs_batches(mb))  # built before timing: both sides write the same batches
    text_bytes = sum(b.column("text").nbytes for b in batches)
    base_rss = _peak_mb()
    t0 = time.perf_counter()
    if kind == "corral":
        w = ShardWriter(out, max_rows=50_000, max_bytes=64 * 1024**2)
        with w:
            for b in batches:
                w.write_batch(b)
        files = len(w.shards)
    else:
        with pa.OSFile(os.path.join(out, "plain.arrow"), "wb") as f:
            with ipc.new_file(f, DOC_SCHEMA, options=ipc.IpcWriteOptions(compression="zstd")) as wr:
                for b in batches:
                    wr.write_batch(b)
        files = 1
    dt = time.perf_counter() - t0
    return {
        "seconds": dt,
        "mb_per_s": text_bytes / 1024**2 / dt,
        "files": files,
        "peak_rss_mb": _peak_mb(),
        "rss_before_mb": base_rss,
    }


def part_read(kind: str, path: str) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from corral.core.shards import read_token_shard

    t0 = time.perf_counter()
    if kind == "corral":
        ts = read_token_shard(path)
        tokens = ts.tokens
    else:
        with open(path, "rb") as f:
            table = ipc.open_file(pa.py_buffer(f.read())).read_all()
        tokens = table.column("tokens").combine_chunks().flatten().to_numpy()
    checksum = int(tokens.sum(dtype=np.uint64))
    dt = time.perf_counter() - t0
    return {
        "seconds": dt,
        "tokens": int(tokens.size),
        "checksum": checksum,
        "peak_rss_mb": _peak_mb(),
        "gtokens_per_s": tokens.size / dt / 1e9,
    }


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--part", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=200, help="MB of document text to write")
    ap.add_argument("--tokens-m", type=int, default=200, help="millions of tokens in the token shard")
    ap.add_argument("--part", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.part:
        what, kind, *rest = a.part
        res = part_write(kind, int(rest[0]), rest[1]) if what == "write" else part_read(kind, rest[0])
        print(json.dumps(res))
        return

    import numpy as np

    from corral.core.shards import write_token_shard

    with tempfile.TemporaryDirectory() as tmp:
        res = {}
        for kind in ("corral", "pyarrow"):
            d = os.path.join(tmp, f"w-{kind}")
            os.makedirs(d)
            res[kind] = _child(["write", kind, str(a.mb), d])
        c, p = res["corral"], res["pyarrow"]
        print(f"write {a.mb} MB of documents (zstd):")
        print(
            f"  corral ShardWriter  {c['mb_per_s']:8.1f} MB/s  {c['files']} shards  "
            f"peak RSS {c['peak_rss_mb']:.0f} MB (input batches alone {c['rss_before_mb']:.0f} MB)"
        )
        print(f"  pyarrow new_file    {p['mb_per_s']:8.1f} MB/s  1 file    peak RSS {p['peak_rss_mb']:.0f} MB")
        print(f"  ratio corral/pyarrow: {c['mb_per_s'] / p['mb_per_s']:.2f}x")

        n = a.tokens_m * 1_000_000
        rng = np.random.default_rng(0)
        lengths = rng.integers(100, 4001, size=max(1, n // 2050))  # documents of 100-4000 tokens
        docs = [rng.integers(0, 32000, size=int(k), dtype=np.uint16) for k in lengths]
        path = os.path.join(tmp, "tokens.arrow")
        write_token_shard(path, [f"d{i}" for i in range(len(docs))], docs)
        del docs
        r = {kind: _child(["read", kind, path]) for kind in ("corral", "pyarrow")}
        assert r["corral"]["checksum"] == r["pyarrow"]["checksum"]
        print(f"read a {int(lengths.sum()) / 1e6:.0f}M-token shard into numpy and sum it:")
        for kind, label in (("corral", "corral read_token_shard"), ("pyarrow", "pyarrow read + flatten")):
            x = r[kind]
            print(f"  {label:24s} {x['seconds'] * 1e3:8.1f} ms  peak RSS {x['peak_rss_mb']:.0f} MB")
        print(f"  ratio speed corral/pyarrow: {r['pyarrow']['seconds'] / r['corral']['seconds']:.2f}x")


if __name__ == "__main__":
    main()

"""Connected components of 10^7 edges in one stage: time and peak RSS.

Three adversarial edge lists of N edges (default 10^7): one shuffled chain (a single huge cluster),
stars (a few hubs with millions of leaves) and random pairs over 2N nodes (many small clusters).
Each runs `component_table` — what the near-duplicate clusters phase uses — in a fresh process, fed
the way Beam feeds it (edge by edge into 65,536-edge numpy chunks), and prints the seconds and the
process's peak RSS. Run: .venv/bin/python benchmarks/components.py [--edges N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = r"""
import sys, time, resource
import numpy as np
from corral.dedup.clusters import component_table
kind, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
if kind == "chain":
    p = rng.permutation(n + 1).astype(np.int64)
    edges = np.stack([p[:-1], p[1:]], axis=1)
elif kind == "stars":
    edges = np.stack([rng.integers(0, 4, n) , np.arange(10, n + 10)], axis=1).astype(np.int64)
else:
    edges = rng.integers(0, 2 * n, (n, 2)).astype(np.int64)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
chunks = [chunk.copy() for chunk in np.array_split(edges, max(1, n // 65536))]  # as the edge files hold them
del edges
table = component_table(chunks)
members = sum(1 for _ in table.rows())
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{kind:6s} {n:>11,} edges  {members:>11,} members  {len(np.unique(table.reps)):>10,} clusters  "
      f"{dt:6.1f} s  peak RSS {peak / 1024:6.0f} MB (edges alone {n * 16 / 2**20:.0f} MB)")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edges", type=int, default=10_000_000)
    a = ap.parse_args()
    for kind in ("chain", "stars", "random"):
        subprocess.run([sys.executable, "-c", CHILD, kind, str(a.edges)], check=True)


if __name__ == "__main__":
    main()

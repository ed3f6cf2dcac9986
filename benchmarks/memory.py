"""Peak RSS of `corral build`'s whole process tree at 1× and 4× input: memory must not grow with it.

Two builds, each run as `corral build` in a subprocess at 1× and at 4× the input:
  cc+wiki  CommonCrawl + Wikipedia, side models (SentencePiece, KenLM, quality classifier) trained
           in the build: the real WET in tagged copies (benchmarks/ccnet_fidelity.make_inputs), 43
           records each, with the enwiki sample
  c4       C4 alone: the published C4 sample's pages in tagged copies (distinct texts and URLs)
The tree's RSS (the build and every worker process it starts) is sampled every SAMPLE seconds from
/proc; the peak of the sum is printed with the growth (4× over 1×) and the KB per extra input record.
Targets: growth ≤ 1.3× and ≤ 2 KB per extra record.

    .venv/bin/python benchmarks/memory.py [--cc-copies 100] [--c4-copies 133] [--workers 1]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
DATA = HERE.parent.parent / "shared" / "data"
SAMPLE = 0.05  # seconds between samples of the process tree


def tree_rss_kb(pid: int) -> int:
    """The summed VmRSS of a process and all its descendants (KB)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def peak_of(cmd: list[str]) -> tuple[float, float]:
    """(peak tree RSS in MB, seconds) of a command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_kb(proc.pid))
        time.sleep(SAMPLE)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return peak / 1024, time.perf_counter() - t0


def c4_inputs(tmp: Path, copies: int) -> tuple[list[str], int]:
    pages = []
    for p in sorted((DATA / "c4").glob("c4-sample.*.json.gz")):
        pages += [json.loads(line) for line in gzip.open(p, "rt") if line.strip()]
    from ccnet_fidelity import _tag

    out = tmp / "c4.json.gz"
    with gzip.open(out, "wt") as f:
        for i in range(copies):
            tag = _tag(i)
            for page in pages:
                text = "\n".join(f"{ln} {tag}" for ln in page["text"].split("\n"))
                f.write(json.dumps({**page, "text": text, "url": f"{page['url']}?copy={tag}"}) + "\n")
    return [str(out)], copies * len(pages)


def manifest(tmp: Path, name: str, sources: dict) -> str:
    from helpers import write_manifest

    return write_manifest(tmp / f"{name}.yaml", sources)


def run(kind: str, scale: int, base: int, tmp: Path, workers: int) -> tuple[int, float, float]:
    from ccnet_fidelity import WIKI, make_inputs

    d = tmp / f"{kind}-{scale}"
    d.mkdir()
    if kind == "cc+wiki":
        paths = make_inputs(d, base * scale)
        records = 43 * base * scale
        m = manifest(
            d,
            kind,
            {
                "commoncrawl": {"inputs": paths, "perplexity": {"sp_vocab_size": 2000}, "quality": {"min_chars": 200}},
                "wikipedia": {"inputs": [str(WIKI)]},
            },
        )
    else:
        paths, records = c4_inputs(d, base * scale)
        m = manifest(d, kind, {"c4": {"inputs": paths}})
    cmd = [str(Path(sys.executable).parent / "corral"), "build", m, "--out", str(d / "out"), "--workers", str(workers)]
    peak, seconds = peak_of(cmd)
    return records, peak, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cc-copies", type=int, default=100, help="WET copies at 1× (43 records each)")
    ap.add_argument("--c4-copies", type=int, default=134, help="C4 sample copies at 1× (30 pages each)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--only", choices=["cc+wiki", "c4"])
    a = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"the real samples are not at {DATA}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for kind, base in (("cc+wiki", a.cc_copies), ("c4", a.c4_copies)):
            if a.only and kind != a.only:
                continue
            (n1, p1, s1), (n4, p4, s4) = (run(kind, k, base, tmp, a.workers) for k in (1, 4))
            per = (p4 - p1) * 1024 / max(n4 - n1, 1)
            print(
                f"{kind:8s} 1x: {n1:>7,} records {p1:7.0f} MB ({s1:5.1f} s) | 4x: {n4:>7,} records {p4:7.0f} MB "
                f"({s4:5.1f} s) | growth {p4 / p1:.2f}x, {per:+.2f} KB per extra record"
            )


if __name__ == "__main__":
    main()

"""Per-source throughput on the real samples (../shared/data; GitHub: installed package trees).

For each source, two figures on one core:
  rules     the source's reader and rules as plain Python (no Beam): documents kept or dropped per
            second, and MB/s of uncompressed input
  pipeline  `corral build` of that source alone on the local pool with one worker (the driver
            alone), end to end: reading, rules, id/exact dedup, shard writing, manifest
Each figure is the best of --repeat runs, in wall time (--clock cpu: this process's CPU time, which
other processes on a busy machine do not stretch). Peak RSS (VmHWM) of this process is printed at
the end. --copies N reads every input N times (links to it under N names; a Posts.xml copy is its
own site), for a longer, steadier run.

    .venv/bin/python benchmarks/sources.py [--repeat 3] [--only books,c4] [--copies 1] [--clock wall]
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
sys.path.insert(0, str(HERE.parent / "tests"))


def _inputs(tmp: Path) -> dict[str, list[str]]:
    from helpers import package_repos

    package_repos(tmp / "github")
    return {
        "c4": sorted(glob.glob(str(DATA / "c4" / "c4-sample.*.json.gz"))),
        "c4-from-wet": sorted(glob.glob(str(DATA / "commoncrawl" / "*.head43.warc.wet.gz"))),
        "github": sorted(glob.glob(str(tmp / "github" / "*"))),
        "wikipedia": sorted(
            glob.glob(str(DATA / "wikipedia" / "*.bz2")) + glob.glob(str(DATA / "wikipedia" / "*.xml"))
        ),
        "books": sorted(glob.glob(str(DATA / "books" / "*.txt"))),
        "arxiv": sorted(glob.glob(str(DATA / "arxiv" / "*"))),
        "stackexchange": sorted(glob.glob(str(DATA / "stackexchange" / "*-Posts.xml"))),
    }


def _copies(paths: list[str], n: int, tmp: Path) -> list[str]:
    """Each input and n - 1 links to it, in folders of their own, under the same name (a Posts.xml
    link named for a site of its own: `beer.stackexchange.com.2-Posts.xml`)."""
    out = list(paths)
    for k in range(2, n + 1):
        for p in paths:
            name = os.path.basename(p.rstrip("/"))
            if name.endswith("-Posts.xml"):
                name = f"{name[: -len('-Posts.xml')]}.{k}-Posts.xml"
            link = tmp / "copies" / str(k) / name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(os.path.abspath(p))
            out.append(str(link))
    return out


def _uncompressed_bytes(paths: list[str]) -> int:
    from corral.pipeline.inputs.streams import open_input

    total = 0
    for p in paths:
        if os.path.isdir(p):
            total += sum(
                os.path.getsize(os.path.join(d, f))
                for d, _, fs in os.walk(p)
                for f in fs
                if os.path.isfile(os.path.join(d, f)) and not os.path.islink(os.path.join(d, f))
            )
        else:
            with open_input(p) as f:
                while chunk := f.read(1 << 20):
                    total += len(chunk)
    return total


def _rules(source: str, paths: list[str]) -> collections.Counter:
    """Run one source's reader and rules without Beam; return the outcome counts."""
    from helpers import stages

    from corral.pipeline.inputs.streams import guarded
    from corral.pipeline.sources import books, github, stackexchange, wikipedia
    from corral.pipeline.sources.arxiv import papers as arxiv
    from corral.pipeline.sources.base import Piece
    from corral.pipeline.sources.c4 import pages, rules

    counts: collections.Counter = collections.Counter()
    if source == "stackexchange":  # per site: rows grouped by question, assembled (top sites: the build's)
        st = stages("stackexchange")
        for p in paths:
            for o in guarded(source, p, stackexchange.read_site(p, st)):
                counts[o["status"]] += 1
        return counts
    if source == "c4-from-wet":
        opts = stages("c4", clean={"enabled": True})["clean"]
        for p in paths:
            for o in guarded("c4", p, pages.read_wet_pages(p)):
                if o["status"] == "kept":
                    text, reason = rules.clean_page(o["record"]["text"], opts)
                    counts["kept" if text else "dropped"] += 1
                else:
                    counts[o["status"]] += 1
        return counts
    readers = {
        "c4": lambda p: pages.read_c4_json(p),
        "github": lambda p: github.read_github(Piece(p), stages("github")),
        "wikipedia": lambda p: wikipedia.read_dump(p, stages("wikipedia")["read"], stages("wikipedia")["clean"]),
        "books": lambda p: books.read_books(p),
        "arxiv": lambda p: arxiv.read_papers(p, stages("arxiv")["clean"]),
    }
    for p in paths:
        for o in guarded(source, p, readers[source](p)):
            counts[o["status"]] += 1
    return counts


def _pipeline(source: str, paths: list[str], tmp: Path) -> int:
    from helpers import write_manifest

    from corral.pipeline.build import build

    spec = {"inputs": paths}
    name = source
    if source == "c4-from-wet":
        name, spec = "c4", {"inputs": paths, "read": {"format": "wet"}, "clean": {"enabled": True}}
    m = write_manifest(tmp / f"{source}.yaml", {name: spec})
    out = tempfile.mkdtemp(dir=tmp)
    manifest = build(m, out)
    return manifest.sources[name].funnel.input


def _best(fn, repeat: int, clock=time.perf_counter):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = clock()
        result = fn()
        best = min(best, clock() - t0)
    return best, result


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated sources")
    ap.add_argument("--copies", type=int, default=1, help="read every input this many times")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: this process's CPU time (steadier on a busy machine)",
    )
    a = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"the real samples are not at {DATA}")
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        inputs = {source: _copies(paths, a.copies, tmp) for source, paths in _inputs(tmp).items()}
        only = set(filter(None, a.only.split(",")))
        clock = time.process_time if a.clock == "cpu" else time.perf_counter
        print(
            f"{'source':14s} {'input MB':>9s} {'records':>8s} {'kept':>6s} | {'rules docs/s':>12s} {'MB/s':>7s} | "
            f"{'pipeline docs/s':>15s} {'MB/s':>6s}"
        )
        for source, paths in inputs.items():
            if only and source not in only:
                continue
            mb = _uncompressed_bytes(paths) / 1e6
            t_rules, counts = _best(lambda s=source, p=paths: _rules(s, p), a.repeat, clock)
            records = sum(counts.values())
            t_pipe, n_pipe = _best(lambda s=source, p=paths: _pipeline(s, p, tmp), a.repeat, clock)
            print(
                f"{source:14s} {mb:9.2f} {records:8d} {counts['kept']:6d} | {records / t_rules:12.0f} "
                f"{mb / t_rules:7.2f} | {n_pipe / t_pipe:15.0f} {mb / t_pipe:6.2f}",
                flush=True,
            )
    print(f"peak RSS {_peak_mb():.0f} MB; one core (the local runner with one worker, in process); {a.clock} time")


if __name__ == "__main__":
    main()

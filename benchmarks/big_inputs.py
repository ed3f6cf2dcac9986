"""One big input file, several workers: `corral build` of a single large file split into pieces.

Three inputs made from the real samples (../shared/data), each ONE file, with new ids and a tag
word per copy so that no copy is a duplicate of another:
  stackexchange  stackoverflow.com-Posts.xml: beer's Posts.xml rows repeated      (~200 MB × scale)
  wikipedia      enwiki-…-multistream.xml.bz2 and its index: the enwiki sample's
                 pages repeated, 100 pages a bz2 stream, as Wikimedia writes them   (~100 MB × scale)
  books          books.jsonl.gz: the five Gutenberg books repeated, one a line      (~200 MB × scale)
Each is built by `corral build` in a subprocess:
  whole   --piece-size 1TB --workers 1 (one task reads the file: the speed before pieces)
  w1      --piece-size 8MB --workers 1
  w2      --piece-size 8MB --workers 2
and prints seconds, MB/s of input, the speed-up w1 → w2 (target ≥ 1.7×) and whether the shards'
(id, text) sequences are the same in all three. Peak RSS of the whole process tree (the build and
every worker) is sampled from /proc; with --rss-scale K, the w2 build is repeated on K× the input
and the growth printed (target ≤ 1.3×). StackExchange's serial pass (the deal of posts into
buckets) is also timed alone, in this process: MB/s, and × the whole-file build's speed (target ≥ 3×).

    .venv/bin/python benchmarks/big_inputs.py [--scale 1] [--rss-scale 4] [--only stackexchange,books]
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
DATA = HERE.parent.parent / "shared" / "data"
MB = 1e6
SITE = DATA / "stackexchange" / "beer.stackexchange.com-Posts.xml"
WIKI = DATA / "wikipedia" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
BOOKS = sorted((DATA / "books").glob("pg*.txt"))
TARGETS = {"stackexchange": 200 * MB, "wikipedia": 100 * MB, "books": 200 * MB}  # file bytes at scale 1


def make_posts(d: Path, target: float) -> Path:
    from ccnet_fidelity import _tag  # a letters-only word per copy (digits would normalise away)

    rows = [m.group(0) for m in re.finditer(rb"<row [^>]*/>", SITE.read_bytes())]
    path = d / "stackoverflow.com-Posts.xml"
    shift = 10**7
    with open(path, "wb") as f:
        f.write(b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        copy = 0
        while f.tell() < target:
            tag = _tag(copy).encode()

            def renumber(m, k=copy):
                return b'%s="%d"' % (m.group(1), int(m.group(2)) + k * shift)

            for row in rows:
                row = re.sub(rb'\b(Id|ParentId|AcceptedAnswerId)="(\d+)"', renumber, row)
                row = re.sub(rb'(Body="[^"]*)"', lambda m, t=tag: m.group(1) + b" " + t + b'"', row, count=1)
                f.write(b"  " + row + b"\n")
            copy += 1
        f.write(b"</posts>\n")
    return path


def make_dump(d: Path, target: float) -> Path:
    from ccnet_fidelity import _tag

    from corral.sample.multistream_dump import split_dump, write_multistream

    header, pages, footer = split_dump(bz2.decompress(WIKI.read_bytes()))
    path = d / "enwiki-20261101-pages-articles-multistream.xml.bz2"
    per_copy = WIKI.stat().st_size

    def copies():
        for copy in range(max(1, round(target / per_copy))):
            tag = _tag(copy).encode()
            for page in pages:
                page = re.sub(
                    rb"<id>(\d+)</id>", lambda m, k=copy: b"<id>%d</id>" % (int(m.group(1)) + k * 10**7), page, count=1
                )
                yield page.replace(b"</text>", b" " + tag + b"</text>", 1)

    write_multistream(header, copies(), footer, str(path), str(path).replace(".xml.bz2", "-index.txt.bz2"))
    return path


def make_books(d: Path, target: float) -> Path:
    from ccnet_fidelity import _tag

    texts = [p.read_text(encoding="utf-8-sig") for p in BOOKS]
    path = d / "books.jsonl.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as f:
        copy = 0
        while raw.tell() < target:
            tag = _tag(copy)
            for i, text in enumerate(texts):
                tagged = "\n".join(f"{line} {tag}" if line.strip() else line for line in text.split("\n"))
                # its own ebook number too: a book's id is `gutenberg/<number>` from its header
                tagged = re.sub(
                    r"(ebook #)(\d+)",
                    lambda m, k=copy: f"{m.group(1)}{int(m.group(2)) + k * 10**6}",
                    tagged,
                    flags=re.IGNORECASE,
                )
                f.write(json.dumps({"text": tagged, "title": f"{BOOKS[i].stem} {tag}"}).encode() + b"\n")
            copy += 1
    return path


MAKERS = {"stackexchange": make_posts, "wikipedia": make_dump, "books": make_books}


def build(source: str, path: Path, out: Path, piece: str, workers: int) -> tuple[float, float]:
    """(seconds, peak tree RSS MB) of one `corral build`."""
    from helpers import write_manifest
    from memory import peak_of

    manifest = write_manifest(out.parent / f"{out.name}.yaml", {source: {"inputs": [str(path)]}})
    cmd = [str(Path(sys.executable).parent / "corral"), "build", manifest, "--out", str(out)]
    cmd += ["--piece-size", piece, "--workers", str(workers)]
    peak, seconds = peak_of(cmd)
    return seconds, peak


def shards(out: Path, source: str) -> list[tuple[str, str]]:
    import pyarrow.ipc as ipc

    rows = []
    for part in sorted((out / "docs" / source).glob("part-*.arrow")):
        with ipc.open_file(str(part)) as f:
            table = f.read_all()
        rows += zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True)
    return rows


def deal_alone(path: Path, tmp: Path) -> float:
    """StackExchange's serial pass alone (parse and deal into buckets): seconds."""
    from corral.pipeline.sources.stackexchange import StackExchange

    source = StackExchange()
    piece = source.split(str(path), path.stat().st_size, {}, 8 * 10**6)[0]
    t0 = time.perf_counter()
    source.prepare(piece, str(tmp / "deal"))
    return time.perf_counter() - t0


def run(source: str, tmp: Path, scale: int, rss_scale: int) -> None:
    d = tmp / source
    d.mkdir()
    path = MAKERS[source](d, TARGETS[source] * scale)
    size = path.stat().st_size
    runs = {}
    for name, piece, workers in (("whole", "1TB", 1), ("w1", "8MB", 1), ("w2", "8MB", 2)):
        runs[name] = build(source, path, d / name, piece, workers)
        seconds, peak = runs[name]
        print(f"  {source} {name}: {seconds:6.1f} s, {size / MB / seconds:5.1f} MB/s, peak {peak:6.0f} MB")
    same = shards(d / "whole", source) == shards(d / "w1", source) == shards(d / "w2", source)
    n = len(shards(d / "w2", source))
    speedup = runs["w1"][0] / runs["w2"][0]
    print(
        f"{source:13s} {size / MB:6.0f} MB: whole {runs['whole'][0]:6.1f} s | 8MB pieces, 1 worker "
        f"{runs['w1'][0]:6.1f} s | 2 workers {runs['w2'][0]:6.1f} s → {speedup:.2f}× | {n:,} docs, "
        f"shards identical: {same}"
    )
    if source == "stackexchange":
        seconds = deal_alone(path, d)
        whole = size / MB / runs["whole"][0]
        alone = size / MB / seconds
        print(f"{'':13s} serial pass alone: {alone:.1f} MB/s = {alone / whole:.1f}× the whole-file build's {whole:.1f}")
    if rss_scale > 1:
        for f in d.iterdir():
            if f.is_dir():
                import shutil

                shutil.rmtree(f)
        big_d = tmp / f"{source}-{rss_scale}x"
        big_d.mkdir()
        big = MAKERS[source](big_d, TARGETS[source] * scale * rss_scale)
        seconds, peak = build(source, big, big_d / "w2", "8MB", 2)
        print(
            f"{'':13s} peak RSS (tree), 2 workers: {runs['w2'][1]:.0f} MB at 1× → {peak:.0f} MB at {rss_scale}× "
            f"({big.stat().st_size / MB:.0f} MB, {seconds:.0f} s): growth {peak / runs['w2'][1]:.2f}×"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1, help="input size, × the sizes above")
    ap.add_argument("--rss-scale", type=int, default=4, help="repeat the 2-worker build at this × for memory (1: not)")
    ap.add_argument("--only", default="stackexchange,wikipedia,books")
    a = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"the real samples are not at {DATA}")
    with tempfile.TemporaryDirectory() as tmpdir:
        for source in a.only.split(","):
            run(source, Path(tmpdir), a.scale, a.rss_scale)


if __name__ == "__main__":
    main()

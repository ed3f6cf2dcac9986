"""Reading WARC on the real WET/WARC samples: corral's WARC framing (corral.pipeline.inputs.warc_records,
what corral reads WET files with), warcio (Webrecorder; corral's reader of WARC responses) and FastWARC
(Resiliparse), each reading every record and its block. Records/s and MB/s of decompressed payload
on one core, best of --repeat; the ratios to warcio.

FastWARC 2.0.1 raises a Rust panic (a BaseException no handler should have to catch) on unseekable
streams such as corral's tolerant decompressor or a bucket's stream, so corral does not use it; here
it reads the local files the way it is fastest (given the path: its own file and gzip readers).

    bash benchmarks/setup_baselines.sh
    .venv/bin/python benchmarks/warc_readers.py [--repeat 5] [--copies 20]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "commoncrawl"
sys.path.append(str(HERE / ".baselines"))  # FastWARC: `bash benchmarks/setup_baselines.sh`
FILES = ["CC-MAIN-20170720121902-20170720141902-00000.head43.warc.wet.gz", "dolma-wget-sample-0000.warc.gz"]


def read_warcio(path: str) -> tuple[int, int]:
    from warcio.archiveiterator import ArchiveIterator

    n = size = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            size += len(rec.content_stream().read())
            n += 1
    return n, size


def read_warcio_corral(path: str) -> tuple[int, int]:
    """warcio over corral's tolerant decompressor (what corral's readers do)."""
    from warcio.archiveiterator import ArchiveIterator

    from corral.pipeline.inputs.streams import open_input

    n = size = 0
    with open_input(path) as f:
        for rec in ArchiveIterator(f):
            size += len(rec.content_stream().read())
            n += 1
    return n, size


def read_corral(path: str) -> tuple[int, int]:
    """corral's WARC framing over its tolerant decompressor (what corral's WET readers do)."""
    from corral.pipeline.inputs.streams import open_input
    from corral.pipeline.inputs.warc_records import iter_records

    n = size = 0
    with open_input(path) as f:
        for rec in iter_records(f, 1 << 30):
            size += len(rec.block)
            n += 1
    return n, size


def read_fastwarc(path: str) -> tuple[int, int]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    n = size = 0
    for rec in ArchiveIterator(path, record_types=WarcRecordType.any_type, parse_http=False):
        size += len(rec.reader.read())
        n += 1
    return n, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--copies", type=int, default=20, help="concatenate each file N times (gzip members)")
    a = ap.parse_args()
    readers = {
        "warcio": read_warcio,
        "warcio + corral decompressor": read_warcio_corral,
        "corral (framing + decompressor)": read_corral,
        "FastWARC": read_fastwarc,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in FILES:
            data = (DATA / name).read_bytes() * a.copies
            path = str(Path(tmp) / name)
            Path(path).write_bytes(data)
            mb = len(gzip.decompress(data)) / 1e6
            print(f"{name} × {a.copies}: {mb:.1f} MB decompressed")
            rates = {}
            for label, fn in readers.items():
                best, res = float("inf"), None
                for _ in range(a.repeat):
                    t0 = time.perf_counter()
                    res = fn(path)
                    best = min(best, time.perf_counter() - t0)
                rates[label] = res[0] / best
                print(f"  {label:32s} {res[0]:6d} records  {res[0] / best:9,.0f} records/s  {mb / best:7.1f} MB/s")
            print(
                f"  ratio to warcio: corral {rates['corral (framing + decompressor)'] / rates['warcio']:.2f}x, "
                f"FastWARC {rates['FastWARC'] / rates['warcio']:.2f}x"
            )


if __name__ == "__main__":
    main()

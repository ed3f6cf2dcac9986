"""Every core by default: `corral build` with no `--workers` against `--workers 1`, same input.

The input is four StackExchange site files (beer's Posts.xml rows repeated with new ids and a tag
word per copy, benchmarks/big_inputs.make_posts), each under the piece size, so the workers share
whole files. Each build runs as `corral build` in a subprocess, the two settings alternating over
--repeat rounds; it prints each time, and the default's time as a share of one worker's (target on
a 2-CPU machine: ≤ 0.6×).

    .venv/bin/python benchmarks/workers.py [--mb-per-file 50] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
DATA = HERE.parent.parent / "shared" / "data"


def main() -> None:
    from big_inputs import make_posts
    from helpers import write_manifest

    from corral.engine.runners import usable_cpus

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb-per-file", type=float, default=50)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"the real samples are not at {DATA}")
    with tempfile.TemporaryDirectory() as tmpdir:
        d = Path(tmpdir)
        for i in range(4):
            (d / f"tmp{i}").mkdir()
            make_posts(d / f"tmp{i}", a.mb_per_file * 1e6).rename(d / f"site{i}.stackexchange.com-Posts.xml")
        manifest = write_manifest(d / "m.yaml", {"stackexchange": {"inputs": [str(d / "*-Posts.xml")]}})
        times: dict[str, list[float]] = {"--workers 1": [], "default": []}
        for _ in range(a.repeat):
            for name, flags in (("--workers 1", ["--workers", "1"]), ("default", [])):
                shutil.rmtree(d / "out", ignore_errors=True)
                t0 = time.perf_counter()
                cmd = [str(Path(sys.executable).parent / "corral"), "build", manifest, "--out", str(d / "out"), *flags]
                subprocess.run(cmd, check=True, capture_output=True)
                times[name].append(time.perf_counter() - t0)
                print(f"  {name}: {times[name][-1]:.1f} s", flush=True)
        pairs = [w / one for w, one in zip(times["default"], times["--workers 1"], strict=True)]
        print(
            f"4 × {a.mb_per_file:.0f} MB Posts.xml, {usable_cpus()} CPUs: default {min(times['default']):.1f} s, "
            f"--workers 1 {min(times['--workers 1']):.1f} s (best of {a.repeat}); default / one worker "
            f"{min(pairs):.2f}–{max(pairs):.2f}×"
        )


if __name__ == "__main__":
    main()

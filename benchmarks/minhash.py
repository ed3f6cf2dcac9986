"""Near-duplicate removal: quality, speed and memory, against datasketch, rensa and datatrove.

Corpus: base documents drawn from the words of Python's bundled documentation; each family adds
  near duplicates (substitutions, insertions and deletions at 1–3% of words), exact copies, and
  variants edited at 12–35% of words (Jaccard of 5-gram shingles about 0.5–0.75), which must stay.
Ground truth: exact Jaccard of 5-gram shingle sets within each family (families share no text);
  documents linked at ≥ threshold form clusters; the truly removable documents are all but the
  smallest id of each cluster.
Quality: precision, recall and F1 of the removed set at threshold 0.8, for `corral dedup` and for
  datasketch's MinHashLSH used the obvious way (each document queried, then inserted if no match).
Speed (one core, best of --repeat): signatures/s on the same corpus and 5-gram shingles with 128
  permutations — corral (shingles + signature), datasketch (MinHash.update_batch), rensa
  (RMinHash.update), datatrove (MinhashDedupSignature.get_shingles + get_signature) — and the ratio to
  rensa; then the whole `corral dedup` on the local runner (best of --repeat, and its first run), in
  documents/s.
Memory: peak RSS of `corral dedup` (a subprocess) on a corpus of N and of 4N families (the same mix
of duplicates, four times the data), and the growth.

    bash benchmarks/setup_baselines.sh
    .venv/bin/python benchmarks/minhash.py [--families 400] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE / ".baselines"))
THRESHOLD, NGRAM, PERM = 0.8, 5, 128


def vocabulary() -> list[str]:
    import pydoc_data.topics

    words = {w.lower() for t in pydoc_data.topics.topics.values() for w in t.split() if w.isalpha()}
    return sorted(words)


def edit(words: list[str], rate: float, rng: random.Random, vocab: list[str]) -> list[str]:
    """Substitute, insert and delete words, each at rate/3."""
    out = []
    for w in words:
        r = rng.random()
        if r < rate / 3:
            out.append(rng.choice(vocab))  # substitution
        elif r < 2 * rate / 3:
            continue  # deletion
        else:
            out.append(w)
            if r > 1 - rate / 3:
                out.append(rng.choice(vocab))  # insertion
    return out


def make_corpus(families: int, seed: int = 0) -> tuple[list[dict], list[list[str]]]:
    rng, vocab = random.Random(seed), vocabulary()
    docs, fams = [], []
    for f in range(families):
        base = [rng.choice(vocab) for _ in range(rng.randint(150, 400))]
        fam = [f"f{f:05d}-a"]
        docs.append({"id": fam[0], "text": " ".join(base)})
        kinds = [("near", rng.choice([0.01, 0.02, 0.03])) for _ in range(rng.randint(0, 2))]
        kinds += [("copy", 0.0)] * rng.randint(0, 1) + [
            ("far", rng.uniform(0.12, 0.35)) for _ in range(rng.randint(0, 2))
        ]
        for k, (kind, rate) in enumerate(kinds):
            did = f"f{f:05d}-{kind}{k}"
            docs.append({"id": did, "text": " ".join(edit(base, rate, rng, vocab) if rate else base)})
            fam.append(did)
        fams.append(fam)
    rng.shuffle(docs)
    return docs, fams


def ground_truth(docs: list[dict], fams: list[list[str]]) -> set[str]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from corral.dedup.minhash import jaccard, shingles

    text = {d["id"]: d["text"] for d in docs}
    removable: set[str] = set()
    for fam in fams:
        ids = sorted(fam)
        sh = [shingles(text[i], NGRAM) for i in ids]
        rows, cols = [], []
        for i in range(len(ids)):
            for j in range(i + 1, len(ids)):
                if jaccard(sh[i], sh[j]) >= THRESHOLD:
                    rows.append(i)
                    cols.append(j)
        n, labels = connected_components(
            coo_matrix(([1] * len(rows), (rows, cols)), shape=(len(ids), len(ids))), directed=False
        )
        for c in range(n):
            members = [ids[k] for k in range(len(ids)) if labels[k] == c]
            removable.update(members[1:])  # ids are sorted: the first is the smallest
    return removable


def prf(removed: set[str], truth: set[str]) -> tuple[float, float, float]:
    tp = len(removed & truth)
    p = tp / len(removed) if removed else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def corral_removed(docs: list[dict], tmp: Path, repeat: int) -> tuple[set[str], list[float]]:
    """The documents `corral dedup` removes, and the seconds of each of `repeat` runs (the first
    one in this process pays its one-time imports)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from corral.pipeline.dedup_job import DedupSettings, dedup

    src = tmp / "corpus.jsonl"
    src.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    runs = []
    for _ in range(max(1, repeat)):
        shutil.rmtree(tmp / "corral-out", ignore_errors=True)
        t0 = time.perf_counter()
        dedup(str(src), str(tmp / "corral-out"), settings=DedupSettings(threshold=THRESHOLD, ngram=NGRAM))
        runs.append(time.perf_counter() - t0)
    kept = {
        r["id"]
        for p in (tmp / "corral-out" / "docs").glob("*.arrow")
        for r in ipc.open_file(pa.memory_map(str(p))).read_all().to_pylist()
    }
    return {d["id"] for d in docs} - kept, runs


def datasketch_removed(docs: list[dict]) -> set[str]:
    from datasketch import MinHash, MinHashLSH

    from corral.dedup.minhash import normalize

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=PERM)
    removed = set()
    for d in sorted(docs, key=lambda d: d["id"]):
        words = normalize(d["text"]).split(" ")
        grams = {" ".join(words[i : i + NGRAM]).encode() for i in range(max(1, len(words) - NGRAM + 1))}
        m = MinHash(num_perm=PERM)
        m.update_batch(list(grams))
        if lsh.query(m):
            removed.add(d["id"])
        else:
            lsh.insert(d["id"], m)
    return removed


def shingle_strings(text: str) -> list[str]:
    from corral.dedup.minhash import normalize

    words = normalize(text).split(" ")
    return [" ".join(words[i : i + NGRAM]) for i in range(max(1, len(words) - NGRAM + 1))]


def speed(texts: list[str], repeat: int) -> dict[str, float]:
    import numpy as np

    from corral.dedup import minhash

    def corral():
        for t in texts:
            minhash.signature(minhash.shingles(t, NGRAM, unique=False), PERM)

    def datasketch():
        from datasketch import MinHash

        for t in texts:
            m = MinHash(num_perm=PERM)
            m.update_batch([s.encode() for s in shingle_strings(t)])

    def rensa():
        import rensa as rs

        for t in texts:
            m = rs.RMinHash(num_perm=PERM, seed=42)
            m.update(shingle_strings(t))
            m.digest()

    def datatrove():
        import xxhash
        from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

        if not getattr(xxhash, "_str_ok", False):  # datatrove passes str, which xxhash 4 refuses
            orig = xxhash.xxh64_intdigest
            xxhash.xxh64_intdigest = lambda d, seed=0: orig(d.encode() if isinstance(d, str) else d, seed)
            xxhash._str_ok = True
        sig = MinhashDedupSignature(
            tempfile.mkdtemp(), config=MinhashConfig(n_grams=NGRAM, num_buckets=16, hashes_per_bucket=8)
        )
        for t in texts:
            sig.get_signature(sig.get_shingles(t))

    out = {}
    for name, fn in (("corral", corral), ("datasketch", datasketch), ("rensa", rensa), ("datatrove", datatrove)):
        try:
            fn() if name == "datatrove" else None  # warm-up (spaCy loads once)
            best = min(_timed(fn) for _ in range(repeat))
            out[name] = len(texts) / best
        except Exception as e:  # a baseline that cannot run here is reported, not fatal
            out[name] = float("nan")
            print(f"  {name}: could not run ({type(e).__name__}: {e})")
    _ = np
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def peak_rss_of_dedup(families: int, tmp: Path, scale: int) -> float:
    """Peak RSS of `corral dedup` over a corpus of scale × families (same mix of duplicates, more data)."""
    docs, _ = make_corpus(families * scale, seed=11)
    src = tmp / f"mem{scale}.jsonl"
    with open(src, "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    code = (
        "import sys, json; from corral.pipeline.dedup_job import dedup; dedup(sys.argv[1], sys.argv[2]);"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(src), str(tmp / f"mem-out{scale}")], capture_output=True, text=True, check=True
    )
    return int(res.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    docs, fams = make_corpus(a.families)
    truth = ground_truth(docs, fams)
    print(f"corpus: {len(docs)} documents in {len(fams)} families; {len(truth)} truly removable at J ≥ {THRESHOLD}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        removed, runs = corral_removed(docs, tmp, a.repeat)
        for name, rem in (("corral dedup", removed), ("datasketch MinHashLSH", datasketch_removed(docs))):
            p, r, f = prf(rem, truth)
            print(f"  {name:22s} removed {len(rem):5d}  precision {p:.4f}  recall {r:.4f}  F1 {f:.4f}")
        texts = [d["text"] for d in docs]
        rates = speed(texts, a.repeat)
        print(f"signatures/s on one core ({PERM} permutations, 5-gram shingles, {len(texts)} documents):")
        for name, rate in rates.items():
            print(f"  {name:10s} {rate:9,.0f}   ratio corral/{name}: {rates['corral'] / rate:.2f}x")
        end_to_end, first = len(docs) / min(runs), len(docs) / runs[0]
        print(
            f"corral dedup end to end (local runner, 1 worker, best of {len(runs)}): {end_to_end:,.0f} documents/s, "
            f"{end_to_end / rates['corral']:.2f}x its own signatures/s (first run, with its imports: "
            f"{first:,.0f} documents/s, {first / rates['corral']:.2f}x)"
        )
        m1 = peak_rss_of_dedup(a.families, tmp, 1)
        m4 = peak_rss_of_dedup(a.families, tmp, 4)
        print(f"peak RSS of corral dedup: 1× {m1:.0f} MB, 4× {m4:.0f} MB, growth {m4 / m1:.2f}x")


if __name__ == "__main__":
    main()

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

`--scale`: instead, `corral dedup` (all cores) on 10⁵, 4×10⁵ and 10⁶ documents of 150 random words in
JSON-lines files of 25,000 each (a corpus grows by files, as crawls and dumps do), 20% of them near
copies of an earlier document (1% of words edited): seconds, documents/s, the peak RSS of the whole
process tree (sampled every 50 ms), its growth per extra document, and F1 of the removed documents
against the planted truth (each original's family linked at exact Jaccard ≥ 0.8).

    bash benchmarks/setup_baselines.sh
    .venv/bin/python benchmarks/minhash.py [--families 400] [--repeat 3]
    .venv/bin/python benchmarks/minhash.py --scale [--sizes 100000,400000,1000000]
    .venv/bin/python benchmarks/minhash.py --against [--earlier 400000 --new 100000]

`--against`: an earlier corpus (as --scale makes it) deduplicated on its own, then a new one — 20%
near copies of the earlier corpus's documents, 10% near copies of its own, the rest new — three ways:
`corral dedup NEW --against EARLIER_OUT`, NEW alone, and EARLIER + NEW from scratch (what one would
run without --against). Prints each one's seconds and peak RSS, F1 of what --against removes against
the planted truth (a new document goes when it is linked at exact Jaccard ≥ 0.8 to the earlier
family it copies, or is a near copy of another new one), and whether EARLIER_OUT was left byte for byte.
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


SCALE_FILE_DOCS = 25_000  # documents per input file of a --scale corpus
SCALE_NEAR = 0.2  # share of a --scale corpus planted as near copies (1% of words edited) of an earlier document
SCALE_POOL = 10_000  # originals a copy may come from (the generator's memory stays flat)


def family_removable(members: list[tuple[str, list[str]]]) -> set[str]:
    """The ids near dedup should remove from one family (an original and its copies): all but the
    smallest id of each group linked at exact Jaccard ≥ THRESHOLD."""
    from corral.dedup.minhash import jaccard, shingles

    sets = [shingles(" ".join(words), NGRAM) for _, words in members]
    parent = list(range(len(members)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(members)):
        for j in range(i + 1, len(members)):
            if jaccard(sets[i], sets[j]) >= THRESHOLD:
                parent[max(root(i), root(j))] = min(root(i), root(j))
    keep = {min(members[k][0] for k in range(len(members)) if root(k) == r) for r in set(map(root, parent))}
    return {m for m, _ in members} - keep


def scale_corpus(n: int, folder: Path, seed: int = 5, prefix: str = "d", families: list | None = None) -> set[str]:
    """n documents of 150 random words as JSON lines, SCALE_FILE_DOCS a file, SCALE_NEAR of them near
    copies of an earlier original; returns what near dedup should remove (family_removable of each
    original and its copies: a copy edited past the threshold is not a near duplicate). `families`,
    when given, receives the families still in the pool at the end (for a later corpus to copy)."""
    rng, vocab = random.Random(seed), vocabulary()
    pool: list[list[tuple[str, list[str]]]] = []  # families whose original may still be copied
    removable: set[str] = set()
    folder.mkdir(parents=True, exist_ok=True)
    f = None
    for i in range(n):
        if i % SCALE_FILE_DOCS == 0:
            if f:
                f.close()
            f = open(folder / f"part-{i // SCALE_FILE_DOCS:05d}.jsonl", "w")
        did = f"{prefix}{i:08d}"
        if pool and rng.random() < SCALE_NEAR:
            family = rng.choice(pool)
            words = edit(family[0][1], 0.01, rng, vocab)
            family.append((did, words))
        else:
            words = [rng.choice(vocab) for _ in range(150)]
            if len(pool) >= SCALE_POOL:
                gone = pool.pop(rng.randrange(SCALE_POOL))
                if len(gone) > 1:
                    removable |= family_removable(gone)
            pool.append([(did, words)])
        f.write(json.dumps({"id": did, "text": " ".join(words)}) + "\n")
    if f:
        f.close()
    for family in pool:
        if len(family) > 1:
            removable |= family_removable(family)
    if families is not None:
        families.extend(pool)
    return removable


AGAINST_EARLIER = 0.2  # share of the new corpus planted as near copies of the earlier one's documents
AGAINST_OWN = 0.1  # share planted as near copies of the new corpus's own originals


def new_corpus(n: int, folder: Path, earlier: list, seed: int = 9) -> set[str]:
    """The new corpus of --against: near copies (1% of words edited) of the earlier corpus's
    families, near copies of its own originals, new originals; returns what dedup against the earlier
    output should remove: each new copy whose group (exact Jaccard ≥ THRESHOLD within its family,
    earlier members included) holds an earlier document, and all but the smallest id of the others."""
    rng, vocab = random.Random(seed), vocabulary()
    copies: dict[int, list] = {}  # earlier family → its new copies
    own: list[list] = []
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "new.jsonl", "w") as f:
        for i in range(n):
            did, r = f"e{i:08d}", rng.random()
            if r < AGAINST_EARLIER:
                k = rng.randrange(len(earlier))
                words = edit(earlier[k][0][1], 0.01, rng, vocab)
                copies.setdefault(k, []).append((did, words))
            elif r < AGAINST_EARLIER + AGAINST_OWN and own:
                family = rng.choice(own[-SCALE_POOL:])
                words = edit(family[0][1], 0.01, rng, vocab)
                family.append((did, words))
            else:
                words = [rng.choice(vocab) for _ in range(150)]
                own.append([(did, words)])
            f.write(json.dumps({"id": did, "text": " ".join(words)}) + "\n")
    removable = {m for family in own if len(family) > 1 for m in family_removable(family)}
    for k, new in copies.items():
        # family_removable keeps the smallest id of each group: an earlier id ("d…") sorts before
        # every new one ("e…"), so a group with an earlier member loses all its new ones
        removable |= family_removable(earlier[k] + new) - {m for m, _ in earlier[k]}
    return removable


def against(n_earlier: int, n_new: int) -> None:
    from memory import peak_of

    corral = str(Path(sys.executable).with_name("corral"))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp, families = Path(tmpdir), []
        scale_corpus(n_earlier, tmp / "earlier", families=families)
        truth = new_corpus(n_new, tmp / "new", families)
        (tmp / "both").mkdir()
        for p in [*(tmp / "earlier").iterdir(), *(tmp / "new").iterdir()]:
            (tmp / "both" / f"{p.parent.name}-{p.name}").symlink_to(p)
        mb0, s0 = peak_of([corral, "dedup", str(tmp / "earlier"), "--out", str(tmp / "A")])
        print(f"earlier corpus: {n_earlier:,} documents deduplicated in {s0:.1f} s, peak {mb0:.0f} MB")
        before = {p: p.read_bytes() for p in (tmp / "A").rglob("*") if p.is_file()}
        runs = {
            "new --against earlier": [str(tmp / "new"), "--out", str(tmp / "B"), "--against", str(tmp / "A")],
            "new alone": [str(tmp / "new"), "--out", str(tmp / "B0")],
            "earlier + new from scratch": [str(tmp / "both"), "--out", str(tmp / "AB")],
        }
        took = {}
        for name, args in runs.items():
            mb, took[name] = peak_of([corral, "dedup", *args])
            print(f"  {name:28s} {took[name]:6.1f} s, peak {mb:5.0f} MB")
        unchanged = before == {p: p.read_bytes() for p in (tmp / "A").rglob("*") if p.is_file()}
        rows = [json.loads(line) for line in open(tmp / "B" / "removed.jsonl")]
        removed = {r["id"] for r in rows}
        existing = sum(r["reason"] == "duplicate_of_existing" for r in rows)
    p, r, f1 = prf(removed, truth)
    t = took["new --against earlier"]
    print(
        f"  --against removed {len(removed):,} ({existing:,} as duplicate_of_existing), "
        f"truly removable {len(truth):,}: precision {p:.4f} recall {r:.4f} F1 {f1:.4f}; "
        f"earlier output unchanged: {unchanged}"
    )
    print(
        f"  --against / new alone: {t / took['new alone']:.2f}x; "
        f"--against / earlier + new from scratch: {t / took['earlier + new from scratch']:.2f}x"
    )


def scale(sizes: list[int]) -> None:
    from memory import peak_of

    corral = str(Path(sys.executable).with_name("corral"))
    print("corral dedup at scale (all cores; peak RSS of the whole process tree):")
    first = None
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            truth = scale_corpus(n, tmp / "in")
            mb, seconds = peak_of([corral, "dedup", str(tmp / "in"), "--out", str(tmp / "out")])
            with open(tmp / "out" / "removed.jsonl") as f:
                removed = {json.loads(line)["id"] for line in f}
        p, r, f1 = prf(removed, truth)
        first = first or (n, mb, n / seconds)
        per_doc = (mb - first[1]) * 1024 / max(n - first[0], 1)
        growth = f"{mb / first[1]:.2f}x the first, {per_doc:.2f} KB per extra document"
        print(
            f"  {n:>9,} documents: {seconds:6.1f} s, {n / seconds:8,.0f} docs/s ({n / seconds / first[2]:.2f}x), "
            f"peak {mb:6.0f} MB ({growth if n != first[0] else 'the first'}); "
            f"removed {len(removed):,}, truly removable {len(truth):,}: precision {p:.4f} recall {r:.4f} F1 {f1:.4f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", action="store_true", help="corral dedup at 10⁵–10⁶ documents: speed, memory, F1")
    ap.add_argument("--sizes", default="100000,400000,1000000", help="--scale corpus sizes, comma-separated")
    ap.add_argument("--against", action="store_true", help="dedup a new corpus against an earlier output")
    ap.add_argument("--earlier", type=int, default=400_000, help="--against: documents of the earlier corpus")
    ap.add_argument("--new", type=int, default=100_000, help="--against: documents of the new corpus")
    a = ap.parse_args()
    if a.against:
        against(a.earlier, a.new)
        return
    if a.scale:
        scale([int(x) for x in a.sizes.split(",")])
        return
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

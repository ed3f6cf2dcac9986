"""MinHash signatures and LSH banding (the pure part of near-duplicate removal).

Shingles: the text is lowercased, Unicode punctuation removed, whitespace collapsed; the shingles
are its word n-grams (n = 5 by default; a shorter text is one shingle), each hashed to 64 bits with
xxHash3 (a maintained, fast, well-mixed hash: shingle hashes behave as random 64-bit values).

Permutations: h_i(x) = ((a_i·x + b_i) mod 2^64) >> 32, a_i odd — multiply-shift hashing in uint64,
where wrap-around *is* the arithmetic, so numpy computes it exactly. (The classic
(a·x + b) mod (2^61 − 1) on uint64 overflows a·x silently, which biased datasketch before 2.0.) The
signature of a document is the minimum of each h_i over its shingles, as uint32; vectorised with
numpy over blocks of shingles, so memory stays bounded for any document length. The estimate
(fraction of equal signature values) is unbiased: tests/dedup/test_minhash.py checks the mean error
against exact Jaccard over random pairs.

LSH: b bands of r rows (b·r ≤ num_perm); two documents are candidates when a band matches. (b, r)
minimise the weighted areas under the candidate curve P(s) = 1 − (1 − s^r)^b below the threshold
(false positives) and above it (false negatives); with exact-Jaccard verification on, false
negatives weigh more (false positives are verified away). When num_perm is not given, it is the
smallest of NUM_PERM_LADDER whose weighted error fits ERROR_BUDGET.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xxhash

from corral.core.text import replace_category

DEFAULT_NGRAM = 5  # word 5-gram shingles (datasketch's and text-dedup's usual choice for web text)
DEFAULT_THRESHOLD = 0.8  # target Jaccard similarity (0.9 for books: LLaMA's ">90% overlap")
SEED = 42  # permutation parameters are drawn from this seed: same seed, same signatures
NUM_PERM_LADDER = (64, 128, 192, 256, 384, 512)
ERROR_BUDGET = 0.02  # weighted FP/FN area accepted when deriving num_perm
FN_WEIGHT_VERIFIED = 0.98  # with exact verification, a missed pair costs far more than a checked one:
# at 0.8 this gives a candidate probability of about 0.98 at the threshold
BLOCK = 4096  # shingles per vectorised block (bounds the P × BLOCK matrix)
BATCH_BLOCK = 1024  # shingles of several documents signed together (P × 1024 × 8 B stays in L2 cache)
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lowercase, Unicode punctuation (category P*) turned into spaces, whitespace collapsed."""
    return _SPACE.sub(" ", replace_category(text.lower(), "P", " ")).strip()


_K = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier combining word hashes into an n-gram hash


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, vectorised: every input bit affects every output bit."""
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _ascii_table() -> bytes:
    """ASCII fast path of normalize(): punctuation (category P) and the separators \x1c–\x1f, which str
    whitespace includes, become spaces in one bytes.translate; bytes.split() does the rest."""
    out = bytearray(range(256))
    for c in range(128):
        if 0x1C <= c <= 0x1F or unicodedata.category(chr(c)).startswith("P"):
            out[c] = 32
    return bytes(out)


_ASCII_TABLE = _ascii_table()


def words(text: str) -> list[bytes]:
    """The normalised text's words as UTF-8 bytes (the same words as normalize(text).split(" "))."""
    if text.isascii():
        return text.encode("ascii").lower().translate(_ASCII_TABLE).split()
    norm = normalize(text)
    return norm.encode("utf-8", "surrogatepass").split(b" ") if norm else []


def shingles(text: str, ngram: int = DEFAULT_NGRAM, unique: bool = True) -> np.ndarray:
    """The 64-bit hashes of the text's word n-grams (uint64; sorted and distinct unless `unique=False`,
    which signatures do not need: a repeated shingle cannot change a minimum).

    Each word is hashed once with xxHash3; an n-gram's hash combines its n word hashes in order,
    h = fmix64(((w0·K + w1)·K + …) + w(n−1)) in uint64, computed for all positions at once.
    """
    words_ = words(text)
    if not words_:
        return np.empty(0, dtype=np.uint64)
    w = np.fromiter(map(xxhash.xxh3_64_intdigest, words_), dtype=np.uint64, count=len(words_))
    n = min(ngram, len(w))
    m = len(w) - n + 1
    with np.errstate(over="ignore"):
        acc = w[:m].copy()
        for k in range(1, n):
            acc = acc * _K + w[k : k + m]
        h = _fmix64(acc)
    return distinct(h) if unique else h


def distinct(hashes: np.ndarray) -> np.ndarray:
    """The sorted distinct values (np.unique's result; a sort and a mask are faster on short arrays)."""
    s = np.sort(hashes)
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the multiply-shift family: a odd, both uint64."""
    rng = np.random.Generator(np.random.PCG64(seed))
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64)
    return a, b


def signature(shingle_hashes: np.ndarray, num_perm: int, seed: int = SEED) -> np.ndarray:
    """MinHash signature (uint32 × num_perm); an empty set gives all 0xFFFFFFFF."""
    a, b = permutations(num_perm, seed)
    sig = np.full(num_perm, np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    n = len(shingle_hashes)
    if n:
        buf = np.empty((num_perm, min(n, BLOCK)), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for start in range(0, n, BLOCK):
                x = shingle_hashes[start : start + BLOCK]
                view = buf[:, : len(x)]
                np.multiply(a[:, None], x[None, :], out=view)
                np.add(view, b[:, None], out=view)
                np.minimum(sig, view.min(axis=1), out=sig)
    # The top 32 bits are monotone in the 64-bit value: the top bits of the minimum are the minimum
    # of the top bits, so one shift at the end gives h_i = (a·x + b) >> 32 minimised.
    return (sig >> np.uint64(32)).astype(np.uint32)


def signatures(shingle_sets: list[np.ndarray], num_perm: int, seed: int = SEED) -> np.ndarray:
    """The signatures of many documents at once (n × num_perm, uint32; row i is
    signature(shingle_sets[i])): short documents' shingles are concatenated into blocks of up to
    BATCH_BLOCK, so that they share each vectorised step, and each block's minima are taken per
    document with one minimum.reduceat; a longer document is signed alone."""
    a, b = permutations(num_perm, seed)
    out = np.full((len(shingle_sets), num_perm), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    sizes = np.fromiter((len(x) for x in shingle_sets), dtype=np.int64, count=len(shingle_sets))
    i, n = 0, len(shingle_sets)
    with np.errstate(over="ignore"):
        while i < n:
            if sizes[i] == 0:
                i += 1
                continue
            if sizes[i] > BATCH_BLOCK:
                out[i] = signature(shingle_sets[i], num_perm, seed)
                i += 1
                continue
            j, total = i, 0
            while j < n and 0 < sizes[j] <= BATCH_BLOCK - total:
                total += sizes[j]
                j += 1
            x = np.concatenate(shingle_sets[i:j])
            view = a[:, None] * x[None, :]
            np.add(view, b[:, None], out=view)
            starts = np.concatenate(([0], np.cumsum(sizes[i : j - 1])))
            out[i:j] = (np.minimum.reduceat(view, starts, axis=1) >> np.uint64(32)).T
            i = j
    return out


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    return float(np.mean(sig_a == sig_b))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted, distinct shingle-hash arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


@dataclass(frozen=True)
class LshParams:
    threshold: float
    num_perm: int
    bands: int
    rows: int
    false_positive: float  # area under P(s) for s < threshold
    false_negative: float  # area under 1 − P(s) for s ≥ threshold

    def describe(self) -> str:
        return (
            f"MinHash LSH: threshold {self.threshold}, {self.num_perm} permutations, {self.bands} bands × "
            f"{self.rows} rows; false-positive area {self.false_positive:.4f}, "
            f"false-negative area {self.false_negative:.4f}"
        )


def _areas(threshold: float, bands: int, rows: int, points: int = 2001) -> tuple[float, float]:
    s = np.linspace(0.0, 1.0, points)
    p = 1.0 - (1.0 - s**rows) ** bands
    fp = float(np.trapezoid(np.where(s < threshold, p, 0.0), s))
    fn = float(np.trapezoid(np.where(s >= threshold, 1.0 - p, 0.0), s))
    return fp, fn


def _best_bands(threshold: float, num_perm: int, fn_weight: float) -> tuple[float, int, int, float, float]:
    best = None
    for bands in range(1, num_perm + 1):
        rows = num_perm // bands
        fp, fn = _areas(threshold, bands, rows)
        err = (1 - fn_weight) * fp + fn_weight * fn
        if best is None or err < best[0]:
            best = (err, bands, rows, fp, fn)
    return best


@lru_cache(maxsize=64)
def derive_lsh(threshold: float = DEFAULT_THRESHOLD, num_perm: int | None = None, verify: bool = True) -> LshParams:
    """(num_perm, bands, rows) for a target threshold, and the false-positive/negative areas."""
    if not 0.0 < threshold < 1.0:
        raise ValueError("threshold must be between 0 and 1")
    fn_weight = FN_WEIGHT_VERIFIED if verify else 0.5
    ladder = (num_perm,) if num_perm else NUM_PERM_LADDER
    chosen = None
    for p in ladder:
        err, bands, rows, fp, fn = _best_bands(threshold, p, fn_weight)
        chosen = (p, bands, rows, fp, fn)
        if err <= ERROR_BUDGET:
            break
    p, bands, rows, fp, fn = chosen
    return LshParams(threshold, p, bands, rows, false_positive=fp, false_negative=fn)


def band_keys_many(sigs: np.ndarray, params: LshParams) -> np.ndarray:
    """(n, bands) 64-bit keys (uint64) of n signatures, computed for all of them at once: each band's
    rows folded into one uint64 with the band's index as the seed (so equal rows in different bands
    never share a bucket), then mixed by fmix64, so that the keys spread over the whole 64-bit range
    that the LSH partitions split into equal ranges."""
    b, r = params.bands, params.rows
    rows = np.asarray(sigs, dtype=np.uint32).reshape(len(sigs), -1)[:, : b * r].reshape(len(sigs), b, r)
    with np.errstate(over="ignore"):
        acc = np.broadcast_to(np.arange(1, b + 1, dtype=np.uint64) * _K, (len(sigs), b)).copy()
        for j in range(r):
            acc = (acc ^ rows[:, :, j].astype(np.uint64)) * _K
        return _fmix64(acc)


def band_keys(sig: np.ndarray, params: LshParams) -> np.ndarray:
    """One signature's band keys (band_keys_many of one)."""
    return band_keys_many(np.asarray(sig)[None, :], params)[0]

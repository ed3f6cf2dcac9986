"""MinHash signatures, LSH parameters and connected components (the pure parts of near-dedup)."""

import numpy as np
import pytest

from corral.dedup import minhash
from corral.dedup.clusters import bucket_edges, bucket_edges_against, component_table, components


def test_normalize_and_shingles():
    assert minhash.normalize("Hello,   World! «Ça va?»") == "hello world ça va"
    assert len(minhash.shingles("a b c d e f g", 5)) == 3
    assert len(minhash.shingles("too short", 5)) == 1  # fewer words than n: one shingle
    assert len(minhash.shingles("", 5)) == 0 and len(minhash.shingles("!!!", 5)) == 0
    assert np.array_equal(minhash.shingles("A b c d e", 5), minhash.shingles("a, B c d e.", 5))


def test_signature_deterministic_and_empty():
    s = minhash.shingles("the quick brown fox jumps over the lazy dog again and again")
    assert np.array_equal(minhash.signature(s, 128), minhash.signature(s.copy(), 128))
    assert minhash.signature(s, 128).dtype == np.uint32
    assert (minhash.signature(np.empty(0, dtype=np.uint64), 16) == 0xFFFFFFFF).all()
    long = np.arange(10_000, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # spans several blocks
    ref = minhash.signature(long[:5000], 64)
    assert np.array_equal(np.minimum(ref, minhash.signature(long[5000:], 64)), minhash.signature(long, 64))


def test_signatures_of_many_equal_each_signature():
    """Batched signing (short documents sharing blocks, empty and long ones alone) gives each
    document's own signature, in order."""
    rng = np.random.default_rng(3)
    sizes = [0, 1, 5, 300, 0, 1023, 1024, 1025, 5000, 2, 700, 400]
    sets = [minhash.distinct(rng.integers(0, 2**63, size=n, dtype=np.uint64)) for n in sizes]
    got = minhash.signatures(sets, 64)
    assert got.shape == (len(sets), 64) and got.dtype == np.uint32
    assert np.array_equal(got, np.stack([minhash.signature(x, 64) for x in sets]))
    assert minhash.signatures([], 64).shape == (0, 64)


def test_distinct_is_sorted_unique():
    x = np.array([5, 3, 5, 1, 3, 9], dtype=np.uint64)
    assert np.array_equal(minhash.distinct(x), np.unique(x))
    assert len(minhash.distinct(np.empty(0, np.uint64))) == 0
    assert list(minhash.distinct(np.array([7], np.uint64))) == [7]


def test_estimate_is_unbiased():
    """Mean error of the estimate against exact Jaccard over random pairs < 0.01 (no uint64 overflow bias)."""
    rng = np.random.default_rng(7)
    vocab = [f"w{i}" for i in range(20_000)]
    errors = []
    for _ in range(400):
        n = int(rng.integers(80, 600))
        a = list(rng.choice(vocab, n))
        b = list(a)
        for j in rng.choice(n, int(rng.integers(0, n)), replace=False):
            b[j] = f"x{rng.integers(1e12)}"
        A, B = minhash.shingles(" ".join(a)), minhash.shingles(" ".join(b))
        estimate = minhash.estimate_jaccard(minhash.signature(A, 128), minhash.signature(B, 128))
        errors.append(estimate - minhash.jaccard(A, B))
    assert abs(np.mean(errors)) < 0.01
    assert np.mean(np.abs(errors)) < 0.05  # and each estimate is close: 128 permutations → σ ≈ 0.04


def test_exact_jaccard():
    a, b = np.array([1, 2, 3, 4], np.uint64), np.array([3, 4, 5], np.uint64)
    assert minhash.jaccard(a, b) == 2 / 5 and minhash.jaccard(a, a) == 1.0


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_band_rows_derivation(threshold):
    p = minhash.derive_lsh(threshold)
    assert p.bands * p.rows <= p.num_perm and p.num_perm in minhash.NUM_PERM_LADDER
    # With verification, pairs at the threshold are almost always candidates (recall first) …
    assert 1 - (1 - threshold**p.rows) ** p.bands >= 0.95
    # … without it, the candidate curve crosses one half near the threshold: (1/b)^(1/r) ≈ threshold.
    q = minhash.derive_lsh(threshold, verify=False)
    assert abs((1 / q.bands) ** (1 / q.rows) - threshold) < 0.1
    fixed = minhash.derive_lsh(threshold, num_perm=128)
    assert fixed.num_perm == 128 and fixed.bands * fixed.rows <= 128
    assert 0 <= fixed.false_negative < 0.01 and 0 <= fixed.false_positive < 0.5  # recall first: FPs are verified away
    assert "false-positive area" in p.describe()


def test_higher_threshold_needs_more_rows():
    assert minhash.derive_lsh(0.9, 128).rows > minhash.derive_lsh(0.5, 128).rows
    assert minhash.derive_lsh(0.9, 128, verify=False).rows > minhash.derive_lsh(0.5, 128, verify=False).rows
    with pytest.raises(ValueError):
        minhash.derive_lsh(1.5)


def test_band_keys_match_for_equal_bands():
    p = minhash.derive_lsh(0.8, 64)
    s = minhash.signature(minhash.shingles("one two three four five six seven eight nine ten"), 64)
    t = s.copy()
    t[(p.bands - 1) * p.rows] ^= 1  # the last band differs
    ks, kt = minhash.band_keys(s, p), minhash.band_keys(t, p)
    assert len(ks) == p.bands and (ks[:-1] == kt[:-1]).all() and ks[-1] != kt[-1]
    assert ks.dtype == np.uint64


def test_band_keys_fill_the_partitions_evenly():
    """The LSH partitions split the 64-bit key range into equal ranges: band keys must use all of it."""
    from corral.pipeline.rounds.keytables import partition_of

    p = minhash.derive_lsh(0.8, 64)
    sigs = np.random.default_rng(0).integers(0, 2**32, size=(2000, 64), dtype=np.uint32)
    counts = np.bincount(partition_of(minhash.band_keys_many(sigs, p).reshape(-1), 5), minlength=5)
    assert counts.min() > 0.9 * counts.mean()


def test_equal_rows_in_different_bands_get_different_keys():
    p = minhash.derive_lsh(0.8, 64)
    sig = np.zeros(64, dtype=np.uint32)  # every band has the same rows
    assert len(set(minhash.band_keys(sig, p).tolist())) == p.bands


def as_map(rows):
    return {n: (rep, size) for n, rep, size in rows}


def test_components_chain_star_and_disjoint():
    chain = np.array([[i, i + 1] for i in range(1, 50)])
    m = as_map(components(chain))
    assert set(m.values()) == {(1, 50)}
    star = np.array([[100, i] for i in range(101, 120)] + [[i, 100] for i in range(101, 110)])  # repeats too
    m = as_map(components(star))
    assert set(m.values()) == {(100, 20)}
    two = np.array([[5, 9], [9, 7], [20, 30]])
    m = as_map(components(two))
    assert m[7] == (5, 3) and m[30] == (20, 2)
    assert components(np.empty((0, 2), dtype=np.int64)) == []


def test_components_one_huge_cluster_in_bounded_memory():
    import resource

    n = 1_000_000
    rng = np.random.default_rng(0)
    perm = rng.permutation(n).astype(np.int64) + 10
    edges = np.stack([perm[:-1], perm[1:]], axis=1)  # a shuffled chain: one component of 10^6 nodes
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = list(component_table([edges]).rows())  # numpy chunks, 16 bytes an edge, as the edge files hold them
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert len(rows) == n and {r[1] for r in rows} == {10} and rows[0][2] == n
    assert grown_mb < 600


def test_ascii_fast_path_gives_the_same_words():
    import random
    import string

    rnd = random.Random(1)
    for _ in range(5000):
        t = "".join(rnd.choice(string.printable + "\x1c\x1d\x1e\x1f") for _ in range(rnd.randint(0, 60)))
        ref = minhash.normalize(t)
        assert minhash.words(t) == (ref.encode().split(b" ") if ref else [])
    assert minhash.words("Ça, va!") == ["ça".encode(), b"va"]  # the non-ASCII path


def test_bucket_edges_join_each_member_to_its_buckets_smallest_key():
    pairs = np.array([[7, 30], [7, 10], [7, 20], [9, 20], [9, 5], [11, 40], [7, 10]], dtype=np.int64)
    assert bucket_edges(pairs).tolist() == [[20, 5], [20, 10], [30, 10]]  # bucket 11 has one member
    assert bucket_edges(np.empty((0, 2), dtype=np.int64)).shape == (0, 2)


def test_bucket_edges_head_is_the_smallest_rank_and_equal_ranks_stay_apart():
    """(key, rank, node) rows: the head is the member of smallest rank (its id's key), whatever its
    node (locator); two documents with the same rank (one id given twice) are still two nodes."""
    pairs = np.array([[7, 5, 300], [7, 9, 100], [7, 5, 200], [8, 1, 400], [8, 1, 500]], dtype=np.int64)
    assert bucket_edges(pairs).tolist() == [[100, 200], [300, 200], [500, 400]]


def test_bucket_edges_against_earlier_documents_keep_the_new_ones_own_edges():
    """Earlier documents (negative keys): each new member of a bucket gets an edge to the bucket's
    smallest earlier one, the new members keep their edges among themselves, and two earlier ones
    get none."""
    pairs = np.array([[7, 30], [7, -4], [7, 20], [7, -9], [9, 20], [9, 50], [11, -1], [11, -2]], dtype=np.int64)
    assert bucket_edges_against(pairs).tolist() == [[20, -9], [30, -9], [30, 20], [50, 20]]
    assert bucket_edges_against(np.empty((0, 2), dtype=np.int64)).shape == (0, 2)

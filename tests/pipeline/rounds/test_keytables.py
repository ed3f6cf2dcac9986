"""Round tables (corral.pipeline.rounds.keytables): a file's keys sorted per round, so a partition
reads exactly its range of the key space."""

import numpy as np

from corral.pipeline.rounds import keytables as T
from corral.pipeline.rounds.stage import load_arrays, save_keys


def test_round_tables_give_each_partition_exactly_its_range(tmp_path):
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 2**64 - 1, size=5000, dtype=np.uint64)
    ids[:10] = ids[10]  # shared keys stay together, in row order
    ids[20] = 0
    ids[21] = np.uint64(2**64 - 1)
    ts = rng.integers(0, 10**9, size=5000).astype(np.int64)
    md5 = rng.integers(0, 2**64 - 1, size=5000, dtype=np.uint64)
    key_file = str(tmp_path / "keys" / "000003.npz")
    written = save_keys(key_file, {"id_key": ids, "ts": ts, "md5": md5})
    assert written > 0 and [p.name for p in (tmp_path / "keys").iterdir()] == ["000003.npz"]  # one file
    with np.load(key_file) as z:
        assert sorted(z.files) == ["id_key", "md5", "table.unique", "ts"]  # no content keys: no exact table
    assert sorted(load_arrays(key_file)) == ["id_key", "md5", "ts"]  # the key arrays, not the tables
    assert isinstance(T.mapped_member(key_file, "table.unique"), np.memmap)  # read in place, by the pages used
    for n in (1, 2, 7):
        seen = []
        for p in range(n):
            t = T.read_partition(key_file, "unique", p, n)
            assert np.all(np.diff(t["key"].astype(np.float64)) >= 0)
            assert (T.partition_of(t["key"], n) == p).all()
            assert np.array_equal(t["ts"], ts[t["row"]]) and np.array_equal(t["md5"], md5[t["row"]])
            seen += t["row"].tolist()
        assert sorted(seen) == list(range(5000))
    same = T.read_partition(key_file, "unique", 0, 1)
    assert same["row"][same["key"] == ids[10]].tolist() == list(range(11))


def test_partition_bounds_split_the_key_space_evenly():
    from corral.pipeline.rounds.keytables import bounds

    assert bounds(0, 1) == (0, None)
    assert bounds(0, 2) == (0, 2**63) and bounds(1, 2) == (2**63, None)
    edges = [bounds(p, 3) for p in range(3)]
    assert all(edges[p][1] == edges[p + 1][0] for p in range(2))


def test_band_and_line_tables_hold_every_key_once_with_its_document(tmp_path):
    """A row of band keys per document (`near`) and a run of line keys per document (`c4lines`):
    every key lands once, in its partition, with its document's row and column."""
    from corral.dedup import minhash

    p = minhash.derive_lsh(0.8, 64)
    sigs = [minhash.signature(minhash.shingles(f"doc {k} " + "word " * k), 64) for k in range(1, 30)]
    bands = np.stack([minhash.band_keys(sig, p) for sig in sigs]).astype(np.uint64)
    docs = np.arange(100, 129, dtype=np.int64)
    key_file = str(tmp_path / "keys" / "000000.npz")
    save_keys(key_file, {"bands": bands, "doc": docs})
    got = []
    for part in range(4):
        t = T.read_partition(key_file, "near", part, 4)
        assert (T.partition_of(t["key"], 4) == part).all() and (t["doc"] == docs[t["row"]]).all()
        got += list(zip(t["key"].tolist(), t["row"].tolist()))
    assert sorted(got) == sorted((int(b), r) for r in range(len(sigs)) for b in bands[r])

    lines = np.array([5, 9, 2, 2, 7], dtype=np.uint64)  # doc 0: 5, 9; doc 1: none; doc 2: 2, 2, 7
    clean_file = str(tmp_path / "clean-keys" / "000001.npz")
    save_keys(
        clean_file, {"lines": lines, "offsets": np.array([0, 2, 2, 5]), "rank": np.array([10, 11, 12], np.uint64)}
    )
    t = T.read_partition(clean_file, "c4lines", 0, 1)
    assert list(zip(t["key"].tolist(), t["row"].tolist(), t["rank"].tolist())) == [
        (2, 2, 12),
        (2, 2, 12),
        (5, 0, 10),
        (7, 2, 12),
        (9, 0, 10),
    ]


def test_by_partition_puts_each_partition_s_answer_back_in_order():
    from corral.pipeline.rounds.keytables import by_partition, partition_of

    values = np.array([2**63 + 5, 3, 2**64 - 1, 7, 2**62], dtype=np.uint64)
    seen = []
    got = by_partition(values, 2, lambda p, v: (seen.append(p), v.astype(np.float64) * 0 + p)[1], -1.0)
    assert got.tolist() == partition_of(values, 2).tolist() == [1, 0, 1, 0, 0] and seen == [0, 1]
    assert by_partition(values, 0, lambda p, v: v, False).tolist() == [False] * 5


def test_an_empty_round_table_reads_as_no_rows(tmp_path):
    key_file = str(tmp_path / "keys" / "000000.npz")
    save_keys(key_file, {"id_key": np.empty(0, np.uint64), "ts": np.empty(0, np.int64), "md5": np.empty(0, np.uint64)})
    assert len(T.read_partition(key_file, "unique", 0, 1)) == 0


def test_a_key_file_in_a_bucket_is_read_by_ranges(bucket, tmp_path, monkeypatch):
    """In a bucket, a partition reads its round table's member by ranged GETs (never the whole key
    file), and gets what a local partition gets."""
    from corral.core import s3

    rng = np.random.default_rng(0)
    arrays = {"bands": rng.integers(0, 2**64, size=(5000, 10), dtype=np.uint64), "doc": np.arange(5000)}
    arrays["filler"] = rng.integers(0, 255, size=3 << 20, dtype=np.uint8)  # a large member read by no one
    local, remote = str(tmp_path / "keys" / "000000.npz"), f"{bucket}/keys/000000.npz"
    save_keys(local, arrays)
    save_keys(remote, arrays)
    fetched = []
    read = s3.read_bytes
    monkeypatch.setattr(s3, "read_bytes", lambda p, a=0, b=None: fetched.append((b or 0) - a) or read(p, a, b))
    for part in range(3):
        mine, theirs = T.read_partition(local, "near", part, 3), T.read_partition(remote, "near", part, 3)
        assert mine.tobytes() == theirs.tobytes() and len(mine)
    (doc,) = T.read_members(remote, "doc")
    assert (doc == arrays["doc"]).all()
    assert sum(fetched) < 3 * 5000 * 10 * 24 + 4 * (1 << 20)  # the tables and a few headers, not the filler

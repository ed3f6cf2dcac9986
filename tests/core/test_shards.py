import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from corral.core.fs import TMP_MARK
from corral.core.schema import make_record, records_to_batch
from corral.core.shards import (
    ShardError,
    ShardWriter,
    count_rows,
    iter_records,
    read_shard,
    read_token_shard,
    token_batch,
    token_batch_flat,
    write_shard,
    write_token_shard,
)


def docs(n, size=50, source="c4"):
    return [make_record(source, f"k{i}", f"document {i} " + "x" * size) for i in range(n)]


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_write_shard_round_trip_and_checksum(tmp_path):
    recs = docs(10)
    info = write_shard(str(tmp_path / "a.arrow"), [records_to_batch(recs)])
    assert info.documents == 10
    assert info.sha256 == sha(tmp_path / "a.arrow")  # computed as written equals a re-read
    assert info.bytes == os.path.getsize(tmp_path / "a.arrow")
    assert read_shard(info.path).to_pylist() == recs
    assert count_rows(info.path) == 10
    assert os.listdir(tmp_path) == ["a.arrow"]


def test_write_shard_refuses_a_foreign_schema(tmp_path):
    batch = pa.RecordBatch.from_pydict({"x": [1]})
    with pytest.raises(ShardError):
        write_shard(str(tmp_path / "a.arrow"), [batch])
    assert os.listdir(tmp_path) == []


def test_failure_mid_write_leaves_nothing_under_the_final_name(tmp_path):
    def batches():
        yield records_to_batch(docs(5))
        raise RuntimeError("reader died")

    with pytest.raises(RuntimeError):
        write_shard(str(tmp_path / "a.arrow"), batches())
    assert os.listdir(tmp_path) == []  # neither the shard nor its temporary file


def test_process_killed_mid_write_leaves_no_partial_shard(tmp_path):
    """A real crash (SIGKILL, no cleanup runs): the final name never holds a partial shard."""
    script = textwrap.dedent(f"""
        import os, signal
        from corral.core.schema import make_record, records_to_batch
        from corral.core.shards import ShardWriter
        w = ShardWriter({str(tmp_path)!r}, max_rows=1000)
        for i in range(1500):
            w.write(make_record("c4", f"k{{i}}", "text " * 50))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -9
    names = sorted(os.listdir(tmp_path))
    # The first shard was complete (1000 rows) and committed; the second was mid-write.
    assert "part-00000.arrow" in names and count_rows(str(tmp_path / "part-00000.arrow")) == 1000
    assert "part-00001.arrow" not in names
    leftovers = [n for n in names if n != "part-00000.arrow"]
    assert leftovers and all(n.startswith(".") and TMP_MARK in n for n in leftovers)


def test_writer_rolls_over_by_rows(tmp_path):
    w = ShardWriter(str(tmp_path), max_rows=300)
    with w:
        w.write_all(docs(1000))
    assert [s.documents for s in w.shards] == [300, 300, 300, 100]
    assert [os.path.basename(s.path) for s in w.shards] == [f"part-0000{i}.arrow" for i in range(4)]
    back = [r for s in w.shards for r in iter_records(s.path)]
    assert back == docs(1000)


def test_writer_rolls_over_by_bytes(tmp_path):
    recs = docs(400, size=2000)
    w = ShardWriter(str(tmp_path), max_rows=10**6, max_bytes=100_000)
    with w:
        w.write_all(recs)
    assert len(w.shards) > 5
    for s in w.shards:
        assert read_shard(s.path).nbytes <= 100_000
    assert sum(s.documents for s in w.shards) == 400


def test_a_record_larger_than_the_byte_bound_gets_its_own_shard(tmp_path):
    recs = docs(3, size=10) + [make_record("c4", "big", "y" * 50_000)] + docs(3, size=10, source="books")
    w = ShardWriter(str(tmp_path), max_bytes=10_000)
    with w:
        w.write_all(recs)
    assert [s.documents for s in w.shards] == [3, 1, 3]


def test_writer_abort_on_exception(tmp_path):
    with pytest.raises(ValueError):
        with ShardWriter(str(tmp_path), max_rows=3) as w:
            w.write_all(docs(3))
            w.write_batch(records_to_batch(docs(1)))  # shard 0 full and committed; shard 1 open
            raise ValueError("boom")
    # The completed shard stays (it is whole); the open one is gone with its temporary file.
    assert os.listdir(tmp_path) == ["part-00000.arrow"]
    assert count_rows(str(tmp_path / "part-00000.arrow")) == 3


def test_token_shard_read_is_zero_copy(tmp_path):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 32000, size=n, dtype=np.uint16) for n in (5, 0, 17, 1, 300)]
    ids = [f"d{i}" for i in range(len(seqs))]
    info = write_token_shard(str(tmp_path / "t.arrow"), ids, seqs)
    ts = read_token_shard(info.path)
    assert ts.tokens.dtype == np.uint16 and ts.tokens.size == sum(map(len, seqs))
    assert not ts.tokens.flags.owndata and not ts.tokens.flags.writeable
    # The token view points into the mapped file itself: no copy was made.
    base, size = ts.source_buffer.address, ts.source_buffer.size
    start = ts.tokens.__array_interface__["data"][0]
    assert base <= start and start + ts.tokens.nbytes <= base + size
    # And the bytes there are the ones on disk.
    raw = open(info.path, "rb").read()
    assert raw[start - base : start - base + ts.tokens.nbytes] == np.concatenate(seqs).tobytes()
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(ts.document(i), s)
    assert ts.ids.to_pylist() == ids


def test_token_shard_refuses_ids_beyond_uint16(tmp_path):
    with pytest.raises(ShardError, match="uint16"):
        token_batch(["a"], [np.array([70000])])


def test_token_batch_flat_takes_an_arrow_id_column_as_is():
    values = np.array([5, 6, 7], dtype=np.uint16)
    ids = pa.array(["a", "b"], pa.string())
    b = token_batch_flat(ids, np.array([1, 2]), values)
    assert b.column("id").equals(ids)
    assert b.column("tokens").to_pylist() == [[5], [6, 7]]
    assert b.equals(token_batch_flat(["a", "b"], np.array([1, 2]), values))


def test_token_shard_must_be_one_batch(tmp_path):
    b = token_batch(["a"], [np.array([1, 2], dtype=np.uint16)])
    from corral.core.schema import TOKEN_SCHEMA

    info = write_shard(str(tmp_path / "t.arrow"), [b, b], schema=TOKEN_SCHEMA, compression=None)
    with pytest.raises(ShardError, match="one record batch"):
        read_token_shard(info.path)


def test_reading_a_non_shard_fails_clearly(tmp_path):
    p = tmp_path / "junk.arrow"
    p.write_bytes(b"not arrow at all")
    with pytest.raises(ShardError, match="not a readable Arrow shard"):
        read_shard(str(p))

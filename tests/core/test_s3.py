"""s3:// through corral's filesystem layer (corral.core.s3, boto3) against an S3-compatible server on
127.0.0.1: reads, ranged reads, listings, globs, folder removal, atomic writes (small and multipart),
and the one-line errors for what the AWS environment gets wrong."""

import os

import pytest

from corral.core import fs, s3


def test_write_read_list_and_remove(bucket):
    fs.atomic_write_bytes(f"{bucket}/out/a.json", b"{}")
    for name in ("b/x.arrow", "b/y.arrow", "b/c/z.arrow"):
        fs.atomic_write_bytes(f"{bucket}/out/{name}", name.encode())
    assert fs.read_bytes(f"{bucket}/out/b/x.arrow") == b"b/x.arrow" and fs.size(f"{bucket}/out/a.json") == 2
    assert fs.exists(f"{bucket}/out/a.json") and not fs.exists(f"{bucket}/out/nothing")
    assert fs.list_files(f"{bucket}/out/b") == [f"{bucket}/out/b/x.arrow", f"{bucket}/out/b/y.arrow"]
    assert fs.list_entries(f"{bucket}/out") == ["a.json", "b"]
    assert fs.walk_files(f"{bucket}/out/b") == [
        f"{bucket}/out/b/c/z.arrow",
        f"{bucket}/out/b/x.arrow",
        f"{bucket}/out/b/y.arrow",
    ]
    assert [p for p, _ in fs.match(f"{bucket}/out/b/*.arrow")] == [f"{bucket}/out/b/x.arrow", f"{bucket}/out/b/y.arrow"]
    assert len(fs.match(f"{bucket}/out/**/*.arrow")) == 3 and fs.match(f"{bucket}/out/a.json") == [
        (f"{bucket}/out/a.json", 2)
    ]
    with fs.open_range(f"{bucket}/out/b/c/z.arrow", 2, 5) as f:
        assert f.read() == b"c/z"
    fs.remove([f"{bucket}/out/b", f"{bucket}/out/a.json"])
    assert fs.walk_files(f"{bucket}/out") == [] and fs.list_entries(f"{bucket}/out") == []


def test_a_large_write_is_multipart_and_appears_only_when_committed(bucket, monkeypatch):
    monkeypatch.setattr(s3, "PART", 5 << 20)  # S3's smallest part
    data = os.urandom(12 << 20)
    target = fs.AtomicFile(f"{bucket}/big.bin")
    target.raw.write(data[: 7 << 20])
    assert target.raw.upload_id is not None and not fs.exists(f"{bucket}/big.bin")  # parts sent, no object
    target.raw.write(data[7 << 20 :])
    target.commit()
    assert fs.read_bytes(f"{bucket}/big.bin") == data
    with fs.open_read(f"{bucket}/big.bin") as f:
        f.seek(9 << 20)
        assert f.read(100) == data[9 << 20 : (9 << 20) + 100]
    killed = fs.AtomicFile(f"{bucket}/partial.bin")
    killed.raw.write(data)
    killed.abort()  # a failed writer: no object, and the upload is gone
    assert not fs.exists(f"{bucket}/partial.bin")
    assert not s3.client().list_multipart_uploads(Bucket=bucket[5:]).get("Uploads")


def test_what_the_environment_gets_wrong_is_one_line(bucket, monkeypatch):
    with monkeypatch.context() as m:
        m.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
        s3.reset()
        with pytest.raises(s3.S3AccessError, match=r"cannot reach http://127.0.0.1:9: check AWS_ENDPOINT_URL"):
            fs.exists(f"{bucket}/x")
    s3.reset()
    with pytest.raises(s3.S3AccessError, match=r"the bucket 'no-such-bucket' does not exist"):
        fs.atomic_write_bytes("s3://no-such-bucket/x", b"x")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3.reset()
    with pytest.raises(s3.S3AccessError, match=r"no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        fs.read_bytes(f"{bucket}/x")


def test_folder_markers_are_folders_and_globs_keep_to_segments(bucket):
    """Zero-byte keys ending in '/' (what consoles and s3fs-like tools leave for a folder) are never
    files: not listed, not an entry, never a reason to delete a folder; `?` and `[…]` stay inside a
    path segment; a glob lists from its fixed prefix, mid-name."""
    name = bucket[len("s3://") :]
    for key in ("out/", "out/docs/", "out/docs/c4/"):
        s3.client().put_object(Bucket=name, Key=key, Body=b"")
    fs.atomic_write_bytes(f"{bucket}/out/docs/c4/part-0.arrow", b"x")
    fs.atomic_write_bytes(f"{bucket}/out/docs/a/b.json", b"y")
    assert fs.list_entries(f"{bucket}/out/docs") == ["a", "c4"] and fs.list_entries(f"{bucket}/out") == ["docs"]
    assert fs.walk_files(f"{bucket}/out/docs") == [f"{bucket}/out/docs/a/b.json", f"{bucket}/out/docs/c4/part-0.arrow"]
    assert fs.match(f"{bucket}/out/docs/a?b.json") == [] and fs.match(f"{bucket}/out/docs/[/]b.json") == []
    assert [p for p, _ in fs.match(f"{bucket}/out/do*/c?/*.arrow")] == [f"{bucket}/out/docs/c4/part-0.arrow"]
    assert len(fs.match(f"{bucket}/out/docs/")) == 2  # a folder: every file under it


def test_an_upload_is_used_once_and_reads_past_the_end_are_empty(bucket):
    target = fs.AtomicFile(f"{bucket}/once.bin")
    assert target.raw.write(memoryview(b"abcd").cast("I")) == 4
    target.commit()
    with pytest.raises(ValueError, match="already committed"):
        target.raw.write(b"more")
    assert fs.read_bytes(f"{bucket}/once.bin") == b"abcd"
    assert fs.read_range(f"{bucket}/once.bin", 10, 20) == b""


def test_an_access_error_is_not_a_missing_file(bucket, monkeypatch):
    """Handlers of missing or unreadable files (OSError, ValueError) never take an unreachable
    endpoint for one: reading completion records stops instead of passing records over."""
    from corral.engine.graph import Ledger
    from corral.engine.records import read_done, records

    fs.atomic_write_bytes(f"{bucket}/r/u/done/p/a.json", b'{"summary": {}}')
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3.reset()
    at = Ledger(f"{bucket}/r", "u", "")
    assert not issubclass(s3.S3AccessError, (OSError, ValueError))
    with pytest.raises(s3.S3AccessError):
        read_done(at, "p", "a")
    with pytest.raises(s3.S3AccessError):
        list(records(at, "p"))


def test_a_local_copy_is_fetched_once_by_processes_that_ask_at_once(bucket, tmp_path):
    """Ranks of a node staging the same token shard: one fetches it, the others wait and reuse it;
    a copy whose sha256 differs from the manifest's is refused."""
    import hashlib
    from concurrent.futures import ProcessPoolExecutor

    data = os.urandom(3 << 20)
    fs.atomic_write_bytes(f"{bucket}/t/part-0.arrow", data)
    sha = hashlib.sha256(data).hexdigest()
    with ProcessPoolExecutor(4) as pool:
        got = list(pool.map(fs.local_copy, [f"{bucket}/t/part-0.arrow"] * 4, [sha] * 4, [str(tmp_path)] * 4))
    assert len(set(got)) == 1 and open(got[0], "rb").read() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{sha}.arrow", f"{sha}.arrow.lock"]
    with pytest.raises(OSError, match="differs from the manifest's"):
        fs.local_copy(f"{bucket}/t/part-0.arrow", "0" * 64, str(tmp_path / "other"))
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["0" * 64 + ".arrow.lock"]  # no partial copy

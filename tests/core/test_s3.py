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

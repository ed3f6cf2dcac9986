"""s3:// paths through boto3, AWS's own SDK (a maintained client, not our own HTTP).

boto3 reads the standard AWS environment and config, so corral needs no flag of its own:
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE (~/.aws/config and
credentials), AWS_DEFAULT_REGION, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3 (an S3-compatible store:
MinIO, Ceph, R2, a loopback test server). One client per process (workers are forked: a client is
never shared across a fork), with retries in boto3's standard mode.

Writes are atomic as on disk without a rename: an object appears only when its upload completes — a
small file in one PUT, a large one as a multipart upload completed at `commit` (an aborted or killed
upload leaves no object under the name). Reads are ranged GETs, so a task reads only what it uses.
A missing credential, an unreachable endpoint or a missing bucket is an `S3AccessError`: one line
naming what to set.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from typing import Any

PART = 16 << 20  # bytes of one multipart part (S3's minimum is 5 MiB); smaller files are one PUT
READ_CHUNK = 8 << 20  # bytes one GET of a sequential read fetches
DELETE_BATCH = 1000  # keys one DeleteObjects request may name (S3's limit)
_clients: dict[int, Any] = {}  # pid → client
_session: list = []  # one boto3 session per process tree: its parsed service models survive a fork
_lock = threading.Lock()  # threads of one process share its client


class S3AccessError(Exception):
    """The bucket cannot be reached as configured: the message names what to set. Neither an
    OSError nor a ValueError, so that no handler of a missing or unreadable file takes it for one:
    it stops the command (exit 2, corral.commands)."""


def split(path: str) -> tuple[str, str]:
    """(bucket, key) of s3://bucket/key."""
    rest = path[len("s3://") :]
    bucket, _, key = rest.partition("/")
    return bucket, key


def client():
    """This process's S3 client (created on first use, from the standard AWS environment)."""
    pid = os.getpid()
    if pid in _clients:
        return _clients[pid]
    with _lock:
        return _client(pid)


def _client(pid: int):
    if pid not in _clients:
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": 8, "mode": "standard"},
            max_pool_connections=32,
            parameter_validation=False,  # corral builds every request itself
            request_checksum_calculation="when_required",  # S3 checks each PUT's Content-MD5/length already
            response_checksum_validation="when_required",
        )
        _clients.clear()  # a forked worker drops its parent's client (its connections are the parent's)
        if not _session:
            _session.append(boto3.session.Session())
        _clients[pid] = _session[0].client("s3", config=config)
    return _clients[pid]


def reset() -> None:
    """Forget this process's client and session (the next request reads the AWS environment anew)."""
    _clients.clear()
    _session.clear()


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS's S3 endpoint"


def access_error(path: str, e: Exception) -> Exception:
    """The one-line error for a botocore failure that is about access, not about one object: no
    credentials, an endpoint that does not answer, a bucket that does not exist, access denied.
    Any other error is returned as it is (a missing object is a FileNotFoundError)."""
    from botocore import exceptions as bx

    bucket, _ = split(path)
    if isinstance(e, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return S3AccessError(
            f"{path}: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        )
    if isinstance(e, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return S3AccessError(
            f"{path}: cannot reach {_endpoint()}: check AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) and the network"
        )
    if isinstance(e, bx.ClientError):
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return S3AccessError(f"{path}: the bucket {bucket!r} does not exist at {_endpoint()}")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "ExpiredToken"):
            return S3AccessError(
                f"{path}: access denied ({code}): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE) and the bucket's policy"
            )
        if code in ("NoSuchKey", "404", "NotFound"):
            return FileNotFoundError(f"{path}: no such object")
    return e


@contextlib.contextmanager
def _translated(path: str):
    """botocore's failures inside it raised as access_error maps them."""
    try:
        yield
    except Exception as e:
        mapped = access_error(path, e)
        if mapped is e:
            raise
        raise mapped from e


def _call(path: str, fn, **kwargs):
    with _translated(path):
        return fn(**kwargs)


def head(path: str) -> dict | None:
    """An object's metadata, or None when there is none."""
    bucket, key = split(path)
    try:
        return _call(path, client().head_object, Bucket=bucket, Key=key)
    except FileNotFoundError:
        return None


def exists(path: str) -> bool:
    return head(path) is not None


def size(path: str) -> int:
    found = head(path)
    if found is None:
        raise FileNotFoundError(f"{path}: no such object")
    return int(found["ContentLength"])


def read_bytes(path: str, start: int = 0, end: int | None = None) -> bytes:
    """An object's bytes [start, end) (all of it by default), in one GET."""
    bucket, key = split(path)
    extra = {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if start or end is not None else {}
    if end is not None and end <= start:
        return b""
    try:
        body = _call(path, client().get_object, Bucket=bucket, Key=key, **extra)["Body"]
    except Exception as e:  # a range that starts past the end reads nothing, as a file's would
        if "InvalidRange" in str(getattr(e, "response", {}).get("Error", {}).get("Code", "")):
            return b""
        raise
    try:
        return body.read()
    finally:
        body.close()


def read_tail(path: str, n: int) -> tuple[bytes, int]:
    """(the last n bytes of an object, or all of it when smaller; its size), in one GET."""
    bucket, key = split(path)
    got = _call(path, client().get_object, Bucket=bucket, Key=key, Range=f"bytes=-{n}")
    try:
        data = got["Body"].read()
    finally:
        got["Body"].close()
    whole = got.get("ContentRange", "")  # "bytes START-END/TOTAL"; absent when the object came whole
    return data, int(whole.rsplit("/", 1)[1]) if "/" in whole else len(data)


class Reader(io.RawIOBase):
    """A seekable read-only view of an object: each read a ranged GET of at least READ_CHUNK bytes
    (wrap it in io.BufferedReader, or read large blocks)."""

    def __init__(self, path: str, length: int | None = None):
        self.path, self.pos = path, 0
        self.length = size(path) if length is None else length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.length}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buf) -> int:
        n = min(len(buf), self.length - self.pos)
        if n <= 0:
            return 0
        data = read_bytes(self.path, self.pos, self.pos + n)
        buf[: len(data)] = data
        self.pos += len(data)
        return len(data)


def open_read(path: str, buffer_size: int = READ_CHUNK) -> io.BufferedReader:
    """A buffered, seekable reader of an object: each refill one GET of up to `buffer_size` bytes."""
    return io.BufferedReader(Reader(path), buffer_size=buffer_size)


def listing(folder: str, recursive: bool = False) -> tuple[list[tuple[str, int]], list[str]]:
    """((path, size) of the objects under `folder`/ (directly under it unless `recursive`), the
    names of the sub-folders directly under it (none when recursive)), both sorted."""
    return _listing(folder.rstrip("/") + "/", recursive)


def list_prefix(prefix: str) -> list[tuple[str, int]]:
    """(path, size) of every object whose path starts with `prefix` (which may end mid-name)."""
    return _listing(prefix, True)[0]


def _listing(where: str, recursive: bool) -> tuple[list[tuple[str, int]], list[str]]:
    """Objects and sub-folders under the raw prefix of `where`. Zero-byte keys ending in '/' (the
    folder markers of consoles and of s3fs-like tools) are folders, never files."""
    bucket, prefix = split(where)
    prefix = "" if prefix == "/" else prefix
    pages = client().get_paginator("list_objects_v2")
    args = {"Bucket": bucket, "Prefix": prefix, **({} if recursive else {"Delimiter": "/"})}
    found, folders = [], []
    with _translated(where):
        for page in pages.paginate(**args):
            found += [
                (f"s3://{bucket}/{o['Key']}", int(o["Size"])) for o in page.get("Contents", []) if o["Key"][-1:] != "/"
            ]
            folders += [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
    return sorted(found), sorted(folders)


def list_files(folder: str, recursive: bool = False) -> list[tuple[str, int]]:
    """(path, size) of the objects under `folder`/ (directly under it unless `recursive`), sorted."""
    return listing(folder, recursive)[0]


def delete(paths: list[str]) -> None:
    """Delete objects, and every object under a path that is a folder: one listing of the paths'
    common prefix, then DeleteObjects in batches."""
    by_bucket: dict[str, list[str]] = {}
    for path in paths:
        bucket, key = split(path.rstrip("/"))
        by_bucket.setdefault(bucket, []).append(key)
    for bucket, keys in by_bucket.items():
        common = os.path.commonprefix(keys)
        folder = common[: common.rfind("/") + 1] if "/" in common else ""
        there, _ = listing(f"s3://{bucket}/{folder}", recursive=True)
        wanted = set(keys)  # a key goes when it, or one of its folders, was named
        names = [k for k in (split(p)[1] for p, _ in there) if any(a in wanted for a in _self_and_folders(k))]
        for i in range(0, len(names), DELETE_BATCH):
            batch = {"Objects": [{"Key": k} for k in names[i : i + DELETE_BATCH]], "Quiet": True}
            done = _call(f"s3://{bucket}", client().delete_objects, Bucket=bucket, Delete=batch)
            if done.get("Errors"):
                e = done["Errors"][0]
                raise OSError(f"s3://{bucket}/{e.get('Key')}: not deleted ({e.get('Code')}: {e.get('Message')})")


def _self_and_folders(key: str):
    """A key and each folder above it (a/b/c: a/b/c, a, a/b)."""
    yield key
    for i, c in enumerate(key):
        if c == "/":
            yield key[:i]


class Writer(io.RawIOBase):
    """A new object, written as a stream: the bytes stay in memory up to one PART, then go as a
    multipart upload; `commit` makes the object appear whole, `abort` leaves nothing."""

    def __init__(self, path: str):
        self.path = path
        self.bucket, self.key = split(path)
        self.buf = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self.closed:
            raise ValueError(f"{self.path}: write to an upload already committed or aborted")
        data = memoryview(data).cast("B")
        self.buf += data
        while len(self.buf) >= PART:
            self._send(bytes(self.buf[:PART]))
            del self.buf[:PART]
        return data.nbytes

    def _send(self, part: bytes) -> None:
        c = client()
        if self.upload_id is None:
            made = _call(self.path, c.create_multipart_upload, Bucket=self.bucket, Key=self.key)
            self.upload_id = made["UploadId"]
        n = len(self.parts) + 1
        sent = _call(
            self.path, c.upload_part, Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=n, Body=part
        )
        self.parts.append({"ETag": sent["ETag"], "PartNumber": n})

    def commit(self) -> None:
        if self.closed:
            raise ValueError(f"{self.path}: commit of an upload already committed or aborted")
        c = client()
        if self.upload_id is None:
            _call(self.path, c.put_object, Bucket=self.bucket, Key=self.key, Body=bytes(self.buf))
        else:
            if self.buf:
                self._send(bytes(self.buf))
            done = {"Parts": self.parts}
            args = {"Bucket": self.bucket, "Key": self.key, "UploadId": self.upload_id, "MultipartUpload": done}
            _call(self.path, c.complete_multipart_upload, **args)
        self.buf = bytearray()
        super().close()

    def abort(self) -> None:
        self.buf = bytearray()
        if self.upload_id is not None:
            try:
                client().abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            except Exception:
                pass  # S3's lifecycle rule for incomplete uploads removes what a failed abort leaves
        super().close()

    def close(self) -> None:  # closing without commit is an abort: nothing appears
        if not self.closed:
            self.abort()

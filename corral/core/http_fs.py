"""A read-only Beam filesystem for `http://` and `https://`, so every runner's workers read inputs
straight from their publisher (CommonCrawl, Wikimedia, the StackExchange dump, C4 all serve HTTPS).

Registered with Beam by being imported (corral.core.fs imports it). Reads stream; nothing is held whole.

- A dropped connection or a timeout mid-body is resumed where it stopped: with a Range request
  (`bytes=N-`, guarded by `If-Range: <ETag>`) when the server advertised `Accept-Ranges: bytes`,
  else by reading the body again from the start and skipping what was already returned.
- Connection failures, timeouts and 5xx answers are retried up to RETRIES times with exponential
  backoff (BACKOFF_S, doubling); 4xx answers are not (a 404 is the file's answer).
- The body must end at the advertised Content-Length, and a resumed body must carry the same ETag
  and length: a truncated or changed file raises `HttpInputError` instead of passing on other bytes.
- URLs are files: a glob cannot be listed over HTTP, so a pattern with `*`, `?` or `[` is refused
  with a message saying to use a paths list.

HTTP goes through `requests` (connection pooling, TLS verification with certifi, redirects, proxy
settings from the environment): a well-kept client, where urllib would need all of that by hand.
"""

from __future__ import annotations

import io
import os
import threading
import time
from typing import Any

import requests
from apache_beam.io.filesystem import (
    BeamIOError,
    CompressedFile,
    CompressionTypes,
    FileMetadata,
    FileSystem,
    MatchResult,
)

RETRIES = 4  # attempts after the first, per request or resumed read (corral's choice)
BACKOFF_S = 0.5  # first wait between attempts; doubles each time
TIMEOUT_S = (10, 60)  # (connect, read) seconds; a read stalled longer counts as a dropped connection
CHUNK = 1 << 20  # bytes asked of the socket per read
GLOB_CHARS = "*["  # in a URL's path ("?" starts its query)
RETRYABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

_local = threading.local()


class HttpInputError(OSError):
    """An HTTP input that cannot be read as published: missing, refused, truncated or changed."""


def session() -> requests.Session:
    """One session (connection pool) per thread and process: a worker forked from the driver must
    not share the driver's open connections. `Accept-Encoding: identity`: the bytes as published (a
    server may otherwise gzip a text file on the wire), so sizes and checksums are the file's."""
    pid, s = getattr(_local, "owner", None), getattr(_local, "session", None)
    if s is None or pid != os.getpid():
        s = _local.session = requests.Session()
        _local.owner = os.getpid()
        s.headers.update({"User-Agent": "corral", "Accept-Encoding": "identity"})
    return s


def has_glob(url: str) -> bool:
    from urllib.parse import urlsplit

    return any(c in urlsplit(url).path for c in GLOB_CHARS)


def _retrying(what: str, url: str, call):
    """call() with bounded retries on connection errors, timeouts and 5xx answers."""
    wait = BACKOFF_S
    for attempt in range(RETRIES + 1):
        try:
            resp = call()
        except RETRYABLE as e:
            if attempt == RETRIES:
                raise HttpInputError(f"{url}: {what} failed after {RETRIES + 1} attempts: {_why(e)}") from e
        else:
            if resp.status_code < 500:
                return resp
            resp.close()
            if attempt == RETRIES:
                raise HttpInputError(f"{url}: {what}: HTTP {resp.status_code} after {RETRIES + 1} attempts")
        time.sleep(wait)
        wait *= 2
    raise AssertionError("unreachable")


def _why(e: Exception) -> str:
    """A connection failure in a few words (requests nests urllib3's reasons several levels deep)."""
    from urllib.parse import urlsplit

    text = str(e)
    host = urlsplit(getattr(getattr(e, "request", None), "url", "") or "").hostname or "the host"
    if isinstance(e, requests.exceptions.ProxyError):
        return "the proxy (HTTPS_PROXY / HTTP_PROXY) cannot be reached"
    if "NameResolution" in text or "Name or service not known" in text or "nodename nor servname" in text:
        return f"{host} cannot be resolved (no network, or a proxy to set in HTTPS_PROXY)"
    if "Connection refused" in text:
        return f"{host} refused the connection"
    if isinstance(e, requests.Timeout):
        return f"{host} did not answer within {TIMEOUT_S[0]} s (connect) / {TIMEOUT_S[1]} s (read)"
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}"


def _refuse_4xx(url: str, resp: requests.Response) -> None:
    """A 4xx answer is the file's answer: 404 is FileNotFoundError, others HttpInputError."""
    if resp.status_code < 400:
        return
    resp.close()
    if resp.status_code == 404:
        raise FileNotFoundError(f"{url}: HTTP 404 (not found)")
    raise HttpInputError(f"{url}: HTTP {resp.status_code} {resp.reason}")


def _length(resp: requests.Response) -> int | None:
    length = resp.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _ranges(resp: requests.Response) -> bool:
    return resp.headers.get("Accept-Ranges", "").lower() == "bytes"


def head(url: str) -> dict[str, Any]:
    """Size, ETag and Range support of a URL (HEAD, or a GET's headers where HEAD is refused)."""
    resp = _retrying("HEAD", url, lambda: session().head(url, allow_redirects=True, timeout=TIMEOUT_S))
    if resp.status_code in (405, 501):
        resp = _retrying("GET", url, lambda: session().get(url, stream=True, timeout=TIMEOUT_S))
        resp.close()
    _refuse_4xx(url, resp)
    return {
        "size": _length(resp),
        "etag": resp.headers.get("ETag"),
        "ranges": _ranges(resp),
        "modified": resp.headers.get("Last-Modified"),
    }


class HttpReader(io.RawIOBase):
    """The body of one URL as a stream, resumed across dropped connections. With `start`, it asks
    for the body from that byte (a partial download's resume, a task's piece of a big file); `pos`
    says where it really starts (0 when the server ignores the Range), `size` is the whole file's.
    With `end`, it asks only for the bytes before it (`Range: bytes=start-(end-1)`) and stops there."""

    def __init__(self, url: str, start: int = 0, end: int | None = None):
        self.url, self.pos, self.resumes, self.end = url, 0, 0, end
        self.size = self.etag = None
        self.ranges = False
        self._resp = None
        self._open(first=True, start=start)

    def _range(self, start: int) -> str:
        return f"bytes={start}-{'' if self.end is None else self.end - 1}"

    def readable(self) -> bool:
        return True

    def _open(self, first: bool = False, start: int = 0) -> None:
        headers = {"Range": self._range(start)} if first and (start or self.end is not None) else {}
        if not first and self.ranges and self.pos:
            headers["Range"] = self._range(self.pos)
            if self.etag:
                headers["If-Range"] = self.etag
        resp = _retrying(
            "GET", self.url, lambda: session().get(self.url, stream=True, headers=headers, timeout=TIMEOUT_S)
        )
        _refuse_4xx(self.url, resp)
        etag = resp.headers.get("ETag")
        if first:
            self.size, self.etag, self.ranges = _length(resp), etag, _ranges(resp)
            if resp.status_code == 206:
                self.pos, self.ranges = start, True
                total = resp.headers.get("Content-Range", "").rsplit("/", 1)[-1]
                self.size = int(total) if total.isdigit() else None
        elif self.etag and etag and etag != self.etag:
            resp.close()
            raise HttpInputError(f"{self.url}: changed while it was read (ETag {self.etag} → {etag})")
        skip = 0
        if not first:
            if resp.status_code == 206:
                start = resp.headers.get("Content-Range", "").split(" ")[-1].split("-")[0]
                if start != str(self.pos):
                    resp.close()
                    raise HttpInputError(f"{self.url}: resumed at byte {start}, not {self.pos}")
            else:  # no Range support (or the file changed and If-Range gave it whole): read to where we were
                length = _length(resp)
                if self.size is not None and length is not None and length != self.size:
                    resp.close()
                    raise HttpInputError(f"{self.url}: changed while it was read ({self.size} → {length} bytes)")
                skip = self.pos
        self._resp = resp
        self._raw = resp.raw
        while skip:
            got = self._raw.read(min(skip, CHUNK), decode_content=False)
            if not got:
                raise HttpInputError(f"{self.url}: shorter than before on a re-read ({self.pos - skip} bytes)")
            skip -= len(got)

    def readinto(self, buf) -> int:
        want = len(buf) if self.end is None else min(len(buf), self.end - self.pos)
        if want <= 0:
            return 0
        wait = BACKOFF_S
        while True:
            try:
                data = self._raw.read(min(want, CHUNK), decode_content=False)
            except Exception as e:  # urllib3's ProtocolError/IncompleteRead, a reset, a read timeout
                data, failure = None, e
            else:
                failure = None
                if not data and self.size is not None and self.pos < min(self.size, self.end or self.size):
                    failure = HttpInputError(f"body ended at byte {self.pos} of {self.size}")
            if failure is None:
                break
            self.resumes += 1
            if self.resumes > RETRIES:
                raise HttpInputError(
                    f"{self.url}: truncated at byte {self.pos} of {self.size or '?'} after "
                    f"{RETRIES} resumes ({type(failure).__name__}: {failure})"
                ) from failure
            self._resp.close()
            time.sleep(wait)
            wait *= 2
            self._open()
        n = len(data)
        buf[:n] = data
        self.pos += n
        return n

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
        super().close()


class HttpFileSystem(FileSystem):
    """`http://` URLs, read-only."""

    @classmethod
    def scheme(cls) -> str:
        return "http"

    def join(self, basepath: str, *paths: str) -> str:
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path: str) -> tuple[str, str]:
        head_, _, tail = path.rstrip("/").rpartition("/")
        return head_, tail

    def has_dirs(self) -> bool:
        return False

    def _list(self, dir_or_prefix):
        raise BeamIOError(f"{dir_or_prefix}: a folder cannot be listed over HTTP: name its files, or a paths list")

    def match(self, patterns, limits=None):
        results, errors = [], {}
        for pattern in patterns:
            if has_glob(pattern):
                errors[pattern] = ValueError(
                    f"{pattern}: globs cannot be listed over HTTP; name each file, or "
                    "give a paths list ({paths: URL, base: URL})"
                )
                continue
            try:
                info = head(pattern)
            except FileNotFoundError:
                results.append(MatchResult(pattern, []))
                continue
            except HttpInputError as e:
                errors[pattern] = e
                continue
            results.append(MatchResult(pattern, [FileMetadata(pattern, info["size"] or 0)]))
        if errors:
            raise BeamIOError("Match operation failed", errors)
        return results

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        raw = io.BufferedReader(HttpReader(path), buffer_size=CHUNK)
        if compression_type == CompressionTypes.AUTO:
            compression_type = CompressionTypes.detect_compression_type(path)
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return raw
        return CompressedFile(raw, compression_type=compression_type)

    def exists(self, path: str) -> bool:
        try:
            head(path)
            return True
        except FileNotFoundError:
            return False

    def size(self, path: str) -> int:
        info = head(path)
        if info["size"] is None:
            raise BeamIOError(f"{path}: the server gives no Content-Length")
        return info["size"]

    def checksum(self, path: str) -> str:
        return head(path)["etag"] or str(self.size(path))

    def last_updated(self, path: str) -> float:
        from email.utils import parsedate_to_datetime

        modified = head(path)["modified"]
        return parsedate_to_datetime(modified).timestamp() if modified else 0.0

    def metadata(self, path: str) -> FileMetadata:
        info = head(path)
        return FileMetadata(path, info["size"] or 0)

    def _read_only(self, *args, **kwargs):
        raise BeamIOError(f"{self.scheme()}:// inputs are read-only: write outputs to a local folder or a bucket")

    create = copy = rename = delete = mkdirs = _read_only


class HttpsFileSystem(HttpFileSystem):
    """`https://` URLs, read-only."""

    @classmethod
    def scheme(cls) -> str:
        return "https"

"""One filesystem layer for local paths, s3:// (corral.core.s3, through boto3) and every other Beam
filesystem (gs://, hdfs://, and corral's http(s)://).

Everything here moves raw bytes: remote files are opened with `CompressionTypes.UNCOMPRESSED`, never
Beam's AUTO mode (which would inflate a `.gz` by its name, so that a checksum or a copy of a remote
`.gz` would be of the inflated bytes). Decompression is the readers' job (`corral.pipeline.inputs.streams`).
Writes are atomic: a temporary name beside the final one, fsynced and renamed when complete; on S3,
an upload that makes its object appear only when it completes.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import shutil
import uuid

from corral.core import s3

TMP_MARK = ".tmp-"  # temporary names contain this; never a final file name


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _s3(path: str) -> bool:
    return path.startswith("s3://")


def local_path(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def join(folder: str, rel: str) -> str:
    """`folder/rel` on any filesystem, always with '/' (so a remote path stays one); an empty folder
    is the current one. The one path join of corral."""
    return f"{folder.rstrip('/')}/{rel}" if folder else rel


def _beam_fs():
    """Beam's FileSystems, with corral's http(s):// filesystem registered (by its import)."""
    from apache_beam.io.filesystems import FileSystems

    import corral.core.http_fs  # noqa: F401

    return FileSystems


beam_filesystems = _beam_fs


def open_read(path: str, buffer_size: int | None = None):
    """A readable binary file object of the raw bytes, on any filesystem (on S3 seekable, each refill
    of its buffer one ranged GET: `buffer_size` small for a few scattered reads)."""
    if _s3(path):
        return s3.open_read(path, buffer_size or s3.READ_CHUNK)
    if is_remote(path):
        from apache_beam.io.filesystems import CompressionTypes

        return _beam_fs().open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return open(local_path(path), "rb")


class _Window(io.RawIOBase):
    """At most `length` bytes of a stream already at the window's start."""

    def __init__(self, raw, length: int):
        self.raw, self.left = raw, length

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.left <= 0:
            return 0
        with memoryview(buf) as view:
            n = self.raw.readinto(view[: min(len(buf), self.left)])
        self.left -= n or 0
        return n or 0

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


def open_range(path: str, start: int, end: int):
    """A buffered binary stream of the raw bytes [start, end) of a file, on any filesystem: a seek
    on local disk and Beam's filesystems, one `Range` request over HTTP(S), so that a task reads
    only its piece of a big file."""
    if path.startswith(("http://", "https://")):
        from corral.core.http_fs import CHUNK, HttpReader

        raw = HttpReader(path, start, end)
        skip = start - raw.pos  # a server that ignored the Range sends the file from its start
        while skip > 0 and (got := raw.read(min(skip, CHUNK))):
            skip -= len(got)
        return io.BufferedReader(_Window(raw, end - start), buffer_size=CHUNK)
    if _s3(path):
        reader = s3.Reader(path)
        reader.seek(start)
        return io.BufferedReader(_Window(reader, end - start), buffer_size=s3.READ_CHUNK)
    f = open_read(path)
    f.seek(start)
    return io.BufferedReader(_Window(f, end - start), buffer_size=1 << 20)


def read_tail(path: str, n: int) -> tuple[bytes, int]:
    """(the last n bytes of a file, or all of it when smaller; its size): one request on S3."""
    if _s3(path):
        return s3.read_tail(path, n)
    total = size(path)
    with open_range(path, max(0, total - n), total) as f:
        return f.read(), total


def read_range(path: str, start: int, end: int) -> bytes:
    """The bytes [start, end) of a file: one request on S3."""
    if _s3(path):
        return s3.read_bytes(path, start, end)
    with open_range(path, start, end) as f:
        return f.read()


def read_bytes(path: str) -> bytes:
    """A whole (small) file's raw bytes."""
    if _s3(path):
        return s3.read_bytes(path)
    with open_read(path) as f:
        return f.read()


def exists(path: str) -> bool:
    """Whether a file exists."""
    if _s3(path):
        return s3.exists(path)
    if is_remote(path):
        return _beam_fs().exists(path)
    return os.path.isfile(local_path(path))


def size(path: str) -> int:
    """A file's size in bytes."""
    if _s3(path):
        return s3.size(path)
    if is_remote(path):
        return _beam_fs().match([path])[0].metadata_list[0].size_in_bytes
    return os.path.getsize(local_path(path))


def digest_of(path: str, algorithm: str = "sha256", chunk: int = 4 << 20) -> str:
    """A hashlib digest (sha256, sha1, md5, …) of a file's raw bytes, streamed."""
    h = hashlib.new(algorithm)
    with open_read(path) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_of(path: str, chunk: int = 4 << 20) -> str:
    """sha256 of a file's raw bytes, streamed."""
    return digest_of(path, "sha256", chunk)


def list_files(folder: str) -> list[str]:
    """The files directly in `folder` (empty when it does not exist), sorted."""
    if _s3(folder):
        return [p for p, _ in s3.list_files(folder)]
    if is_remote(folder):
        fs = _beam_fs()
        pattern = join(folder, "*")
        try:
            return sorted(m.path for m in fs.match([pattern])[0].metadata_list)
        except Exception:
            return []
    folder = local_path(folder)
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n)))


def list_entries(folder: str) -> list[str]:
    """The names of the files and folders directly in `folder` (empty when it does not exist), sorted."""
    if _s3(folder):
        files, folders = s3.listing(folder)
        return sorted(({p.rsplit("/", 1)[1] for p, _ in files} | set(folders)) - {""})
    if is_remote(folder):
        return sorted({rel.split("/", 1)[0] for rel in _below(folder)})
    folder = local_path(folder)
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _below(folder: str) -> list[str]:
    """The paths, relative to it, of every file under a folder of a Beam filesystem."""
    prefix = folder.rstrip("/") + "/"
    return [p[len(prefix) :] for p, _ in match(prefix + "**") if p.startswith(prefix)]


def list_folders(folder: str) -> list[str]:
    """The names of the folders directly in `folder`, sorted (in an object store: the prefixes that
    have objects under them)."""
    if _s3(folder):
        return s3.listing(folder)[1]
    if is_remote(folder):
        return sorted({rel.split("/", 1)[0] for rel in _below(folder) if "/" in rel})
    folder = local_path(folder)
    return [n for n in list_entries(folder) if os.path.isdir(os.path.join(folder, n))]


def walk_files(folder: str) -> list[str]:
    """Every file under `folder`, at any depth, sorted."""
    if _s3(folder):
        return [p for p, _ in s3.list_files(folder, recursive=True)]
    if is_remote(folder):
        return [folder.rstrip("/") + "/" + rel for rel in _below(folder)]
    found = [os.path.join(d, f) for d, _, files in os.walk(local_path(folder)) for f in files]
    return sorted(found)


def glob_regex(pattern: str) -> re.Pattern:
    """A glob as a regular expression over whole paths: `*` and `?` within a path segment, `**/`
    any folders (none included), `**` anything, `[…]` (`[!…]`) one character of a segment."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def match(pattern: str) -> list[tuple[str, int]]:
    """(path, size) of the files a remote glob matches (glob_regex), sorted; a pattern ending in '/'
    is every file under that folder. On S3, one listing from the pattern's fixed prefix (which may
    end mid-name); elsewhere Beam's match."""
    if not _s3(pattern):
        return sorted((m.path, m.size_in_bytes) for m in _beam_fs().match([pattern])[0].metadata_list)
    if pattern.endswith("/"):
        return s3.list_files(pattern, recursive=True)
    fixed = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    if fixed == pattern:
        return [(pattern, s3.size(pattern))] if s3.exists(pattern) else []
    wanted = glob_regex(pattern)
    return [(p, n) for p, n in s3.list_prefix(fixed) if wanted.match(p) and TMP_MARK not in p]


def remove(paths: list[str]) -> None:
    """Delete files or folders (recursively) that exist; others are ignored."""
    if any(_s3(p) for p in paths):
        s3.delete([p for p in paths if _s3(p)])
        paths = [p for p in paths if not _s3(p)]
    remote = [p for p in paths if is_remote(p)]
    if remote:  # a file, or every file under a folder (object stores have no folders to delete)
        fs = _beam_fs()
        there = [p for p in remote if fs.exists(p) and not fs.match([p.rstrip("/") + "/*"])[0].metadata_list]
        there += [q for p in remote if p not in there for q, _ in match(p.rstrip("/") + "/**")]
        if there:
            fs.delete(there)
    for p in paths:
        if is_remote(p):
            continue
        p = local_path(p)
        if os.path.isdir(p):
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            os.remove(p)


class AtomicFile:
    """Open a temporary file beside `path`; `commit` makes it appear whole under `path`, `abort` removes it.

    `durable` files are fsynced (with their folder) before the rename, so they survive a machine
    crash too; a build's working files under OUT/_build are not (a killed process never leaves a
    partial one, and fsyncing hundreds of small files a second costs more than the work)."""

    def __init__(self, path: str, durable: bool = True):
        self.path, self.durable = path, durable
        head, tail = path.rsplit("/", 1) if "/" in path else (".", path)
        # A hidden name in the same folder, so the final rename never crosses filesystems.
        self.tmp_path = f"{head}/.{tail}{TMP_MARK}{uuid.uuid4().hex[:12]}"
        if _s3(path):  # an upload is atomic by itself: written under its final name
            self._fs, self.tmp_path = None, path
            self.raw = s3.Writer(path)
        elif is_remote(path):
            from apache_beam.io.filesystems import CompressionTypes

            self._fs = _beam_fs()
            self.raw = self._fs.create(self.tmp_path, compression_type=CompressionTypes.UNCOMPRESSED)
        else:
            self._fs = None
            os.makedirs(local_path(head) or ".", exist_ok=True)
            self.tmp_path = local_path(self.tmp_path)
            self.raw = open(self.tmp_path, "wb")

    def commit(self) -> None:
        if isinstance(self.raw, s3.Writer):
            self.raw.commit()
            return
        if self._fs is not None:
            self.raw.close()
            if self._fs.exists(self.path):
                self._fs.delete([self.path])
            self._fs.rename([self.tmp_path], [self.path])
            return
        self.raw.flush()
        if self.durable:
            os.fsync(self.raw.fileno())
        self.raw.close()
        final = local_path(self.path)
        os.replace(self.tmp_path, final)
        if not self.durable:
            return
        dir_fd = os.open(os.path.dirname(os.path.abspath(final)), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def abort(self) -> None:
        if isinstance(self.raw, s3.Writer):
            self.raw.abort()
            return
        try:
            self.raw.close()
        except Exception:
            pass
        try:
            if self._fs is not None:
                self._fs.delete([self.tmp_path])
            else:
                os.unlink(self.tmp_path)
        except Exception:
            pass


def cache_dir() -> str:
    """Where local copies of remote files go: $CORRAL_CACHE, else ~/.cache/corral."""
    return os.environ.get("CORRAL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "corral")


def local_copy(path: str, sha256: str, folder: str | None = None) -> str:
    """A local path for a file: itself when local; for a remote one, a copy in `folder` (cache_dir()
    by default) named by its sha256, fetched once, checked, and reused by every later caller (the
    other ranks of a node, later runs): one process fetches it while the others wait on a lock file
    beside it, and it is written atomically, so a crash never leaves a partial copy under its name.
    A download whose sha256 differs is an OSError naming both digests."""
    if not is_remote(path):
        return local_path(path)
    dest = os.path.join(folder or cache_dir(), sha256 + os.path.splitext(path)[1])
    if os.path.isfile(dest):  # only ever written after its sha256 matched
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest + ".lock", "w") as lock:  # one process of a node fetches, the others wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isfile(dest):
            _fetch(path, sha256, dest)
    return dest


def _fetch(path: str, sha256: str, dest: str) -> None:
    target, h = AtomicFile(dest), hashlib.sha256()
    try:
        with open_read(path) as f:
            while block := f.read(4 << 20):
                h.update(block)
                target.raw.write(block)
        if h.hexdigest() != sha256:
            raise OSError(f"{path}: sha256 {h.hexdigest()[:16]}… differs from the manifest's {sha256[:16]}…")
        target.commit()
    except BaseException:
        target.abort()
        raise


def atomic_write_bytes(path: str, data: bytes, durable: bool = True) -> str:
    """Write `data` to `path` atomically; return its sha256."""
    target = AtomicFile(path, durable)
    try:
        target.raw.write(data)
        target.commit()
    except BaseException:
        target.abort()
        raise
    return hashlib.sha256(data).hexdigest()

"""Reading members out of archives without extracting anything to disk.

tar (in memory, any compression): each file member's bytes, with links, devices, absolute and `..`
names refused (`unsafe_member`) and a member over a size limit refused (`member_too_large`).

7z: py7zr decompresses into a writer we provide; a thread feeds a bounded queue and the caller reads
the member as a stream, so a multi-GB Posts.xml never sits in memory whole. Member names are only
matched, never used as paths, so absolute or `..` names cannot write anywhere.
"""

from __future__ import annotations

import io
import posixpath
import queue
import re
import tarfile
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

import py7zr
from py7zr.io import Py7zIO, WriterFactory

QUEUE_CHUNKS = 16  # decompressed chunks in flight between the 7z thread and the reader
_END = object()


class _Cancelled(Exception):
    pass


class _QueueIO(Py7zIO):
    def __init__(self, q: queue.Queue, cancelled: threading.Event):
        self.q, self.cancelled, self.n = q, cancelled, 0

    def write(self, s) -> int:
        if self.cancelled.is_set():
            raise _Cancelled()
        self.q.put(bytes(s))
        self.n += len(s)
        return len(s)

    def read(self, size=None) -> bytes:
        return b""

    def seek(self, offset, whence=0) -> int:
        return self.n

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self.n


class _Factory(WriterFactory):
    def __init__(self, q, cancelled):
        self.q, self.cancelled = q, cancelled

    def create(self, filename: str) -> Py7zIO:
        return _QueueIO(self.q, self.cancelled)


class _QueueReader(io.RawIOBase):
    """The reading end: a binary stream over the chunks the 7z thread produces."""

    def __init__(self, q: queue.Queue, cancelled: threading.Event, thread: threading.Thread):
        self.q, self.cancelled, self.thread = q, cancelled, thread
        self.buf = b""
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self.buf and not self.done:
            item = self.q.get()
            if item is _END:
                self.done = True
            elif isinstance(item, BaseException):
                self.done = True
                raise item
            else:
                self.buf = item
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self.cancelled.set()
            while self.thread.is_alive():  # unblock the producer so it can stop
                try:
                    self.q.get(timeout=0.05)
                except queue.Empty:
                    pass
        super().close()


def open_7z_member(fileobj, member: str) -> io.BufferedReader:
    """Stream one member of a 7z archive (given as a seekable binary file object)."""
    q: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
    cancelled = threading.Event()

    def produce():
        try:
            with py7zr.SevenZipFile(fileobj, mode="r") as z:
                z.extract(targets=[member], factory=_Factory(q, cancelled))
            q.put(_END)
        except _Cancelled:
            q.put(_END)
        except BaseException as e:  # corrupt archive: surfaces as a read error in the consumer
            q.put(e if isinstance(e, Exception) else RuntimeError(str(e)))

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    return io.BufferedReader(_QueueReader(q, cancelled, t), buffer_size=1 << 20)


def list_7z(fileobj) -> list[str]:
    with py7zr.SevenZipFile(fileobj, mode="r") as z:
        return z.getnames()


def iter_7z_members(
    fileobj_factory: Callable[[], object], accept: Callable[[str], bool]
) -> Iterator[tuple[str, io.BufferedReader]]:
    """(name, stream) for each accepted member; `fileobj_factory` reopens the archive per member."""
    with fileobj_factory() as f:
        names = list_7z(f)
    for name in names:
        if accept(name):
            f = fileobj_factory()
            try:
                stream = open_7z_member(f, name)
                yield name, stream
                stream.close()
            finally:
                f.close()


def safe_member_name(name: str) -> bool:
    """False for a member name that could point outside a folder: absolute, `..`, a drive letter."""
    parts = name.replace("\\", "/").split("/")
    return not name.startswith(("/", "\\")) and ".." not in parts and not re.match(r"^[A-Za-z]:", name)


def tar_members(
    source: bytes | BinaryIO, max_member_bytes: int, mode: str = "r:*"
) -> Iterator[tuple[str, bytes | None, str | None]]:
    """(name, bytes or None, problem) for each file of a tar, given as bytes or as a file read in
    `mode` (`r|*` streams it, one member in memory at a time): links, devices and unsafe names are
    `unsafe_member`, a file over `max_member_bytes` `member_too_large`. A good member's name is
    normalised; a refused one's is as the tar spells it."""
    fileobj = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    with tarfile.open(fileobj=fileobj, mode=mode) as tf:
        for info in tf:
            if info.isdir():
                continue
            if not info.isfile() or not safe_member_name(info.name):
                yield info.name, None, "unsafe_member"
                continue
            if info.size > max_member_bytes:
                yield info.name, None, "member_too_large"
                continue
            f = tf.extractfile(info)
            yield posixpath.normpath(info.name), (f.read() if f else b""), None

"""An input's bytes as a stream: opened on any filesystem with transparent decompression, read as
bounded JSON lines, and any failure while reading turned into an error outcome instead of a crash.

Compression is chosen by file name: .gz (multi-member, as WET files are), .bz2 (multi-stream, as
Wikipedia's multistream dumps are), .xz, .zst (multi-frame), and .7z holding a single file; anything else is read as
is. Multi-file .7z and tar archives are opened by the readers that expect them. Everything streams:
nothing is read whole unless a format needs random access.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import py7zr.exceptions

from corral.core.fs import open_read
from corral.core.outcome import error
from corral.engine.records import read_so_far

# What reading a damaged compressed file or archive raises; each becomes an error outcome, never a crash.
READ_ERRORS = (
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
    gzip.BadGzipFile,
    tarfile.TarError,
    py7zr.exceptions.ArchiveError,
)


def open_raw(path: str):
    """The raw (still compressed) bytes of an input."""
    return open_read(path)


class Metered(io.RawIOBase):
    """A raw stream whose reads count as the running task's input bytes (the progress line's MB
    read inside one file: corral.engine.records.read_so_far)."""

    def __init__(self, raw):
        self.raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = self.raw.readinto(buf) or 0
        read_so_far(n)
        return n

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


class TruncatedInput(EOFError):
    """The compressed stream ended inside a member: everything before it was already returned."""


class _Decompressing(io.BufferedIOBase):
    """Concatenated gzip / bz2 / xz members as one buffered stream.

    Unlike GzipFile (and io.BufferedReader over any raw stream), which discard what they decoded
    in a read() that then meets a damaged tail, this returns every byte it could decode first (a
    short read) and raises TruncatedInput only on the next read, so every complete record before
    the damage reaches the parser.
    """

    CHUNK = 1 << 16  # compressed bytes read at a time
    OUT_CHUNK = 1 << 20  # decompressed bytes produced at a time: a compression bomb never lands at once

    def __init__(self, raw, new_decompressor):
        self.raw, self.new = raw, new_decompressor
        self.dec = new_decompressor()
        self.pending = b""  # compressed input the decompressor has not consumed yet
        self.buf = bytearray()
        self.failed: Exception | None = None
        self.eof = False
        self.in_member = False

    def readable(self) -> bool:
        return True

    def _has_more(self) -> bool:
        """Whether the decompressor can produce more output without new input."""
        return bool(self.pending) or (
            hasattr(self.dec, "needs_input") and not self.dec.needs_input and not self.dec.eof
        )

    def _fill_once(self) -> None:
        """Decode at most OUT_CHUNK more bytes into the buffer, or set eof / failed."""
        while not self.eof and self.failed is None:
            data = b""
            if self.dec.eof:
                data = self.dec.unused_data + self.pending
                self.pending = b""
                self.dec = self.new()
                self.in_member = False
            if not data and not self._has_more():
                data = self.raw.read(self.CHUNK)
                if not data:
                    if self.in_member:
                        self.failed = TruncatedInput("compressed input ends inside a member")
                    self.eof = True
                    return
            try:
                out = self.dec.decompress(self.pending + data, self.OUT_CHUNK)
            except (zlib.error, OSError, lzma.LZMAError, EOFError) as e:
                self.failed = TruncatedInput(f"corrupt compressed data: {e}")
                return
            self.pending = getattr(self.dec, "unconsumed_tail", b"")  # zlib keeps it out; bz2/xz inside
            self.in_member = not self.dec.eof
            if out:
                self.buf += out
                return

    def _raise_if_failed(self) -> None:
        if self.failed is not None:
            err, self.failed = self.failed, None
            raise err

    def read(self, size: int | None = -1) -> bytes:
        want = None if size is None or size < 0 else size
        while (want is None or len(self.buf) < want) and not self.eof and self.failed is None:
            self._fill_once()
        if want is None:
            self._raise_if_failed()  # "all of it" cannot be answered with a damaged part
        if not self.buf:
            self._raise_if_failed()
            return b""
        n = len(self.buf) if want is None else min(want, len(self.buf))
        with memoryview(self.buf) as view:
            out = view[:n].tobytes()  # one copy, not a bytearray slice and then bytes of it
        del self.buf[:n]
        return out

    def read1(self, size: int = -1) -> bytes:
        if not self.buf:
            self._fill_once()
        return self.read(min(size, len(self.buf)) if size >= 0 else len(self.buf))

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else None
        start = 0
        while (limit is None or len(self.buf) < limit) and not self.eof and self.failed is None:
            if self.buf.find(b"\n", start) >= 0:
                break
            start = len(self.buf)
            self._fill_once()
        i = self.buf.find(b"\n")
        n = len(self.buf) if i < 0 else i + 1
        if limit is not None:
            n = min(n, limit)
        return self.read(n) if n else self.read(0) or (self._raise_if_failed() or b"")

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


class _Zstd:
    """One zstd frame at a time, with the decompressor interface of bz2's and lzma's."""

    def __init__(self):
        import zstandard  # Beam's own dependency; a well-kept binding of the reference library

        self.dec = zstandard.ZstdDecompressor().decompressobj()

    @property
    def eof(self) -> bool:
        return self.dec.eof

    @property
    def unused_data(self) -> bytes:
        return self.dec.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        try:
            return self.dec.decompress(data)
        except Exception as e:  # zstandard.ZstdError
            raise OSError(f"zstd: {e}") from e


_DECOMPRESSORS = {
    ".gz": lambda: zlib.decompressobj(wbits=47),  # gzip or zlib header, one member at a time
    ".bz2": bz2.BZ2Decompressor,
    ".xz": lzma.LZMADecompressor,
    ".zst": _Zstd,
}


def decompressing(raw, suffix: str):
    """A raw stream's content, decompressed as a file ending in `suffix` (.gz, .bz2, .xz) would be."""
    return _Decompressing(raw, _DECOMPRESSORS[suffix])


def open_input(path: str):
    """A buffered binary stream of the file's content, decompressed by its extension.

    A `.7z` holding one file is streamed too (a multi-file .7z is a source's own business, as
    StackExchange's site archives are).
    """
    if path.lower().endswith(".7z"):
        from corral.pipeline.inputs.archives import list_7z, open_7z_member

        with open_raw(path) as f:
            names = list_7z(f)
        if len(names) != 1:
            raise TruncatedInput(f"a .7z input must hold exactly one file, this one holds {len(names)}")
        return open_7z_member(open_raw(path), names[0])
    raw = Metered(open_raw(path))
    for suffix, new in _DECOMPRESSORS.items():
        if path.lower().endswith(suffix):
            return _Decompressing(raw, new)
    return io.BufferedReader(raw, 1 << 20)


def compression_of(name: str) -> str | None:
    """The compression suffix a file name ends in (.gz, .bz2, .xz, .zst), or None."""
    return next((s for s in _DECOMPRESSORS if name.lower().endswith(s)), None)


def strip_compression_suffix(name: str) -> str:
    for suffix in (".gz", ".bz2", ".xz", ".zst", ".7z"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


MAX_LINE_BYTES = 16 * 1024 * 1024  # a JSON line longer than this is one error, skipped without being held


def bounded_lines(f, limit: int) -> Iterator[bytes | None]:
    """The lines of a binary stream; a line longer than `limit` bytes comes back as None, after the
    rest of it has been read past in `limit`-sized pieces (memory never holds more than one piece)."""
    while True:
        line = f.readline(limit)
        if not line:
            return
        if len(line) >= limit and not line.endswith(b"\n"):
            del line  # hold one piece at a time while reading past the rest
            while True:
                rest = f.readline(limit)
                if not rest or rest.endswith(b"\n"):
                    break
                del rest
            yield None
        else:
            yield line


def iter_jsonl(
    path: str, require_text: bool = False, max_line_bytes: int | None = None
) -> Iterator[tuple[str, int, dict | None, str | None]]:
    """(location, line number, object or None, problem or None) for each non-blank JSON line.

    A line that is not a JSON object (or, with `require_text`, lacks a string `text`), or is longer
    than `max_line_bytes`, comes back with its problem instead of an object, so the caller counts it
    and the next lines still flow.
    """
    limit = max_line_bytes or MAX_LINE_BYTES
    with open_input(path) as f:
        yield from json_lines(bounded_lines(f, limit), path, 1, require_text, limit=limit)


def json_lines(
    lines: Iterable[bytes | None], path: str, first: int, require_text: bool = False, *, limit: int = MAX_LINE_BYTES
) -> Iterator[tuple[str, int, dict | None, str | None]]:
    """`iter_jsonl` over lines already read (None for one longer than `limit`), the first being
    line `first` of `path`."""
    import json

    for i, line in enumerate(lines, first):
        where = f"{path}:{i}"
        if line is None:
            yield where, i, None, f"oversize: a line longer than {limit:,} bytes"
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise TypeError("not a JSON object")
            if require_text and not isinstance(obj.get("text"), str):
                raise TypeError("no string field 'text'")
        except (ValueError, TypeError) as e:
            yield where, i, None, f"{type(e).__name__}: {e}"
            continue
        yield where, i, obj, None


def guarded(source: str, path: str, outcomes: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Pass a reader's outcomes through; a failure mid-file becomes one error outcome naming where.

    The records read before the failure have already flowed on; the rest of the file is lost and
    counted as one error (`truncated_or_corrupt` for damaged compression, `read_failed` otherwise).
    """
    n = 0
    it = iter(outcomes)
    while True:
        try:
            o = next(it)
        except StopIteration:
            return
        except FileNotFoundError as e:  # a file a paths list names that is not there (an HTTP 404)
            yield error(source, "missing_input", f"{path} after record {n}", f"{type(e).__name__}: {e}")
            return
        except READ_ERRORS as e:
            yield error(source, "truncated_or_corrupt", f"{path} after record {n}", f"{type(e).__name__}: {e}")
            return
        except Exception as e:  # a reader bug or an input no rule foresaw: counted, never a crash
            yield error(source, "read_failed", f"{path} after record {n}", f"{type(e).__name__}: {e}")
            return
        n += 1
        yield o

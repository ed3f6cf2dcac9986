"""Raw inputs: match patterns on any Beam filesystem, open them with transparent decompression, and
turn any failure while reading into an error outcome instead of a crash.

Compression is chosen by file name: .gz (multi-member, as WET files are), .bz2 (multi-stream, as
Wikipedia's multistream dumps are), .xz; anything else is read as is. .7z and tar archives are
opened by the readers that expect them. Everything streams: nothing is read whole unless a format
needs random access.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import zlib
from typing import Any, Callable, Iterable, Iterator

from corral.pipeline.outcome import error

# What reading a damaged compressed file raises; each becomes an error outcome, never a crash.
READ_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, ValueError)


class InputError(ValueError):
    """An input pattern is unusable as a whole (matches nothing): a configuration error."""


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local_size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files
                   if os.path.isfile(os.path.join(d, f)))
    return os.path.getsize(path)


def match_inputs(patterns: Iterable[str], field: str = "inputs") -> list[tuple[str, int]]:
    """(path, bytes) of everything the patterns match (files, and folders for sources that take
    folders), sorted; a pattern that matches nothing is a configuration error."""
    out: dict[str, int] = {}
    for i, pattern in enumerate(patterns):
        if is_remote(pattern):
            from apache_beam.io.filesystems import FileSystems

            found = {m.path: m.size_in_bytes for m in FileSystems.match([pattern])[0].metadata_list}
        else:
            found = {p: _local_size(p) for p in glob.glob(pattern, recursive=True)}
        if not found:
            raise InputError(f"{field}[{i}]: {pattern!r} matches no file")
        out.update(found)
    return sorted(out.items())


def open_raw(path: str):
    if is_remote(path):
        from apache_beam.io.filesystems import CompressionTypes, FileSystems

        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return open(path, "rb")


def open_input(path: str):
    """A binary stream of the file's content, decompressed by its extension."""
    raw = open_raw(path)
    name = path.lower()
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if name.endswith(".bz2"):
        return bz2.BZ2File(raw, mode="rb")
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw, mode="rb")
    return raw


def strip_compression_suffix(name: str) -> str:
    for suffix in (".gz", ".bz2", ".xz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


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
        except READ_ERRORS as e:
            yield error(source, "truncated_or_corrupt", f"{path} after record {n}", f"{type(e).__name__}: {e}")
            return
        except Exception as e:  # a reader bug or an input no rule foresaw: counted, never a crash
            yield error(source, "read_failed", f"{path} after record {n}", f"{type(e).__name__}: {e}")
            return
        n += 1
        yield o


def read_file_outcomes(source: str, reader: Callable[[str], Iterable[dict[str, Any]]]):
    """A FlatMap function path -> outcomes around `reader`, with failures turned into errors."""

    def run(path: str) -> Iterator[dict[str, Any]]:
        yield from guarded(source, path, reader(path))

    return run


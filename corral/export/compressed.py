"""The compressed streams `corral export` writes its JSON lines into: gzip (`.gz`, the default) or
zstd (`.zst`), compressed on background threads while the writing thread makes the next lines.

- gzip: python-isal's `igzip_threaded` (Intel's ISA-L deflate, several times zlib's speed). One gzip
  member whose 1 MiB blocks are compressed apart, each with the previous 32 KiB as its dictionary
  (as pigz does), by `threads` threads: every gzip reader reads it, and its bytes do not depend on
  the number of threads.
- zstd: zstandard's multi-threaded frame (`ZstdCompressor(threads=N)`), with its checksum; its
  bytes are the same for any number of threads from 1 up (its single-threaded mode writes others,
  at about 0.7× the CPU time), and it compresses while the lines are made. dolma's tools and
  `datasets` read `.zst`.

Levels: ISA-L's gzip has 0–3, zstd 1–22. The defaults keep files near the size of zlib's gzip -6,
what exports wrote before (measured on the real samples' books, C4 and CommonCrawl text): gzip 2,
ISA-L's own default, 1.11–1.14× its size at about ten times its speed (3 is 2–3% smaller and takes
half as long again); zstd 3, zstd's own default, 0.97–1.07×.
"""

from __future__ import annotations

import contextlib

from isal import igzip_threaded
from zstandard import ZstdCompressor

SUFFIX = {"gzip": ".gz", "zstd": ".zst"}  # a JSON lines file's name ends .jsonl + this
LEVELS = {"gzip": range(0, 4), "zstd": range(1, 23)}  # ISA-L's deflate levels; zstd's (no negative ones)
DEFAULT_LEVEL = {"gzip": 2, "zstd": 3}
CODECS = tuple(SUFFIX)


def check_codec(codec: str, level: int | None) -> int:
    """The level to write `codec` at; a ValueError (one line, naming the flag) when either is unknown."""
    if codec not in SUFFIX:
        raise ValueError(f"--compression {codec!r}: choose one of {', '.join(CODECS)}")
    if level is None:
        return DEFAULT_LEVEL[codec]
    span = LEVELS[codec]
    if level not in span:
        raise ValueError(f"--level {level}: {codec} takes {span.start} to {span.stop - 1}")
    return level


class Compressed:
    """A write-only stream that compresses what it is given into `raw` (left open on close)."""

    def __init__(self, raw, codec: str, level: int, threads: int = 1):
        if codec == "gzip":
            self._stream = igzip_threaded.open(raw, "wb", compresslevel=level, threads=threads)
        else:
            zstd = ZstdCompressor(level=level, threads=threads, write_checksum=True)
            self._stream = zstd.stream_writer(raw, closefd=False)

    def write(self, data: bytes) -> None:
        self._stream.write(data)

    def close(self) -> None:
        """End the stream (gzip's trailer, zstd's last block) and stop its threads."""
        self._stream.close()

    def abort(self) -> None:
        """Stop the threads of a stream whose file is being thrown away; errors are moot then."""
        with contextlib.suppress(Exception):
            self._stream.close()

"""A big JSON-lines input or tar archive cut into parts by one pass, for tasks to read in parallel.

A compressed `.jsonl`/`.json` file (.gz, .bz2, .xz or .zst) larger than a piece is decompressed
once, in order: its lines go to `parts` chunk files, chunk i taking the lines that start while the
pass has read less than (i + 1)/parts of the file's bytes. Chunks are zstd (level 1, on every
core: cheap to write, quick to read) and hold the lines as they were, blank ones too, so each
chunk's first line number (in `chunks.json`, written last) gives every line its number in the whole
file: documents keep the ids and dead letters the `file:line` they have when one task reads the
file. A line longer than the line bound is written as a marker and read back as that line's
`oversize` problem; a pass that meets damaged compression ends there, and the last chunk's reader
raises what it met, as a whole read would. An uncompressed local file is not copied: the pass only
counts its lines, at disk speed, to find where each part's first line starts, and each part is a
byte range of the file itself.

A tar archive (plain, .gz, .bz2, .xz) goes the same way, member by member, into zstd tar chunks; a
member it refuses (`unsafe_member`, `member_too_large`) is kept in its place as an empty member that
says why, so its pieces give the outcomes of a whole read in the same order.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

from corral.core import fs
from corral.pipeline.inputs import streams
from corral.pipeline.inputs.streams import (
    Metered,
    TruncatedInput,
    bounded_lines,
    compression_of,
    decompressing,
    json_lines,
    open_input,
    open_raw,
    strip_compression_suffix,
)

INDEX = "chunks.json"
PROBLEM = "corral.problem"  # the PAX header of a refused member's stand-in
OVERSIZE = b"\x00corral:oversize\n"  # stands for a line over the bound (never valid JSON, never text)
ZSTD_LEVEL = 1  # chunk compression: fast, and still a third of the bytes on disk
SCAN_BLOCK = 16 << 20  # bytes read at a time when an uncompressed file's lines are only counted
ZSTD_THREADS = -1  # compress on every core: the pass is serial and the other workers wait for it


def is_jsonl(path: str) -> bool:
    return strip_compression_suffix(path.rsplit("/", 1)[-1]).lower().endswith((".jsonl", ".json"))


class _Counted(Metered):
    """A raw stream that counts the bytes read from it (and reports them, as every input read does)."""

    def __init__(self, raw):
        super().__init__(raw)
        self.count = 0

    def readinto(self, buf) -> int:
        n = super().readinto(buf)
        self.count += n
        return n


def write_chunks(path: str, parts: int, folder: str) -> None:
    """The one pass over a file: its `parts` chunks and their index, in `folder` (for an
    uncompressed local file, only the index of where its parts start: `index_lines`)."""
    import zstandard

    suffix = compression_of(path)
    if not suffix and not fs.is_remote(path):
        index_lines(path, parts, folder)
        return
    size = fs.size(path)
    raw = _Counted(open_raw(path))
    stream = decompressing(raw, suffix) if suffix else io.BufferedReader(raw, 1 << 20)
    index, line, problem = [], 1, None
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=ZSTD_THREADS)
    lines = bounded_lines(stream, streams.MAX_LINE_BYTES)
    with stream:
        for i in range(parts):
            bound = size * (i + 1) // parts if i < parts - 1 else None
            out = fs.AtomicFile(fs.join(folder, f"chunk-{i:05d}.jsonl.zst"), durable=False)
            first = line
            with compressor.stream_writer(out.raw, closefd=False) as w:
                while problem is None and (bound is None or raw.count < bound):
                    try:
                        got = next(lines, False)
                    except (TruncatedInput, OSError, EOFError) as e:
                        problem = str(e)
                        break
                    if got is False:  # the file ended: the chunks left are empty
                        break
                    w.write(OVERSIZE if got is None else got)  # only the last line can lack its newline
                    line += 1
            out.commit()
            index.append({"first_line": first, "lines": line - first})
    done = {"chunks": index, "problem": problem}
    fs.atomic_write_bytes(fs.join(folder, INDEX), json.dumps(done).encode(), durable=False)


def chunk_lines(
    path: str, folder: str, chunk: int, require_text: bool = False
) -> Iterator[tuple[str, int, dict | None, str | None]]:
    """`iter_jsonl` of chunk `chunk` of `path`, from the `folder` its pass wrote."""
    done = json.loads(fs.read_bytes(fs.join(folder, INDEX)))
    first, limit = done["chunks"][chunk]["first_line"], streams.MAX_LINE_BYTES
    if "offset" in done["chunks"][chunk]:  # a byte range of the file itself
        start, end = done["chunks"][chunk]["offset"], done["chunks"][chunk]["end"]
        with fs.open_range(path, start, end) as f:
            yield from json_lines(bounded_lines(f, limit), path, first, require_text, limit=limit)
        return
    with open_input(fs.join(folder, f"chunk-{chunk:05d}.jsonl.zst")) as f:
        lines = (None if line == OVERSIZE else line for line in bounded_lines(f, limit + 2))
        yield from json_lines(lines, path, first, require_text, limit=limit)
    if done["problem"] and chunk == len(done["chunks"]) - 1:
        raise TruncatedInput(done["problem"])


def index_lines(path: str, parts: int, folder: str) -> None:
    """The one pass over an uncompressed file: where each of its `parts` starts (the first line
    starting at or after its share of the bytes) and that line's number, counted at disk speed;
    each part is then read as a byte range of the file itself."""
    size = fs.size(path)
    targets = [size * i // parts for i in range(1, parts)]
    starts, newlines, pos = [(0, 1)], 0, 0  # (byte offset, line number) of each part's first line
    with open_raw(path) as f:
        while targets and (block := f.read(SCAN_BLOCK)):
            while targets:
                cut = block.find(b"\n", max(targets[0] - 1 - pos, 0))  # the line start is cut + 1
                if cut < 0:
                    break  # in a later block
                starts.append((pos + cut + 1, newlines + block.count(b"\n", 0, cut + 1) + 1))
                targets.pop(0)
            newlines += block.count(b"\n")
            pos += len(block)
    starts += [(size, newlines + 1)] * len(targets)  # shares past the last line start: empty
    bounds = [*starts, (size, 0)]
    index = [{"offset": a, "end": b, "first_line": n} for (a, n), (b, _) in zip(bounds, bounds[1:], strict=False)]
    fs.atomic_write_bytes(
        fs.join(folder, INDEX), json.dumps({"chunks": index, "problem": None}).encode(), durable=False
    )


TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_tar(path: str) -> bool:
    """Whether a file name says tar archive (plain or compressed)."""
    return path.lower().endswith(TAR_SUFFIXES)


def write_member_chunks(path: str, parts: int, folder: str, max_member_bytes: int) -> None:
    """The one pass over a tar archive: its members in `parts` zstd tar chunks, and their index."""
    import tarfile

    import zstandard

    from corral.pipeline.inputs.archives import tar_members

    size = fs.size(path)
    raw = _Counted(open_raw(path))
    members = tar_members(raw, max_member_bytes, "r|*")
    index, n, problem = [], 0, None
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=ZSTD_THREADS)
    for i in range(parts):
        bound = size * (i + 1) // parts if i < parts - 1 else None
        out = fs.AtomicFile(fs.join(folder, f"chunk-{i:05d}.tar.zst"), durable=False)
        first = n
        with (
            compressor.stream_writer(out.raw, closefd=False) as w,
            tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            while problem is None and (bound is None or raw.count < bound):
                try:
                    got = next(members, None)
                except (tarfile.TarError, TruncatedInput, OSError, EOFError) as e:
                    problem = str(e) or type(e).__name__
                    break
                if got is None:
                    break
                name, data, refused = got
                info = tarfile.TarInfo(name if not refused else f"refused-{n}")
                info.size = len(data or b"")
                if refused:
                    info.pax_headers = {PROBLEM: refused, "corral.name": name}
                tar.addfile(info, io.BytesIO(data or b""))
                n += 1
        out.commit()
        index.append({"first_member": first, "members": n - first})
    raw.close()
    done = {"chunks": index, "problem": problem}
    fs.atomic_write_bytes(fs.join(folder, INDEX), json.dumps(done).encode(), durable=False)


def chunk_members(folder: str, chunk: int) -> Iterator[tuple[str, bytes | None, str | None]]:
    """(name, bytes or None, problem) of the members of one tar chunk, as `tar_members` gave them."""
    import tarfile

    done = json.loads(fs.read_bytes(fs.join(folder, INDEX)))
    with open_input(fs.join(folder, f"chunk-{chunk:05d}.tar.zst")) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for info in tar:
            refused = info.pax_headers.get(PROBLEM)
            if refused:
                yield info.pax_headers.get("corral.name", info.name), None, refused
                continue
            member = tar.extractfile(info)
            yield info.name, member.read() if member else b"", None
    if done["problem"] and chunk == len(done["chunks"]) - 1:
        raise TruncatedInput(done["problem"])

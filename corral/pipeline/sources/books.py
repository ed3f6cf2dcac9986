"""Books (docs/recipe/books.md): Project Gutenberg plain text and Books3-style plain text or JSONL.

- Gutenberg `.txt` (optionally .gz/.bz2/.xz): only what lies between the START and END markers is
  kept — `*** START OF THE/THIS PROJECT GUTENBERG EBOOK … ***` (both header generations, and the
  oldest `*END*THE SMALL PRINT!…*END*`) to `*** END OF … ***` — and a closing
  "End of (the) Project Gutenberg('s) EBook of …" line before the END marker and a leading
  "Produced by …" credits paragraph are dropped too, so no license or PG boilerplate remains.
  Byte-order mark and CRLF are normalised. The ebook number, title, author and language of the
  header go to `meta` (and `lang`). A file without markers is kept whole (it is not a PG file).
  Text is UTF-8; a header that declares ISO-8859-1/Latin-1 is honoured; other undecodable files are
  errors (`invalid_utf8`).
- Books3-style JSONL (`.jsonl`/`.json`, optionally compressed): one book per line with `text` and
  optionally `title`/`meta`; a bad line is an error, the next lines still flow.
- Tar archives of text files (`.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`, `.tar.xz`; Books3 as published):
  one book per member, read as a stream; links and unsafe names are `unsafe_member` errors.
- Book-level dedup: the paper's ">90% content overlap" removal is the MinHash stage (`minhash`,
  threshold 0.9, on by default), which also catches exact copies; `exact_dedup` (off by default)
  drops exact copies first, under their own reason.
- Ids: `gutenberg/<ebook number>` when the header or file name gives one, else the file path (and
  the line for JSONL), so the colliding ids of docs/recipe/books.md's quirk cannot happen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from corral.core.outcome import dropped, error, kept
from corral.core.schema import make_record
from corral.manifests.options import Option
from corral.pipeline.inputs.archives import tar_members
from corral.pipeline.inputs.chunks import (
    chunk_lines,
    chunk_members,
    is_jsonl,
    is_tar,
    write_member_chunks,
)
from corral.pipeline.inputs.streams import Metered, iter_jsonl, open_input, open_raw, strip_compression_suffix
from corral.pipeline.sources.base import Piece, Source, chunked, jsonl_pieces

SOURCE = "books"

_START = re.compile(
    r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$|^\*END\*THE SMALL PRINT!.*\*END\*\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_END_LINE = re.compile(r"^\s*End of (?:the )?Project Gutenberg(?:'s)?\b.*$", re.IGNORECASE | re.MULTILINE)
# A leading transcriber-credits paragraph right after the START marker is PG boilerplate too.
_CREDITS = re.compile(
    r"^(?:Produced by|This (?:e-?text|e-?book) was (?:produced|prepared)|E-?text prepared by|"
    r"Transcribed (?:from|by)|Prepared by)\b.*?(?:\n\s*\n|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_EBOOK_NO = re.compile(r"\[e-?book #(\d+)\]", re.IGNORECASE)
_FIELD = re.compile(r"^(Title|Author|Language|Character set encoding):\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_PG_FILE = re.compile(r"^pg(\d+)")
HEADER_SCAN = 20_000  # characters of the header searched for its fields
MAX_BOOK_BYTES = 256 * 1024 * 1024  # corral's bound: a larger file (or a bomb) is one `too_large` error

# Gutenberg's "Language:" names → ISO 639-1 (the languages of the paper's Wikipedia list, and a few).
LANGUAGE_CODES = {
    "english": "en",
    "spanish": "es",
    "french": "fr",
    "german": "de",
    "italian": "it",
    "portuguese": "pt",
    "dutch": "nl",
    "swedish": "sv",
    "danish": "da",
    "polish": "pl",
    "russian": "ru",
    "czech": "cs",
    "hungarian": "hu",
    "catalan": "ca",
    "romanian": "ro",
    "bulgarian": "bg",
    "croatian": "hr",
    "slovenian": "sl",
    "serbian": "sr",
    "ukrainian": "uk",
    "finnish": "fi",
    "latin": "la",
    "greek": "el",
    "chinese": "zh",
    "japanese": "ja",
    "norwegian": "no",
    "esperanto": "eo",
}


# --- pure rules ---------------------------------------------------------------------------------


def normalise_text(text: str) -> str:
    """Drop a byte-order mark; CRLF and CR line ends become LF."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def gutenberg_header(text: str) -> dict[str, str]:
    """Title, author, language, encoding and ebook number from a PG header (what is present)."""
    head = text[:HEADER_SCAN]
    start = _START.search(head)
    if start:
        head = head[: start.start()]
    info = {m.group(1).lower().replace("character set encoding", "encoding"): m.group(2) for m in _FIELD.finditer(head)}
    if m := _EBOOK_NO.search(head):
        info["ebook"] = m.group(1)
    return info


def strip_gutenberg(text: str) -> tuple[str, bool]:
    """The book between the PG START and END markers, and whether markers were found."""
    start = _START.search(text)
    end = _END.search(text, start.end() if start else 0)
    if not start and not end:
        return text.strip(), False
    body = text[start.end() if start else 0 : end.start() if end else len(text)]
    # A closing "End of (the) Project Gutenberg EBook of …" line just before the END marker.
    tail = body[-2000:]
    last = next(reversed(list(_END_LINE.finditer(tail))), None)
    if last is not None and not tail[last.end() :].strip():
        body = body[: len(body) - len(tail) + last.start()]
    body = _CREDITS.sub("", body.strip(), count=1)
    return body.strip(), True


def decode_book(data: bytes) -> str:
    """UTF-8 (with or without BOM); Latin-1 only when the PG header declares it. Raises UnicodeDecodeError."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        head = data[:HEADER_SCAN].decode("latin-1")
        enc = gutenberg_header(head).get("encoding", "").lower()
        if "8859-1" in enc or "latin-1" in enc or "latin1" in enc:
            return data.decode("latin-1")
        raise


def book_record(text: str, key: str, strip: bool, where: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A book's outcome: kept, or dropped as `empty`."""
    text = normalise_text(text)
    info = gutenberg_header(text) if strip else {}
    body, marked = strip_gutenberg(text) if strip else (text.strip(), False)
    if not body:
        return dropped(SOURCE, "empty", where)
    meta = {**(meta or {}), **{k: v for k, v in info.items() if k in ("title", "author", "language", "ebook")}}
    meta["gutenberg_markers"] = marked
    if info.get("ebook"):
        key = f"gutenberg/{info['ebook']}"
    lang = LANGUAGE_CODES.get(info.get("language", "").split(",")[0].strip().lower())
    url = f"https://www.gutenberg.org/ebooks/{info['ebook']}" if info.get("ebook") else None
    return kept(make_record(SOURCE, key, body, url=url, lang=lang, meta=meta))


# --- reading ------------------------------------------------------------------------------------


def read_books(path: str, strip: bool = True) -> Iterator[dict[str, Any]]:
    name = strip_compression_suffix(os.path.basename(path))
    if is_jsonl(path):  # the same test as `split`: whole or in chunks, a file is read as one kind
        yield from _read_jsonl(path, strip)
        return
    if is_tar(path):
        with Metered(open_raw(path)) as raw:
            yield from _read_members(path, strip, tar_members(raw, MAX_BOOK_BYTES, "r|*"))
        return
    with open_input(path) as f:
        data = f.read(MAX_BOOK_BYTES + 1)
        if len(data) <= MAX_BOOK_BYTES:
            f.read(1)  # at the end: a damaged compressed tail raises here, as a whole read() would
    if len(data) > MAX_BOOK_BYTES:
        yield error(SOURCE, "too_large", path, f"more than {MAX_BOOK_BYTES:,} bytes")
        return
    yield _book(data, name, strip, path)


def _book(data: bytes, name: str, strip: bool, where: str) -> dict[str, Any]:
    """A book's outcome from its bytes (`invalid_utf8` when they do not decode), keyed by its file
    name: `gutenberg/<n>` for a `pg<n>…` one, else `file/<name>`."""
    try:
        text = decode_book(data)
    except UnicodeDecodeError as e:
        return error(SOURCE, "invalid_utf8", where, str(e))
    key = f"gutenberg/{m.group(1)}" if (m := _PG_FILE.match(os.path.basename(name))) else f"file/{name}"
    return book_record(text, key, strip, where)


def _read_members(path: str, strip: bool, members) -> Iterator[dict[str, Any]]:
    """The books of an archive, one a member (Books3 is a tar of text files), each keyed by its
    member name."""
    for name, data, problem in members:
        where = f"{path}!{name}"
        yield error(SOURCE, problem, where) if problem else _book(data, name, strip, where)


def _read_jsonl(path: str, strip: bool, lines=None) -> Iterator[dict[str, Any]]:
    for where, i, obj, problem in lines or iter_jsonl(path, require_text=True):
        if problem:
            yield error(SOURCE, "bad_json_line", where, problem)
            continue
        meta_obj = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
        title = obj.get("title") or meta_obj.get("title")
        key = f"books3/{title}" if title else f"file/{os.path.basename(path)}:{i}"
        yield book_record(obj["text"], key, strip, where, {"title": title} if title else {})


# --- the source ------------------------------------------------------------------------------

OPTIONS = {
    "read": {
        "strip_gutenberg": Option(True, "bool", "keep only text between the PG START and END markers"),
    },
}


class Books(Source):
    name = SOURCE
    options = OPTIONS
    # §2.1 Books: "removing books with more than 90% content overlap".
    common_defaults = {"minhash": {"enabled": True, "threshold": 0.9}}

    def split(self, path: str, size: int, stages: dict[str, Any], piece_size: int) -> list[Piece]:
        """JSON lines and tar archives larger than a piece: the chunks of one decompressing pass."""
        return chunked(path, size, piece_size) if is_tar(path) else jsonl_pieces(path, size, piece_size)

    def prepare(self, piece: Piece, folder: str) -> None:
        if is_tar(piece.path):
            write_member_chunks(piece.path, piece.parts, folder, MAX_BOOK_BYTES)
        else:
            super().prepare(piece, folder)

    def read(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        strip = stages["read"]["strip_gutenberg"]
        if piece.whole:
            return read_books(piece.path, strip)
        if is_tar(piece.path):
            return _read_members(piece.path, strip, chunk_members(piece.prepared, piece.start))
        return _read_jsonl(piece.path, strip, chunk_lines(piece.path, piece.prepared, piece.start, require_text=True))

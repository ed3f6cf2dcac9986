"""JSON lines of a record batch, byte for byte what `json.dumps(line(row), ensure_ascii=False) + "\\n"`
writes for each row, at several times its speed.

A document's text is most of its line, and decoding it into a Python str, escaping it there and
encoding it back is most of json.dumps' time. Here the text stays UTF-8 bytes: `escaped_texts`
escapes it with bytes.replace (the bytes JSON escapes, below 0x20 and `"` `\\`, never occur inside a
multi-byte UTF-8 character), and json's encoder writes the rest of the line around an empty text,
where the escaped bytes are then put.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

# What json.dumps(ensure_ascii=False) writes for a byte of a string, besides the byte itself;
# the backslash first, so the backslashes of the other escapes are not escaped again.
SHORT_ESCAPES = ((b"\\", b"\\\\"), (b'"', b'\\"'), (b"\n", b"\\n"), (b"\r", b"\\r"), (b"\t", b"\\t"))
SHORT_ESCAPES += ((b"\b", b"\\b"), (b"\f", b"\\f"))
CONTROL = re.compile(rb"[\x00-\x1f]")  # after SHORT_ESCAPES: the control bytes written as \u00XX
TEXT = "text"
# The encoder json.dumps(obj, ensure_ascii=False) uses, made once: json.dumps makes a new one on each
# call with an argument other than its defaults, which costs as much as encoding a line's fields.
ENCODER = json.JSONEncoder(ensure_ascii=False)
EMPTY_TEXT = '"text": ""'  # how json.dumps writes the key `text` of an empty text


def _unicode_escape(match: re.Match) -> bytes:
    return b"\\u%04x" % match[0][0]


def escaped_texts(column: pa.Array) -> list[bytes]:
    """Each UTF-8 text of a string column as json.dumps(ensure_ascii=False) writes it between its
    quotes. After the short escapes the bytes below 0x20 left are those written as \\u00XX, which
    are rare: one vectorised count over the batch decides whether any text needs the regex pass."""
    bodies = column.cast(pa.binary()).to_pylist()
    for raw, escaped in SHORT_ESCAPES:
        bodies = [body.replace(raw, escaped) for body in bodies]
    if np.count_nonzero(np.frombuffer(b"".join(bodies), dtype=np.uint8) < 0x20):
        bodies = [CONTROL.sub(_unicode_escape, body) for body in bodies]
    return bodies


def _empty_texts(n: int) -> pa.Array:
    """n empty strings, made from buffers (pa.array would import pandas, 0.2 s in each worker)."""
    return pa.StringArray.from_buffers(n, pa.py_buffer(bytes(4 * (n + 1))), pa.py_buffer(b""))


def text_lines(batch: pa.RecordBatch, line: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
    """`line(row)` of each row as JSON lines; `line` gets the row with an empty text and must put it,
    as is, under the key `text`, before any key that holds an object. The first `"text": ""` of the
    line is then that key: in a string json.dumps writes, every `"` is escaped."""
    at = batch.schema.get_field_index(TEXT)
    bodies = escaped_texts(batch.column(at))
    rows = batch.set_column(at, TEXT, _empty_texts(batch.num_rows)).to_pylist()
    out: list[bytes] = []
    cut = len(EMPTY_TEXT) - 1  # inside the text's quotes
    for row, body in zip(rows, bodies):
        s = ENCODER.encode(line(row))
        i = s.index(EMPTY_TEXT) + cut
        out += (s[:i].encode(), body, s[i:].encode(), b"\n")
    return b"".join(out)

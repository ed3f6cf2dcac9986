"""A toy source, written as README.md's "Adding a source" shows: one document per line of a text file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from corral.core.outcome import dropped, kept
from corral.core.schema import make_record
from corral.manifests.options import Option
from corral.pipeline.inputs.streams import open_input
from corral.pipeline.sources.base import Piece, Source

SOURCE = "lines"


# --- rules --------------------------------------------------------------------------------------


def line_reason(line: str, min_chars: int) -> str | None:
    """Why a line is not a document (None: it is one)."""
    if not line.strip():
        return "blank"
    if len(line.strip()) < min_chars:
        return "too_short"
    return None


def read_lines(path: str, min_chars: int) -> Iterator[dict[str, Any]]:
    """One outcome per line of a (possibly compressed) text file."""
    with open_input(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.decode("utf-8").rstrip("\n")
            reason = line_reason(line, min_chars)
            where = f"{path}:{n}"
            yield dropped(SOURCE, reason, where) if reason else kept(make_record(SOURCE, where, line.strip()))


# --- the source ---------------------------------------------------------------------------------

OPTIONS = {"read": {"min_chars": Option(10, "int", "shorter lines are dropped as too_short")}}


class Lines(Source):
    name = SOURCE
    options = OPTIONS
    common_defaults = {"exact_dedup": {"enabled": True}}  # a line repeated anywhere is kept once

    def read(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return read_lines(piece.path, stages["read"]["min_chars"])

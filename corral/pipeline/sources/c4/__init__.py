"""C4 (docs/recipe/c4.md): read the published C4, or rebuild it from CommonCrawl WET with TFDS's rules.

`read.format: c4_json` (default) reads C4 as published: JSON lines (optionally .gz) with `text`,
`url` and `timestamp` or `date`. The published C4 is already cleaned, so `clean.enabled` is off.

`read.format: wet` reads WET files the way TFDS `split_wet_file` does (conversion records; body lines
stripped, empty ones skipped, lines starting with `WARC`, `CONTENT-` or `Content-` dropped; the page
title stays in the text) and `clean.enabled: true` applies TFDS C4 v3.0.1's pipeline in its order:
length cap (190,000 chars) → URL normalisation + URL dedup (the page with the largest md5(text) per
URL) → `clean_page` (per line: too-long word, citations, end mark / ellipsis, ≥5 words,
"lorem ipsum" page drop, "javascript" lines, "{" page drop, policy lines; ≥3 sentences) → line dedup
across pages (md5 of the stripped, lowercased line; the page with the smallest md5(url) keeps it;
repeats within a page dropped; ≥3 sentences again) → English with probability ≥ 0.99 → badwords over
the whole lowercased page, with the list file given in `clean.badwords`. Every page's `meta.split` is
`validation` or `train`: from a published file's name, else TFDS's md5(url) % 1000 == 0 rule (the
published C4's validation files are read too, as RP's glob did; the split lets a user tell them apart).

Deviations, documented: sentences are counted with NLTK's Punkt algorithm with default parameters
(TFDS loads the trained `english.pickle`, which would need a run-time download); English detection
uses fastText lid.176 (`__label__en` ≥ `lang_threshold`) instead of langdetect, which the toolkit
does not depend on. Badwords are matched as escaped literals.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from corral.engine.graph import Graph
from corral.manifests.options import Option
from corral.pipeline.inputs.chunks import chunk_lines
from corral.pipeline.sources.base import Piece, Source, SourcePlan, Staged, jsonl_pieces
from corral.pipeline.sources.c4.clean_passes import add_clean_phases
from corral.pipeline.sources.c4.pages import read_c4_json, read_wet_pages
from corral.pipeline.sources.c4.rules import SOURCE

OPTIONS = {
    "read": {
        "format": Option(
            "c4_json",
            "str",
            "published C4 json lines, or WET to rebuild C4 from CommonCrawl",
            choices=("c4_json", "wet"),
        ),
    },
    "clean": {
        "enabled": Option(False, "bool", "run TFDS C4 cleaning (needed for WET input; published C4 is clean)"),
        "min_words_per_line": Option(5, "int", "TFDS _MIN_WORDS_PER_LINE"),
        "min_sentences": Option(3, "int", "TFDS _MIN_NUM_SENTENCES"),
        "max_word_length": Option(1000, "int", "TFDS _MAX_WORD_LENGTH"),
        "max_length": Option(190_000, "int", "TFDS is_valid_length cap, characters"),
        "end_marks": Option([".", "?", "!", '"'], "str_list", "TFDS _END_MARKS (ASCII only)"),
        "badwords": Option(None, "str", "LDNOOBW list file at commit 25e679f ", nullable=True),
        "line_dedup": Option(True, "bool", "TFDS remove_duplicate_text"),
        "lang_threshold": Option(0.99, "float", "English probability ≥ 0.99", maximum=1.0),
    },
}


class C4(Source):
    name = SOURCE
    options = OPTIONS
    common_defaults = {"exact_dedup": {"enabled": False}}

    def split(self, path: str, size: int, stages: dict[str, Any], piece_size: int) -> list[Piece]:
        """Published C4 json lines larger than a piece: the chunks of one decompressing pass."""
        if stages["read"]["format"] == "wet" or stages["clean"]["enabled"]:
            return [Piece(path, size=size)]
        return jsonl_pieces(path, size, piece_size)

    def read(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """One input's pages: published C4 json (or a chunk of it), or WET pages (cleaned by the
        passes below when `clean.enabled`)."""
        if stages["read"]["format"] == "wet":
            return read_wet_pages(piece.path)
        lines = (
            chunk_lines(piece.path, piece.prepared, piece.start, require_text=True) if piece.kind == "chunks" else None
        )
        return read_c4_json(piece.path, lines)

    def stage(self, graph: Graph, plan: SourcePlan) -> Staged:
        """TFDS's passes when it cleans (corral.pipeline.sources.c4.clean_passes); the per-file
        stage otherwise."""
        if plan.stages["clean"]["enabled"]:
            return add_clean_phases(graph, self, plan)
        return super().stage(graph, plan)

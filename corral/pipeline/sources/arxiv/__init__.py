"""ArXiv (docs/recipe/arxiv.md): LaTeX sources → the paper's body. The rules are in `papers` (reading
archives, the steps of cleaning a paper) and `tex` (comments, \\input, macros)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from corral.manifests.options import Option
from corral.pipeline.sources.arxiv.papers import SOURCE, read_papers
from corral.pipeline.sources.base import Piece, Source

OPTIONS = {
    "clean": {
        "resolve_inputs": Option(True, "bool", "inline \\input/\\include (RP did not)"),
        "cut_before_first_section": Option(True, "bool", "LLaMA, after Lewkowycz et al."),
        "remove_bibliography": Option(True, "bool", "LLaMA removed the bibliography"),
        "keep_appendix": Option(True, "bool", "RP cut at \\appendix; the paper did not"),
        "remove_comments": Option(True, "bool", "LLaMA removed .tex comments"),
        "expand_macros": Option(True, "bool", "inline-expand user macros"),
        "fix_paragraph_regex": Option(True, "bool", "quirk: RP's missing `|` for \\paragraph"),
    },
}


class ArXiv(Source):
    name = SOURCE
    options = OPTIONS

    def read(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return read_papers(piece.path, stages["clean"])

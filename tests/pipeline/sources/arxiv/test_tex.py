"""The TeX the ArXiv rules need (corral.pipeline.sources.arxiv.tex): comments, the main file, macros."""

import pytest

from corral.pipeline.sources.arxiv import tex


def test_comments_full_line_trailing_and_escaped_percent():
    source = "% header\nA 50\\% rise% note\nB%\n  % indented comment\nC \\\\% after a line break\n"
    assert tex.remove_comments(source) == "A 50\\% rise\nB\nC \\\\\n"


def test_trailing_comment_keeps_the_character_before_it():
    # docs/recipe/arxiv.md quirk: RP's [^\\]%.+$ also ate the "x" here.
    assert tex.remove_comments("value x% why") == "value x"


def test_comment_environment_removed():
    assert tex.remove_comments("a\n\\begin{comment}\nhidden\n\\end{comment}\nb") == "a\n\nb"


def test_main_file_choice():
    files = {
        "fig1.tex": "\\documentclass{standalone}\\begin{document}tikz\\end{document}",
        "paper.tex": "\\documentclass{article}\\begin{document}\\section{A}" + "x" * 10 + "\\end{document}",
    }
    assert tex.find_main(files) == "paper.tex"


@pytest.mark.parametrize(
    "defs,use,expected",
    [
        ("\\newcommand{\\R}{\\mathbb{R}}", "x in \\R.", "x in \\mathbb{R}."),
        ("\\newcommand*\\eg{e.g.}", "\\eg, this", "e.g., this"),
        ("\\renewcommand{\\vec}[1]{\\mathbf{#1}}", "\\vec{x} and \\vec y", "\\mathbf{x} and \\mathbf{y}"),
        ("\\newcommand{\\pair}[2]{(#1, #2)}", "\\pair{a}{b}", "(a, b)"),
        ("\\newcommand{\\opt}[2][n]{#1_{#2}}", "\\opt{x} \\opt[m]{y}", "n_{x} m_{y}"),
        ("\\def\\abs#1{|#1|}", "\\abs{z}", "|z|"),
        ("\\def\\name{Müller–Lyer}", "the \\name illusion", "the Müller–Lyer illusion"),  # non-ASCII (RP dropped)
        ("\\newcommand{\\a}{A}\n\\newcommand{\\b}{\\a\\a}", "\\b!", "AA!"),  # nested
        ("\\newcommand{\\long}{first\nsecond {nested}}", "\\long.", "first\nsecond {nested}."),  # multi-line
        ("\\newcommand{\\x}{X}", "\\xi and \\x", "\\xi and X"),  # name boundary
        ("\\providecommand{\\y}{1}\\providecommand{\\y}{2}", "\\y", "1"),
    ],
)
def test_macro_expansion(defs, use, expected):
    macros, rest = tex.parse_macros(defs + "\n" + use)
    assert tex.expand_macros(rest, macros).strip() == expected


def test_self_referential_macro_is_bounded():
    macros, rest = tex.parse_macros("\\renewcommand{\\x}{\\x\\x}\n\\x")
    out = tex.expand_macros(rest, macros)
    assert len(out) < 1_000_000

"""ArXiv rules (docs/recipe/arxiv.md) and the fixes of RedPajama's quirks on inline cases, then the real
paper sources."""

import collections
import gzip
import io
import tarfile

import pytest
from helpers import run_read, shard_records, stages, write_manifest

from corral.manifests.verify import verify_build
from corral.pipeline.build import build
from corral.pipeline.sources.arxiv import ArXiv
from corral.pipeline.sources.arxiv import papers as ax

OPTS = stages("arxiv")["clean"]


def test_commented_section_is_not_the_first_section():
    # docs/recipe/arxiv.md quirk: RP cut before comment removal, so %\section counted.
    files = {
        "main.tex": "\\documentclass{x}\\begin{document}\n%\\section{Old}\nPreamble text.\n"
        "\\section{Real}\nBody.\n\\end{document}"
    }
    text, _ = ax.clean_paper(files, OPTS)
    assert text == "\\section{Real}\nBody."


def test_inputs_resolved_recursively_and_commented_inputs_ignored():
    files = {
        "main.tex": (
            "\\documentclass{a}\\begin{document}\n\\input{sec/intro}\n%\\input{old}\n\\include{b.tex}\n\\end{document}"
        ),
        "sec/intro.tex": "\\section{Intro}\nHello \\input{deeper}.",
        "sec/deeper.tex": "world",
        "b.tex": "Bye.",
        "old.tex": "SHOULD NOT APPEAR",
    }
    text, meta = ax.clean_paper(files, OPTS)
    assert text == "\\section{Intro}\nHello world.\nBye." and meta["main"] == "main.tex"


def test_input_cycles_terminate():
    files = {
        "main.tex": "\\documentclass{a}\\begin{document}\\section{S}\\input{a}\\end{document}",
        "a.tex": "A\\input{b}",
        "b.tex": "B\\input{a}",
    }
    assert ax.clean_paper(files, OPTS)[0] == "\\section{S}AB"


@pytest.mark.parametrize(
    "cmd",
    [
        "\\section{A}",
        "\\section*{A}",
        "\\subsection[short]{Long}",
        "\\chapter{A}",
        "\\part{A}",
        "\\subsubsection{A}",
        "\\paragraph{A}",
        "\\subparagraph{A}",
    ],
)
def test_cut_before_first_section(cmd):
    assert ax.cut_before_first_section("preamble " + cmd + " body") == cmd + " body"


def test_rp_paragraph_quirk_is_an_option():
    tex = "pre \\paragraph{A} body"
    assert ax.cut_before_first_section(tex, fixed=True) == "\\paragraph{A} body"
    assert ax.cut_before_first_section(tex, fixed=False) == ""
    assert ax.cut_before_first_section("x \\paragraph{a}\\subparagraph{b} y", fixed=False).startswith("\\paragraph")


def test_bibliography_removed_appendix_kept():
    tex = (
        "\\section{A}\nText.\n\\bibliographystyle{plain}\n\\bibliography{refs}\n\\appendix\n\\section{Proofs}\nP.\n"
        "\\begin{thebibliography}{9}\\bibitem{x} X\\end{thebibliography}\n\\end{document}\ntrailing junk"
    )
    out = ax.remove_bibliography(tex, keep_appendix=True)
    assert "Proofs" in out and "bibitem" not in out and "\\bibliography" not in out and "junk" not in out
    assert ax.remove_bibliography(tex, keep_appendix=False).strip() == "\\section{A}\nText.\n\\bibliographystyle{plain}"


def test_no_section_is_dropped():
    assert (
        ax.clean_paper({"m.tex": "\\documentclass{a}\\begin{document}Just text.\\end{document}"}, OPTS) == "no_section"
    )
    assert ax.clean_paper({"readme.txt": "x"}, OPTS) == "no_tex"


PAPER = {
    "main.tex": "\\documentclass{article}\\newcommand{\\N}{\\mathbb{N}}\\begin{document}\\input{s}\\end{document}",
    "s.tex": "\\section{S}\nLet $n \\in \\N$.",
}


def tar_bytes(files, extra=None, mode="w:gz"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tf.addfile(info)
    return buf.getvalue()


def test_archives_bulk_tar_and_unsafe_members(tmp_path):
    link = tarfile.TarInfo("evil-link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    (tmp_path / "2101.00001.tar.gz").write_bytes(tar_bytes(PAPER, [link]))
    (tmp_path / "2101.00002.gz").write_bytes(gzip.compress(PAPER["s.tex"].encode()))  # single gzipped .tex
    bulk = io.BytesIO()
    with tarfile.open(fileobj=bulk, mode="w") as tf:
        for name, data in [
            ("2102/2102.00003.gz", tar_bytes(PAPER)),
            ("../escape.gz", b"x"),
            ("/abs/2102.00004.gz", b"x"),
            ("2102/2102.00005.gz", gzip.compress(b"\xff\xfe")),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (tmp_path / "arXiv_src_2102_001.tar").write_bytes(bulk.getvalue())
    (tmp_path / "broken.tar.gz").write_bytes(tar_bytes(PAPER)[:40])
    outs = run_read(ArXiv(), sorted(str(p) for p in tmp_path.iterdir() if not p.name.startswith("outcomes")), tmp_path)
    kept = {o["record"]["url"]: o["record"]["text"] for o in outs if o["status"] == "kept"}
    assert kept == {
        f"https://arxiv.org/abs/{i}": "\\section{S}\nLet $n \\in \\mathbb{N}$." for i in ("2101.00001", "2102.00003")
    } | {"https://arxiv.org/abs/2101.00002": "\\section{S}\nLet $n \\in \\N$."}
    errs = collections.Counter(o["reason"] for o in outs if o["status"] == "error")
    assert errs == {"unsafe_member": 3, "invalid_utf8": 1, "truncated_or_corrupt": 1}
    assert not (tmp_path.parent / "escape.gz").exists()


def test_real_papers(shared_data, tmp_path):
    m = write_manifest(tmp_path / "m.yaml", {"arxiv": {"inputs": [str(shared_data / "arxiv" / "*")]}})
    manifest = build(m, str(tmp_path / "out"))
    f = manifest.sources["arxiv"].funnel
    assert (f.input, f.kept) == (4, 4) and f.balanced()
    assert verify_build(str(tmp_path / "out")).ok
    recs = {r["url"] or r["id"]: r for r in shard_records(str(tmp_path / "out"), "arxiv")}
    for r in recs.values():
        t = r["text"]
        assert t.startswith(("\\section", "\\chapter", "\\part", "\\subsection"))
        assert "\\documentclass" not in t and "\\begin{thebibliography}" not in t and "\\bibliography{" not in t
        assert "\\newcommand" not in t and "\\input{" not in t
    jpac = [r for r in recs.values() if "jpac" in r["meta"]][0]["text"]
    assert "\\Pc" not in jpac and "\\jpsi" not in jpac  # user macros expanded


def test_members_over_the_bounds_and_gzip_bombs_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ax, "MAX_MEMBER_BYTES", 1000)
    monkeypatch.setattr(ax, "MAX_PAPER_BYTES", 1000)
    big = "\\section{S}\n" + "Long text. " * 200  # 2,200 bytes: over the (lowered) bound
    (tmp_path / "2103.00001.tar.gz").write_bytes(tar_bytes({"main.tex": big}))
    bulk = io.BytesIO()
    with tarfile.open(fileobj=bulk, mode="w") as tf:
        for name, data in [
            ("2103/2103.00002.gz", gzip.compress(big.encode())),  # small, inflates past the bound
            ("2103/2103.00003.gz", b"x" * 5000),
        ]:  # a member declaring more than the bound
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (tmp_path / "arXiv_src_2103_001.tar").write_bytes(bulk.getvalue())
    outs = run_read(ArXiv(), sorted(str(p) for p in tmp_path.iterdir() if not p.name.startswith("outcomes")), tmp_path)
    reasons = collections.Counter(o["reason"] for o in outs if o["status"] == "error")
    assert reasons["member_too_large"] == 3 and not [o for o in outs if o["status"] == "kept"]

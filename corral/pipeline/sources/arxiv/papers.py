"""ArXiv (docs/recipe/arxiv.md): LaTeX sources → the paper's body, as LLaMA describes (after Lewkowycz et al.).

Inputs: a folder per paper; a `.tar`/`.tar.gz`/`.tgz` of one paper; a single `.gz` (a gzipped tar,
or one gzipped .tex, as arXiv serves them); or arXiv's bulk `arXiv_src_*.tar`, whose members are
`<id>.gz` papers. Archives are read in memory, member by member, never extracted: members with an
absolute or `..` path, links and devices are counted as errors (`unsafe_member`) and skipped, and
a member larger than MAX_MEMBER_BYTES as `member_too_large`.

Per paper, in this order (each step an option of `clean`):
1. Decode every .tex as UTF-8; a paper with a non-UTF-8 .tex is dropped (`invalid_utf8`, RP).
2. Comments removed (`remove_comments`): a `%` not escaped as `\\%` starts a comment; a line that is
   only a comment goes with its newline, a trailing comment leaves what precedes it intact
   (RP's `[^\\\\]%.+$` also ate the character before `%`); `comment` environments go too.
3. `\\input`/`\\include` resolved from the main file (`resolve_inputs`; RP concatenated all .tex in
   member order instead). The main file: the one with `\\documentclass` and `\\begin{document}`
   that no other file inputs, preferring the one with sections, then the largest.
4. User macros expanded (`expand_macros`): `\\newcommand`, `\\renewcommand`, `\\providecommand`
   (starred or not, braced or bare name, with `[n]` arguments and an optional `[default]`) and
   `\\def` (with `#1…` parameters), bodies read as balanced braces over any number of lines,
   expanded until nothing changes (nested macros), at most MACRO_PASSES passes and never past
   MAX_GROWTH times the paper's size (self-referential definitions). Non-ASCII bodies are fine
   (RP dropped the paper: "bad escape").
5. Everything before the first `\\part`/`\\chapter`/`\\section`/`\\subsection`/`\\subsubsection`/
   `\\paragraph`/`\\subparagraph` removed (`cut_before_first_section`); no section → `no_section`.
   `fix_paragraph_regex: false` reproduces RP's regex, in which `\\paragraph` only matched as
   `\\paragraph{…}\\subparagraph{…}`.
6. Bibliography removed (`remove_bibliography`): `thebibliography`/`references` environments,
   `\\bibliography{…}`, `\\bibliographystyle{…}`, `\\printbibliography`; everything after
   `\\end{document}` too. Appendices stay (`keep_appendix`, the paper's wording); with
   `keep_appendix: false` the text is truncated at the first `\\appendix` or bibliography, as RP did.
"""

from __future__ import annotations

import os
import posixpath
import re
import tarfile
import zlib
from collections.abc import Iterator
from typing import Any

from corral.core.fs import is_remote
from corral.core.outcome import dropped, error, kept
from corral.core.schema import make_record
from corral.pipeline.inputs.archives import tar_members
from corral.pipeline.inputs.streams import open_raw
from corral.pipeline.sources.arxiv.tex import (
    SECTION,
    expand_macros,
    find_main,
    parse_macros,
    remove_comments,
    resolve_inputs,
)

SOURCE = "arxiv"
MAX_MEMBER_BYTES = 64 << 20  # a single .tex/.gz member larger than this is refused
MAX_PAPER_BYTES = 256 << 20  # all members of one paper together

# docs/recipe/arxiv.md quirk: RP's pattern lacked a `|`, so \paragraph only matched as \paragraph{}\subparagraph{}.
_SECTION_RP = re.compile(
    r"\\(?:part|chapter|section|subsection|subsubsection)\*?\s*(?:\[[^\]]*\])?\s*\{"
    r"|\\paragraph\*?\s*\{.*?\}\\subparagraph\*?\s*\{"
)
_BIB_ENV = re.compile(r"\\begin\{(thebibliography|references|REFERENCES)\}.*?(?:\\end\{\1\}|\Z)", re.DOTALL)
_BIB_CMD = re.compile(
    r"\\(?:bibliography|bibliographystyle|nobibliography)\s*\{[^}]*\}|\\printbibliography\b(?:\[[^\]]*\])?"
)
_BIB_START = re.compile(
    r"\\begin\{(?:thebibliography|references|REFERENCES)\}|\\bibliography\s*\{|\\printbibliography\b"
)
_APPENDIX = re.compile(r"\\appendix\b|\\begin\{appendices\}")
_END_DOCUMENT = re.compile(r"\\end\{document\}")
_ARXIV_ID = re.compile(r"^(\d{4}\.\d{4,5}(?:v\d+)?|[a-z\-]+(?:\.[A-Z]{2})?/?\d{7}(?:v\d+)?)$")


# --- cutting ------------------------------------------------------------------------------------


def cut_before_first_section(tex: str, fixed: bool = True) -> str:
    m = (SECTION if fixed else _SECTION_RP).search(tex)
    return tex[m.start() :] if m else ""


def remove_bibliography(tex: str, keep_appendix: bool = True) -> str:
    m = _END_DOCUMENT.search(tex)
    if m:
        tex = tex[: m.start()]
    if not keep_appendix:
        cuts = [x.start() for x in (_APPENDIX.search(tex), _BIB_START.search(tex)) if x]
        return tex[: min(cuts)] if cuts else tex
    return _BIB_CMD.sub("", _BIB_ENV.sub("", tex))


def clean_paper(files: dict[str, str], opts: dict[str, Any]) -> tuple[str, dict[str, Any]] | str:
    """(text, meta) of a paper, or a drop reason."""
    tex_files = {p: t for p, t in files.items() if p.lower().endswith(".tex")}
    if not tex_files:
        return "no_tex"
    if opts["remove_comments"]:
        tex_files = {p: remove_comments(t) for p, t in tex_files.items()}
    main = find_main(tex_files)
    if opts["resolve_inputs"] and main:
        tex = resolve_inputs(tex_files, main)
    else:
        tex = "\n".join(tex_files.values())
    n_macros = 0
    if opts["expand_macros"]:
        macros, tex = parse_macros(tex)
        n_macros = len(macros)
        tex = expand_macros(tex, macros)
    if opts["cut_before_first_section"]:
        tex = cut_before_first_section(tex, opts["fix_paragraph_regex"])
        if not tex:
            return "no_section"
    if opts["remove_bibliography"]:
        tex = remove_bibliography(tex, opts["keep_appendix"])
    elif not opts["keep_appendix"]:
        m = _APPENDIX.search(tex)
        tex = tex[: m.start()] if m else tex
    tex = re.sub(r"\n\s*\n\s*\n+", "\n\n", tex).strip()
    if not tex:
        return "empty"
    return tex, {"main": main, "tex_files": len(tex_files), "macros": n_macros}


# --- reading ------------------------------------------------------------------------------------


def _paper_id(name: str) -> str:
    base = posixpath.basename(name.rstrip("/"))
    for suffix in (".tar.gz", ".tgz", ".tar", ".gz"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


def _paper_outcomes(pid: str, raw_files: dict[str, bytes], where: str, opts: dict[str, Any]) -> dict[str, Any]:
    files: dict[str, str] = {}
    for path, data in raw_files.items():
        if not path.lower().endswith(".tex"):
            continue
        try:
            files[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            return error(SOURCE, "invalid_utf8", f"{where}:{path}")
    result = clean_paper(files, opts)
    if isinstance(result, str):
        return dropped(SOURCE, result, where)
    text, meta = result
    norm = pid.replace("_", "/", 1) if re.match(r"^[a-z\-]+_\d{7}", pid) else pid
    url = f"https://arxiv.org/abs/{norm}" if _ARXIV_ID.match(norm) else None
    return kept(make_record(SOURCE, f"arxiv/{pid}", text, url=url, meta={"paper": pid, **meta}))


def _unpack_paper(data: bytes, where: str) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """A paper's files from a gzip/tar blob (a single gzipped .tex too), and errors for bad members."""
    errors: list[dict[str, Any]] = []
    if data[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(wbits=31)
        try:
            inner = d.decompress(data, MAX_PAPER_BYTES + 1)  # a gzip bomb stops here, never inflated whole
        except zlib.error as e:
            errors.append(error(SOURCE, "truncated_or_corrupt", where, str(e)))
            return {}, errors
        if len(inner) <= MAX_PAPER_BYTES and not d.eof:
            errors.append(error(SOURCE, "truncated_or_corrupt", where, "gzip stream ends early"))
            return {}, errors
        if len(inner) > MAX_PAPER_BYTES:
            errors.append(error(SOURCE, "member_too_large", where))
            return {}, errors
        data = inner
    files: dict[str, bytes] = {}
    try:
        total = 0
        for name, content, problem in tar_members(data, MAX_MEMBER_BYTES):
            if problem:
                errors.append(error(SOURCE, problem, f"{where}:{name}"))
                continue
            total += len(content)
            if total > MAX_PAPER_BYTES:
                errors.append(error(SOURCE, "member_too_large", f"{where}:{name}"))
                break
            files[name] = content
    except tarfile.ReadError:
        files = {"main.tex": data}  # arXiv serves single-file papers as one gzipped .tex
    return files, errors


def read_papers(path: str, opts: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if not is_remote(path) and os.path.isdir(path):
        raw: dict[str, bytes] = {}
        for dirpath, _dirnames, filenames in os.walk(path, followlinks=False):
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, path).replace(os.sep, "/")
                if os.path.islink(full):
                    yield error(SOURCE, "unsafe_member", f"{path}:{rel}", "link")
                    continue
                if name.lower().endswith(".tex"):
                    if os.path.getsize(full) > MAX_MEMBER_BYTES:
                        yield error(SOURCE, "member_too_large", f"{path}:{rel}")
                        continue
                    with open(full, "rb") as fh:
                        raw[rel] = fh.read()
        yield _paper_outcomes(_paper_id(path), raw, path, opts)
        return
    name = posixpath.basename(path)
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        yield from _read_tar_stream(path, name, opts)
        return
    with open_raw(path) as f:
        data = f.read(MAX_PAPER_BYTES + 1)
    if len(data) > MAX_PAPER_BYTES:
        yield error(SOURCE, "member_too_large", path)
        return
    files, errors = _unpack_paper(data, path)
    yield from errors
    if files:
        yield _paper_outcomes(_paper_id(name), files, path, opts)


def _read_tar_stream(path: str, name: str, opts: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A tar read as a stream, one member in memory at a time.

    Members that are themselves archives (`<id>.gz`, `<id>.tar`: arXiv's bulk tars) are papers of
    their own; the other members together are the archive's own paper.
    """
    mode = "r|gz" if name.endswith((".tar.gz", ".tgz")) else "r|*"
    own: dict[str, bytes] = {}
    own_size = 0
    with open_raw(path) as raw:
        for member, content, problem in tar_members(raw, MAX_MEMBER_BYTES, mode):
            where = f"{path}:{member}"
            if problem:
                yield error(SOURCE, problem, where)
                continue
            if member.endswith((".gz", ".tar", ".tgz")):
                files, errors = _unpack_paper(content, where)
                yield from errors
                if files:
                    yield _paper_outcomes(_paper_id(member), files, where, opts)
            elif member.endswith(".pdf") and "/" in member:
                yield dropped(SOURCE, "pdf_only", where)  # a bulk tar's paper with no source
            else:
                own_size += len(content)
                if own_size > MAX_PAPER_BYTES:
                    yield error(SOURCE, "member_too_large", where)
                    continue
                own[member] = content
    if own:
        yield _paper_outcomes(_paper_id(name), own, path, opts)

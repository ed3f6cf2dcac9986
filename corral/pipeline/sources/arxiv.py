"""ArXiv (RECIPE.md §7): LaTeX sources → the paper's body, as LLaMA describes (after Lewkowycz et al.).

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

import io
import os
import posixpath
import re
import tarfile
import zlib
from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from corral.outcome import dropped, error, kept
from corral.pipeline.inputs import guarded, is_remote, open_raw
from corral.schema import make_record

SOURCE = "arxiv"
MAX_MEMBER_BYTES = 64 << 20  # a single .tex/.gz member larger than this is refused
MAX_PAPER_BYTES = 256 << 20  # all members of one paper together
MACRO_PASSES = 10  # expansion rounds (macros that use macros)
MAX_GROWTH = 4  # expansion never makes a paper more than this many times larger
MAX_INPUT_DEPTH = 20  # \input nesting

_SECTION = re.compile(
    r"\\(?:part|chapter|section|subsection|subsubsection|paragraph|subparagraph)\*?\s*(?:\[[^\]]*\])?\s*\{"
)
# RECIPE.md §7 quirk: RP's pattern lacked a `|`, so \paragraph only matched as \paragraph{}\subparagraph{}.
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
_COMMENT_ENV = re.compile(r"\\begin\{comment\}.*?\\end\{comment\}", re.DOTALL)
_INPUT = re.compile(r"\\(?:input|include|subfile)\s*\{\s*([^}]+?)\s*\}|\\input\s+([^\s{}\\]+)")
_DEFINERS = re.compile(r"\\(newcommand|renewcommand|providecommand|def)\b\*?")
_ARXIV_ID = re.compile(r"^(\d{4}\.\d{4,5}(?:v\d+)?|[a-z\-]+(?:\.[A-Z]{2})?/?\d{7}(?:v\d+)?)$")


# --- comments -----------------------------------------------------------------------------------


def _comment_start(line: str) -> int:
    """Index of the first `%` not escaped by an odd number of backslashes, or -1."""
    i = line.find("%")
    while i >= 0:
        k = i - 1
        while k >= 0 and line[k] == "\\":
            k -= 1
        if (i - k - 1) % 2 == 0:
            return i
        i = line.find("%", i + 1)
    return -1


def remove_comments(tex: str) -> str:
    """Full-line comments go with their newline; trailing ones leave their line's text; `\\%` stays."""
    tex = _COMMENT_ENV.sub("", tex)
    out = []
    for line in tex.split("\n"):
        i = _comment_start(line)
        if i < 0:
            out.append(line)
        elif line[:i].strip():
            out.append(line[:i])
    return "\n".join(out)


# --- \input -------------------------------------------------------------------------------------


def _lookup(files: dict[str, str], base: str, name: str) -> str | None:
    name = name.strip().strip('"')
    for cand in (name, name + ".tex"):
        for path in (posixpath.normpath(posixpath.join(base, cand)), posixpath.normpath(cand)):
            if path in files:
                return path
    return None


def resolve_inputs(files: dict[str, str], main: str, depth: int = 0, stack: tuple = ()) -> str:
    """The main file with every \\input/\\include replaced by the file's text (comments already gone)."""
    text = files[main]
    if depth > MAX_INPUT_DEPTH:
        return text
    base = posixpath.dirname(main)

    def sub(m: re.Match) -> str:
        target = _lookup(files, base, m.group(1) or m.group(2))
        if target is None or target in stack:
            return ""  # a missing file (a figure, a .bbl) or a cycle: nothing to inline
        return resolve_inputs(files, target, depth + 1, stack + (main,))

    return _INPUT.sub(sub, text)


def find_main(files: dict[str, str]) -> str | None:
    """The main .tex of a paper (see the module docstring)."""
    inputs = set()
    for path, text in files.items():
        for m in _INPUT.finditer(text):
            t = _lookup(files, posixpath.dirname(path), m.group(1) or m.group(2))
            if t:
                inputs.add(t)
    docs = [p for p, t in files.items() if "\\documentclass" in t and "\\begin{document}" in t and p not in inputs]
    if not docs:
        docs = [p for p, t in files.items() if "\\begin{document}" in t] or list(files)
    if not docs:
        return None
    return max(
        docs,
        key=lambda p: (
            bool(_SECTION.search(resolve_inputs(files, p))),
            posixpath.basename(p) in ("main.tex", "ms.tex", "paper.tex"),
            len(files[p]),
            p,
        ),
    )


# --- macros -------------------------------------------------------------------------------------


def _skip_space(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t\n":
        i += 1
    return i


def _group(s: str, i: int, open_: str = "{", close: str = "}") -> tuple[str, int] | None:
    """The balanced group starting at s[i] == open_, as (inside, index after it)."""
    if i >= len(s) or s[i] != open_:
        return None
    depth, j = 0, i
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
        j += 1
    return None


def _control_word(s: str, i: int) -> tuple[str, int] | None:
    m = re.compile(r"\\(?:[A-Za-z@]+|.)").match(s, i)
    return (m.group(0), m.end()) if m else None


def parse_macros(tex: str) -> tuple[dict[str, tuple[int, str | None, str]], str]:
    """User macro definitions {"\\name": (n args, default of the optional first arg, body)} and the
    text with the definitions removed."""
    macros: dict[str, tuple[int, str | None, str]] = {}
    out, last = [], 0
    for m in _DEFINERS.finditer(tex):
        if m.start() < last:
            continue
        kind, i = m.group(1), _skip_space(tex, m.end())
        if kind == "def":
            cw = _control_word(tex, i)
            if not cw:
                continue
            name, i = cw
            pm = re.compile(r"(?:#\d)*").match(tex, i)
            n_args, i = len(pm.group(0)) // 2, pm.end()
            body = _group(tex, _skip_space(tex, i))
            if body is None:
                continue
            macros[name] = (n_args, None, body[0])
        else:
            grp = _group(tex, i)
            if grp is not None:
                name, i = grp[0].strip(), grp[1]
            else:
                cw = _control_word(tex, i)
                if not cw:
                    continue
                name, i = cw
            if not re.fullmatch(r"\\[A-Za-z@]+", name):
                continue
            n_args, default = 0, None
            i = _skip_space(tex, i)
            opt = _group(tex, i, "[", "]")
            if opt and opt[0].strip().isdigit():
                n_args, i = int(opt[0].strip()), opt[1]
                i = _skip_space(tex, i)
                opt2 = _group(tex, i, "[", "]")
                if opt2:
                    default, i = opt2
            body = _group(tex, _skip_space(tex, i))
            if body is None:
                continue
            if kind == "providecommand" and name in macros:
                out.append(tex[last : m.start()])
                last = body[1]
                continue
            macros[name] = (n_args, default, body[0])
        out.append(tex[last : m.start()])
        last = body[1]
    out.append(tex[last:])
    return macros, "".join(out)


def _read_arg(s: str, i: int) -> tuple[str, int] | None:
    i = _skip_space(s, i)
    if i >= len(s):
        return None
    g = _group(s, i)
    if g:
        return g
    cw = _control_word(s, i)
    if cw and s[i] == "\\":
        return cw
    return s[i], i + 1


def expand_macros(tex: str, macros: dict[str, tuple[int, str | None, str]], limit: int | None = None) -> str:
    """Replace each use of a user macro with its body (arguments substituted), to a fixpoint."""
    if not macros:
        return tex
    limit = limit or max(MAX_GROWTH * len(tex), 1 << 16)
    names = sorted(macros, key=len, reverse=True)
    pattern = re.compile("(" + "|".join(re.escape(n) for n in names) + r")(?![A-Za-z@])")
    for _ in range(MACRO_PASSES):
        out, last, changed = [], 0, False
        for m in pattern.finditer(tex):
            if m.start() < last:
                continue
            n_args, default, body = macros[m.group(1)]
            i, args = m.end(), []
            if default is not None:
                j = _skip_space(tex, i)
                opt = _group(tex, j, "[", "]")
                if opt:
                    args.append(opt[0])
                    i = opt[1]
                else:
                    args.append(default)
            ok = True
            while len(args) < n_args:
                a = _read_arg(tex, i)
                if a is None:
                    ok = False
                    break
                args.append(a[0])
                i = a[1]
            if not ok:
                continue
            value = body
            for k, a in enumerate(args, 1):
                value = value.replace(f"#{k}", a)
            out.append(tex[last : m.start()])
            out.append(value)
            last, changed = i, True
        out.append(tex[last:])
        new = "".join(out)
        if len(new) > limit:
            break
        tex = new
        if not changed:
            break
    return tex


# --- cutting ------------------------------------------------------------------------------------


def cut_before_first_section(tex: str, fixed: bool = True) -> str:
    m = (_SECTION if fixed else _SECTION_RP).search(tex)
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


def _safe_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return not name.startswith(("/", "\\")) and ".." not in parts and not re.match(r"^[A-Za-z]:", name)


def _tar_members(data: bytes, where: str) -> Iterator[tuple[str, bytes | None, str | None]]:
    """(name, bytes or None, problem) for each member of an in-memory tar (any compression)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        for info in tf:
            if info.isdir():
                continue
            if not info.isfile() or not _safe_name(info.name):
                yield info.name, None, "unsafe_member"
                continue
            if info.size > MAX_MEMBER_BYTES:
                yield info.name, None, "member_too_large"
                continue
            f = tf.extractfile(info)
            yield posixpath.normpath(info.name), (f.read() if f else b""), None


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
        for name, content, problem in _tar_members(data, where):
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
    with open_raw(path) as raw, tarfile.open(fileobj=raw, mode=mode) as tf:
        for info in tf:
            where = f"{path}:{info.name}"
            if info.isdir():
                continue
            if not info.isfile() or not _safe_name(info.name):
                yield error(SOURCE, "unsafe_member", where)
                continue
            if info.size > MAX_MEMBER_BYTES:
                yield error(SOURCE, "member_too_large", where)
                continue
            f = tf.extractfile(info)
            content = f.read() if f else b""
            member = posixpath.normpath(info.name)
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


def read_file(path: str, stages: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One input's outcomes, a failure mid-file counted as one error (the build's per-file task)."""
    return guarded(SOURCE, path, read_papers(path, stages["clean"]))


class Read(beam.PTransform):
    """paths → outcomes (`read_file` of each): for composing this source in other Beam pipelines."""

    def __init__(self, stages: dict[str, dict[str, Any]]):
        super().__init__()
        self.stages = stages

    def expand(self, paths):
        stages = self.stages
        return paths | "ReadFiles" >> beam.FlatMap(lambda p: read_file(p, stages))

"""The TeX the ArXiv rules need (docs/recipe/arxiv.md#what-corral-does), as pure functions on strings.

- `remove_comments`: a `%` not escaped as `\\%` starts a comment; a line that is only a comment
  goes with its newline; `comment` environments go too.
- `resolve_inputs` / `find_main`: `\\input`, `\\include` and `\\subfile` resolved from the main file.
- `parse_macros` / `expand_macros`: `\\newcommand`, `\\renewcommand`, `\\providecommand` and `\\def`
  read as balanced braces and expanded until nothing changes, within MACRO_PASSES and MAX_GROWTH.
"""

from __future__ import annotations

import posixpath
import re

# TeX's sectioning commands, starred or not, with an optional short title
SECTION = re.compile(
    r"\\(?:part|chapter|section|subsection|subsubsection|paragraph|subparagraph)\*?\s*(?:\[[^\]]*\])?\s*\{"
)
MACRO_PASSES = 10  # expansion rounds (macros that use macros)
MAX_GROWTH = 4  # expansion never makes a paper more than this many times larger
MAX_INPUT_DEPTH = 20  # \input nesting

_COMMENT_ENV = re.compile(r"\\begin\{comment\}.*?\\end\{comment\}", re.DOTALL)
_INPUT = re.compile(r"\\(?:input|include|subfile)\s*\{\s*([^}]+?)\s*\}|\\input\s+([^\s{}\\]+)")
_DEFINERS = re.compile(r"\\(newcommand|renewcommand|providecommand|def)\b\*?")


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
            bool(SECTION.search(resolve_inputs(files, p))),
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

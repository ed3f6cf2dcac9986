"""The sample's real text, present wherever corral is installed: the paragraphs of Python's bundled
documentation topics and the prose of the standard library's docstrings (English), and the
translated messages of Sphinx's message catalogs (French, Spanish, Russian, Swedish, Catalan,
German)."""

from __future__ import annotations

import ast
import glob
import os
import re
import sysconfig

# --- real text ----------------------------------------------------------------------------------


def _prose(block: str, min_words: int = 12) -> str | None:
    lines = block.strip().splitlines()
    if not lines or lines[0].startswith((" ", "\t", ">>>", "...", "*", "-", "|", "+", "=", ":", "..")):
        return None
    text = " ".join(line.strip() for line in lines)
    if len(text.split()) < min_words:
        return None
    if sum(c.isalpha() or c == " " for c in text) / len(text) < 0.85:
        return None
    return text


def _paragraphs(text: str) -> list[str]:
    return [p for p in (_prose(b) for b in re.split(r"\n\s*\n", text)) if p]


def doc_topics() -> list[tuple[str, list[str]]]:
    """(topic, paragraphs) of Python's documentation topics that have at least two paragraphs."""
    from pydoc_data.topics import topics

    out = [(name, _paragraphs(topics[name])) for name in sorted(topics)]
    return [(name, ps) for name, ps in out if len(ps) >= 2]


def stdlib_topics() -> list[tuple[str, list[str]]]:
    """(module, paragraphs of its docstrings) for standard-library modules with at least three."""
    out = []
    for path in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py"))):
        try:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        paras: list[str] = []
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    paras += _paragraphs(doc)
        paras = list(dict.fromkeys(paras))
        if len(paras) >= 3:
            out.append((os.path.basename(path)[:-3], paras))
    return out


def foreign_sentences(lang: str) -> list[str]:
    """Sphinx's translated messages in `lang` with at least six words, placeholders and markup removed."""
    import gettext

    import sphinx

    mo = os.path.join(os.path.dirname(sphinx.__file__), "locale", lang, "LC_MESSAGES", "sphinx.mo")
    with open(mo, "rb") as f:
        catalog = gettext.GNUTranslations(f)._catalog  # msgid → msgstr, as gettext loaded it
    out = []
    for key in sorted(k for k in catalog if isinstance(k, str) and k):
        text = catalog[key]
        if not isinstance(text, str):
            continue
        text = re.sub(r"%\(\w+\)[sdr]|%[sdr]|\{\w*\}|<[^>]+>|``|\*\*", "", text)
        for block in re.split(r"\n\s*\n", text):
            block = " ".join(block.split())
            if len(block.split()) >= 6 and "::" not in block and "sphinx." not in block:
                out.append(block)
    return list(dict.fromkeys(out))


# --- writers ------------------------------------------------------------------------------------

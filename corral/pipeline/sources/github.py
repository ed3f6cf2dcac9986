"""GitHub (docs/recipe/github.md): source files of permissively licensed repositories.

Inputs:
- a folder per repository (each matched path that is a folder), with its license file(s) at its
  root (LICENSE, LICENCE, COPYING, … in any case, with any extension, also under `licenses/`);
- table exports with `repo_name`, `path`, `content`, `license` columns, as JSONL (optionally
  compressed) or Parquet — the shape of a BigQuery `github_repos` export.

Every file is one input record. Rules, in order:
- License (LLaMA: Apache, BSD and MIT only): a folder's license is detected from its license
  files' text (MIT, BSD, Apache, and GPL/LGPL/AGPL/MPL/EPL/ISC/Unlicense/CC so they are named when
  dropped); a repository is kept only when it has a license and every license it carries is in
  `license.allowed` (dual MIT/Apache is fine; MIT plus GPL is not). Exports use their `license`
  column, matched by prefix like RP's `LIKE 'mit%'` query. Drops: `no_license`,
  `license_not_allowed`.
- Symlinks are never followed (`link`, an error); files over 1 MiB are dropped (`too_large`: the
  BigQuery contents table holds no larger ones); files with a NUL byte or invalid UTF-8 are
  `binary`; paths ending `.crt` and the exact path `LICENSE` are skipped (RP); paths whose name
  does not end with a whitelisted extension are `extension_not_allowed` (case-sensitive, RP).
- Header removal (RP clean_copyright_comments, option `clean.remove_headers`): the first `/*…*/`
  block is removed if it mentions "copyright"; only when the file has no block comment at all, the
  leading lines starting with `//`, `#` or `--` (and blank ones) are removed.
- Quality (RP github_run_filter.py): empty after cleaning, max line length > 1000, average line
  length > 100 (len(content) / line count), alphanumeric fraction < 0.25, alphabetic characters
  per token < 1.5.
- Exact dedup on the md5 of the raw content (RP hashes before header cleaning), across the whole
  input, through the manifest's `exact_dedup` stage (on for GitHub).

Tokens for the alpha/token ratio: RP uses the GPT-NeoX BPE tokenizer, which would need a download.
corral counts GPT-2's pre-tokenisation pieces (the regex every GPT-2/NeoX BPE applies before merging;
no vocabulary needed). A BPE token never spans two pieces, so this count is a lower bound of RP's
token count and the ratio an upper bound of RP's: the 1.5 threshold drops no file RP would keep.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import regex

from corral.core.fs import is_remote
from corral.core.licenses import detect_license, is_license_file
from corral.core.outcome import dropped, error, kept
from corral.core.schema import make_record
from corral.manifests.options import Option
from corral.pipeline.inputs.chunks import chunk_lines
from corral.pipeline.inputs.row_groups import iter_rows as iter_parquet
from corral.pipeline.inputs.streams import iter_jsonl, strip_compression_suffix
from corral.pipeline.sources.base import Piece, Source, jsonl_pieces, parquet_pieces

SOURCE = "github"
MAX_FILE_BYTES = 1 << 20  # BigQuery github_repos.contents holds content only for files under 1 MiB
BINARY_SNIFF = 8192  # bytes searched for a NUL
_BLOCK = re.compile(r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/")  # docs/recipe/github.md: RP clean_copyright_comments PAT
_GPT2_PIECES = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


# --- pure rules ---------------------------------------------------------------------------------


def license_family(column: str | None) -> str | None:
    """A BigQuery `licenses.license` value (`mit`, `apache-2.0`, `bsd-3-clause`, …) → its family."""
    if not column:
        return None
    c = column.strip().lower()
    for fam in ("agpl", "lgpl", "gpl", "mit", "apache", "bsd", "mpl", "epl", "isc", "unlicense", "cc"):
        if c.startswith(fam):
            return fam
    return c


def license_decision(licenses: set[str], allowed: list[str]) -> str | None:
    """None when the repository may be used, else the drop reason."""
    if not licenses:
        return "no_license"
    if not licenses <= set(allowed):
        return "license_not_allowed"
    return None


def clean_copyright_comments(content: str) -> str:
    """docs/recipe/github.md: RP clean_copyright_comments, quirks included (checked against RP by running)."""
    m = _BLOCK.search(content)
    if m:
        if "copyright" in m.group(0).lower():
            return content[: m.start()] + content[m.end() :]
        return content
    lines = content.split("\n")
    skip = 0
    for line in lines:
        if line.startswith(("//", "#", "--")) or not line.strip():
            skip += 1
        else:
            break
    return "\n".join(lines[skip:])


def file_stats(content: str) -> dict[str, float]:
    """docs/recipe/github.md: RP line_count, max_line_length, avg_line_length (newlines included), alnum_prop."""
    lines = content.splitlines()
    n = max(len(lines), 1)
    return {
        "line_count": len(lines),
        "max_line_length": max((len(x) for x in lines), default=0),
        "avg_line_length": len(content) / n,
        "alnum_prop": sum(ch.isalnum() for ch in content) / max(len(content), 1),
    }


def count_tokens(content: str) -> int:
    """GPT-2 pre-tokenisation pieces: a lower bound of a GPT-2/NeoX BPE token count."""
    return sum(1 for _ in _GPT2_PIECES.finditer(content))


def alpha_per_token(content: str) -> float:
    tokens = count_tokens(content)
    return sum(ch.isalpha() for ch in content) / tokens if tokens else 0.0


def quality_reason(content: str, stats: dict[str, float], f: dict[str, Any]) -> str | None:
    """docs/recipe/github.md: RP github_run_filter.py, the extension aside."""
    if not content:
        return "empty"
    if stats["max_line_length"] > f["max_line_length"]:
        return "long_lines"
    if stats["avg_line_length"] > f["max_avg_line_length"]:
        return "long_average_line"
    if stats["alnum_prop"] < f["min_alnum_fraction"]:
        return "low_alnum"
    if alpha_per_token(content) < f["min_alpha_per_token"]:
        return "low_alpha_per_token"
    return None


def path_reason(path: str, extensions: list[str]) -> str | None:
    if path.endswith(".crt") or path == "LICENSE":
        return "skipped_path"
    if not path.endswith(tuple(extensions)):
        return "extension_not_allowed"
    return None


def decode_source(data: bytes) -> str | None:
    """The file as text, or None when it is binary (a NUL byte, or not UTF-8)."""
    if b"\x00" in data[:BINARY_SNIFF]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def file_outcome(
    repo: str, path: str, content: str, license_name: str, stages: dict[str, Any], *, where: str
) -> dict[str, Any]:
    """One source file's outcome after the path, header and quality rules (license already passed)."""
    f = stages["filter"]
    reason = path_reason(path, f["extensions"])
    if reason:
        return dropped(SOURCE, reason, where)
    raw_md5 = hashlib.md5(content.encode("utf-8", "surrogatepass")).hexdigest()
    text = clean_copyright_comments(content) if stages["clean"]["remove_headers"] else content
    stats = file_stats(text)
    reason = quality_reason(text, stats, f)
    if reason:
        return dropped(SOURCE, reason, where)
    meta = {
        "repo_name": repo,
        "path": path,
        "license": license_name,
        "content_md5": raw_md5,
        **{k: round(v, 4) for k, v in stats.items()},
    }
    url = f"https://github.com/{repo}/blob/HEAD/{path}" if repo.count("/") == 1 else None
    return kept(make_record(SOURCE, f"{repo}/{path}", text, url=url or f"{repo}/{path}", meta=meta))


def dedup_key(record: dict[str, Any]) -> str:
    """docs/recipe/github.md: exact dedup on md5 of the raw content (before header cleaning)."""
    return json.loads(record["meta"])["content_md5"]


# --- reading ------------------------------------------------------------------------------------


def _walk(root: str) -> Iterator[tuple[str, str, bool]]:
    """(absolute path, path relative to the repository, is a link) of every file, links unfollowed."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for d in list(dirnames):
            if os.path.islink(os.path.join(dirpath, d)):
                dirnames.remove(d)
                yield os.path.join(dirpath, d), os.path.relpath(os.path.join(dirpath, d), root), True
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            yield full, os.path.relpath(full, root), os.path.islink(full)


def repo_licenses(root: str) -> set[str]:
    """License families stated by the repository's license files (root and licenses/ folders)."""
    found = set()
    for full, rel, link in _walk(root):
        parts = rel.split(os.sep)
        if link or not is_license_file(parts[-1]):
            continue
        if len(parts) > 2 or (len(parts) == 2 and parts[0].lower() not in ("licenses", "license", "licences")):
            continue
        try:
            with open(full, "rb") as fh:
                lic = detect_license(fh.read(200_000).decode("utf-8", "replace"))
        except OSError:
            continue
        if lic:
            found.add(lic)
    return found


def read_repo_folder(root: str, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
    repo = os.path.basename(root.rstrip("/"))
    licenses = repo_licenses(root)
    verdict = license_decision(licenses, stages["license"]["allowed"])
    license_name = "+".join(sorted(licenses))
    for full, rel, link in _walk(root):
        where = f"{root}:{rel}"
        rel = rel.replace(os.sep, "/")
        if link:
            yield error(SOURCE, "link", where, "symbolic link not followed")
            continue
        if verdict:
            yield dropped(SOURCE, verdict, where)
            continue
        if path_reason(rel, stages["filter"]["extensions"]):
            yield dropped(SOURCE, path_reason(rel, stages["filter"]["extensions"]), where)
            continue
        if os.path.getsize(full) > MAX_FILE_BYTES:
            yield dropped(SOURCE, "too_large", where)
            continue
        with open(full, "rb") as fh:
            content = decode_source(fh.read())
        if content is None:
            yield dropped(SOURCE, "binary", where)
            continue
        yield file_outcome(repo, rel, content, license_name, stages, where=where)


def _export_rows(piece: Piece) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """(location, row or None, problem) of a JSONL or Parquet export, or of one piece of it (a
    range of row groups, a chunk of lines); locations are the whole file's."""
    path = piece.path
    if strip_compression_suffix(os.path.basename(path)).endswith(".parquet"):
        end = piece.end if piece.kind == "row_groups" else None
        for n, row in iter_parquet(path, piece.start, end):
            yield f"{path}#{n}", row, None
        return
    lines = chunk_lines(path, piece.prepared, piece.start) if piece.kind == "chunks" else iter_jsonl(path)
    for where, _, row, problem in lines:
        yield where, row, problem


def read_export(piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
    allowed = stages["license"]["allowed"]
    for where, row, problem in _export_rows(piece):
        if row is None:
            yield error(SOURCE, "bad_row", where, problem)
            continue
        repo, fpath, content = row.get("repo_name"), row.get("path"), row.get("content")
        if not isinstance(repo, str) or not isinstance(fpath, str):
            yield error(SOURCE, "bad_row", where, "repo_name and path must be strings")
            continue
        fam = license_family(row.get("license"))
        verdict = license_decision({fam} if fam else set(), allowed)
        if verdict:
            yield dropped(SOURCE, verdict, where)
            continue
        if isinstance(content, bytes):
            content = decode_source(content)
        if content is None or not isinstance(content, str) or "\x00" in content[:BINARY_SNIFF]:
            yield dropped(SOURCE, "binary", where)
            continue
        if len(content.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
            yield dropped(SOURCE, "too_large", where)
            continue
        yield file_outcome(repo, fpath, content, fam, stages, where=where)


def read_github(piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if not is_remote(piece.path) and os.path.isdir(piece.path):
        yield from read_repo_folder(piece.path, stages)
    else:
        yield from read_export(piece, stages)


# --- the source ------------------------------------------------------------------------------

# docs/recipe/github.md: RedPajama github_run_filter.py extension whitelist (case-sensitive endswith).
GITHUB_EXTENSIONS = (
    ".asm",
    ".bat",
    ".cmd",
    ".c",
    ".h",
    ".cs",
    ".cpp",
    ".hpp",
    ".c++",
    ".h++",
    ".cc",
    ".hh",
    ".C",
    ".H",
    ".cmake",
    ".css",
    ".dockerfile",
    ".f90",
    ".f",
    ".f03",
    ".f08",
    ".f77",
    ".f95",
    ".for",
    ".fpp",
    ".go",
    ".hs",
    ".html",
    ".java",
    ".js",
    ".jl",
    ".lua",
    ".md",
    ".markdown",
    ".php",
    ".php3",
    ".php4",
    ".php5",
    ".phps",
    ".phpt",
    ".pl",
    ".pm",
    ".pod",
    ".perl",
    ".ps1",
    ".psd1",
    ".psm1",
    ".py",
    ".rb",
    ".rs",
    ".sql",
    ".scala",
    ".sh",
    ".bash",
    ".command",
    ".zsh",
    ".ts",
    ".tsx",
    ".tex",
    ".vb",
    "Dockerfile",
    "Makefile",
    ".xml",
    ".rst",
    ".m",
    ".smali",
)


OPTIONS = {
    "license": {
        "allowed": Option(["mit", "bsd", "apache"], "str_list", "LLaMA kept Apache, BSD, MIT"),
    },
    "clean": {
        "remove_headers": Option(True, "bool", "RP clean_copyright_comments"),
    },
    "filter": {
        "extensions": Option(list(GITHUB_EXTENSIONS), "str_list", "RP extension whitelist"),
        "max_line_length": Option(1000, "int", "RP github_run_filter.py max_line_length"),
        "max_avg_line_length": Option(100, "float", "RP avg_line_length"),
        "min_alnum_fraction": Option(0.25, "float", "RP alnum_prop", maximum=1.0),
        "min_alpha_per_token": Option(1.5, "float", "RP num_alpha / num_tokens"),
    },
}


class GitHub(Source):
    name = SOURCE
    options = OPTIONS
    # §2.1 GitHub: "we removed duplicates at the file level, with exact matches".
    common_defaults = {"exact_dedup": {"enabled": True}}

    def split(self, path: str, size: int, stages: dict[str, Any], piece_size: int) -> list[Piece]:
        """A big export: Parquet by row groups, JSON lines by the chunks of one decompressing pass."""
        return parquet_pieces(path, size, piece_size) or jsonl_pieces(path, size, piece_size)

    def read(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return read_github(piece, stages)

    def content_key(self, record: dict[str, Any]) -> str:
        return dedup_key(record)

"""What a source's inputs are: local paths and globs, any Beam filesystem, http(s):// URLs and paths
lists (a crawl's `wet.paths.gz`), matched to (path, bytes) pairs. A pattern that matches nothing is
a configuration error, named with its manifest field; a remote input that cannot be reached is one
line saying what to install or set.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from typing import Any

from corral.core.fs import is_remote
from corral.core.fs import match as fs_match
from corral.pipeline.inputs.streams import open_input


class InputError(ValueError):
    """An input pattern is unusable as a whole (matches nothing): a configuration error."""


def _local_size(path: str) -> int:
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(d, f))
            for d, _, files in os.walk(path)
            for f in files
            if os.path.isfile(os.path.join(d, f))
        )
    return os.path.getsize(path)


# What a scheme needs beyond corral's own dependencies, said when reading it fails.
SCHEME_NEEDS = {
    "s3": "s3:// needs the aws extra (pip install -e '.[aws]') and AWS credentials (AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or a profile); CommonCrawl is served over HTTPS too: "
    "https://data.commoncrawl.org/crawl-data/…",
    "gs": "gs:// needs apache-beam[gcp] (pip install 'apache-beam[gcp]==2.77.*') and Google credentials "
    "(gcloud auth application-default login)",
    "hdfs": "hdfs:// needs Beam's HDFS options (--hdfs_host, --hdfs_port) and the hdfs package",
}


def remote_problem(pattern: str, e: Exception) -> str:
    """One line on why a remote input cannot be matched or read, with what to install or set."""
    scheme = pattern.split("://", 1)[0].lower()
    detail = getattr(e, "exception_details", None)  # BeamIOError: {pattern: the filesystem's exception}
    cause = next(iter(detail.values())) if isinstance(detail, dict) and detail else e
    text = f"{type(cause).__name__}: {cause}".splitlines()[0][:300]
    return f"{SCHEME_NEEDS[scheme]} ({text})" if scheme in SCHEME_NEEDS else text


def paths_list_problem(field: str, where: str, e: Exception) -> InputError:
    """The one-line error for a paths list that cannot be read."""
    if isinstance(e, FileNotFoundError):
        return InputError(f"{field}.paths: {where!r}: no such paths list ({e})")
    return InputError(f"{field}.paths: {where!r} cannot be read ({type(e).__name__}: {e})")


def read_paths_list(spec: dict, field: str = "inputs[0]") -> list[str]:
    """The files a paths list names: its lines (blank lines and `#` comments skipped), every
    `every`-th of them, the first `limit`, each joined to `base` (default: the list's folder)
    unless it is already absolute or a URL. The list is read whole: a crawl's holds ~90,000 lines."""
    where = spec["paths"]
    try:
        with open_input(where) as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise paths_list_problem(field, where, e) from e
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    chosen = lines[:: spec.get("every") or 1][: spec.get("limit")]
    base = spec.get("base") or where.rsplit("/", 1)[0]
    return [ln if "://" in ln or os.path.isabs(ln) else f"{base.rstrip('/')}/{ln.lstrip('/')}" for ln in chosen]


def match_inputs(patterns: Iterable[str | dict], field: str = "inputs") -> list[tuple[str, int]]:
    """(path, bytes) of everything the patterns match (files, and folders for sources that take
    folders), sorted; a pattern that matches nothing is a configuration error. A paths list's files
    are taken as listed, unchecked (size 0 where unknown without a request each): one that is
    missing is that file's counted error when it is read."""
    out: dict[str, int] = {}
    for i, pattern in enumerate(patterns):
        if isinstance(pattern, dict):
            files = read_paths_list(pattern, f"{field}[{i}]")
            if not files:
                raise InputError(f"{field}[{i}].paths: {pattern['paths']!r} lists no file")
            out.update({p: (os.path.getsize(p) if not is_remote(p) and os.path.isfile(p) else 0) for p in files})
            continue
        if is_remote(pattern):
            try:
                found = dict(fs_match(pattern))
            except Exception as e:  # Beam wraps every filesystem's failure differently: name the input
                raise InputError(f"{field}[{i}]: {pattern!r}: {remote_problem(pattern, e)}") from e
        else:
            found = {p: _local_size(p) for p in glob.glob(pattern, recursive=True)}
        if not found:
            raise InputError(f"{field}[{i}]: {pattern!r} matches no file")
        out.update(found)
    return sorted(out.items())


def input_counts(resolved: list[str | dict], field: str) -> list[dict[str, Any]]:
    """Per resolved input: what it is, and how many files it expands to (or why it cannot)."""
    out = []
    for i, item in enumerate(resolved):
        shown = item if isinstance(item, str) else f"paths list {item['paths']}"
        try:
            out.append({"input": shown, "files": len(match_inputs([item], f"{field}[{i}]"))})
        except (InputError, OSError, ValueError) as e:  # a glob matching nothing, an unreachable list
            out.append({"input": shown, "files": None, "problem": str(e)})
    return out

"""Resumable builds: what a source's outputs depend on, and what an earlier run left that still holds.

- A source's fingerprint hashes corral's version, its stage settings, the output settings, its input
  files (path, size, and modification time when local) and, for CommonCrawl with side models trained
  on Wikipedia, Wikipedia's own fingerprint.
- A finished source leaves `OUT/_build/<source>/finished.json` with its fingerprint: a rerun with
  the same fingerprint, whose shards are all there, reuses the source whole.
- An unfinished source keeps its per-item completion records while its fingerprint holds (a killed
  build resumes file by file); a changed fingerprint clears its working folder and outputs first.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from corral import fs
from corral.pipeline.phases import work_dir

FINISHED = "finished.json"
FINGERPRINT = "fingerprint.json"


def fingerprint(
    stages: dict[str, Any],
    output: dict[str, Any],
    source: str,
    paths: list[tuple[str, int]],
    depends: str | None = None,
) -> str:
    from corral import __version__

    files = []
    for path, size in paths:
        mtime = os.stat(path).st_mtime_ns if not fs.is_remote(path) and os.path.exists(path) else None
        files.append([path, size, mtime])
    body = {
        "corral": __version__,
        "source": source,
        "stages": stages,
        "output": output,
        "inputs": files,
        "depends": depends,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _read(path: str) -> Any:
    try:
        return json.loads(fs.read_bytes(path))
    except (OSError, ValueError):
        return None


def finished_record(out: str, source: str) -> dict[str, Any] | None:
    return _read(fs.join(work_dir(out, source), FINISHED))


def finished(out: str, source: str, print_: str) -> bool:
    """Whether an earlier run finished this source with the same fingerprint and its shards are there."""
    done = finished_record(out, source)
    if not done or done.get("fingerprint") != print_:
        return False
    for shard in done["build"]["shards"]:  # paths relative to OUT: a moved build resumes
        path = fs.join(out, shard["path"])
        if not fs.exists(path) or fs.size(path) != shard["bytes"]:
            return False
    return True


def prepare(out: str, source: str, print_: str) -> bool:
    """Ready a source that is not finished for its build; True when an interrupted run's work
    (same fingerprint) is kept to resume from."""
    folder = work_dir(out, source)
    mark = _read(fs.join(folder, FINGERPRINT))
    if mark and mark.get("fingerprint") == print_ and finished_record(out, source) is None:
        return True
    fs.remove([folder, fs.join(out, f"docs/{source}"), fs.join(out, f"errors/{source}")])
    fs.atomic_write_bytes(fs.join(folder, FINGERPRINT), json.dumps({"fingerprint": print_}).encode("utf-8"))
    return False


def mark_finished(out: str, source: str, print_: str, build: dict[str, Any]) -> None:
    fs.atomic_write_bytes(
        fs.join(work_dir(out, source), FINISHED),
        json.dumps({"fingerprint": print_, "build": build}, ensure_ascii=False).encode("utf-8"),
    )

"""Resumable jobs: what a unit's outputs depend on, and what an earlier run left that still holds.

A unit (a source of a build) has a folder of its own (`<root>/<unit>`, corral.engine.records):
- Its fingerprint hashes corral's version, the unit's settings and its input files (path, size, and
  modification time when local).
- A finished unit leaves `finished.json` there with its fingerprint and its result: a rerun with the
  same fingerprint reuses the result (when the caller finds its outputs still there).
- An unfinished unit keeps its completion records while its fingerprint holds (a killed job resumes
  item by item); a changed fingerprint clears its folder and outputs first.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from corral.core import fs

FINISHED = "finished.json"
FINGERPRINT = "fingerprint.json"


def fingerprint(settings: dict[str, Any], inputs: list[tuple[str, int]]) -> str:
    """A unit's fingerprint: corral's version, its settings and its input files."""
    from corral import __version__

    files = []
    for path, size in inputs:
        mtime = os.stat(path).st_mtime_ns if not fs.is_remote(path) and os.path.exists(path) else None
        files.append([path, size, mtime])
    body = {"corral": __version__, "settings": settings, "inputs": files}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _read(path: str) -> Any:
    try:
        return json.loads(fs.read_bytes(path))
    except (OSError, ValueError):
        return None


def finished_result(folder: str, print_: str | None = None) -> dict[str, Any] | None:
    """What a finished unit recorded (with this fingerprint, when one is given), or None."""
    done = _read(fs.join(folder, FINISHED))
    if not done or (print_ is not None and done.get("fingerprint") != print_):
        return None
    return done.get("result")


def prepare(folder: str, print_: str, outputs: list[str]) -> bool:
    """Ready an unfinished unit for its run; True when an interrupted run's work (same
    fingerprint) is kept to resume from. Otherwise the folder and `outputs` are cleared first."""
    mark = _read(fs.join(folder, FINGERPRINT))
    if mark and mark.get("fingerprint") == print_ and finished_result(folder) is None:
        return True
    fs.remove([folder, *outputs])
    fs.atomic_write_bytes(fs.join(folder, FINGERPRINT), json.dumps({"fingerprint": print_}).encode("utf-8"))
    return False


def mark_finished(folder: str, print_: str, result: dict[str, Any]) -> None:
    fs.atomic_write_bytes(
        fs.join(folder, FINISHED), json.dumps({"fingerprint": print_, "result": result}, ensure_ascii=False).encode()
    )

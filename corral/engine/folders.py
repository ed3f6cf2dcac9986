"""Output folders that are never silently reused by another build or dedup job.

A build folder belongs to the mixture named in it (OUT/_build/owner.json, written before anything
else, and OUT/manifest.json once the build has finished). The same mixture name resumes it and
rebuilds only the sources whose settings or inputs changed; another name is refused with one line
naming the folder and the choices, and nothing in the folder is touched. `--overwrite` clears
corral's entries first. A folder holding anything that corral does not write is refused always:
`--overwrite` never deletes files it did not make.
"""

from __future__ import annotations

import json

from corral.core import fs

BUILD_DIR = "_build"  # OUT/_build: a job's working files and completion records
OWNER = "owner.json"  # OUT/_build/owner.json: {"kind": "build" | "dedup", "name": …}
# Top-level entries corral writes into a build or dedup folder (and `--overwrite` may clear).
ENTRIES = {
    "manifest.json",
    "docs",
    "tokens",
    "errors",
    "models",
    "tokenizer",
    "report.html",
    "clusters.arrow",
    "removed.jsonl",
    "errors.jsonl",
    "examples",
    "near",  # the kept documents' band tables (corral.pipeline.rounds.against)
    BUILD_DIR,
    "_tokenize",
}


class FolderInUse(ValueError):
    """The output folder holds another build or job, or files corral did not write."""


def _owner_path(out: str) -> str:
    return fs.join(out, f"{BUILD_DIR}/{OWNER}")


def owner(out: str) -> dict | None:
    """Who the folder belongs to ({"kind", "name"}): its owner record, or what its finished
    manifest names."""
    for path, pick in ((_owner_path(out), lambda d: d), (fs.join(out, "manifest.json"), _from_manifest)):
        try:
            return pick(json.loads(fs.read_bytes(path)))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _from_manifest(data: dict) -> dict:
    mixture = data["mixture"]
    kind = "dedup" if mixture.get("name") == "dedup" and "dedup" in data.get("settings", {}) else "build"
    return {"kind": kind, "name": mixture["name"] if kind == "build" else data["settings"]["dedup"].get("fingerprint")}


def claim(out: str, kind: str, name: str, *, flag: str, overwrite: bool, what: str, redo: str) -> None:
    """Refuse `out` unless it is new, empty, or already this `kind` and `name`; with `overwrite`,
    clear corral's entries of another one. Then record the claim. `what` names the claimant in
    messages; `redo` says how to continue the folder's own build or job."""
    foreign = [n for n in fs.list_entries(out) if n not in ENTRIES]
    if foreign:
        raise FolderInUse(
            f"{flag} {out} holds files corral did not write ({', '.join(foreign[:3])}"
            f"{', …' if len(foreign) > 3 else ''}): choose a new or empty folder"
        )
    held = owner(out)
    if held and (held.get("kind"), held.get("name")) != (kind, name):
        if not overwrite:
            mine = (
                f"{held.get('kind')} {held.get('name')!r}"
                if held.get("kind") == "build"
                else f"a {held.get('kind')} job of other inputs or settings"
            )
            raise FolderInUse(
                f"{flag} {out} holds {mine}, not {what}: {redo}, choose a new {flag}, or pass --overwrite to clear it"
            )
        clear(out)
    fs.atomic_write_bytes(_owner_path(out), json.dumps({"kind": kind, "name": name}).encode("utf-8"))


def clear(out: str) -> None:
    """Remove every entry corral writes into a build or dedup folder."""
    fs.remove([fs.join(out, n) for n in sorted(ENTRIES)])

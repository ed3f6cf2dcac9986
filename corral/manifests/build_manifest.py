"""The build manifest, `OUT/manifest.json`: the one file `inspect`, `tokenize`, `train` and `verify` read.

It records the mixture the build came from, the resolved settings of every stage, and per source:
`weight`, `documents`, `bytes` (UTF-8 bytes of the kept documents' text), `tokens` (once tokenized),
the `funnel` (records read from the raw inputs, kept, dropped per reason, errors per reason), the
document `shards` and `token_shards` (each `path` relative to OUT, `sha256`, `documents`, `bytes`);
and `models`: the side models the build trained or used, each with `path` and `sha256`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from corral import __version__
from corral.core.errors import UsageError
from corral.core.fs import atomic_write_bytes, is_remote, join, read_bytes
from corral.core.outcome import Funnel
from corral.core.shards import ShardInfo

BUILD_FORMAT = "corral.build/1"  # bump when the manifest's meaning changes
MANIFEST_NAME = "manifest.json"


class BuildManifestError(UsageError):
    """A build manifest is missing or malformed."""


@dataclass
class SourceBuild:
    weight: float
    documents: int = 0
    bytes: int = 0
    tokens: int | None = None
    funnel: Funnel = field(default_factory=Funnel)
    shards: list[dict[str, Any]] = field(default_factory=list)
    token_shards: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Every field in its order, the funnel as its own dict."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "funnel": self.funnel.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SourceBuild:
        return cls(
            weight=float(d["weight"]),
            documents=int(d.get("documents", 0)),
            bytes=int(d.get("bytes", 0)),
            tokens=None if d.get("tokens") is None else int(d["tokens"]),
            funnel=Funnel.from_dict(d.get("funnel") or {}),
            shards=list(d.get("shards") or []),
            token_shards=list(d.get("token_shards") or []),
        )


@dataclass
class BuildManifest:
    mixture: dict[str, Any]
    settings: dict[str, Any]
    sources: dict[str, SourceBuild]
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)  # how the build ran: time, tasks, bytes shuffled
    format: str = BUILD_FORMAT
    corral_version: str = __version__
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    @property
    def target_tokens(self) -> int:
        return int(self.mixture.get("target_tokens") or 0)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's JSON: what it is first (format, version, time), then what it records."""
        head = {"format": self.format, "corral_version": self.corral_version, "created": self.created}
        sources = {n: s.to_dict() for n, s in self.sources.items()}
        body = {"mixture": self.mixture, "settings": self.settings, "sources": sources}
        return {**head, **body, "models": self.models, "stats": self.stats}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = MANIFEST_NAME) -> BuildManifest:
        fmt = d.get("format")
        if fmt != BUILD_FORMAT:
            raise BuildManifestError(f"{where}: format is {fmt!r}, this corral reads {BUILD_FORMAT!r}")
        for key in ("mixture", "settings", "sources"):
            if not isinstance(d.get(key), dict):
                raise BuildManifestError(f"{where}: field {key!r} is missing or not an object")
        try:
            sources = {n: SourceBuild.from_dict(s) for n, s in d["sources"].items()}
        except (KeyError, TypeError, ValueError) as e:
            raise BuildManifestError(f"{where}: malformed sources entry ({e})") from e
        return cls(
            mixture=dict(d["mixture"]),
            settings=dict(d["settings"]),
            sources=sources,
            models=dict(d.get("models") or {}),
            stats=dict(d.get("stats") or {}),
            format=fmt,
            corral_version=str(d.get("corral_version", "")),
            created=str(d.get("created", "")),
        )

    # --- files ----------------------------------------------------------------------------
    def save(self, out_dir: str) -> str:
        """Write OUT/manifest.json atomically; return the file's sha256."""
        return atomic_write_bytes(join(out_dir, MANIFEST_NAME), self.to_json().encode("utf-8"))


def relative_shard(info: ShardInfo, out_dir: str) -> dict[str, Any]:
    """A shard entry for the manifest, with its path relative to OUT."""
    d = info.to_dict()
    prefix = out_dir.rstrip("/") + "/"
    if is_remote(out_dir):
        if d["path"].startswith(prefix):
            d["path"] = d["path"][len(prefix) :]
    else:
        d["path"] = os.path.relpath(os.path.abspath(d["path"]), os.path.abspath(out_dir))
    return d


def manifest_path(path: str) -> str:
    """OUT/manifest.json for a build folder, or the path itself when it names the file."""
    if path.endswith(".json"):
        return path
    return join(path, MANIFEST_NAME)


def load_build(path: str) -> BuildManifest:
    """Load a build manifest from a build folder (or the manifest file itself)."""
    mp = manifest_path(path)
    try:
        data = read_bytes(mp)
    except OSError as e:
        raise BuildManifestError(f"{mp}: cannot read the build manifest ({e})") from e
    try:
        d = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BuildManifestError(f"{mp}: not valid JSON ({e})") from e
    if not isinstance(d, dict):
        raise BuildManifestError(f"{mp}: must be a JSON object")
    return BuildManifest.from_dict(d, mp)


def manifest_sha256(path: str) -> str:
    """sha256 of OUT/manifest.json (training checkpoints record it to refuse a different build)."""
    return hashlib.sha256(read_bytes(manifest_path(path))).hexdigest()


def build_dir(path: str) -> str:
    """The build folder for a path that names the folder or its manifest.json."""
    if path.endswith(".json"):
        return path.rsplit("/", 1)[0] if "/" in path else "."
    return path

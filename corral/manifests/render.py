"""`corral inspect`: Table 1 (sampling proportion, epochs, disk size, documents, tokens) and each
source's funnel, for a mixture manifest (before a build) or a build folder (after one)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from corral.manifests.build_manifest import BuildManifest, load_build
from corral.manifests.mixture import Mixture, load_mixture
from corral.manifests.mixture_math import epochs, seen_tokens
from corral.manifests.options import SourceOptions
from corral.manifests.table1 import display, table_order


def is_mixture_path(path: str) -> bool:
    return path.endswith((".yaml", ".yml")) or (os.path.isfile(path) and not path.endswith(".json"))


def inspect_data(path: str, sources: Sequence[SourceOptions]) -> dict[str, Any]:
    """The inspect result as data: {"kind", "name", "target_tokens", "sources": {name: {...}}}; a
    mixture manifest is read with the `sources` it may name. A source may also carry "inputs"
    ({"input", "files", "problem"} each; the CLI's `--files` adds them, since expanding inputs is
    the pipeline layer's job), which the table and JSON show."""
    if is_mixture_path(path):
        return _from_mixture(load_mixture(path, sources))
    return _from_build(load_build(path), path)


def _from_mixture(m: Mixture) -> dict[str, Any]:
    sources = {}
    for name in table_order(m.sources):
        s = m.sources[name]
        sources[name] = {
            "weight": s.weight,
            "epochs": None,
            "disk_bytes": None,
            "documents": None,
            "tokens": None,
            "seen_tokens": seen_tokens(s.weight, m.target_tokens),
            "funnel": None,
        }
    return {"kind": "mixture", "name": m.name, "path": m.path, "target_tokens": m.target_tokens, "sources": sources}


def _from_build(b: BuildManifest, path: str) -> dict[str, Any]:
    target = b.target_tokens
    sources = {}
    for name in table_order(b.sources):
        s = b.sources[name]
        sources[name] = {
            "weight": s.weight,
            "epochs": epochs(s.weight, target, s.tokens),
            "disk_bytes": s.bytes,
            "documents": s.documents,
            "tokens": s.tokens,
            "seen_tokens": seen_tokens(s.weight, target),
            "funnel": s.funnel.to_dict(),
        }
    return {"kind": "build", "name": b.mixture.get("name"), "path": path, "target_tokens": target, "sources": sources}


_SCALES = (1e12, 1e9, 1e6, 1e3)


def _human(n: float | None, units: tuple[str, ...], space: str) -> str:
    """n with one decimal in the largest unit it reaches (units: for 1e12 … 1e3, then ones)."""
    if n is None:
        return ""
    for div, unit in zip(_SCALES, units):
        if abs(n) >= div:
            return f"{n / div:.1f}{space}{unit}"
    return f"{n:.0f}{space}{units[-1]}".rstrip()


def human_count(n: float | None) -> str:
    return _human(n, ("T", "B", "M", "K", ""), "")


def human_bytes(n: float | None) -> str:
    return _human(n, ("TB", "GB", "MB", "KB", "B"), " ")


def render_table(data: dict[str, Any]) -> str:
    head = ["Dataset", "Sampling prop.", "Epochs", "Disk size", "Documents", "Tokens", "Seen tokens"]
    rows = [head]
    for name, s in data["sources"].items():
        rows.append(
            [
                display(name),
                f"{s['weight'] * 100:.1f}%",
                "" if s["epochs"] is None else f"{s['epochs']:.2f}",
                human_bytes(s["disk_bytes"]),
                "" if s["documents"] is None else f"{s['documents']:,}",
                human_count(s["tokens"]),
                human_count(s["seen_tokens"]),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        f"{data['kind']} {data['name']!r} ({data['path']}), target {human_count(data['target_tokens'])} tokens",
        "",
    ]
    for j, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    listed = [(n, s["inputs"]) for n, s in data["sources"].items() if s.get("inputs")]
    if listed:
        lines += ["", "Inputs (files each expands to)"]
        for name, inputs in listed:
            for entry in inputs:
                count = f"{entry['files']:,} file(s)" if entry["files"] is not None else f"unusable: {entry['problem']}"
                lines.append(f"  {display(name)}: {entry['input']}: {count}")
    funnels = [(n, s["funnel"]) for n, s in data["sources"].items() if s["funnel"]]
    if funnels:
        lines += ["", "Funnel (records read from the raw inputs → kept; dropped and errors by reason)"]
        for name, f in funnels:
            lines.append(f"  {display(name)}: input {f['input']:,} → kept {f['kept']:,}")
            for label, key in (("dropped", "dropped"), ("errors", "errors")):
                if f[key]:
                    parts = ", ".join(f"{r} {n:,}" for r, n in sorted(f[key].items(), key=lambda kv: -kv[1]))
                    lines.append(f"    {label}: {parts}")
            accounted = f["kept"] + sum(f["dropped"].values()) + sum(f["errors"].values())
            if accounted != f["input"]:
                lines.append(f"    does not add up: kept + dropped + errors = {accounted:,}")
    return "\n".join(lines)


def inspect_json(data: dict[str, Any]) -> dict[str, Any]:
    keys = ("weight", "epochs", "disk_bytes", "documents", "tokens", "funnel", "seen_tokens")
    return {
        "kind": data["kind"],
        "name": data["name"],
        "target_tokens": data["target_tokens"],
        "sources": {n: {k: s[k] for k in (*keys, "inputs") if k in s} for n, s in data["sources"].items()},
    }

"""`corral report OUT`: OUT/report.html, one self-contained page about a build (and its training run).

Charts (matplotlib, Agg backend; each embedded as a base64 PNG, so the file stands alone):
the funnel per source (kept and each drop/error reason as bars), the language distribution of the
kept documents, CommonCrawl's perplexity histogram with the bucket cutoffs the build recorded
(OUT/models/perplexity_cutoffs.json), the quality-score
distribution with the classifier's threshold, near-duplicate cluster sizes, document lengths per
source, the mixture realised (the build's tokens and the run's tokens seen per source against
Table 1), epochs per source in training (flagging heavy repetition), stage times, and training
curves (loss, validation loss per source) when a run directory with `metrics.jsonl` is given or
found at OUT/../run. Tables give the stage throughput, a few documents each drop reason removed
(OUT/examples/<source>.json) and the dead letters (OUT/errors/<source>/errors.jsonl). Each chart's <img> carries
`data-chart`; an inline script records in `document.body.dataset.charts` how many images decoded,
which the headless-browser test reads.
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter, defaultdict
from typing import Any

import pyarrow.compute as pc

from corral.core.fs import atomic_write_bytes, join, read_bytes
from corral.core.shards import iter_batches
from corral.manifests.build_manifest import BuildManifest, load_build
from corral.manifests.mixture import mixture_weights, shipped_manifest
from corral.manifests.table1 import display
from corral.report.charts import Inputs, task_seconds
from corral.report.charts import charts as chart_images

MAX_DOCS_PER_SOURCE = 200_000  # documents read per source for the distributions (bounded memory)
DEAD_LETTERS_SHOWN = 5  # dead letters listed per source (all are in OUT/errors/<source>/errors.jsonl)
EXAMPLE_SHOWN = 240  # characters of a dropped example shown
COLUMNS = ["lang", "perplexity", "bucket", "quality", "dup_count"]  # read as Python values; text only as lengths


def paper_weights() -> dict[str, float]:
    """LLaMA-1's Table 1 sampling proportions, as manifests/llama1.yaml writes them."""
    return mixture_weights(shipped_manifest("llama1.yaml"))


def _batches(out: str, shards: list[dict[str, Any]]):
    """A source's document batches, stopping after MAX_DOCS_PER_SOURCE rows (nothing more is read)."""
    left = MAX_DOCS_PER_SOURCE
    for shard in shards:
        for batch in iter_batches(join(out, shard["path"])):
            if left <= 0:
                return
            batch = batch.slice(0, left)
            left -= batch.num_rows
            yield batch


def _stats(out: str, manifest: BuildManifest) -> dict[str, Any]:
    """One streaming pass over the document shards, keeping only small per-source summaries."""
    s: dict[str, Any] = {
        "lang": defaultdict(Counter),
        "length": defaultdict(list),
        "perplexity": [],
        "quality": [],
        "dup": Counter(),
    }
    for name, sb in manifest.sources.items():
        for batch in _batches(out, sb.shards):
            cols = {c: batch.column(c).to_pylist() for c in COLUMNS if c in batch.schema.names}
            s["length"][name] += pc.utf8_length(batch.column("text")).to_pylist()
            for i in range(batch.num_rows):
                s["lang"][name][cols["lang"][i] or "unknown"] += 1
                if cols.get("perplexity") and cols["perplexity"][i] is not None:
                    s["perplexity"].append((cols["perplexity"][i], cols["bucket"][i]))
                if cols.get("quality") and cols["quality"][i] is not None:
                    s["quality"].append(cols["quality"][i])
                if cols.get("dup_count") and cols["dup_count"][i]:
                    s["dup"][int(cols["dup_count"][i])] += 1
    return s


def _metrics(run_dir: str | None) -> list[dict] | None:
    if not run_dir:
        return None
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        return None
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a killed run
    return rows or None


def _table(manifest: BuildManifest, paper: dict[str, float]) -> str:
    rows = []
    for name, sb in manifest.sources.items():
        f = sb.funnel
        rows.append(
            f"<tr><td>{html.escape(display(name))}</td><td>{sb.weight * 100:.1f}%</td>"
            f"<td>{paper.get(name, 0) * 100:.1f}%</td><td>{f.input:,}</td><td>{f.kept:,}</td>"
            f"<td>{sum(f.dropped.values()):,}</td><td>{sum(f.errors.values()):,}</td>"
            f"<td>{sb.bytes:,}</td><td>{'' if sb.tokens is None else f'{sb.tokens:,}'}</td></tr>"
        )
    return (
        "<table><tr><th>source</th><th>weight</th><th>Table 1</th><th>input</th><th>kept</th><th>dropped</th>"
        "<th>errors</th><th>bytes</th><th>tokens</th></tr>" + "".join(rows) + "</table>"
    )


def _stage_table(manifest: BuildManifest) -> str:
    rows = []
    for name, sb in manifest.sources.items():
        took = sum(task_seconds(manifest, name).values())
        cells = (
            [f"{took:,.1f}", f"{sb.funnel.input:,}", f"{sb.funnel.input / took:,.0f}", f"{sb.bytes / took / 1e6:,.2f}"]
            if took
            else ["", f"{sb.funnel.input:,}", "", ""]
        )
        rows.append(f"<tr><td>{html.escape(display(name))}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    wall = manifest.stats.get("seconds")
    return (
        "<table><tr><th>source</th><th>task seconds</th><th>input records</th><th>records / task second</th>"
        "<th>kept MB / task second</th></tr>"
        + "".join(rows)
        + "</table>"
        + (f"<p>Build wall time {wall:,.1f} s (sources reused from an earlier run count 0).</p>" if wall else "")
    )


def _examples_section(out: str, manifest: BuildManifest) -> str:
    """A few documents each drop reason removed (OUT/examples/<source>.json), escaped."""
    parts = []
    for name, sb in manifest.sources.items():
        path = join(out, f"examples/{name}.json")
        try:
            examples = json.loads(read_bytes(path))
        except (OSError, ValueError):
            examples = {}
        rows = []
        for reason, n in sorted(sb.funnel.dropped.items(), key=lambda kv: -kv[1]):
            shown = examples.get(reason) or []
            cell = (
                "".join(
                    f"<div class='ex'><b>{html.escape(str(i))}</b>: {html.escape(t[:EXAMPLE_SHOWN])}"
                    f"{'…' if len(t) > EXAMPLE_SHOWN else ''}</div>"
                    for i, t in shown
                )
                or "<i>no example recorded for this reason</i>"
            )
            rows.append(f"<tr><td>{html.escape(reason)}</td><td>{n:,}</td><td class='l'>{cell}</td></tr>")
        if rows:
            parts.append(
                f"<h3>{html.escape(display(name))}</h3><table><tr><th>reason</th><th>dropped</th>"
                f"<th>examples</th></tr>{''.join(rows)}</table>"
            )
    return "<h2 id='examples'>What each drop reason removed</h2>" + ("".join(parts) or "<p>Nothing was dropped.</p>")


def _dead_letters(out: str, manifest: BuildManifest) -> str:
    parts = []
    for name, sb in manifest.sources.items():
        if not sum(sb.funnel.errors.values()):
            continue
        path = join(out, f"errors/{name}/errors.jsonl")
        try:
            lines = read_bytes(path).decode("utf-8").splitlines()[:DEAD_LETTERS_SHOWN]
        except OSError:
            lines = []
        counts = ", ".join(f"{r} {n:,}" for r, n in sorted(sb.funnel.errors.items()))
        items = "".join(f"<li><code>{html.escape(ln[:300])}</code></li>" for ln in lines)
        parts.append(
            f"<h3>{html.escape(display(name))}: {html.escape(counts)}</h3><ul>{items}</ul>"
            f"<p>All of them: <code>{html.escape(path)}</code></p>"
        )
    return "<h2 id='dead-letters'>Dead letters</h2>" + ("".join(parts) or "<p>No input failed to read.</p>")


CSS = (
    "body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "td:first-child{text-align:left}td.l{text-align:left;font-size:12px}.ex{margin:2px 0}"
    "img{max-width:100%;display:block;margin:0.5em 0 1.5em}"
)
SCRIPT = (
    "window.addEventListener('load',function(){var imgs=document.querySelectorAll('img[data-chart]');"
    "var ok=0;imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0)ok++;});"
    "document.body.dataset.charts=ok+'/'+imgs.length;});"
)


def write_report(out: str, run_dir: str | None = None, path: str | None = None) -> str:
    """Write the report of build OUT (and of `run_dir`'s training, if any); returns its path."""
    manifest = load_build(out)
    if run_dir is None and os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(out)), "run", "metrics.jsonl")):
        run_dir = os.path.join(os.path.dirname(os.path.abspath(out)), "run")
    metrics = _metrics(run_dir)
    paper = paper_weights()
    charts = chart_images(Inputs(manifest, _stats(out, manifest), metrics, paper))
    name = html.escape(str(manifest.mixture.get("name", "build")))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>corral report: {name}</title>",
        f"<style>{CSS}</style></head><body><h1>corral build report: {name}</h1>",
        f"<p>{html.escape(os.path.abspath(out))}; created {html.escape(str(manifest.created))}; "
        f"target {manifest.target_tokens:,} tokens"
        + (f"; training run {html.escape(run_dir)}" if metrics else "")
        + "</p>",
        _table(manifest, paper),
    ]
    for key, title, data in charts:
        parts.append(
            f"<h2>{html.escape(title)}</h2><img data-chart='{key}' alt='{html.escape(title)}' "
            f"src='data:image/png;base64,{data}'>"
        )
    parts.append("<h2 id='stage-times'>Stage times and throughput</h2>" + _stage_table(manifest))
    parts.append(_examples_section(out, manifest))
    parts.append(_dead_letters(out, manifest))
    parts.append(f"<script>{SCRIPT}</script></body></html>\n")
    path = path or join(out, "report.html")
    atomic_write_bytes(path, "".join(parts).encode("utf-8"))
    return path

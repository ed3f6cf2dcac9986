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

import base64
import html
import io
import json
import math
import os
from collections import Counter, defaultdict
from typing import Any

import pyarrow.compute as pc

from corral.fs import atomic_write_bytes, read_bytes
from corral.manifests.build import BuildManifest, join, load_build
from corral.manifests.mixture import load_mixture, shipped_manifest
from corral.shards import iter_batches
from corral.source_specs import display

MAX_DOCS_PER_SOURCE = 200_000  # documents read per source for the distributions (bounded memory)
HEAVY_EPOCHS = 4  # Muennighoff et al. 2023 (Scaling Data-Constrained LMs): up to ~4 epochs cost little
DEAD_LETTERS_SHOWN = 5  # dead letters listed per source (all are in OUT/errors/<source>/errors.jsonl)
EXAMPLE_SHOWN = 240  # characters of a dropped example shown
COLUMNS = ["lang", "perplexity", "bucket", "quality", "dup_count"]  # read as Python values; text only as lengths


def paper_weights() -> dict[str, float]:
    """LLaMA-1's Table 1 sampling proportions, as manifests/llama1.yaml writes them."""
    return {name: src.weight for name, src in load_mixture(shipped_manifest("llama1.yaml")).sources.items()}


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


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _integer_axis(axis) -> None:
    """Counts are whole numbers: ticks only at integers."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this build", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _charts(
    manifest: BuildManifest, stats: dict[str, Any], metrics: list[dict] | None, paper: dict[str, float]
) -> list[tuple[str, str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts: list[tuple[str, str, str]] = []
    names = [n for n in paper if n in manifest.sources] + [n for n in manifest.sources if n not in paper]

    # 1. funnel per source
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.2 + 1.1 * max(1, len(names)) * 1.4), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        f = manifest.sources[name].funnel
        rows = [("kept", f.kept, "#2a9d8f")]
        rows += [(f"dropped: {r}", c, "#e9c46a") for r, c in sorted(f.dropped.items(), key=lambda x: -x[1])]
        rows += [(f"error: {r}", c, "#e76f51") for r, c in sorted(f.errors.items(), key=lambda x: -x[1])]
        ax.barh([r[0] for r in rows][::-1], [r[1] for r in rows][::-1], color=[r[2] for r in rows][::-1])
        ax.set_title(f"{display(name)}: input {f.input:,} → kept {f.kept:,}", fontsize=10, loc="left")
        ax.tick_params(labelsize=8)
        _integer_axis(ax.xaxis)
    fig.tight_layout()
    charts.append(("funnel", "Funnel per source", _png(fig)))

    # 2. languages of the kept documents
    fig, ax = plt.subplots(figsize=(9, 3.5))
    langs = Counter()
    for c in stats["lang"].values():
        langs.update(c)
    top = [lang for lang, _ in langs.most_common(15)]
    bottom = [0] * len(top)
    for name in names:
        vals = [stats["lang"][name].get(lang, 0) for lang in top]
        if any(vals):
            ax.bar(top, vals, bottom=bottom, label=display(name))
            bottom = [b + v for b, v in zip(bottom, vals)]
    if top:
        ax.legend(fontsize=8)
        ax.set_ylabel("kept documents")
        _integer_axis(ax.yaxis)
    else:
        _empty(ax, "documents")
    charts.append(("languages", "Language distribution (kept documents)", _png(fig)))

    # 3. perplexity with bucket boundaries
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ppl = stats["perplexity"]
    if ppl:
        by = defaultdict(list)
        for v, b in ppl:
            by[b or "none"].append(v)
        lo, hi = min(v for v, _ in ppl), max(v for v, _ in ppl)
        bins = [lo * (hi / lo) ** (i / 30) for i in range(31)] if lo > 0 and hi > lo else 30
        ax.hist([by[b] for b in sorted(by)], bins=bins, stacked=True, label=sorted(by))
        if lo > 0 and hi > lo:
            ax.set_xscale("log")
        recorded = next((m for m in manifest.models.values() if m.get("kind") == "perplexity_cutoffs"), None)
        if recorded:  # the cutoffs the build bucketed with (OUT/models/perplexity_cutoffs.json)
            head_pct, tail_pct = recorded.get("percentiles", [30, 60])
            for lang, (head_cut, tail_cut) in sorted(recorded.get("cutoffs", {}).items()):
                for x, label, style in (
                    (head_cut, f"{lang} head < p{head_pct}", "--"),
                    (tail_cut, f"{lang} tail ≥ p{tail_pct}", ":"),
                ):
                    ax.axvline(x, color="k", linestyle=style, linewidth=1, label=f"{label} = {x:,.1f}")
        else:  # a build from before the cutoffs were recorded: the observed upper edges of head and middle
            for b in ("head", "middle"):
                if by.get(b):
                    edge = max(by[b])
                    ax.axvline(edge, color="k", linestyle=":", linewidth=1, label=f"{b} ≤ {edge:,.0f} (observed)")
        _integer_axis(ax.yaxis)
        ax.set_xlabel("KenLM perplexity (kept CommonCrawl documents; tail documents are dropped)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the plot: never clipped
    else:
        _empty(ax, "perplexity scores")
    charts.append(("perplexity", "Perplexity histogram and bucket cutoffs", _png(fig)))

    # 4. quality scores
    fig, ax = plt.subplots(figsize=(9, 3))
    if stats["quality"]:
        ax.hist(stats["quality"], bins=20, range=(0, 1), color="#264653")
        ax.set_xlabel("P(Wikipedia reference) from the quality classifier")
        ax.set_ylabel("kept documents")
        _integer_axis(ax.yaxis)
        threshold = _quality_threshold(manifest)
        if threshold is not None:
            ax.axvline(threshold, color="#e76f51", linewidth=1.5, label=f"threshold {threshold:g}: below it is dropped")
            ax.legend(fontsize=8)
    else:
        _empty(ax, "quality scores")
    charts.append(("quality", "Quality score distribution", _png(fig)))

    # 5. duplicate cluster sizes
    fig, ax = plt.subplots(figsize=(9, 3))
    if stats["dup"]:
        sizes = sorted(stats["dup"])
        ax.bar([str(s) for s in sizes], [stats["dup"][s] for s in sizes], color="#8d99ae")
        ax.set_xlabel("near-duplicate cluster size (of the kept representative)")
        ax.set_ylabel("clusters")
        _integer_axis(ax.yaxis)
    else:
        _empty(ax, "near-duplicate clusters")
    charts.append(("duplicates", "Duplicate cluster sizes", _png(fig)))

    # 6. document lengths
    fig, ax = plt.subplots(figsize=(9, 3.5))
    data = [(display(n), [math.log10(max(1, x)) for x in stats["length"][n]]) for n in names if stats["length"][n]]
    if data:
        ax.boxplot([d for _, d in data], tick_labels=[n for n, _ in data], vert=True)
        ax.set_ylabel("log10 characters per document")
    else:
        _empty(ax, "documents")
    charts.append(("lengths", "Document length distributions", _png(fig)))

    # 7. the mixture realised: the build's tokens (or text bytes) and, with a run, the tokens seen
    fig, ax = plt.subplots(figsize=(9, 3.5))
    xs = list(range(len(names)))
    tokens = {n: manifest.sources[n].tokens or 0 for n in names}
    have = tokens if sum(tokens.values()) else {n: manifest.sources[n].bytes for n in names}
    bars = [
        ("LLaMA Table 1", [paper.get(n, 0) for n in names]),
        ("this build: " + ("tokens" if sum(tokens.values()) else "text bytes"), _shares([have[n] for n in names])),
    ]
    seen = _seen(metrics)
    if seen:
        bars.append(("training: tokens seen", _shares([seen.get(n, 0) for n in names])))
    width = 0.8 / len(bars)
    for i, (label, values) in enumerate(bars):
        ax.bar([x - 0.4 + width * (i + 0.5) for x in xs], [v * 100 for v in values], width=width, label=label)
    ax.set_xticks(xs, [display(n) for n in names], fontsize=8)
    ax.set_ylabel("share (%)")
    ax.legend(fontsize=8)
    charts.append(("mixture", "The mixture realised, against the paper's Table 1", _png(fig)))

    # 8. epochs per source: tokens seen over the tokens the build has (a run only)
    if seen and sum(tokens.values()):
        fig, ax = plt.subplots(figsize=(9, 3))
        epochs = [seen.get(n, 0) / tokens[n] if tokens[n] else 0 for n in names]
        ax.bar(
            [display(n) for n in names], epochs, color=["#e76f51" if e > HEAVY_EPOCHS else "#2a9d8f" for e in epochs]
        )
        ax.axhline(
            HEAVY_EPOCHS,
            color="k",
            linestyle="--",
            linewidth=1,
            label=f"{HEAVY_EPOCHS} epochs: beyond it, repetition starts to cost (Muennighoff et al. 2023)",
        )
        ax.set_ylabel("epochs")
        ax.tick_params(axis="x", labelsize=8)
        ax.legend(fontsize=8)
        charts.append(("epochs", "Epochs per source in training (red: heavy repetition)", _png(fig)))

    # 9. stage times: the seconds the build's tasks ran, per source and phase
    times = {n: _task_seconds(manifest, n) for n in names}
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * max(1, len(names))))
    if any(times.values()):
        phases = sorted({p for t in times.values() for p in t})
        left = [0.0] * len(names)
        for phase in phases:
            vals = [times[n].get(phase, 0.0) for n in names]
            ax.barh([display(n) for n in names], vals, left=left, label=phase)
            left = [a + b for a, b in zip(left, vals)]
        ax.set_xlabel("task seconds (summed over workers)")
        ax.legend(fontsize=7, ncol=4, loc="upper left", bbox_to_anchor=(0, -0.35))
    else:
        _empty(ax, "recorded stage times")
    charts.append(("stages", "Stage times per source", _png(fig)))

    # 10. training curves
    if metrics:
        fig, ax = plt.subplots(figsize=(9, 3.5))
        steps = [r["step"] for r in metrics if "loss" in r]
        ax.plot(steps, [r["loss"] for r in metrics if "loss" in r], label="train loss", linewidth=1)
        val = [(r["step"], r["val_loss"]) for r in metrics if r.get("val_loss")]
        for src in sorted({k for _, v in val for k in v}):
            ax.plot(
                [s for s, v in val if src in v],
                [v[src] for _, v in val if src in v],
                marker="o",
                markersize=3,
                label=f"val {display(src)}",
            )
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/token)")
        ax.legend(fontsize=7, ncol=2)
        charts.append(("training", "Training curves", _png(fig)))
    return charts


def _shares(values: list[float]) -> list[float]:
    total = sum(values)
    return [v / total if total else 0.0 for v in values]


def _seen(metrics: list[dict] | None) -> dict[str, int]:
    """Tokens seen per source by the run's last logged step."""
    rows = [r for r in metrics or [] if r.get("tokens_seen")]
    return dict(rows[-1]["tokens_seen"]) if rows else {}


def _quality_threshold(manifest: BuildManifest) -> float | None:
    q = manifest.settings.get("sources", {}).get("commoncrawl", {}).get("quality", {})
    return q.get("threshold") if q.get("enabled") else None


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


def _task_seconds(manifest: BuildManifest, source: str) -> dict[str, float]:
    """Seconds the source's tasks ran, per phase (summed over workers), as the build recorded them."""
    return (manifest.stats.get("sources", {}).get(source) or {}).get("task_seconds") or {}


def _stage_table(manifest: BuildManifest) -> str:
    rows = []
    for name, sb in manifest.sources.items():
        took = sum(_task_seconds(manifest, name).values())
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
    charts = _charts(manifest, _stats(out, manifest), metrics, paper)
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

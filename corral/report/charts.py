"""The report's charts, one function each: matplotlib on the Agg backend, each figure returned as a
base64 PNG so the page stands alone. A chart function takes the build's `Inputs` and returns
(key, title, figure), or None when the chart does not apply (a run's charts without a run)."""

from __future__ import annotations

import base64
import io
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from corral.manifests.build_manifest import BuildManifest
from corral.manifests.table1 import display

HEAVY_EPOCHS = 4  # Muennighoff et al. 2023 (Scaling Data-Constrained LMs): up to ~4 epochs cost little
WIDE, TALL, SHORT = 9, 3.5, 3  # figure width and the two heights (inches)


@dataclass
class Inputs:
    manifest: BuildManifest
    stats: dict[str, Any]  # the document summaries of report.html._stats
    metrics: list[dict] | None  # the training run's metrics.jsonl rows, if any
    paper: dict[str, float]  # Table 1's sampling proportions

    @property
    def names(self) -> list[str]:
        """The build's sources, Table 1's first in its order."""
        sources = self.manifest.sources
        return [n for n in self.paper if n in sources] + [n for n in sources if n not in self.paper]


def charts(inputs: Inputs) -> list[tuple[str, str, str]]:
    """(key, title, base64 PNG) of every chart that applies, in the page's order."""
    import matplotlib

    matplotlib.use("Agg")
    out = []
    for chart in CHARTS:
        made = chart(inputs)
        if made is not None:
            key, title, fig = made
            out.append((key, title, _png(fig)))
    return out


def _figure(height: float = TALL):
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(WIDE, height))


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _integer_axis(axis) -> None:
    """Counts are whole numbers: ticks only at integers."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _counts_axes(ax, xlabel: str | None, ylabel: str) -> None:
    """Label a chart of counts: its y axis has ticks at whole numbers only."""
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _integer_axis(ax.yaxis)


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this build", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _shares(values: list[float]) -> list[float]:
    total = sum(values)
    return [v / total if total else 0.0 for v in values]


def tokens_seen(metrics: list[dict] | None) -> dict[str, int]:
    """Tokens seen per source by the run's last logged step."""
    rows = [r for r in metrics or [] if r.get("tokens_seen")]
    return dict(rows[-1]["tokens_seen"]) if rows else {}


def quality_threshold(manifest: BuildManifest) -> float | None:
    q = manifest.settings.get("sources", {}).get("commoncrawl", {}).get("quality", {})
    return q.get("threshold") if q.get("enabled") else None


def task_seconds(manifest: BuildManifest, source: str) -> dict[str, float]:
    """Seconds the source's tasks ran, per phase (summed over workers), as the build recorded them."""
    return (manifest.stats.get("sources", {}).get(source) or {}).get("task_seconds") or {}


def funnel(inputs: Inputs):
    """Kept, and each drop and error reason, as bars per source."""
    import matplotlib.pyplot as plt

    names = inputs.names
    fig, axes = plt.subplots(len(names), 1, figsize=(WIDE, 1.2 + 1.54 * max(1, len(names))), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        f = inputs.manifest.sources[name].funnel
        rows = [("kept", f.kept, "#2a9d8f")]
        rows += [(f"dropped: {r}", c, "#e9c46a") for r, c in sorted(f.dropped.items(), key=lambda x: -x[1])]
        rows += [(f"error: {r}", c, "#e76f51") for r, c in sorted(f.errors.items(), key=lambda x: -x[1])]
        rows.reverse()
        ax.barh([r[0] for r in rows], [r[1] for r in rows], color=[r[2] for r in rows])
        ax.set_title(f"{display(name)}: input {f.input:,} → kept {f.kept:,}", fontsize=10, loc="left")
        ax.tick_params(labelsize=8)
        _integer_axis(ax.xaxis)
    fig.tight_layout()
    return "funnel", "Funnel per source", fig


def languages(inputs: Inputs):
    """The 15 commonest languages of the kept documents, stacked by source."""
    fig, ax = _figure()
    by_source = inputs.stats["lang"]
    top = [lang for lang, _ in sum(by_source.values(), Counter()).most_common(15)]
    bottom = [0] * len(top)
    for name in inputs.names:
        vals = [by_source[name].get(lang, 0) for lang in top]
        if any(vals):
            ax.bar(top, vals, bottom=bottom, label=display(name))
            bottom = [b + v for b, v in zip(bottom, vals)]
    if top:
        ax.legend(fontsize=8)
        _counts_axes(ax, None, "kept documents")
    else:
        _empty(ax, "documents")
    return "languages", "Language distribution (kept documents)", fig


def _cutoff_lines(ax, manifest: BuildManifest, by_bucket: dict[str, list[float]]) -> None:
    """The perplexity cutoffs the build bucketed with (OUT/models/perplexity_cutoffs.json); for a
    build that recorded none, the observed upper edges of head and middle."""
    recorded = next((m for m in manifest.models.values() if m.get("kind") == "perplexity_cutoffs"), None)
    if recorded:
        head_pct, tail_pct = recorded.get("percentiles", [30, 60])
        for lang, (head_cut, tail_cut) in sorted(recorded.get("cutoffs", {}).items()):
            for x, label, style in (
                (head_cut, f"{lang} head < p{head_pct}", "--"),
                (tail_cut, f"{lang} tail ≥ p{tail_pct}", ":"),
            ):
                ax.axvline(x, color="k", linestyle=style, linewidth=1, label=f"{label} = {x:,.1f}")
        return
    for b in ("head", "middle"):
        if by_bucket.get(b):
            edge = max(by_bucket[b])
            ax.axvline(edge, color="k", linestyle=":", linewidth=1, label=f"{b} ≤ {edge:,.0f} (observed)")


def perplexity(inputs: Inputs):
    """CommonCrawl's perplexities, stacked by bucket, on a log axis, with the bucket cutoffs."""
    fig, ax = _figure()
    ppl = inputs.stats["perplexity"]
    if not ppl:
        _empty(ax, "perplexity scores")
        return "perplexity", "Perplexity histogram and bucket cutoffs", fig
    by = defaultdict(list)
    for v, b in ppl:
        by[b or "none"].append(v)
    lo, hi = min(v for v, _ in ppl), max(v for v, _ in ppl)
    log_scale = lo > 0 and hi > lo
    bins = [lo * (hi / lo) ** (i / 30) for i in range(31)] if log_scale else 30
    ax.hist([by[b] for b in sorted(by)], bins=bins, stacked=True, label=sorted(by))
    if log_scale:
        ax.set_xscale("log")
    _cutoff_lines(ax, inputs.manifest, by)
    _integer_axis(ax.yaxis)
    ax.set_xlabel("KenLM perplexity (kept CommonCrawl documents; tail documents are dropped)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the plot: never clipped
    return "perplexity", "Perplexity histogram and bucket cutoffs", fig


def quality(inputs: Inputs):
    """P(wiki) of the kept documents, with the threshold below which the build drops."""
    fig, ax = _figure(SHORT)
    scores = inputs.stats["quality"]
    if not scores:
        _empty(ax, "quality scores")
        return "quality", "Quality score distribution", fig
    ax.hist(scores, bins=20, range=(0, 1), color="#264653")
    _counts_axes(ax, "P(Wikipedia reference) from the quality classifier", "kept documents")
    threshold = quality_threshold(inputs.manifest)
    if threshold is not None:
        ax.axvline(threshold, color="#e76f51", linewidth=1.5, label=f"threshold {threshold:g}: below it is dropped")
        ax.legend(fontsize=8)
    return "quality", "Quality score distribution", fig


def duplicates(inputs: Inputs):
    """How many near-duplicate clusters of each size the kept representatives stand for."""
    fig, ax = _figure(SHORT)
    dup = inputs.stats["dup"]
    if dup:
        sizes = sorted(dup)
        ax.bar([str(s) for s in sizes], [dup[s] for s in sizes], color="#8d99ae")
        _counts_axes(ax, "near-duplicate cluster size (of the kept representative)", "clusters")
    else:
        _empty(ax, "near-duplicate clusters")
    return "duplicates", "Duplicate cluster sizes", fig


def lengths(inputs: Inputs):
    """Characters per kept document, a box per source on a log scale."""
    fig, ax = _figure()
    length = inputs.stats["length"]
    data = [(display(n), [math.log10(max(1, x)) for x in length[n]]) for n in inputs.names if length[n]]
    if data:
        ax.boxplot([d for _, d in data], tick_labels=[n for n, _ in data], vert=True)
        ax.set_ylabel("log10 characters per document")
    else:
        _empty(ax, "documents")
    return "lengths", "Document length distributions", fig


def _build_tokens(inputs: Inputs) -> dict[str, int]:
    return {n: inputs.manifest.sources[n].tokens or 0 for n in inputs.names}


def mixture(inputs: Inputs):
    """Table 1's shares beside the build's tokens (or text bytes) and, with a run, the tokens seen."""
    fig, ax = _figure()
    names, sources = inputs.names, inputs.manifest.sources
    tokens = _build_tokens(inputs)
    counted = "tokens" if sum(tokens.values()) else "text bytes"
    have = tokens if sum(tokens.values()) else {n: sources[n].bytes for n in names}
    bars = [
        ("LLaMA Table 1", [inputs.paper.get(n, 0) for n in names]),
        (f"this build: {counted}", _shares([have[n] for n in names])),
    ]
    seen = tokens_seen(inputs.metrics)
    if seen:
        bars.append(("training: tokens seen", _shares([seen.get(n, 0) for n in names])))
    width = 0.8 / len(bars)
    xs = range(len(names))
    for i, (label, values) in enumerate(bars):
        ax.bar([x - 0.4 + width * (i + 0.5) for x in xs], [v * 100 for v in values], width=width, label=label)
    ax.set_xticks(list(xs), [display(n) for n in names], fontsize=8)
    ax.set_ylabel("share (%)")
    ax.legend(fontsize=8)
    return "mixture", "The mixture realised, against the paper's Table 1", fig


def epochs(inputs: Inputs):
    """Tokens seen in training over the tokens the build has, per source (a run only)."""
    seen, tokens = tokens_seen(inputs.metrics), _build_tokens(inputs)
    if not seen or not sum(tokens.values()):
        return None
    fig, ax = _figure(SHORT)
    values = [seen.get(n, 0) / tokens[n] if tokens[n] else 0 for n in inputs.names]
    colors = ["#e76f51" if e > HEAVY_EPOCHS else "#2a9d8f" for e in values]
    ax.bar([display(n) for n in inputs.names], values, color=colors)
    label = f"{HEAVY_EPOCHS} epochs: beyond it, repetition starts to cost (Muennighoff et al. 2023)"
    ax.axhline(HEAVY_EPOCHS, color="k", linestyle="--", linewidth=1, label=label)
    ax.set_ylabel("epochs")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8)
    return "epochs", "Epochs per source in training (red: heavy repetition)", fig


def stage_times(inputs: Inputs):
    """The seconds the build's tasks ran, per source, stacked by phase."""
    names = inputs.names
    times = {n: task_seconds(inputs.manifest, n) for n in names}
    fig, ax = _figure(1.2 + 0.45 * max(1, len(names)))
    if not any(times.values()):
        _empty(ax, "recorded stage times")
        return "stages", "Stage times per source", fig
    left = [0.0] * len(names)
    for phase in sorted({p for t in times.values() for p in t}):
        vals = [times[n].get(phase, 0.0) for n in names]
        ax.barh([display(n) for n in names], vals, left=left, label=phase)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlabel("task seconds (summed over workers)")
    ax.legend(fontsize=7, ncol=4, loc="upper left", bbox_to_anchor=(0, -0.35))
    return "stages", "Stage times per source", fig


def training(inputs: Inputs):
    """Training loss, and validation loss per source, over the steps (a run only)."""
    metrics = inputs.metrics
    if not metrics:
        return None
    fig, ax = _figure()
    logged = [r for r in metrics if "loss" in r]
    ax.plot([r["step"] for r in logged], [r["loss"] for r in logged], label="train loss", linewidth=1)
    val = [(r["step"], r["val_loss"]) for r in metrics if r.get("val_loss")]
    for src in sorted({k for _, v in val for k in v}):
        points = [(s, v[src]) for s, v in val if src in v]
        ax.plot(*zip(*points), marker="o", markersize=3, label=f"val {display(src)}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend(fontsize=7, ncol=2)
    return "training", "Training curves", fig


CHARTS = (funnel, languages, perplexity, quality, duplicates, lengths, mixture, epochs, stage_times, training)

"""What the training tests share: a seeded small model, torchrun of a test script, a build of
token shards with given weights, and the losses a run logged. torch is imported only when used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent


def torchrun(nproc: int, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    path = str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def small_model(vocab=300, **kw):
    import torch

    from corral.train.model import Transformer, model_args

    torch.manual_seed(0)
    m = Transformer(model_args("tiny", vocab_size=vocab, **kw))
    for name, p in m.named_parameters():
        with torch.no_grad():
            p.copy_(m.init_value(name, p.shape, torch.Generator().manual_seed(hash(name) % 1000), "cpu"))
            if name.endswith("norm.weight"):
                p.add_(torch.randn(p.shape) * 0.1)  # gains other than 1, so the norms are tested too
    return m


def token_build(out: Path, weights: dict, docs: int = 60, eos: bool = True, seed: int = 0) -> Path:
    """A build of one token shard per source, `docs` random documents each, with the given weights."""
    from corral.core.shards import write_token_shard
    from corral.manifests.build_manifest import BuildManifest, Funnel, SourceBuild, relative_shard
    from corral.manifests.mixture import parse_mixture
    from corral.pipeline.sources.registry import SOURCES

    rng = np.random.default_rng(seed)
    mixture = parse_mixture(
        "name: t\ntarget_tokens: 1M\nsources:\n"
        + "".join(f"  {s}:\n    weight: {w}\n    inputs: [x]\n" for s, w in weights.items()),
        SOURCES,
    )
    sources = {}
    for si, s in enumerate(weights):
        toks = [
            np.concatenate(
                [[1], rng.integers(3 + si * 10, 13 + si * 10, rng.integers(5, 90)), [2] if eos else []]
            ).astype(np.uint16)
            for _ in range(docs)
        ]
        info = write_token_shard(str(out / "tokens" / s / "part-00000.arrow"), [f"{s}{i}" for i in range(docs)], toks)
        sources[s] = SourceBuild(
            weight=w if (w := weights[s]) else 0,
            documents=docs,
            funnel=Funnel(docs, docs),
            token_shards=[relative_shard(info, str(out))],
            tokens=sum(len(t) for t in toks),
        )
    settings = {**mixture.settings(), "tokenize": {"eos": eos, "bos": True}}
    BuildManifest(mixture=mixture.to_dict(), settings=settings, sources=sources).save(str(out))
    return out


def logged_losses(run: Path) -> list[tuple[int, float, dict]]:
    """(step, loss, tokens seen) of every row of RUN/metrics.jsonl."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["tokens_seen"]) for r in rows]

"""Helpers shared by the source tests: read a source's inputs as a build task does, or build a manifest."""

from __future__ import annotations

import os
import shutil
import site
import textwrap
from pathlib import Path

from corral.core.shards import iter_records
from corral.manifests.options import defaults, source_stages
from corral.pipeline.sources.base import Piece
from corral.pipeline.sources.registry import by_name
from corral.sample.formats import dist_info, license_files


def stages(source, **overrides) -> dict:
    """A source's (its name's or the object's) resolved stage options, with {stage: {option: value}}
    overrides."""
    source = by_name()[source] if isinstance(source, str) else source
    out = {name: defaults(opts) for name, opts in source_stages(source).items()}
    for stage, opts in overrides.items():
        out[stage].update(opts)
    return out


def run_read(source, paths: list[str], tmp_path, **overrides) -> list[dict]:
    """Every outcome of a source's inputs as a build's stage task reads them (failures counted), each
    through JSON as a completion record carries what a task reports."""
    import json

    st = stages(source, **overrides)
    return [json.loads(json.dumps(o)) for path in paths for o in source.outcomes(Piece(path), st)]


def write_manifest(path, sources: dict[str, dict]) -> str:
    """A one-or-more-source mixture manifest with equal weights; returns its path."""
    import yaml

    n = len(sources)
    body = {"name": "test", "target_tokens": 1000000, "sources": {}}
    for i, (name, spec) in enumerate(sources.items()):
        w = round(1 / n, 9) if i < n - 1 else round(1 - round(1 / n, 9) * (n - 1), 9)
        body["sources"][name] = {"weight": w, **spec}
    path.write_text(yaml.safe_dump(body))
    return str(path)


def shard_records(out, source: str) -> list[dict]:
    folder = os.path.join(out, "docs", source)
    return [r for n in sorted(os.listdir(folder)) for r in iter_records(os.path.join(folder, n))]


def dedent(s: str) -> str:
    return textwrap.dedent(s).lstrip("\n")


PACKAGES = {
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "mwparserfromhell": "mwparserfromhell",
    "certifi": "certifi",
    "py7zr": "py7zr",
}


def package_repos(dest):
    """Copy installed package trees, each with its dist-info license files, as repository folders."""
    for pkg, dist in PACKAGES.items():
        src = os.path.join(site.getsitepackages()[0], pkg)
        info = dist_info(dist)
        if not os.path.isdir(src) or info is None:
            raise RuntimeError(f"package {pkg} is not installed in this environment")
        shutil.copytree(src, dest / pkg / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        for f in license_files(info):
            shutil.copy(f, dest / pkg / os.path.basename(f))


WORDS = (
    "the a river stone light window garden morning letter music paper house city over under "
    "through between quietly slowly bright small old new green silver"
).split()


def raw_inputs(d, n=400):
    """Generated C4 files and books under d: two sources whose builds take seconds."""
    import gzip
    import json
    import random

    rng = random.Random(0)
    (d / "c4").mkdir(parents=True)
    for f in range(3):
        lines = []
        for i in range(n):
            text = "\n".join(
                " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))).capitalize() + "."
                for _ in range(rng.randint(3, 8))
            )
            lines.append(
                json.dumps({"text": text, "url": f"https://example.org/{f}/{i}", "timestamp": "2019-04-25T00:00:00Z"})
            )
        (d / "c4" / f"c4-{f}.json.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    (d / "books").mkdir()
    for b in range(4):
        body = "\n\n".join(" ".join(rng.choice(WORDS) for _ in range(60)) for _ in range(300))
        (d / "books" / f"book{b}.txt").write_text(body)
    return {"c4": {"inputs": [str(d / "c4" / "*.json.gz")]}, "books": {"inputs": [str(d / "books" / "*.txt")]}}


def six_sources(shared, tmp_path):
    """The inputs of every source but CommonCrawl, from the real samples (GitHub: installed packages)."""
    package_repos(tmp_path / "github")
    return {
        "c4": {"inputs": [str(shared / "c4" / "c4-sample.*.json.gz")]},
        "github": {"inputs": [str(tmp_path / "github" / "*")]},
        "wikipedia": {"inputs": [str(shared / "wikipedia" / "*.bz2"), str(shared / "wikipedia" / "*.xml")]},
        "books": {"inputs": [str(shared / "books" / "*.txt")]},
        "arxiv": {"inputs": [str(shared / "arxiv" / "*")]},
        "stackexchange": {"inputs": [str(shared / "stackexchange" / "*-Posts.xml")]},
    }


# LLaMA Table 1's sampling proportions: what manifests/llama1.yaml must say.
TABLE1_WEIGHTS = {
    "commoncrawl": 0.67,
    "c4": 0.15,
    "github": 0.045,
    "wikipedia": 0.045,
    "books": 0.045,
    "arxiv": 0.025,
    "stackexchange": 0.02,
}


def multistream_dump(folder, copies: int = 3, per_stream: int = 10):
    """A multistream enwiki dump with its index in `folder`: the sample's English pages repeated
    `copies` times with new ids, `per_stream` pages a bz2 stream. Returns its path."""
    import bz2
    import re

    from corral.pipeline.inputs.multistream import index_of
    from corral.sample import write_sample
    from corral.sample.multistream_dump import split_dump, write_multistream

    folder = Path(folder)
    write_sample(str(folder / "sample"))
    xml = bz2.decompress((folder / "sample/wikipedia/enwiki-20261101-pages-articles.xml.bz2").read_bytes())
    header, pages, footer = split_dump(xml)

    def renumbered():
        for r in range(copies):
            shift = r * 10**6
            for page in pages:
                yield re.sub(
                    rb"<id>(\d+)</id>", lambda m, k=shift: b"<id>%d</id>" % (int(m.group(1)) + k), page, count=1
                )

    path = folder / "enwiki-20261101-pages-articles-multistream.xml.bz2"
    write_multistream(header, renumbered(), footer, str(path), index_of(str(path)), per_stream=per_stream)
    return path


SAMPLE_MANIFEST = os.path.join(os.path.dirname(__file__), "..", "manifests", "sample.yaml")


def bucket_documents(out: str) -> dict:
    """Per source of a build (local or in a bucket): the funnel, the shards' sha256 and every
    (id, text), read through corral's filesystem layer."""
    import json

    from corral.core import fs
    from corral.core.shards import iter_batches

    manifest = json.loads(fs.read_bytes(fs.join(out, "manifest.json")))
    found = {}
    for name, src in manifest["sources"].items():
        rows = [
            (r["id"], r["text"])
            for shard in src["shards"]
            for batch in iter_batches(fs.join(out, shard["path"]))
            for r in batch.select(["id", "text"]).to_pylist()
        ]
        found[name] = (src["funnel"], [s["sha256"] for s in src["shards"]], rows)
    return found

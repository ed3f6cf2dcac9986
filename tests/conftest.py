from pathlib import Path

import pytest
from s3_server import bucket  # noqa: F401  (the `bucket` fixture: an S3 bucket on 127.0.0.1)

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or a skip with the reason when this machine does not have it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not present at {SHARED_DATA} (only on the project's own machines)")
    return SHARED_DATA


@pytest.fixture
def manifests_dir() -> Path:
    return ROOT / "manifests"


def make_build(out: Path, n_docs: dict | None = None, tokenize: bool = True, signals: bool = False) -> Path:
    """A small but real build folder: document shards, token shards, a side model and a manifest
    (with `signals`, documents carry urls, languages, every signal and a meta object)."""
    import numpy as np

    from corral.core.model_cache import sha256_file
    from corral.core.schema import make_record
    from corral.core.shards import ShardWriter, write_token_shard
    from corral.manifests.build_manifest import BuildManifest, Funnel, SourceBuild, relative_shard
    from corral.manifests.mixture import parse_mixture
    from corral.pipeline.sources.registry import SOURCES

    n_docs = n_docs or {"c4": 30, "books": 7}
    weights = {"c4": 0.75, "books": 0.25}
    mixture = parse_mixture(
        "name: t\ntarget_tokens: 10K\nsources:\n"
        + "".join(f"  {s}:\n    weight: {weights[s]}\n    inputs: [{s}/*]\n" for s in n_docs),
        SOURCES,
    )
    sources = {}
    for s, n in n_docs.items():
        recs = [make_record(s, f"{s}-{i}", f"{s} document number {i}. " * (i % 5 + 1)) for i in range(n)]
        if signals:
            recs = [
                make_record(
                    s,
                    f"{s}-{i}",
                    r["text"] + " ünïcode",
                    url=f"https://example.org/{s}/{i}",
                    lang="en",
                    meta={"date": f"2022-0{i % 9 + 1}-01", "n": i},
                    lang_score=0.5 + i / 100,
                    perplexity=100.0 + i,
                    bucket=("head", "middle", "tail")[i % 3],
                    quality=i / n,
                    dup_cluster=f"{s}-{i - i % 2}",
                    dup_count=2,
                )
                for i, r in enumerate(recs)
            ]
        w = ShardWriter(str(out / "docs" / s), max_rows=10)
        with w:
            w.write_all(recs)
        funnel = Funnel(input=n + 5, kept=n, dropped={"too_short": 3}, errors={"bad_utf8": 2})
        sb = SourceBuild(
            weight=weights[s],
            documents=n,
            bytes=sum(len(r["text"].encode()) for r in recs),
            funnel=funnel,
            shards=[relative_shard(i, str(out)) for i in w.shards],
        )
        if tokenize:
            toks = [np.arange(len(r["text"]) % 50 + 2, dtype=np.uint16) for r in recs]
            info = write_token_shard(str(out / "tokens" / s / "part-00000.arrow"), [r["id"] for r in recs], toks)
            sb.token_shards = [relative_shard(info, str(out))]
            sb.tokens = int(sum(len(t) for t in toks))
        sources[s] = sb
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "models" / "lm.bin").write_bytes(b"pretend kenlm model")
    models = {"kenlm": {"path": "models/lm.bin", "sha256": sha256_file(out / "models" / "lm.bin")}}
    BuildManifest(mixture=mixture.to_dict(), settings=mixture.settings(), sources=sources, models=models).save(str(out))
    return out


@pytest.fixture
def tiny_build(tmp_path) -> Path:
    return make_build(tmp_path / "out")


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory) -> Path:
    """A small build with a trained 300-piece tokenizer and its token shards (for training tests)."""
    from corral.tokenize.encode import tokenize_build
    from corral.tokenize.tokenizer import train_tokenizer

    out = make_build(tmp_path_factory.mktemp("tok") / "b", n_docs={"c4": 60, "books": 20}, tokenize=False)
    train_tokenizer(str(out), vocab_size=300, threads=1)
    tokenize_build(str(out))
    return out


REAL_VOCAB = 8000  # enough pieces for the Chinese Wikipedia sample's characters at coverage 0.99995


@pytest.fixture(scope="session")
def real_build(tmp_path_factory) -> Path:
    """A build of the real samples (English, Bulgarian and Chinese Wikipedia, C4, books, arXiv,
    StackExchange) with a tokenizer trained on it and its token shards."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not present at {SHARED_DATA} (only on the project's own machines)")
    from corral.pipeline.build import build
    from corral.tokenize.encode import tokenize_build
    from corral.tokenize.tokenizer import train_tokenizer

    tmp = tmp_path_factory.mktemp("real")
    d = SHARED_DATA
    (tmp / "m.yaml").write_text(
        "name: realsample\ntarget_tokens: 1M\n"
        f"tokenizer: {{vocab_size: {REAL_VOCAB}}}\nsources:\n"
        f"  c4: {{weight: 0.3, inputs: ['{d}/c4/c4-sample.*.json.gz']}}\n"
        f"  wikipedia: {{weight: 0.2, inputs: ['{d}/wikipedia/*'], read: {{languages: [en, bg, zh]}}}}\n"
        f"  books: {{weight: 0.2, inputs: ['{d}/books/*']}}\n"
        f"  arxiv: {{weight: 0.1, inputs: ['{d}/arxiv/*']}}\n"
        f"  stackexchange: {{weight: 0.2, inputs: ['{d}/stackexchange/*']}}\n"
    )
    out = tmp / "out"
    build(str(tmp / "m.yaml"), str(out))
    train_tokenizer(str(out), threads=2)
    tokenize_build(str(out))
    return out


@pytest.fixture
def sample(tmp_path, monkeypatch) -> Path:
    """corral's embedded seven-source sample written to a folder, $CORRAL_SAMPLE pointing at it
    (what manifests/sample.yaml reads)."""
    from corral.sample import write_sample

    folder = tmp_path / "sample"
    write_sample(str(folder))
    monkeypatch.setenv("CORRAL_SAMPLE", str(folder))
    return folder

"""cc_net against corral on the same real WET with the same models: agreement and speed.

Both sides run WET parsing (min_len 300), line dedup (one hash group: the whole input), language ID
(lid.176.ftz, threshold 0.5, 2-decimal rounding) and document perplexity (a SentencePiece + KenLM
model pair trained once, by corral, on the enwiki sample, used by both):
  cc_net   as its `hashes` then `mine` steps run: process_wet_file.parse_warc_file → dedup.HashesCollector;
           then parse_warc_file again → DuplicatesRemover → split_by_lang.Classifier →
           perplexity.SentencePiece(normalize=True) + DocLM
  corral   sources.commoncrawl.read_wet → dedup.lines (hashes, duplicates, dedup_record) →
           batched fastText + ccnet_rules.lid_result → ccnet_rules.score_document
Agreement: the documents each side keeps, their lines after dedup, language labels and scores, and
perplexities (target: identical lines and labels, perplexities equal to 0.1). Speed: each side's
whole chain timed in its own process (best of --repeat), documents/s on one core, and the ratio;
peak RSS (VmHWM) of each process.

    bash benchmarks/setup_baselines.sh          # cc_net 1.0.0 into benchmarks/.baselines
    .venv/bin/python benchmarks/ccnet_fidelity.py [--repeat 5] [--copies 1] [--distinct] [--pipeline]

`--copies N` adds N−1 copies of the WET in which every line and URL carries a per-copy tag, so the
copies are distinct documents (boilerplate still repeats within a copy): a larger input to time.
`--distinct` makes N files, each the sample's records 10 times over (`--file-repeats 1`: files of 43
records), in which every line carries a tag of its own: line dedup removes nearly nothing and every
text reaches the models, as in real crawls after cross-file dedup.
The floor is the time of the model calls alone (fastText, SentencePiece, KenLM) on exactly the texts
the build sends them; `--pipeline` times `corral build` of the same files against it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
BASELINES = HERE / ".baselines"
WET = DATA / "commoncrawl" / "CC-MAIN-20170720121902-20170720141902-00000.head43.warc.wet.gz"
WIKI = DATA / "wikipedia" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


DISTINCT_REPEATS = 10  # a --distinct file holds the sample's records 10 times over by default (430 records)


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _tag(i: int) -> str:
    """A letters-only tag per copy (digits would normalise to 0 and collide)."""
    out = ""
    while True:
        out = "abcdefghijklmnopqrstuvwxyz"[i % 26] + out
        i //= 26
        if not i:
            return "zq" + out


def _retag(records: list[str], tag_line) -> bytes:
    """The WET's records gzipped one member each, every conversion record's non-empty content lines
    (and its URL) passed through `tag_line(line)` / given the tag of the record's first line."""
    out = []
    for rec in records:
        head, _, body = rec.partition("\r\n\r\n")
        if "WARC-Type: conversion" in head:
            content = body[:-4] if body.endswith("\r\n\r\n") else body
            lines = [tag_line(ln) if ln.strip() else ln for ln in content.split("\n")]
            url_tag = next((ln.rsplit(" ", 1)[-1] for ln in lines if ln.strip()), "zq")
            data = "\n".join(lines).encode("utf-8")
            head = "\r\n".join(
                f"Content-Length: {len(data)}"
                if h.startswith("Content-Length:")
                else h.replace("WARC-Target-URI: http", f"WARC-Target-URI: http://{url_tag}.http")
                for h in head.split("\r\n")
            )
            body = data.decode("utf-8") + "\r\n\r\n"
        out.append("WARC/1.0\r\n" + head + "\r\n\r\n" + body)
    return b"".join(gzip.compress(r.encode("utf-8")) for r in out)


def make_inputs(tmp: Path, copies: int, distinct: bool = False, repeats: int = DISTINCT_REPEATS) -> list[str]:
    """The real WET, plus N−1 copies in which every content line and URL carries a per-copy tag,
    so that copies are distinct documents for dedup (boilerplate still repeats within a copy).

    `distinct`: every content line of every file, the real WET's included, carries a tag of its own,
    so that line dedup removes nearly nothing and every text reaches the models, as in real crawls
    after cross-file dedup."""
    raw = gzip.decompress(WET.read_bytes()).decode("utf-8")
    records = raw.split("WARC/1.0\r\n")[1:]
    if not distinct:
        paths = [str(WET)]
        for i in range(1, copies):
            tag = _tag(i)
            p = tmp / f"copy{i}.warc.wet.gz"
            p.write_bytes(_retag(records, lambda ln, tag=tag: f"{ln} {tag}"))
            paths.append(str(p))
        return paths
    counter = iter(range(1, 1 << 62))
    paths = []
    for i in range(copies):
        p = tmp / f"distinct{i}.warc.wet.gz"
        p.write_bytes(b"".join(_retag(records, lambda ln: f"{ln} {_tag(next(counter))}") for _ in range(repeats)))
        paths.append(str(p))
    return paths


def train_models(tmp: Path) -> dict[str, str]:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from helpers import stages

    from corral.pipeline.quality.side_models import train_perplexity_models
    from corral.pipeline.sources.wikipedia import read_dump

    st = stages("wikipedia")
    texts = [o["record"]["text"] for o in read_dump(str(WIKI), st["read"], st["clean"]) if o["status"] == "kept"]
    infos = train_perplexity_models("en", texts, str(tmp / "models"), vocab_size=2000, order=5)
    return {"sp": infos["en.sp.model"]["path"], "lm": infos["en.arpa.bin"]["path"]}


def run_ccnet(paths: list[str], models: dict[str, str], lid: str, tmp: str) -> dict[str, dict]:
    sys.path.append(str(BASELINES))
    import logging

    logging.disable(logging.INFO)
    from cc_net import dedup, perplexity, process_wet_file, split_by_lang

    def read_shard():
        for p in paths:
            with gzip.open(p, "rt", encoding="utf-8", errors="strict") as f:
                yield from process_wet_file.parse_warc_file(f, min_len=300)

    # cc_net's `hashes` step: its own read of the shard, then HashesCollector.
    hashes = Path(tmp) / "hashes.bin"
    collector = dedup.HashesCollector(field="raw_content", output=hashes)
    for d in read_shard():
        collector.do(d)
    collector.close()
    # cc_net's `mine` step reads the shard again: dedup → lid → sp → lm.
    remover = dedup.DuplicatesRemover(field="raw_content", hashes_files=[hashes])
    remover._prepare()
    classifier = split_by_lang.Classifier(
        model=Path(lid), field="raw_content", out_field="language", threshold=0.5, rounding=2
    )
    classifier._prepare()
    sp = perplexity.SentencePiece(
        model=Path(models["sp"]), field="raw_content", output_field="tokenized", normalize=True
    )
    sp._prepare()
    lm = perplexity.DocLM(
        models={"en": Path(models["lm"])}, field="tokenized", output_field="perplexity", normalize=False
    )
    lm._prepare()
    out = {}
    for d in read_shard():
        d = remover.do(d)
        if d is None:
            continue
        d = classifier.do(d)
        if d is None:
            continue
        if d.get("language") == "en":
            d = lm.do(sp.do(d))
        out[d["url"]] = {
            "text": d["raw_content"],
            "lang": d["language"],
            "lang_score": float(d["language_score"]),
            "perplexity": d.get("perplexity"),
        }
    return out


def corral_deduped(paths: list[str]) -> list[dict]:
    """The kept WET records of the files, their duplicate lines removed by corral's rules (one hash
    group: the whole input)."""
    import numpy as np

    from corral.dedup import lines as L
    from corral.dedup.keys import duplicate_lines
    from corral.pipeline.inputs.streams import guarded
    from corral.pipeline.sources.commoncrawl.warc import read_wet

    read = {"min_len": 300, "format": "wet"}
    records = [
        o["record"] for p in paths for o in guarded("commoncrawl", p, read_wet(p, 0, read)) if o["status"] == "kept"
    ]
    hashes = [L.doc_hashes(r["text"]) for r in records]
    offsets = np.cumsum([0] + [len(h) for h in hashes])
    flat = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
    owners = np.repeat(np.arange(len(hashes), dtype=np.uint64), np.diff(offsets))
    keep = L.kept_lines(flat, offsets, np.isin(flat, duplicate_lines(flat, owners)))
    deduped = (L.dedup_record(r, keep[a:b]) for r, a, b in zip(records, offsets[:-1], offsets[1:]))
    return [d for d in deduped if d is not None]


def run_corral(paths: list[str], models: dict[str, str], lid: str, tmp: str) -> dict[str, dict]:
    import fasttext
    import kenlm
    import sentencepiece as spm

    from corral.pipeline.quality import ccnet_rules as R

    deduped = corral_deduped(paths)
    model = fasttext.load_model(lid)
    texts = [R.lid_input(r["text"]) for r in deduped]
    labels, scores = model.predict(texts, k=1) if texts else ([], [])
    sp = spm.SentencePieceProcessor(model_file=models["sp"])
    lm = kenlm.Model(models["lm"])
    out = {}
    for r, text, lab, sc in zip(deduped, texts, labels, scores):
        if R.near_rounding_boundary(float(sc[0])):
            lab, sc = model.predict(text, k=1)
        lang, score = R.lid_result(lab, sc)
        if R.lid_keep(lang, score, 0.5, []) is not None:
            continue
        pp = R.score_document(r["text"], sp, lm) if lang == "en" else None
        out[r["url"]] = {"text": r["text"], "lang": lang, "lang_score": score, "perplexity": pp}
    return out


def run_floor(paths: list[str], models: dict[str, str], lid: str, repeat: int) -> float:
    """The floor: the model calls alone, best of `repeat`, on exactly the texts the build sends them —
    fastText's batched predict on every deduplicated document's language-ID input, then SentencePiece
    on the normalised text and KenLM on its pieces of every document the language filter keeps (the
    inputs are made first and not timed)."""
    import fasttext
    import kenlm
    import sentencepiece as spm

    from corral.pipeline.quality import ccnet_rules as R

    docs = [r["text"] for r in corral_deduped(paths)]
    model = fasttext.load_model(lid)
    sp = spm.SentencePieceProcessor(model_file=models["sp"])
    lm = kenlm.Model(models["lm"])
    texts = [R.lid_input(t) for t in docs]
    labels, scores = model.predict(texts, k=1)
    scored = [
        R.normalize(t)
        for t, lab, sc in zip(docs, labels, scores)
        if R.lid_keep(*R.lid_result(lab, sc), 0.5, ["en"]) is None
    ]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        model.predict(texts, k=1)
        for pieces in sp.encode(scored, out_type=str, num_threads=1):
            lm.score(" ".join(pieces))
        best = min(best, time.perf_counter() - t0)
    return best


def _child(side: str, args: dict) -> dict:
    cmd = [sys.executable, __file__, "--part", side, json.dumps(args)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{side} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def part(side: str, args: dict) -> None:
    if side == "floor":
        print(json.dumps({"seconds": run_floor(args["paths"], args["models"], args["lid"], args["repeat"])}))
        return
    fn = run_ccnet if side == "ccnet" else run_corral
    best, result = float("inf"), None
    for _i in range(args["repeat"]):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = fn(args["paths"], args["models"], args["lid"], tmp)
            best = min(best, time.perf_counter() - t0)
    print(json.dumps({"seconds": best, "docs": result, "peak_rss_mb": _peak_mb()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument(
        "--distinct", action="store_true", help="every line of every file made distinct (real crawls after dedup)"
    )
    ap.add_argument(
        "--file-repeats",
        type=int,
        default=DISTINCT_REPEATS,
        help="a --distinct file holds the sample's 43 records this many times (1: files of 43 records)",
    )
    ap.add_argument("--pipeline", action="store_true", help="also time corral's build end to end")
    ap.add_argument("--part", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.part:
        part(a.part[0], json.loads(a.part[1]))
        return
    if not (BASELINES / "cc_net").is_dir():
        sys.exit("cc_net is not installed: run `bash benchmarks/setup_baselines.sh` first")
    if not WET.is_file():
        sys.exit(f"the real WET sample is not at {WET}")
    from corral.core.model_cache import lid_model_path

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        models = train_models(tmp)
        paths = make_inputs(tmp, a.copies, a.distinct, a.file_repeats)
        args = {"paths": paths, "models": models, "lid": str(lid_model_path()), "repeat": a.repeat}
        n_records = 43 * a.copies * (a.file_repeats if a.distinct else 1)
        cc, co, floor = _child("ccnet", args), _child("corral", args), _child("floor", args)
        if a.pipeline:
            keep = Path(tempfile.mkdtemp())
            paths_for_pipeline = [shutil.copy(p, keep) if p.startswith(tmpdir) else p for p in paths]
            models = {k: shutil.copy(v, keep) for k, v in models.items()}

    d1, d2 = cc["docs"], co["docs"]
    both = sorted(set(d1) & set(d2))
    same_lines = sum(d1[u]["text"] == d2[u]["text"] for u in both)
    same_lang = sum(d1[u]["lang"] == d2[u]["lang"] and d1[u]["lang_score"] == d2[u]["lang_score"] for u in both)
    scored = [u for u in both if d1[u]["perplexity"] is not None or d2[u]["perplexity"] is not None]
    pp_ok = sum(
        d1[u]["perplexity"] is not None
        and d2[u]["perplexity"] is not None
        and abs(d1[u]["perplexity"] - d2[u]["perplexity"]) <= 0.1 + 1e-9
        for u in scored
    )
    max_pp = max(
        (
            abs(d1[u]["perplexity"] - d2[u]["perplexity"])
            for u in scored
            if d1[u]["perplexity"] is not None and d2[u]["perplexity"] is not None
        ),
        default=0.0,
    )
    kind = "every line distinct" if a.distinct else "the real WET and tagged copies"
    print(f"input: {n_records} WET conversion records ({a.copies} file(s), {kind}); same models on both sides")
    print(
        f"documents kept after dedup + LID: cc_net {len(d1)}, corral {len(d2)}, both {len(both)}; "
        f"only cc_net {len(set(d1) - set(d2))}, only corral {len(set(d2) - set(d1))}"
    )
    print(f"identical kept lines:        {same_lines}/{len(both)}")
    print(f"identical label and score:   {same_lang}/{len(both)}")
    print(f"perplexity within 0.1:       {pp_ok}/{len(scored)} (max difference {max_pp:.3f})")
    r1, r2 = n_records / cc["seconds"], n_records / co["seconds"]
    print(
        f"speed (one core, best of {a.repeat}): cc_net {r1:,.0f} docs/s, corral {r2:,.0f} docs/s, "
        f"ratio corral/cc_net {r2 / r1:.2f}x"
    )
    print(f"peak RSS: cc_net {cc['peak_rss_mb']:.0f} MB, corral {co['peak_rss_mb']:.0f} MB")
    print(
        f"floor (the model calls alone on the texts the build sends them, best of {a.repeat}): "
        f"{floor['seconds']:.2f} s, {n_records / floor['seconds']:,.0f} docs/s; "
        f"corral's functions take {co['seconds'] / floor['seconds']:.2f}x the floor, "
        f"cc_net {cc['seconds'] / floor['seconds']:.2f}x"
    )
    if a.pipeline:
        # 1 and 2 workers alternate, so that a noisy stretch of the machine hits both alike.
        runs: dict[int, list[tuple[float, dict]]] = {1: [], 2: []}
        for _ in range(a.repeat):
            for workers in (1, 2):
                runs[workers].append(pipeline_rate(paths_for_pipeline, models, workers))
        rates = {}
        for workers in (1, 2):
            seconds, funnel = min(runs[workers], key=lambda r: r[0])
            rates[workers] = funnel["input"] / seconds
            print(
                f"corral build of the CommonCrawl source (best of {a.repeat}; "
                f"{workers} worker{'s' if workers > 1 else ''}, given "
                f"models, classifier off, shards written, the whole build timed): {rates[workers]:,.0f} docs/s "
                f"({funnel['input']} records, {funnel['kept']} kept, {seconds:.1f} s; runs "
                f"{', '.join(f'{r[0]:.1f}' for r in runs[workers])} s); "
                f"ratio corral build/cc_net {rates[workers] / r1:.2f}x; {seconds / floor['seconds']:.2f}x the floor"
                + (" (whose time is one core's)" if workers > 1 else "")
            )
        pairs = sorted(one[0] / two[0] for one, two in zip(runs[1], runs[2]))
        print(
            f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x (best against best); "
            f"{pairs[0]:.2f}–{pairs[-1]:.2f}x over the {len(pairs)} back-to-back pairs"
        )
        shutil.rmtree(keep, ignore_errors=True)


def pipeline_rate(paths: list[str], models: dict[str, str], workers: int = 1) -> tuple[float, dict]:
    """Time `corral build` of the CommonCrawl source alone (no Wikipedia: given models, no classifier):
    the whole build() call, from reading the manifest to writing OUT/manifest.json."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from helpers import write_manifest

    from corral.engine.runners import Executor
    from corral.pipeline.build import build

    with tempfile.TemporaryDirectory() as tmp:
        spec = {
            "inputs": paths,
            "line_dedup": {"hash_in_mem": 1, "num_shards": 1},
            "perplexity": {
                "sp_model": models["sp"].replace("/en.", "/{lang}."),
                "lm_model": models["lm"].replace("/en.", "/{lang}."),
            },
            "quality": {"enabled": False},
        }
        m = write_manifest(Path(tmp) / "m.yaml", {"commoncrawl": spec})
        t0 = time.perf_counter()
        manifest = build(m, str(Path(tmp) / "out"), Executor(workers=workers), progress=False)
        return time.perf_counter() - t0, manifest.sources["commoncrawl"].funnel.to_dict()


if __name__ == "__main__":
    main()

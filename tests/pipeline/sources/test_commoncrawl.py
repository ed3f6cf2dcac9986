"""CommonCrawl reading (docs/recipe/commoncrawl.md#reading-wet) on real and hostile WET, and the whole stage in a
build."""

import collections
import gzip
import json
import os

from helpers import shard_records, stages, write_manifest

from corral.manifests.verify import verify_build
from corral.pipeline.build import build
from corral.pipeline.inputs.streams import guarded
from corral.pipeline.quality.ccnet_rules import score_document
from corral.pipeline.quality.taggers import Perplexity
from corral.pipeline.sources import commoncrawl as cc

READ = stages("commoncrawl")["read"]
HEAD43 = "CC-MAIN-20170720121902-20170720141902-00000.head43.warc.wet.gz"
# the English Wikipedia sample the side models learn from
ENWIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
TRUNC = "CC-MAIN-20170720121902-20170720141902-00000.truncated.warc.wet.gz"


def wet_record(url, body: bytes, declared=None, extra_headers=""):
    length = len(body) if declared is None else declared
    head = (
        f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: {url}\r\nWARC-Date: 2017-07-20T12:39:49Z\r\n"
        f"WARC-Record-ID: <urn:uuid:{abs(hash(url))}>\r\n{extra_headers}WARC-Block-Digest: sha1:ABC\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    return gzip.compress(head + body + b"\r\n\r\n")


LONG = ("This is a line of ordinary English text that goes on for a while. " * 6).encode()


def read_all(path, **read):
    return list(guarded("commoncrawl", str(path), cc.read_wet(str(path), 0, {**READ, **read})))


def test_real_wet_43_conversion_records(shared_data):
    outs = read_all(shared_data / "commoncrawl" / HEAD43)
    assert len(outs) == 43  # the warcinfo record is not a document
    kept = [o for o in outs if o["status"] == "kept"]
    assert kept and all(len(o["record"]["text"]) >= 300 for o in kept)
    meta = json.loads(kept[0]["record"]["meta"])
    assert meta["title"] and meta["digest"].startswith("sha1:") and meta["source_domain"]
    assert meta["title"] not in kept[0]["record"]["text"].split("\n")[:1]  # the title left raw_content


def test_truncated_wet_keeps_43_records_and_counts_the_tail(shared_data):
    outs = read_all(shared_data / "commoncrawl" / TRUNC)
    assert [o["status"] for o in outs].count("error") == 1 and outs[-1]["reason"] == "truncated_or_corrupt"
    assert len(outs) - 1 == 43


def test_new_layout_headers_read_by_name(shared_data):
    outs = read_all(shared_data / "commoncrawl" / "whirlwind.warc.wet.gz", min_len=0)
    assert len(outs) == 1 and outs[0]["status"] == "kept"
    assert outs[0]["record"]["url"].startswith("https://an.wikipedia.org/")
    assert json.loads(outs[0]["record"]["meta"])["content_length"] > 0  # parsed although it moved position


def test_min_len_before_dedup(tmp_path):
    p = tmp_path / "x.wet.gz"
    p.write_bytes(wet_record("http://a/1", b"Title\n" + b"short") + wet_record("http://a/2", b"Title\n" + LONG))
    assert [o["status"] for o in read_all(p)] == ["dropped", "kept"]


def test_hostile_wet_records(tmp_path):
    p = tmp_path / "bad.wet.gz"
    p.write_bytes(
        wet_record("http://a/empty", b"")
        + wet_record("http://a/latin1", b"Title\n" + LONG + b"caf\xe9")
        + wet_record("http://a/ok", b"Title\n" + LONG)
        + wet_record("http://a/liar", b"Title\n" + LONG, declared=len(LONG) + 5000)
    )
    outs = read_all(p)
    reasons = collections.Counter((o["status"], o["reason"]) for o in outs)
    assert reasons[("dropped", "too_short")] == 1  # the empty record
    assert reasons[("error", "invalid_utf8")] == 1
    assert reasons[("kept", None)] == 1
    assert sum(n for (s, _), n in reasons.items() if s == "error") >= 2  # the wrong Content-Length too


def test_warc_html_option(shared_data):
    path = str(shared_data / "commoncrawl" / "dolma-wget-sample-0000.warc.gz")
    outs = list(guarded("commoncrawl", path, cc.read_warc_html(path, 0, {**READ, "format": "warc"})))
    kept = [o["record"] for o in outs if o["status"] == "kept"]
    assert len(outs) == 22 and kept
    assert all("<" not in r["text"][:200] or "</" not in r["text"] for r in kept)


def commoncrawl_build(shared, tmp_path, **cc_opts):
    spec = {
        "inputs": [str(shared / "commoncrawl" / HEAD43)],
        "line_dedup": {"hash_in_mem": 1, "num_shards": 1},
        "perplexity": {"sp_vocab_size": 2000},
        "quality": {"min_chars": 200},
    }
    for k, v in cc_opts.items():
        spec[k] = {**spec.get(k, {}), **v}
    m = write_manifest(
        tmp_path / f"m{len(os.listdir(tmp_path))}.yaml",
        {
            "commoncrawl": spec,
            "wikipedia": {"inputs": [str(shared / "wikipedia" / ENWIKI)]},
        },
    )
    out = tmp_path / f"out{len(os.listdir(tmp_path))}"
    return build(m, str(out)), out


def test_commoncrawl_build_tags_selects_and_records_models(shared_data, tmp_path):
    manifest, out = commoncrawl_build(shared_data, tmp_path)
    f = manifest.sources["commoncrawl"].funnel
    assert f.input == 43 and f.balanced() and f.kept >= 1
    assert f.dropped["language_not_selected"] > 10  # zh, ru, ja … pages
    assert set(manifest.models) == {"en.sp.model", "en.arpa.bin", "quality.bin", "perplexity_cutoffs.json"}
    cut = manifest.models["perplexity_cutoffs.json"]
    assert cut["percentiles"] == [30, 60] and cut["cutoffs"]["en"][0] < cut["cutoffs"]["en"][1]
    for info in manifest.models.values():
        assert info["path"].startswith("models/") and len(info["sha256"]) == 64
    assert verify_build(str(out)).ok
    for r in shard_records(str(out), "commoncrawl"):
        assert r["lang"] == "en" and r["lang_score"] >= 0.5
        assert r["perplexity"] > 0 and r["bucket"] in ("head", "middle") and r["quality"] >= 0.5

    # The trained models reused as given models ({lang} placeholder) with a cutoff.csv: same scores.
    models = out / "models"
    csv = tmp_path / "cutoff.csv"
    csv.write_text(",en\n" + "\n".join(f"{i},{(i + 1) * 20}" for i in range(100)) + "\n")
    again, out2 = commoncrawl_build(
        shared_data,
        tmp_path,
        perplexity={
            "sp_model": str(models / "{lang}.sp.model"),
            "lm_model": str(models / "{lang}.arpa.bin"),
            "cutoffs": str(csv),
            "keep_buckets": ["head", "middle", "tail"],
        },
        quality={"enabled": False},
        langid={"rounding": 1},
    )
    pp1 = {r["id"]: r["perplexity"] for r in shard_records(str(out), "commoncrawl")}
    pp2 = {r["id"]: r["perplexity"] for r in shard_records(str(out2), "commoncrawl")}
    assert pp1 and all(pp2[k] == v for k, v in pp1.items())
    for r in shard_records(str(out2), "commoncrawl"):
        assert r["bucket"] == ("head" if r["perplexity"] < 620 else "middle" if r["perplexity"] < 1220 else "tail")
    assert "quality.bin" not in again.models
    # langid.rounding: 1 rounds every score to one decimal, where the default gave two.
    scores1 = [r["lang_score"] for r in shard_records(str(out), "commoncrawl")]
    scores2 = [r["lang_score"] for r in shard_records(str(out2), "commoncrawl")]
    assert all(round(x, 1) == x for x in scores2) and any(round(x, 1) != x for x in scores1)

    # The batched perplexity (one SentencePiece call per language) equals cc_net's one-by-one rule.
    ppl = Perplexity({"en": {"sp": str(models / "en.sp.model"), "lm": str(models / "en.arpa.bin")}})
    texts = [r["text"] for r in shard_records(str(out), "commoncrawl")][:5] + ["Ünïcode — 12 «lines»\nsecond ２"]
    sp, lm = ppl._models("en")
    expected = [score_document(t, sp, lm) for t in texts]
    assert ppl.scores([*texts, "x"], ["en"] * len(texts) + ["fr"]) == [*expected, None]


def test_url_digest_dedup_and_reference_positives(shared_data, tmp_path):
    wet = shared_data / "commoncrawl" / HEAD43
    twin = tmp_path / "twin.warc.wet.gz"
    twin.write_bytes(wet.read_bytes())  # the same records again: same URL and digest
    spec = {
        "inputs": [str(wet), str(twin)],
        "line_dedup": {"enabled": False},
        "url_dedup": {"enabled": True},
        "perplexity": {"sp_vocab_size": 2000, "keep_buckets": []},
        "quality": {
            "positives": str(shared_data / "commoncrawl" / "dolma-wget-sample-0000.warc.gz"),
            "min_chars": 200,
            "threshold": 0.0,
        },
    }
    m = write_manifest(
        tmp_path / "m.yaml",
        {
            "commoncrawl": spec,
            "wikipedia": {"inputs": [str(shared_data / "wikipedia" / ENWIKI)]},
        },
    )
    manifest = build(m, str(tmp_path / "out"))
    f = manifest.sources["commoncrawl"].funnel
    assert f.input == 86 and f.balanced()
    # UniqueIds catches the same (URL, digest) first: each record's twin is counted once either way.
    dups = f.dropped.get("duplicate_url_digest", 0) + f.dropped.get("duplicate_id", 0)
    assert dups == 43 - f.dropped.get("too_short", 0) // 2
    assert "quality.bin" in manifest.models, (f.to_dict(), manifest.models)
    assert manifest.models["quality.bin"]["positives"] >= 1  # trained on the crawled reference pages


def test_commoncrawl_rebuilt_alone_learns_from_the_reused_wikipedia(shared_data, tmp_path, caplog):
    """A changed CommonCrawl setting rebuilds CommonCrawl only; its side models are trained on the
    Wikipedia documents read back from the finished Wikipedia shards, and come out the same."""
    import logging
    import shutil

    first, out = commoncrawl_build(shared_data, tmp_path)
    spec = {
        "inputs": [str(shared_data / "commoncrawl" / HEAD43)],
        "line_dedup": {"hash_in_mem": 1, "num_shards": 1},
        "perplexity": {"sp_vocab_size": 2000},
        "quality": {"min_chars": 200, "threshold": 0.4},
    }
    m = write_manifest(
        tmp_path / "changed.yaml",
        {
            "commoncrawl": spec,
            "wikipedia": {"inputs": [str(shared_data / "wikipedia" / ENWIKI)]},
        },
    )
    fresh = tmp_path / "fresh"
    shutil.copytree(out, fresh)
    caplog.set_level(logging.INFO, logger="corral.build")
    again = build(m, str(fresh))
    assert "1 source(s) built, 1 reused (wikipedia)" in caplog.text
    assert {k: v["sha256"] for k, v in again.models.items()} == {k: v["sha256"] for k, v in first.models.items()}
    assert again.sources["wikipedia"].shards == first.sources["wikipedia"].shards
    assert verify_build(str(fresh)).ok


def test_small_wet_files_read_together_give_the_same_build(shared_data, tmp_path, monkeypatch):
    """Small WET files of one hash group are read as one task (`combine_small`): the documents,
    their tags and the funnel are those of a task per file, a damaged file in the middle included."""
    from corral.pipeline.quality.side_models import train_perplexity_models
    from corral.pipeline.sources import commoncrawl as cc_source
    from corral.pipeline.sources.wikipedia import read_dump

    wiki = stages("wikipedia")
    texts = [
        o["record"]["text"]
        for o in read_dump(str(shared_data / "wikipedia" / ENWIKI), wiki["read"], wiki["clean"])
        if o["status"] == "kept"
    ]
    models = train_perplexity_models("en", texts, str(tmp_path / "models"), vocab_size=2000, order=5)
    members = []  # the sample's records, one gzip member each
    data = gzip.decompress((shared_data / "commoncrawl" / HEAD43).read_bytes())
    for rec in data.split(b"WARC/1.0\r\n")[1:]:
        members.append(gzip.compress(b"WARC/1.0\r\n" + rec))
    paths = []
    for k in range(5):
        part = b"".join(members[k::5])
        if k == 2:
            part = part[:-40]  # a damaged tail: one error, the rest of the build unharmed
        paths.append(tmp_path / f"part{k}.warc.wet.gz")
        paths[-1].write_bytes(part)
    spec = {
        "inputs": [str(p) for p in paths],
        "line_dedup": {"hash_in_mem": 1, "num_shards": 1},
        "perplexity": {
            "sp_model": models["en.sp.model"]["path"].replace("/en.", "/{lang}."),
            "lm_model": models["en.arpa.bin"]["path"].replace("/en.", "/{lang}."),
            "keep_buckets": ["head", "middle", "tail"],
        },
        "quality": {"enabled": False},
    }
    m = write_manifest(tmp_path / "m.yaml", {"commoncrawl": spec})
    together = build(m, str(tmp_path / "together"))
    monkeypatch.setattr(cc_source, "SMALL_FILES", 1)  # every file its own task
    apart = build(m, str(tmp_path / "apart"))
    tasks = {
        name: len(os.listdir(tmp_path / name / "_build" / "commoncrawl" / "done" / "cc-read"))
        for name in ("together", "apart")
    }
    assert tasks == {"together": 1, "apart": 5}
    f1, f2 = together.sources["commoncrawl"].funnel, apart.sources["commoncrawl"].funnel
    assert f1.to_dict() == f2.to_dict() and f1.errors.get("truncated_or_corrupt") == 1
    docs1 = sorted(
        (r["id"], r["text"], r["lang_score"], r["perplexity"])
        for r in shard_records(str(tmp_path / "together"), "commoncrawl")
    )
    docs2 = sorted(
        (r["id"], r["text"], r["lang_score"], r["perplexity"])
        for r in shard_records(str(tmp_path / "apart"), "commoncrawl")
    )
    assert docs1 and docs1 == docs2

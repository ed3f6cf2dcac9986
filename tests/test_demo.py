"""`corral sample`, `corral demo`, `corral report` (rendered in headless Chromium) and runner profiles."""

import filecmp
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from corral.cli import main
from corral.sample import write_sample

ARTIFACTS = Path(os.environ.get("CORRAL_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))


def test_sample_is_deterministic_and_in_every_native_format(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_sample(str(a))
    write_sample(str(b))
    cmp = filecmp.dircmp(a, b)
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    for sub in ("commoncrawl", "c4", "github", "wikipedia", "books", "arxiv", "stackexchange"):
        assert any((a / sub).iterdir()), sub
    wet = next((a / "commoncrawl").glob("*.warc.wet.gz")).read_bytes()
    assert wet.count(b"\x1f\x8b\x08") > 10  # one gzip member per record
    assert gzip.decompress(wet).startswith(b"WARC/1.0\r\nWARC-Type: warcinfo")
    assert {p.name[:2] for p in (a / "wikipedia").glob("*wiki-*.xml.bz2")} >= {"en", "fr", "es", "ru"}
    book = (a / "books" / "pg90001.txt").read_text()
    assert "*** START OF THE PROJECT GUTENBERG EBOOK" in book and "*** END OF THE PROJECT GUTENBERG EBOOK" in book


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    res = subprocess.run(
        [sys.executable, "-m", "corral.cli", "demo", "--out", str(out), "--steps", "120"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out, res.stdout


def test_demo_builds_all_seven_sources_tokenizes_trains_and_reports(demo):
    out, stdout = demo
    for i in range(1, 8):
        assert f"[demo {i}/7]" in stdout
    manifest = json.loads((out / "build" / "manifest.json").read_text())
    assert set(manifest["sources"]) == {"commoncrawl", "c4", "github", "wikipedia", "books", "arxiv", "stackexchange"}
    for name, s in manifest["sources"].items():
        assert s["funnel"]["kept"] > 0 and s["token_shards"] and s["tokens"] > 0, name
    assert list((out / "run" / "checkpoints").glob("step-*"))
    assert (out / "build" / "report.html").is_file()
    assert "the report:" in stdout and str(out / "build" / "report.html") in stdout
    rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    vals = [sum(r["val_loss"].values()) / len(r["val_loss"]) for r in rows if r.get("val_loss")]
    assert vals[-1] < vals[0]


def test_demo_sample_exercises_the_rules(demo):
    out, _ = demo
    funnels = {n: s["funnel"] for n, s in json.loads((out / "build" / "manifest.json").read_text())["sources"].items()}
    expect = {
        "commoncrawl": {"language_not_selected", "bucket_tail", "low_quality", "duplicate_url_digest"},
        "c4": {"duplicate_id"},
        "github": {"no_license", "license_not_allowed"},
        "wikipedia": {"redirect", "not_main_namespace"},
        "books": {"near_duplicate", "duplicate_exact"},
        "arxiv": {"no_section"},
        "stackexchange": {"answer_merged", "orphan_answer", "other_post_type"},
    }
    for name, reasons in expect.items():
        assert reasons <= set(funnels[name]["dropped"]), (name, funnels[name]["dropped"])
    # line dedup took the navigation and footer lines that every page of a site repeats
    from corral.core.shards import iter_records

    docs = [r for f in (out / "build" / "docs" / "commoncrawl").glob("*.arrow") for r in iter_records(str(f))]
    assert docs and not any("All rights reserved." in r["text"] or "Privacy policy" in r["text"] for r in docs)
    quality = [r["quality"] for r in docs]
    assert max(quality) - min(quality) > 0.1  # the classifier learned something on the sample
    # the bucket cutoffs are recorded (what the report draws) and are the ones the buckets used
    models = json.loads((out / "build" / "manifest.json").read_text())["models"]
    cut = models["perplexity_cutoffs.json"]
    head, tail = cut["cutoffs"]["en"]
    assert cut["percentiles"] == [30, 60] and (out / "build" / cut["path"]).is_file()
    assert all(r["perplexity"] < head for r in docs if r["bucket"] == "head")
    assert all(head <= r["perplexity"] < tail for r in docs if r["bucket"] == "middle")
    assert {r["bucket"] for r in docs} == {"head", "middle"}


def test_demo_export_loads_in_transformers_and_generates(demo):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, stdout = demo
    export = out / "run" / "export" / "hf"
    assert f"export {export}" in stdout  # the run's last line names it
    tok = AutoTokenizer.from_pretrained(str(export))
    model = AutoModelForCausalLM.from_pretrained(str(export))
    ids = tok("The history of", return_tensors="pt")
    generated = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert generated.shape[1] == ids["input_ids"].shape[1] + 8
    assert tok.decode(generated[0], skip_special_tokens=True).startswith("The history of")


def test_inspect_prints_table_1_of_the_demo_build(demo, capsys):
    out, _ = demo
    assert main(["inspect", str(out / "build")]) == 0
    text = capsys.readouterr().out
    assert "Sampling prop." in text and "67.0%" in text and "StackExchange" in text


def test_report_renders_every_chart_in_headless_chromium(demo):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (the test set-up, `bash scripts/setup.sh --test`, installs it as root)")
    out, _ = demo
    report = out / "build" / "report.html"
    html = report.read_text()
    assert "src='http" not in html and 'src="http' not in html  # self-contained
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(
        [*flags, "--virtual-time-budget=10000", "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    charts = re.search(r'data-charts="(\d+)/(\d+)"', dom)
    assert charts, dom[:500]
    ok, total = map(int, charts.groups())
    # funnel, languages, perplexity, quality, duplicates, lengths, mixture, epochs, stages, training
    assert total == 10 and ok == total
    for key in ("mixture", "epochs", "stages", "quality"):
        assert f"data-chart='{key}'" in html
    assert "What each drop reason removed" in html and "Dead letters" in html and "Stage times and throughput" in html
    assert "language_not_selected" in html and "records / task second" in html
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    subprocess.run(
        [*flags, "--window-size=1100,6000", f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120
    )
    assert shot.stat().st_size > 50_000


def test_report_reads_at_most_its_bound_per_source(demo, monkeypatch):
    from corral.manifests.build_manifest import load_build
    from corral.report import html

    out, _ = demo
    monkeypatch.setattr(html, "MAX_DOCS_PER_SOURCE", 5)
    stats = html._stats(str(out / "build"), load_build(str(out / "build")))
    assert {len(v) for v in stats["length"].values()} <= {3, 5}  # books keeps 3; every other source is cut at 5
    assert sum(stats["lang"]["c4"].values()) == 5

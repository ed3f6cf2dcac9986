"""http(s):// inputs (corral.core.http_fs) against a loopback server with faults: resumed reads, retries,
truncation and change detection, globs refused, and a build over HTTP equal to one over local files."""

import json
import shutil
from pathlib import Path

import pytest
from http_server import LoopbackServer

from corral.core import fs, http_fs
from corral.engine.runners import Executor
from corral.pipeline.inputs.match import InputError, match_inputs


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(http_fs, "BACKOFF_S", 0.01)


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    data = bytes(range(256)) * 4000 + b"tail"  # ~1 MB, not a multiple of the read size
    (root / "blob.bin").write_bytes(data)
    with LoopbackServer(str(root)) as url:
        yield url, data


@pytest.mark.parametrize("fault", ["ok", "drop", "flaky", "norange"])
def test_a_url_reads_whole_through_drops_503s_and_servers_without_range(served, fault):
    url, data = served
    assert fs.read_bytes(f"{url}/{fault}/blob.bin") == data
    assert fs.size(f"{url}/{fault}/blob.bin") == len(data)
    assert fs.exists(f"{url}/{fault}/blob.bin")


def test_a_body_shorter_than_its_content_length_is_an_error(served):
    url, _ = served
    with pytest.raises(http_fs.HttpInputError, match="truncated at byte"):
        fs.read_bytes(f"{url}/short/blob.bin")


def test_a_file_that_changes_while_it_is_read_is_an_error(served):
    url, _ = served
    with pytest.raises(http_fs.HttpInputError, match="changed while it was read"):
        fs.read_bytes(f"{url}/changing/blob.bin")


def test_missing_urls_and_globs_are_configuration_errors(served):
    url, _ = served
    assert not fs.exists(f"{url}/ok/nothing.bin")
    with pytest.raises(InputError, match="matches no file"):
        match_inputs([f"{url}/ok/nothing.bin"], "m.yaml: sources.c4.inputs")
    with pytest.raises(Exception, match="globs cannot be listed over HTTP"):
        match_inputs([f"{url}/ok/*.bin"])
    assert match_inputs([f"{url}/ok/blob.bin"]) == [(f"{url}/ok/blob.bin", 1024004)]


def test_http_inputs_are_read_only(served):
    url, _ = served
    with pytest.raises(Exception, match="read-only"):
        fs.atomic_write_bytes(f"{url}/ok/new.bin", b"x")


def _docs(out: Path) -> dict:
    from corral.core.shards import iter_records

    return {
        s.name: [(r["id"], r["text"]) for f in sorted(s.glob("*.arrow")) for r in iter_records(str(f))]
        for s in sorted((out / "docs").iterdir())
    }


def test_a_build_over_http_with_faults_equals_a_build_over_local_files(tmp_path):
    from corral.pipeline.build import build
    from corral.sample import write_sample

    sample = tmp_path / "sample"
    write_sample(str(sample))
    www = tmp_path / "www"
    for sub in ("c4", "books", "wikipedia"):
        shutil.copytree(sample / sub, www / sub)
    c4 = sorted(p.name for p in (www / "c4").iterdir())
    books = sorted(p.name for p in (www / "books").iterdir())

    def manifest(path: Path, c4_inputs, books_inputs, wiki_inputs) -> str:
        path.write_text(
            json.dumps(
                {
                    "name": "http",
                    "target_tokens": "1M",
                    "sources": {
                        "c4": {"weight": 0.5, "inputs": c4_inputs},
                        "books": {"weight": 0.25, "inputs": books_inputs, "exact_dedup": {"enabled": True}},
                        "wikipedia": {"weight": 0.25, "inputs": wiki_inputs},
                    },
                }
            )
        )
        return str(path)

    local = manifest(
        tmp_path / "local.yaml",
        [str(www / "c4" / n) for n in c4],
        [str(www / "books" / n) for n in books],
        [str(www / "wikipedia" / "enwiki-20261101-pages-articles.xml.bz2")],
    )
    build(local, str(tmp_path / "local"))
    with LoopbackServer(str(www)) as url:
        # one fault per source, so the inputs sort as the local paths do (dedup keeps the first)
        remote = manifest(
            tmp_path / "remote.yaml",
            [f"{url}/drop/c4/{n}" for n in c4],
            [f"{url}/norange/books/{n}" for n in books],
            [f"{url}/flaky/wikipedia/enwiki-20261101-pages-articles.xml.bz2"],
        )
        built = build(remote, str(tmp_path / "remote"), Executor(workers=2))
    before = json.loads((tmp_path / "local" / "manifest.json").read_text())
    assert _docs(tmp_path / "remote") == _docs(tmp_path / "local")
    for name, sb in built.sources.items():
        assert sb.funnel.to_dict() == before["sources"][name]["funnel"], name
        assert sb.funnel.kept > 0 and not sb.funnel.errors, name


def test_a_url_that_fails_mid_build_is_one_counted_error_and_the_rest_goes_on(tmp_path):
    from corral.pipeline.build import build
    from corral.sample import write_sample

    sample = tmp_path / "sample"
    write_sample(str(sample))
    books = sorted(p.name for p in (sample / "books").iterdir())
    m = tmp_path / "m.yaml"
    with LoopbackServer(str(sample)) as url:
        inputs = [f"{url}/{'short' if i == 0 else 'ok'}/books/{n}" for i, n in enumerate(books)]
        m.write_text(
            json.dumps({"name": "h", "target_tokens": "1M", "sources": {"books": {"weight": 1.0, "inputs": inputs}}})
        )
        manifest = build(str(m), str(tmp_path / "out"))
    f = manifest.sources["books"].funnel
    assert f.errors == {"truncated_or_corrupt": 1} and f.kept >= 1 and f.balanced()
    letters = (tmp_path / "out" / "errors" / "books" / "errors.jsonl").read_text().splitlines()
    assert len(letters) == 1 and inputs[0] in letters[0] and "truncated at byte" in letters[0]


def test_a_paths_list_expands_to_its_files_and_a_404_among_them_is_one_counted_error(tmp_path, capsys):
    import gzip

    from corral.cli import main
    from corral.manifests.mixture import ManifestError, load_mixture
    from corral.pipeline.build import build
    from corral.pipeline.inputs.match import read_paths_list
    from corral.pipeline.sources.registry import SOURCES
    from corral.sample import write_sample

    sample = tmp_path / "sample"
    write_sample(str(sample))
    www = tmp_path / "www"
    shutil.copytree(sample / "c4", www / "crawl" / "c4")
    names = sorted(p.name for p in (www / "crawl" / "c4").iterdir())
    listed = [f"c4/{n}" for n in names] + ["c4/c4-train.99999-of-00002.json.gz"]  # the last one is not there
    (www / "crawl" / "c4.paths.gz").write_bytes(gzip.compress(("\n".join(listed) + "\n").encode()))
    with LoopbackServer(str(www)) as url:
        spec = {"paths": f"{url}/ok/crawl/c4.paths.gz"}
        assert read_paths_list(spec) == [f"{url}/ok/crawl/{p}" for p in listed]
        assert read_paths_list({**spec, "every": 2, "limit": 1}) == [f"{url}/ok/crawl/{listed[0]}"]
        assert read_paths_list({**spec, "base": "https://data.example/x/"})[0] == f"https://data.example/x/{listed[0]}"
        m = tmp_path / "m.yaml"
        m.write_text(
            f"name: p\ntarget_tokens: 1M\nsources:\n  c4:\n    weight: 1.0\n"
            f"    inputs: [{{paths: '{url}/flaky/crawl/c4.paths.gz', base: '{url}/drop/crawl'}}]\n"
        )
        assert main(["inspect", str(m), "--files"]) == 0
        printed = capsys.readouterr().out
        assert f"paths list {url}/flaky/crawl/c4.paths.gz: 3 file(s)" in printed, printed
        manifest = build(str(m), str(tmp_path / "out"))
    local = tmp_path / "l.yaml"
    local.write_text(
        f"name: l\ntarget_tokens: 1M\nsources:\n  c4:\n    weight: 1.0\n    inputs: ['{www}/crawl/c4/*.json.gz']\n"
    )
    expected = build(str(local), str(tmp_path / "local")).sources["c4"].funnel
    f = manifest.sources["c4"].funnel
    assert f.errors == {"missing_input": 1} and f.kept == expected.kept and f.dropped == expected.dropped
    assert _docs(tmp_path / "out") == _docs(tmp_path / "local")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: b\ntarget_tokens: 1M\nsources:\n  c4:\n    weight: 1.0\n"
        "    inputs: [{paths: '', limit: 0, every: x, depth: 2}]\n"
    )
    with pytest.raises(ManifestError) as e:
        load_mixture(str(bad), SOURCES)
    text = str(e.value)
    for field in ("inputs[0].paths", "inputs[0].limit", "inputs[0].every", "depth"):
        assert field in text, text


@pytest.mark.parametrize(
    "url, needle",
    [
        ("s3://commoncrawl/crawl-data/CC-MAIN-2019-30/x/*.warc.wet.gz", "aws extra"),
        ("http://127.0.0.1:9/nothing-listens-here.json.gz", "refused the connection"),
    ],
)
def test_an_input_that_cannot_be_reached_is_one_line_naming_the_field(tmp_path, url, needle):
    import subprocess
    import sys

    m = tmp_path / "m.yaml"
    m.write_text(f"name: x\ntarget_tokens: 1M\nsources:\n  c4:\n    weight: 1.0\n    inputs: ['{url}']\n")
    res = subprocess.run(
        [sys.executable, "-m", "corral.cli", "build", str(m), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
    )
    err = res.stderr.strip()
    assert res.returncode == 2 and "Traceback" not in err, err[-2000:]
    line = [ln for ln in err.splitlines() if ln.startswith("corral build:")]
    assert len(line) == 1 and f"{m}: sources.c4.inputs[0]" in line[0] and needle in line[0], err
    assert not (tmp_path / "o").exists()  # nothing written


def test_the_papers_manifest_without_network_fails_fast_in_one_line(tmp_path):
    """No network, simulated on loopback only: every request goes to a proxy on 127.0.0.1 that
    refuses it (requests honours HTTPS_PROXY), so nothing leaves this machine."""
    import os
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "CORRAL_RAW": str(tmp_path / "raw"),
    }
    t0 = time.time()
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral.cli",
            "build",
            str(root / "manifests" / "llama1.yaml"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    took = time.time() - t0
    err = res.stderr.strip()
    assert res.returncode == 2 and "Traceback" not in err and took < 45, (took, err[-2000:])
    line = [ln for ln in err.splitlines() if ln.startswith("corral build:")]
    assert len(line) == 1, err
    assert "sources.commoncrawl.inputs[0].paths" in line[0] and "CC-MAIN-2017-51/wet.paths.gz" in line[0]
    assert "proxy" in line[0]


def test_commoncrawl_by_paths_list_and_wikipedia_by_dump_urls_over_faults_equal_local(tmp_path):
    """The Done-when build: CommonCrawl named by a gzipped paths list (one listed file missing),
    Wikipedia by dump URLs, through dropped bodies, 503s and a server without Range support."""
    import gzip

    import yaml

    from corral.pipeline.build import build
    from corral.sample import write_sample

    sample = tmp_path / "sample"
    write_sample(str(sample))
    www = tmp_path / "www"
    crawl = www / "crawl-data" / "CC-MAIN-X"
    wets = sorted((sample / "commoncrawl").iterdir())
    for p in wets:
        (crawl / "segments" / "s1" / "wet").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, crawl / "segments" / "s1" / "wet" / p.name)
    listed = [f"crawl-data/CC-MAIN-X/segments/s1/wet/{p.name}" for p in wets] + [
        "crawl-data/CC-MAIN-X/segments/s1/wet/CC-MAIN-missing.warc.wet.gz"
    ]
    (crawl / "wet.paths.gz").write_bytes(gzip.compress(("\n".join(listed) + "\n").encode()))
    shutil.copytree(sample / "wikipedia", www / "wikipedia")
    dumps = sorted(p.name for p in (www / "wikipedia").iterdir())
    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "manifests" / "sample.yaml").read_text())

    def manifest(path: Path, cc_inputs, wiki_inputs) -> str:
        m = {
            **spec,
            "name": path.stem,
            "sources": {
                "commoncrawl": {**spec["sources"]["commoncrawl"], "weight": 0.9, "inputs": cc_inputs},
                "wikipedia": {**spec["sources"]["wikipedia"], "weight": 0.1, "inputs": wiki_inputs},
            },
        }
        path.write_text(yaml.safe_dump(m))
        return str(path)

    local = build(
        manifest(
            tmp_path / "local.yaml",
            [str(crawl / "segments" / "s1" / "wet" / p.name) for p in wets],
            [str(www / "wikipedia" / n) for n in dumps],
        ),
        str(tmp_path / "local"),
    )
    with LoopbackServer(str(www)) as url:
        remote = build(
            manifest(
                tmp_path / "remote.yaml",
                [{"paths": f"{url}/flaky/crawl-data/CC-MAIN-X/wet.paths.gz", "base": f"{url}/drop"}],
                [f"{url}/norange/wikipedia/{n}" for n in dumps],
            ),
            str(tmp_path / "remote"),
            Executor(workers=2),
        )
    assert _docs(tmp_path / "remote") == _docs(tmp_path / "local")
    assert remote.sources["wikipedia"].funnel == local.sources["wikipedia"].funnel
    cc, cc_local = remote.sources["commoncrawl"].funnel, local.sources["commoncrawl"].funnel
    assert cc.errors == {"missing_input": 1} and not cc_local.errors  # the 404, one counted error
    assert (cc.input, cc.kept, cc.dropped) == (cc_local.input + 1, cc_local.kept, cc_local.dropped)
    assert cc.kept > 0

import json

from helpers import TABLE1_WEIGHTS

from corral.cli import main
from corral.manifests.render import human_bytes, human_count


def test_inspect_llama1_json_gives_table1_weights(manifests_dir, capsys):
    assert main(["inspect", str(manifests_dir / "llama1.yaml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    weights = {n: s["weight"] for n, s in out["sources"].items()}
    assert weights == TABLE1_WEIGHTS
    assert list(out["sources"]) == ["commoncrawl", "c4", "github", "wikipedia", "books", "arxiv", "stackexchange"]
    for s in out["sources"].values():
        assert set(s) >= {"weight", "epochs", "disk_bytes", "documents", "tokens", "funnel"}
        assert s["epochs"] is None and s["tokens"] is None


def test_inspect_llama1_table(manifests_dir, capsys):
    assert main(["inspect", str(manifests_dir / "llama1.yaml")]) == 0
    out = capsys.readouterr().out
    for row in ("CommonCrawl", "67.0%", "StackExchange", "2.0%", "938.0B"):
        assert row in out


def test_inspect_build_table_and_funnel(tiny_build, capsys):
    assert main(["inspect", str(tiny_build)]) == 0
    out = capsys.readouterr().out
    assert "C4" in out and "75.0%" in out and "Books" in out
    assert "input 35 → kept 30" in out and "dropped: too_short 3" in out and "errors: bad_utf8 2" in out
    assert main(["inspect", str(tiny_build), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    c4 = data["sources"]["c4"]
    assert c4["documents"] == 30 and c4["tokens"] > 0
    assert c4["epochs"] == 0.75 * 10_000 / c4["tokens"]
    assert c4["funnel"] == {"input": 35, "kept": 30, "dropped": {"too_short": 3}, "errors": {"bad_utf8": 2}}
    assert c4["disk_bytes"] > 0


def test_inspect_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "m.yaml"
    bad.write_text("name: x\ntarget_tokens: 1\nsources: {c4: {weight: 1, inputs: []}}\n")
    assert main(["inspect", str(bad)]) == 2
    assert f"{bad}: sources.c4.inputs (line 3): required" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "nobuild")]) == 2


def test_human_units():
    assert human_count(1.4e12) == "1.4T" and human_count(938e9) == "938.0B" and human_count(None) == ""
    assert human_bytes(3.3e12) == "3.3 TB" and human_bytes(512) == "512 B"

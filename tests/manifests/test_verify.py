import json
import os

from corral.cli import main
from corral.manifests.build_manifest import load_build
from corral.manifests.verify import verify_build


def test_clean_build_verifies(tiny_build, capsys):
    report = verify_build(str(tiny_build))
    assert report.ok, report.summary()
    assert report.shards_checked == 3 + 1 + 1 + 1  # c4: 3 doc shards + 1 token; books: 1 + 1
    assert report.models_checked == 1 and report.sources_checked == 2
    assert main(["verify", str(tiny_build)]) == 0
    assert capsys.readouterr().out.startswith("OK: 2 sources, 6 shards")


def test_flipped_byte_is_caught(tiny_build, capsys):
    shard = tiny_build / "docs" / "c4" / "part-00001.arrow"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    report = verify_build(str(tiny_build))
    assert not report.ok
    assert any("c4 document shard docs/c4/part-00001.arrow: sha256" in p for p in report.problems)
    assert main(["verify", str(tiny_build)]) == 1
    assert "docs/c4/part-00001.arrow: sha256" in capsys.readouterr().err


def test_missing_shard_is_caught(tiny_build, capsys):
    os.remove(tiny_build / "tokens" / "books" / "part-00000.arrow")
    assert main(["verify", str(tiny_build)]) == 1
    assert "books token shard tokens/books/part-00000.arrow: missing" in capsys.readouterr().err


def test_funnel_that_does_not_add_up_is_caught(tiny_build, capsys):
    m = json.loads((tiny_build / "manifest.json").read_text())
    m["sources"]["books"]["funnel"]["dropped"]["too_short"] = 4
    (tiny_build / "manifest.json").write_text(json.dumps(m))
    assert main(["verify", str(tiny_build)]) == 1
    err = capsys.readouterr().err
    assert "books funnel: input 12 ≠ kept 7 + dropped 4 + errors 2 (= 13)" in err


def test_row_count_and_document_mismatches_are_caught(tiny_build):
    m = json.loads((tiny_build / "manifest.json").read_text())
    m["sources"]["c4"]["shards"][0]["documents"] = 11
    m["sources"]["c4"]["tokens"] += 1
    (tiny_build / "manifest.json").write_text(json.dumps(m))
    problems = "\n".join(verify_build(str(tiny_build)).problems)
    assert "docs/c4/part-00000.arrow: 10 rows, manifest says 11" in problems
    assert "c4: documents 30 ≠ 31 in its shards" in problems
    assert "c4: tokens" in problems


def test_changed_model_and_stray_shard(tiny_build):
    (tiny_build / "models" / "lm.bin").write_bytes(b"another model")
    (tiny_build / "docs" / "c4" / "part-00099.arrow").write_bytes(b"x")
    report = verify_build(str(tiny_build))
    assert "model kenlm: sha256 of models/lm.bin differs from the manifest's" in report.problems
    assert any("part-00099.arrow: shard file not listed" in w for w in report.warnings)


def test_missing_or_malformed_manifest(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 1
    assert "cannot read the build manifest" in capsys.readouterr().err
    (tmp_path / "manifest.json").write_text("{not json")
    assert "not valid JSON" in "\n".join(verify_build(str(tmp_path)).problems)
    (tmp_path / "manifest.json").write_text('{"format": "other/9"}')
    assert "this corral reads 'corral.build/1'" in "\n".join(verify_build(str(tmp_path)).problems)


def test_manifest_round_trip(tiny_build):
    m = load_build(str(tiny_build))
    assert m.sources["c4"].funnel.balanced()
    assert m.to_dict() == load_build(str(tiny_build / "manifest.json")).to_dict()
    assert m.settings["sources"]["c4"]["clean"]["min_sentences"] == 3
    assert m.mixture["sha256"] and m.mixture["name"] == "t"

import subprocess
import sys
from pathlib import Path

from corral.cli import main

SUBCOMMANDS = ["build", "inspect", "verify", "dedup", "tokenizer", "tokenize", "train", "demo", "sample", "report"]


def test_help_lists_every_subcommand():
    exe = Path(sys.prefix) / "bin" / "corral"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for name in SUBCOMMANDS:
        assert f"\n    {name}" in out, name
    assert "tokenizer train" in out


def test_report_of_a_missing_build_fails_clearly(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "corral report:" in capsys.readouterr().err


def test_models_describe(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "lid.176.ftz" in out and "lmplz" in out


def test_counts_below_one_and_file_outputs_are_one_line_errors(tmp_path, capsys):
    import pytest

    from corral.cli import main

    for argv in (
        ["train", str(tmp_path), "--micro-batch", "0"],
        ["train", str(tmp_path), "--nproc", "0"],
        ["build", "m.yaml", "--out", str(tmp_path), "--workers", "-1"],
        ["dedup", "x", "--out", str(tmp_path), "--ngram", "zero"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and ("is below" in err or "is not an integer" in err), argv
    f = tmp_path / "a-file"
    f.write_text("x")
    for argv, flag in (
        (["build", "m.yaml", "--out", str(f)], "--out"),
        (["dedup", "x", "--out", str(f)], "--out"),
        (["train", str(tmp_path), "--run-dir", str(f)], "--run-dir"),
    ):
        assert main(argv) == 2
        assert f"{flag} {f}: is a file, not a folder" in capsys.readouterr().err

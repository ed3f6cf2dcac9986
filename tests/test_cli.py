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
    assert main(["report", str(tmp_path / "nothing")]) == 1
    assert "corral report:" in capsys.readouterr().err


def test_models_describe(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "lid.176.ftz" in out and "lmplz" in out

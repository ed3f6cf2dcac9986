import subprocess
import sys
from pathlib import Path

import pytest

from corral.cli import main

SUBCOMMANDS = ["build", "inspect", "verify", "dedup", "tokenizer", "tokenize", "train", "demo", "sample", "report"]
PENDING = [["demo"], ["sample", "d"], ["report", "o"]]


def test_help_lists_every_subcommand():
    exe = Path(sys.prefix) / "bin" / "corral"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for name in SUBCOMMANDS:
        assert f"\n    {name}" in out, name
    assert "tokenizer train" in out


@pytest.mark.parametrize("argv", PENDING, ids=lambda a: " ".join(a[:2]))
def test_pending_subcommands_refuse_clearly(argv, capsys):
    assert main(argv) != 0
    assert "not implemented yet" in capsys.readouterr().err


def test_models_describe(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "lid.176.ftz" in out and "lmplz" in out

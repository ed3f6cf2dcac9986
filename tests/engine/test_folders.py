"""Output folders never silently reused (corral.engine.folders): the same owner resumes, another is
refused unless --overwrite, and files corral did not write are never touched."""

import pytest

from corral.engine.folders import FolderInUse, claim, owner


def _claim(out, name, overwrite=False):
    claim(str(out), "build", name, flag="--out", overwrite=overwrite, what=f"build {name!r}", redo="rebuild it")


def test_the_same_owner_resumes_and_another_is_refused(tmp_path):
    out = tmp_path / "out"
    _claim(out, "a")
    assert owner(str(out)) == {"kind": "build", "name": "a"}
    _claim(out, "a")
    (out / "docs").mkdir()
    with pytest.raises(FolderInUse, match="holds build 'a', not build 'b'"):
        _claim(out, "b")
    assert (out / "docs").is_dir()


def test_overwrite_clears_corrals_entries_only_and_foreign_files_are_refused(tmp_path):
    out = tmp_path / "out"
    _claim(out, "a")
    (out / "docs").mkdir()
    _claim(out, "b", overwrite=True)
    assert not (out / "docs").exists() and owner(str(out))["name"] == "b"
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FolderInUse, match="did not write"):
        _claim(out, "b", overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"

"""Resume (corral.engine.resume): a unit's fingerprint, the work an interrupted run left, and the
result a finished one recorded."""

from corral.engine.resume import fingerprint, finished_result, mark_finished, prepare


def test_the_fingerprint_follows_the_settings_and_the_inputs(tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("x")
    base = fingerprint({"stages": {"a": 1}}, [(str(f), 1)])
    assert base == fingerprint({"stages": {"a": 1}}, [(str(f), 1)])
    assert base != fingerprint({"stages": {"a": 2}}, [(str(f), 1)])
    assert base != fingerprint({"stages": {"a": 1}}, [(str(f), 2)])
    f.write_text("y")  # a new modification time
    assert base != fingerprint({"stages": {"a": 1}}, [(str(f), 1)])


def test_an_interrupted_unit_resumes_and_a_changed_one_is_cleared(tmp_path):
    folder, output = tmp_path / "_build" / "s", tmp_path / "docs" / "s"
    assert prepare(str(folder), "p1", [str(output)]) is False  # new: nothing to resume
    (folder / "done").mkdir()
    output.mkdir(parents=True)
    assert prepare(str(folder), "p1", [str(output)]) is True  # same fingerprint: kept
    assert (folder / "done").is_dir() and output.is_dir()
    assert prepare(str(folder), "p2", [str(output)]) is False  # changed: cleared
    assert not (folder / "done").exists() and not output.exists()


def test_a_finished_unit_records_its_result(tmp_path):
    folder = str(tmp_path / "s")
    prepare(folder, "p", [])
    assert finished_result(folder) is None
    mark_finished(folder, "p", {"shards": []})
    assert finished_result(folder, "p") == {"shards": []} and finished_result(folder, "q") is None
    assert prepare(folder, "p", []) is False  # a finished unit is not resumed: it is reused or redone

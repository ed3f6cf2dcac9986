"""Completion records (corral.engine.records): dataclasses to JSON and back; an item runs once,
again when its fingerprint, its own fields or its outputs change; examples go to a file."""

import json
from dataclasses import dataclass, field

import pytest
from engine_tasks import Number, Square, Squared, ledger

from corral.engine.graph import Item, Summary, Task
from corral.engine.records import plain, read_done, recorded, run_item, summary_of, typed


@dataclass(frozen=True)
class Part:
    path: str
    rows: int


@dataclass
class Nested(Summary):
    parts: list[Part] = field(default_factory=list)
    pair: tuple[int, int] = (0, 0)
    maybe: Part | None = None


def test_plain_and_typed_round_trip_through_json():
    s = Nested(parts=[Part("a", 1), Part("b", 2)], pair=(3, 4), maybe=Part("c", 5), records=7)
    back = typed(Nested, json.loads(json.dumps(plain(s))))
    assert back == s and isinstance(back.parts[0], Part) and back.pair == (3, 4)
    assert typed(Nested, {"records": 1, "unknown": "ignored"}).records == 1


def _square(tmp_path, n=3, fingerprint="f"):
    task = Square()
    task.setup()
    return task, ledger(str(tmp_path), fingerprint), Number("k", n)


def test_an_item_runs_once_and_its_record_answers_after(tmp_path):
    task, at, item = _square(tmp_path)
    first = run_item(task, at, item, [])
    assert (first.square, first.reused) == (9, False)
    assert read_done(at, "square", "k")["item"] == {"key": "k", "n": 3}
    again = run_item(task, at, item, [])
    assert (again.square, again.reused) == (9, True)
    assert [s.square for s in recorded(at, "square", Squared)] == [9]


def test_a_changed_fingerprint_or_item_runs_again(tmp_path):
    task, at, item = _square(tmp_path)
    run_item(task, at, item, [])
    assert summary_of(ledger(str(tmp_path), "other"), task, item) is None
    assert summary_of(at, task, Number("k", 4)) is None
    assert run_item(task, at, Number("k", 4), []).square == 16


class Gone(Square):
    def still_done(self, item, summary):
        return False


def test_a_record_whose_outputs_are_gone_runs_again(tmp_path):
    task, at, item = _square(tmp_path)
    run_item(task, at, item, [])
    gone = Gone()
    gone.setup()
    assert run_item(gone, at, item, []).reused is False


class Drops(Task):
    phase = "drops"

    def run(self, item, *earlier):
        return Summary(examples={"too_short": [["doc-1", "a short text"]]})


def test_dropped_examples_go_to_a_file_not_into_the_record(tmp_path):
    at = ledger(str(tmp_path))
    run_item(Drops(), at, Item("a"), [])
    assert read_done(at, "drops", "a")["summary"]["examples"] is None
    saved = json.loads((tmp_path / "s" / "examples" / "drops--a.json").read_text())
    assert saved == {"too_short": [["doc-1", "a short text"]]}


@pytest.mark.parametrize("where", ["disk", "bucket"])
def test_a_running_item_reports_its_bytes_read_beside_the_records(tmp_path, monkeypatch, request, where):
    """What a task's readers report (read_so_far) is written while it runs, for the progress line,
    and removed when it ends (in a bucket as on disk); outside a task, reports go nowhere."""
    from corral.core import fs
    from corral.engine import records

    monkeypatch.setattr(records, "REPORT_EVERY_S", 0.0)
    monkeypatch.setattr(records, "REPORT_EVERY_REMOTE_S", 0.0)
    root = str(tmp_path) if where == "disk" else request.getfixturevalue("bucket") + "/out"
    at = ledger(root)
    seen = []

    class Reading(Task):
        phase = "read"

        def run(self, item, *earlier):
            records.read_so_far(1000)
            records.read_so_far(500)
            seen.append(json.loads(fs.read_bytes(records.running_path(at, "read", item.key))))
            return Summary()

    records.read_so_far(10)  # no item running: nothing written
    run_item(Reading(), at, Item("a"), [])
    assert seen == [{"input_bytes": 1500}]
    assert not fs.exists(records.running_path(at, "read", "a"))


def test_a_second_job_in_one_process_finds_the_first_ones_records_in_a_bucket(bucket):
    """What a process remembers of a bucket's records belongs to one job: the same items run again
    in a later job of the same process are taken as done."""
    from engine_tasks import Number, Square

    from corral.engine.execute import run_each
    from corral.engine.runners import Executor

    at = ledger(f"{bucket}/out")
    items = [Number(f"{n:02d}", n) for n in range(3)]
    first = run_each(Square(), {at: items}, Executor(workers=1), "test")
    again = run_each(Square(), {at: items}, Executor(workers=1), "test")
    assert [s.reused for s in first["s"]] == [False] * 3 and [s.reused for s in again["s"]] == [True] * 3

"""One entry for every job (corral.engine.execute): the graph on the executor the runner flags name."""

import pytest
from engine_tasks import Totalled, ledger, numbers_graph

from corral.engine.execute import execute
from corral.engine.progress import Progress
from corral.engine.records import recorded
from corral.engine.runners import RunnerFlags, executor


@pytest.mark.parametrize("runner,workers", [("local", 1), ("local", 2), ("direct", 1)])
def test_every_executor_runs_the_graph(tmp_path, runner, workers):
    root = str(tmp_path / runner)
    with executor(RunnerFlags(runner=runner, workers=workers)) as how:
        assert how.name == runner and (how.runner is None) == (runner == "local")
        graph = numbers_graph(root)
        execute(graph, how, Progress(graph, "test", enabled=False))
    assert recorded(ledger(root), "total", Totalled)[0].total == 204


def test_an_item_run_again_is_never_counted_as_reused(tmp_path, monkeypatch):
    """A rerun that takes the very same time (its summary keeps 0.1 ms) and gives the same summary is
    still a rerun: the record says when it was written."""
    import time

    from engine_tasks import Number, Square, Squared

    from corral.engine.execute import run_each
    from corral.engine.runners import Executor

    class Redone(Square):
        def still_done(self, item, summary):
            return False  # its outputs are gone: it runs again

    monkeypatch.setattr(time, "perf_counter", lambda: 1.0)  # every run takes exactly no time
    units = {ledger(str(tmp_path)): [Number("03", 3)]}
    first = run_each(Redone(), units, Executor(workers=1), "test")
    again = run_each(Redone(), units, Executor(workers=1), "test")
    assert [s.reused for s in first["s"] + again["s"]] == [False, False]
    assert isinstance(again["s"][0], Squared) and again["s"][0].square == 9
    reused = run_each(Square(), units, Executor(workers=1), "test")  # still done: its record answers
    assert [s.reused for s in reused["s"]] == [True]

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

"""The local executor (corral.engine.pool): phases in dependency order, on the driver alone or a
pool of forked workers, the same records either way; errors named; workers never outlive the driver."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from engine_tasks import Die, Fail, Squared, Totalled, ledger, numbers_graph

from corral.engine import pool
from corral.engine.graph import Graph, Item
from corral.engine.records import recorded


def run(graph, workers):
    with pool.LocalPool(workers) as local:
        local.run(graph)


@pytest.mark.parametrize("workers", [1, 2])
def test_phases_run_in_order_with_their_earlier_summaries(tmp_path, workers):
    root = str(tmp_path / "out")
    run(numbers_graph(root), workers)
    total = recorded(ledger(root), "total", Totalled)
    assert total[0].seconds >= 0  # each record carries its task's time (the report's stage times)
    assert (total[0].total, total[0].seen) == (sum(n * n for n in range(9)), list(range(9)))
    assert len(recorded(ledger(root), "square", Squared)) == 9
    assert [s.square for s in recorded(ledger(root), "after", Squared)] == [100]


def test_a_rerun_reuses_the_completion_records(tmp_path):
    root = str(tmp_path / "out")
    run(numbers_graph(root), 2)
    record = tmp_path / "out" / "s" / "done" / "total" / "all.json"
    before = record.stat().st_mtime_ns
    run(numbers_graph(root), 1)
    assert record.stat().st_mtime_ns == before
    assert json.loads(record.read_text())["summary"]["total"] == 204


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_task_is_named(tmp_path, workers):
    g = Graph()
    g.add("s/fail", Fail(), ledger(str(tmp_path)), items=[Item(k) for k in "abc"])
    with pytest.raises(ValueError, match="bad item") as err:
        run(g, workers)
    assert "in phase s/fail, item b" in err.value.__notes__


def test_a_dead_worker_is_reported(tmp_path):
    g = Graph()
    g.add("s/die", Die(), ledger(str(tmp_path)), items=[Item("a")])
    with pytest.raises(pool.WorkerDied, match="phase s/die, item a"):
        run(g, 2)


def test_workers_die_with_a_killed_driver(tmp_path):
    """SIGKILL of the driver alone (not its process group): the kernel ends its workers too."""
    script = tmp_path / "driver.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, sys, time
        from corral.engine import pool
        from corral.engine.graph import Graph, Item, Ledger, Summary, Task

        class Sleep(Task):
            phase = "sleep"
            def run(self, item):
                with open(os.path.join({str(tmp_path)!r}, f"worker-{{os.getpid()}}"), "w"):
                    pass
                time.sleep(60)
                return Summary()

        g = Graph()
        g.add("s/sleep", Sleep(), Ledger({str(tmp_path)!r}, "s", "f"), items=[Item(k) for k in "ab"])
        with pool.LocalPool(2) as local:
            local.run(g)
    """)
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.time() + 60
    while time.time() < deadline and len(list(tmp_path.glob("worker-*"))) < 2:
        time.sleep(0.05)
    workers = {int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")}
    assert len(workers) == 2 and proc.pid not in workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in workers):
        time.sleep(0.05)
    assert not any(
        os.path.exists(f"/proc/{pid}") and "Z" not in open(f"/proc/{pid}/stat").read().split()[2] for pid in workers
    )

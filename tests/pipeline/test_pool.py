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

from corral.engine import pool
from corral.pipeline.phases import Graph, Task, recorded_summaries, run_phase


class Square(Task):
    phase = "square"

    def setup(self):
        self.ready = os.getpid()

    def run(self, item, *earlier):
        assert self.ready == os.getpid()  # set up in the process that runs it
        return {"n": item["n"], "square": item["n"] ** 2}


class Total(Task):
    phase = "total"

    def run(self, item, squares):
        return {"total": sum(s["square"] for s in squares), "seen": sorted(s["n"] for s in squares)}


class Fail(Task):
    phase = "fail"

    def run(self, item, *earlier):
        if item["key"] == "b":
            raise ValueError("bad item")
        return {}


class Die(Task):
    phase = "die"

    def run(self, item, *earlier):
        os._exit(3)


def _items(keys, **extra):
    return [{"source": "s", "key": k, "fingerprint": "f", **extra} for k in keys]


def _graph(out):
    g = Graph()
    squares = run_phase(
        g,
        "s/square",
        Square(),
        out,
        items=[{**it, "n": n} for n, it in enumerate(_items([f"{n:02d}" for n in range(9)]))],
    )
    total = run_phase(g, "s/total", Total(), out, plan=lambda s: _items(["all"]), earlier=[squares])
    run_phase(g, "s/after", Square(), out, items=[{**_items(["x"])[0], "n": 10}], waits=[total])
    return g


@pytest.mark.parametrize("workers", [1, 2])
def test_phases_run_in_order_with_their_earlier_summaries(tmp_path, workers):
    out = str(tmp_path / "out")
    pool.execute(_graph(out), workers)
    total = recorded_summaries(out, "s", "total")
    assert total[0].pop("seconds") >= 0  # each record carries its task's time (the report's stage times)
    assert total == [{"total": sum(n * n for n in range(9)), "seen": list(range(9)), "phase": "total"}]
    assert len(recorded_summaries(out, "s", "square")) == 10


class Drops(Task):
    phase = "drops"

    def run(self, item, *earlier):
        return {"counts": [], "examples": {"too_short": [["doc-1", "a short text"]]}}


def test_dropped_examples_go_to_a_file_not_through_the_summaries(tmp_path):
    out = tmp_path / "out"
    g = Graph()
    run_phase(g, "s/drops", Drops(), str(out), items=_items(["a"]))
    pool.execute(g, 1)
    assert "examples" not in recorded_summaries(str(out), "s", "drops")[0]
    saved = json.loads((out / "_build" / "s" / "examples" / "drops--a.json").read_text())
    assert saved == {"too_short": [["doc-1", "a short text"]]}


def test_a_rerun_reuses_the_completion_records(tmp_path):
    out = str(tmp_path / "out")
    pool.execute(_graph(out), 2)
    record = tmp_path / "out" / "_build" / "s" / "done" / "total" / "all.json"
    before = record.stat().st_mtime_ns
    pool.execute(_graph(out), 1)
    assert record.stat().st_mtime_ns == before
    assert json.loads(record.read_text())["summary"]["total"] == 204


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_task_is_named(tmp_path, workers):
    g = Graph()
    run_phase(g, "s/fail", Fail(), str(tmp_path), items=_items(["a", "b", "c"]))
    with pytest.raises(ValueError, match="bad item") as err:
        pool.execute(g, workers)
    assert "in phase s/fail, item b" in err.value.__notes__


def test_a_dead_worker_is_reported(tmp_path):
    g = Graph()
    run_phase(g, "s/die", Die(), str(tmp_path), items=_items(["a"]))
    with pytest.raises(pool.WorkerDied, match="phase s/die, item a"):
        pool.execute(g, 2)


def test_workers_die_with_a_killed_driver(tmp_path):
    """SIGKILL of the driver alone (not its process group): the kernel ends its workers too."""
    script = tmp_path / "driver.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from corral.engine import pool
        from corral.pipeline.phases import Graph, Task, run_phase

        class Sleep(Task):
            phase = "sleep"
            def run(self, item):
                with open(os.path.join({str(tmp_path)!r}, f"worker-{{os.getpid()}}"), "w"):
                    pass
                time.sleep(60)
                return {{}}

        g = Graph()
        run_phase(g, "s/sleep", Sleep(), {str(tmp_path)!r},
                  items=[{{"source": "s", "key": k, "fingerprint": "f"}} for k in "ab"])
        pool.execute(g, 2)
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

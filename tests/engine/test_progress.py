"""A job's progress line (corral.engine.progress): inputs read of those planned, records/s, and
each unit's latest phase, from the completion records."""

import io
import time

from engine_tasks import numbers_graph

from corral.engine import pool
from corral.engine.graph import Item
from corral.engine.progress import Progress


def test_the_line_counts_the_input_phases_records(tmp_path):
    graph = numbers_graph(str(tmp_path))
    progress = Progress(graph, "test", enabled=True, stream=io.StringIO())
    with progress:
        with pool.LocalPool(1) as local:
            local.run(graph)
    line = progress.line()
    assert line.startswith("[test] inputs 9/9 · ") and " · s " in line  # and the unit's latest phase
    assert progress.records == 9  # one record per square of the input phase


def test_records_in_a_bucket_give_the_same_line(bucket):
    """Progress lists completion records through the filesystem layer: in a bucket as on disk."""
    graph = numbers_graph(f"{bucket}/out")
    progress = Progress(graph, "test", stream=io.StringIO())
    assert progress.enabled
    with progress:
        with pool.LocalPool(1) as local:
            local.run(graph)
    progress.last_scan = -progress.poll
    line = progress.line()
    assert line.startswith("[test] inputs 9/9 · ") and " · s " in line  # records listed, not read


def test_items_that_say_their_bytes_give_mb_read_and_an_eta_by_bytes(tmp_path):
    """Pieces of one big file: the line shows MB read of those planned, MB/s and, part-way, an ETA."""
    from dataclasses import dataclass

    from engine_tasks import Square, ledger

    from corral.engine.graph import Graph
    from corral.engine.records import run_item

    @dataclass(frozen=True)
    class Sized(Item):
        n: int = 0
        input_bytes: int = 0

    graph = Graph()
    items = [Sized(f"{n:02d}", n, 4_000_000) for n in range(5)]
    graph.add("s/square", Square(), ledger(str(tmp_path)), items=items, inputs=True)
    progress = Progress(graph, "test", enabled=True, stream=io.StringIO())
    progress.t0 = time.monotonic() - 2.0  # as if it had run 2 s
    task = Square()
    task.setup()
    for item in items[:2]:
        run_item(task, ledger(str(tmp_path)), item, [])
    line = progress.line()
    assert "inputs 2/5 · 8/20 MB, 4.0 MB/s" in line and "ETA 0:03" in line


def test_running_items_move_the_line_inside_one_file(tmp_path):
    """An input item still running counts the bytes its readers reported; another phase's running
    pass shows its MB beside the phase."""
    from dataclasses import dataclass

    from engine_tasks import Square, ledger

    from corral.engine.graph import Graph

    @dataclass(frozen=True)
    class Sized(Item):
        input_bytes: int = 0

    graph = Graph()
    graph.add("s/square", Square(), ledger(str(tmp_path)), items=[Sized("a", 10_000_000)], inputs=True)
    progress = Progress(graph, "test", enabled=True, stream=io.StringIO())
    progress.t0 = time.monotonic() - 1.0
    running = tmp_path / "s" / "running"
    running.mkdir(parents=True)
    (running / "square--a.json").write_text('{"input_bytes": 2500000}')
    (running / "prepare--000000.json").write_text('{"input_bytes": 7000000}')
    (tmp_path / "s" / "done" / "prepare").mkdir(parents=True)
    line = progress.line()
    assert "inputs 0/1 · 2/10 MB" in line and "ETA 0:03" in line and "s prepare 0 (7 MB read)" in line

"""A job's progress line (corral.engine.progress): inputs read of those planned, records/s, and
each unit's latest phase, from the completion records."""

import io

from engine_tasks import numbers_graph

from corral.engine import pool
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


def test_a_remote_root_shows_no_progress_unless_asked(tmp_path):
    graph = numbers_graph("fakefs://bucket/out")
    assert not Progress(graph, "test").enabled
    assert Progress(numbers_graph(str(tmp_path)), "test").enabled

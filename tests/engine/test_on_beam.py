"""The graph as Beam pipelines (corral.engine.on_beam): on the FnApiRunner, in one pipeline or
wave by wave, the same records as the local pool's."""

import json

import pytest
from engine_tasks import Squared, Totalled, ledger, numbers_graph

from corral.engine import on_beam, pool
from corral.engine.records import recorded
from corral.engine.runners import local_runner


def _records(root):
    total = recorded(ledger(root), "total", Totalled)[0]
    squares = sorted(s.square for s in recorded(ledger(root), "square", Squared))
    return total.total, total.seen, squares


@pytest.mark.parametrize("waves", [False, True])
def test_beam_writes_the_records_the_pool_writes(tmp_path, waves):
    with pool.LocalPool(1) as local:
        local.run(numbers_graph(str(tmp_path / "pool")))
    runner, options = local_runner(1)
    on_beam.execute(numbers_graph(str(tmp_path / "beam")), runner, options, waves=waves)
    assert _records(str(tmp_path / "beam")) == _records(str(tmp_path / "pool"))
    record = json.loads((tmp_path / "beam" / "s" / "done" / "total" / "all.json").read_text())
    assert record["fingerprint"] == "f" and record["item"] == {"key": "all"}

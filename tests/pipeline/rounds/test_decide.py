"""Dedup decisions on disk (corral.pipeline.rounds.decide): a task reads only its files' share of them."""

import numpy as np

from corral.dedup.keys import loc
from corral.pipeline.rounds.decide import Round, decision_path, load_sorted, losers_between, save_sorted


def test_losers_between_reads_each_partition_s_range(tmp_path):
    out = str(tmp_path)
    rng = np.random.default_rng(1)
    everything = np.sort(
        np.array([loc(int(f), int(r)) for f, r in zip(rng.integers(0, 50, 2000), rng.integers(0, 1000, 2000))])
    )
    everything = np.unique(everything)
    parts = [everything[everything % 3 == p] for p in range(3)]  # three partitions, as a round writes them
    for p, lost in enumerate(parts):
        save_sorted(decision_path(out, "s", "unique", p), lost)
    save_sorted(decision_path(out, "s", "empty", 0), np.empty(0, np.int64))
    for first, last in ((0, 0), (7, 9), (49, 49), (0, 49)):
        want = everything[(everything >= loc(first, 0)) & (everything < loc(last + 1, 0))]
        got = losers_between(out, "s", Round("unique", 3), (first, last))
        assert np.array_equal(got, want) and got.dtype == np.int64
    assert len(losers_between(out, "s", Round("empty", 1), (0, 10))) == 0
    mapped = load_sorted(decision_path(out, "s", "unique", 0), mapped=True)
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, parts[0])

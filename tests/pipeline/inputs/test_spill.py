"""Records dealt into buckets in bounded memory (corral.pipeline.inputs.spill): each bucket reads
back its records in the order they were added, from memory, from runs on disk, or from a finished
deal's folder by bucket ranges."""

from __future__ import annotations

import os
import random
import tempfile

from corral.pipeline.inputs.spill import BucketRuns, read_buckets, run_names


def _records(n=2000, buckets=16):
    rng = random.Random(3)
    return [(rng.randrange(buckets), (i, "x" * rng.randint(0, 200))) for i in range(n)]


def test_buckets_give_their_records_in_order_from_memory_or_from_runs():
    records = _records()
    want = {b: [r for bb, r in records if bb == b] for b in range(16)}
    for limit in (10**9, 5_000):
        runs = BucketRuns(16, limit=limit)
        for b, r in records:
            runs.add(b, r)
        assert (runs.runs > 3) == (limit == 5_000)
        assert {b: list(bucket) for b, bucket in enumerate(runs.each())} == want
        folder = runs.folder
        runs.close()
        assert folder is None or not os.path.exists(folder)
    assert not [n for n in os.listdir(tempfile.gettempdir()) if n.startswith("corral-buckets-")]


def test_a_finished_deal_is_read_by_bucket_ranges(tmp_path):
    records = _records()
    runs = BucketRuns(16, str(tmp_path / "deal"), limit=7_000)
    for b, r in records:
        runs.add(b, r)
    runs.flush()
    names = run_names(str(tmp_path / "deal"))
    assert len(names) == runs.runs > 3
    got = [list(bucket) for start, end in ((0, 5), (5, 6), (6, 16)) for bucket in read_buckets(names, start, end)]
    assert got == [[r for bb, r in records if bb == b] for b in range(16)]

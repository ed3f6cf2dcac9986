"""corral.train.data: the mixture loader's weights, rank windows, resume state and EOS."""

import json

import numpy as np
import pytest
from conftest import make_build
from train_helpers import token_build

from corral.train.data import DataError, MixtureLoader


def test_tokens_per_source_follow_the_weights_within_one_percent(tmp_path):
    out = token_build(tmp_path / "b", {"c4": 0.6, "books": 0.25, "arxiv": 0.15})
    loader = MixtureLoader(str(out), seq_len=32, micro_batch=4, seed=3)
    seen = {"c4": 0, "books": 0, "arxiv": 0}
    for _ in range(500):
        for b in loader.next_step(2):
            for name in b.sources:
                seen[name] += 32
    total = sum(seen.values())
    for name, w in {"c4": 0.6, "books": 0.25, "arxiv": 0.15}.items():
        assert abs(seen[name] / total - w) < 0.01, (name, seen[name] / total)
    # the windows really come from their sources (token ranges differ per source)
    b = loader.next_step(1)[0]
    for row, name in zip(b.inputs, b.sources):
        body = row[(row != 1) & (row != 2)]
        base = {"c4": 3, "books": 13, "arxiv": 23}[name]
        assert ((body >= base) & (body < base + 10)).all()


def test_ranks_take_disjoint_windows_and_state_resumes(tmp_path):
    out = token_build(tmp_path / "b", {"c4": 0.7, "books": 0.3})
    loaders = [MixtureLoader(str(out), 16, 2, rank=r, world=2, seed=1) for r in range(2)]
    single = MixtureLoader(str(out), 16, 4, seed=1)
    a, b = loaders[0].next_step(1)[0], loaders[1].next_step(1)[0]
    s = single.next_step(1)[0]
    both = np.concatenate([a.inputs, b.inputs])
    assert sorted(map(bytes, both)) == sorted(map(bytes, s.inputs))  # the same 4 windows, split
    assert not {bytes(x) for x in a.inputs} & {bytes(x) for x in b.inputs}
    state = loaders[0].state_dict()
    assert set(state) == {"window", "taken", "names", "seed", "seq_len"}
    nxt = loaders[0].next_step(3)
    fresh = MixtureLoader(str(out), 16, 2, rank=0, world=2, seed=1)
    fresh.load_state_dict(json.loads(json.dumps(state)))
    again = fresh.next_step(3)
    assert all(np.array_equal(x.inputs, y.inputs) for x, y in zip(nxt, again))
    with pytest.raises(DataError, match="seq_len"):
        MixtureLoader(str(out), 32, 2, seed=1).load_state_dict(state)


def test_eos_is_added_only_when_documents_lack_it(tmp_path):
    out = token_build(tmp_path / "b", {"c4": 1.0}, docs=5, eos=False)
    loader = MixtureLoader(str(out), 500, 1, seed=0, val_fraction=0)
    row = loader.next_step(1)[0].inputs[0]
    assert (row == 2).sum() >= 4  # one EOS after each document


def test_loader_refuses_a_build_without_token_shards(tmp_path):
    out = make_build(tmp_path / "a", tokenize=False)
    with pytest.raises(DataError, match="corral tokenize"):
        MixtureLoader(str(out), 16, 1)

"""corral.train.optim: LLaMA's schedule and weight decay."""

import pytest
from train_helpers import small_model

from corral.train.optim import lr_factor, param_groups


def test_schedule_warms_up_then_decays_to_ten_percent():
    assert lr_factor(0, 2000, 10000) == pytest.approx(1 / 2000)
    assert lr_factor(1999, 2000, 10000) == 1.0
    assert lr_factor(6000, 2000, 10000) == pytest.approx(0.55)
    assert lr_factor(10000, 2000, 10000) == pytest.approx(0.1)
    assert lr_factor(20000, 2000, 10000) == pytest.approx(0.1)


def test_weight_decay_on_matrices_only():
    m = small_model()
    decay, no_decay = param_groups(m)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(m.parameters()))

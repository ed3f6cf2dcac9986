"""corral.train.config: errors name the field; defaults resolve to the paper's."""

import pytest

from corral.train.config import ConfigError, TrainConfig, load_config


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="batch_tokens"):
        TrainConfig(model="tiny", seq_len=64, micro_batch=4, batch_tokens=1000).resolved(2)
    with pytest.raises(ConfigError, match="model"):
        TrainConfig(model="huge").resolved(1)
    bad = tmp_path / "c.yaml"
    bad.write_text("steps: 10\nlearning_rate: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml.*learning_rate"):
        load_config(str(bad), {})
    c = TrainConfig(model="7B").resolved(8)
    assert (c.seq_len, c.batch_tokens, c.lr, c.warmup) == (2048, 4 * 1024 * 1024, 3e-4, 100)
    assert c.accum(8) == 32


def test_optimizer_defaults_are_llamas_constants():
    from corral.train import optim

    c = TrainConfig(model="7B", steps=100_000).resolved(8)
    assert (c.weight_decay, c.adam_eps, c.grad_clip) == (optim.WEIGHT_DECAY, optim.ADAM_EPS, optim.GRAD_CLIP)
    assert c.warmup == optim.WARMUP_STEPS == 2000

"""corral.train.parallel: FSDP2 on two gloo ranks gives the gradients of one process."""

import torch
from train_helpers import TESTS, torchrun


def test_fsdp_gradients_on_two_ranks_equal_one_process(tmp_path):
    torchrun(1, str(TESTS / "train" / "fsdp_grads.py"), str(tmp_path))
    torchrun(2, str(TESTS / "train" / "fsdp_grads.py"), str(tmp_path))
    one, two = torch.load(tmp_path / "grads-1.pt"), torch.load(tmp_path / "grads-2.pt")
    for ac in ("none", "full", "selective"):
        assert set(one[ac]) == set(two[ac]) and len(one[ac]) == 21
        diff = max((one[ac][k] - two[ac][k]).abs().max().item() for k in one[ac])
        assert diff < 1e-6, (ac, diff)
        assert max((one[ac][k] - one["none"][k]).abs().max().item() for k in one[ac]) < 1e-6
    # HSDP: a (2 replicas, 1 shard) mesh gives FSDP's gradients
    assert max((two["hsdp"][k] - one["none"][k]).abs().max().item() for k in one["none"]) < 1e-6

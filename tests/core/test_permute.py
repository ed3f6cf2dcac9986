"""The keyed pseudo-random permutation (corral.core.permute): a bijection of range(n) for every n,
that changes with its key."""

import numpy as np
import pytest

from corral.core.permute import permute, permute_many


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_permute_is_a_bijection_that_depends_on_its_key(n):
    a = [permute(i, n, 11) for i in range(n)]
    assert sorted(a) == list(range(n))
    if n > 7:
        assert a != [permute(i, n, 12) for i in range(n)] and a != list(range(n))


def test_many_positions_at_once_equal_one_at_a_time():
    keys = np.array([5, 6, 7], dtype=np.uint64)
    many = permute_many(np.array([0, 10, 99]), 100, keys).tolist()
    assert many == [permute(i, 100, int(k)) for i, k in zip([0, 10, 99], keys)]

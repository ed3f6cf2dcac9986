"""docs/recipe/README.md#mixture: Table 1's epochs column from its unique-token column."""

import pytest
from helpers import TABLE1_WEIGHTS

from corral.manifests.mixture_math import epochs, epochs_table, seen_tokens, unique_tokens

TARGET = 1_400_000_000_000  # 1.4T tokens
WEIGHTS = TABLE1_WEIGHTS
TABLE1_EPOCHS = {
    "commoncrawl": 1.10,
    "c4": 1.06,
    "github": 0.64,
    "wikipedia": 2.45,
    "books": 2.23,
    "arxiv": 1.06,
    "stackexchange": 1.03,
}
# docs/recipe/README.md#mixture "unique tokens (derived)" column, in billions, as printed (rounded to whole billions).
UNIQUE_B = {"commoncrawl": 853, "c4": 198, "github": 98, "wikipedia": 26, "books": 28, "arxiv": 33, "stackexchange": 27}
SEEN_B = {"commoncrawl": 938, "c4": 210, "github": 63, "wikipedia": 63, "books": 63, "arxiv": 35, "stackexchange": 28}


def test_seen_tokens_column():
    for name, w in WEIGHTS.items():
        assert round(seen_tokens(w, TARGET) / 1e9) == SEEN_B[name]


def test_epochs_from_the_printed_unique_column():
    """The printed column is rounded to whole billions; that rounding alone bounds the difference.

    CommonCrawl, C4, GitHub and ArXiv come back exactly to two decimals; for Wikipedia, Books and
    StackExchange the ±0.5B rounding of a 26–28B count moves the second decimal, and the check is
    that Table 1's value lies inside the interval the rounded input allows.
    """
    got = epochs_table(WEIGHTS, TARGET, {n: u * 1e9 for n, u in UNIQUE_B.items()})
    exact = [n for n in WEIGHTS if round(got[n], 2) == TABLE1_EPOCHS[n]]
    assert set(exact) >= {"commoncrawl", "c4", "github", "arxiv"}
    for name, u in UNIQUE_B.items():
        lo = epochs(WEIGHTS[name], TARGET, (u + 0.5) * 1e9)
        hi = epochs(WEIGHTS[name], TARGET, (u - 0.5) * 1e9)
        assert lo - 0.005 <= TABLE1_EPOCHS[name] <= hi + 0.005, name


def test_epochs_round_trip_to_two_decimals():
    """With the unique counts before rounding (seen ÷ epochs), Table 1 comes back exactly."""
    unrounded = {n: unique_tokens(w, TARGET, TABLE1_EPOCHS[n]) for n, w in WEIGHTS.items()}
    for name, u in unrounded.items():
        assert round(u / 1e9) == UNIQUE_B[name]  # the same column as printed
    got = epochs_table(WEIGHTS, TARGET, unrounded)
    assert {n: round(e, 2) for n, e in got.items()} == TABLE1_EPOCHS


def test_epochs_unknown_or_empty_source():
    assert epochs(0.5, TARGET, None) is None
    assert epochs(0.5, TARGET, 0) is None
    with pytest.raises(ValueError):
        unique_tokens(0.5, TARGET, 0)

"""Mixture arithmetic in one place (docs/recipe/README.md#mixture, Table 1).

A source with sampling proportion w in a run of T tokens contributes w·T seen tokens; if it holds
U unique tokens, the run passes over it w·T / U times (its epochs).
"""

from __future__ import annotations

from collections.abc import Mapping


def seen_tokens(weight: float, target_tokens: int) -> float:
    """Tokens a source contributes to a run: its sampling proportion × the run's tokens."""
    return weight * target_tokens


def epochs(weight: float, target_tokens: int, source_tokens: int | float | None) -> float | None:
    """Passes over a source: weight × target tokens ÷ that source's tokens (None when unknown or empty)."""
    if not source_tokens:
        return None
    return seen_tokens(weight, target_tokens) / source_tokens


def unique_tokens(weight: float, target_tokens: int, n_epochs: float) -> float:
    """The inverse: the unique tokens a source must hold to be seen `n_epochs` times."""
    if n_epochs <= 0:
        raise ValueError("epochs must be > 0")
    return seen_tokens(weight, target_tokens) / n_epochs


def epochs_table(
    weights: Mapping[str, float], target_tokens: int, source_tokens: Mapping[str, int | float | None]
) -> dict[str, float | None]:
    return {name: epochs(w, target_tokens, source_tokens.get(name)) for name, w in weights.items()}

"""Outcomes flow as data (docs/design.md#contracts): every input record becomes exactly one outcome.

An outcome is a small dict: `source`, `status` (kept / dropped / error), `reason` (None when kept),
`record` (the document record while kept; dropped and failed ones carry none), and `where` (the
input location, for errors). Stages map kept outcomes to new outcomes and pass the others through;
the funnel is a count per (source, status, reason) over the final stream, so it is computed as data
on every runner, whether or not the runner reports Beam metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

KEPT, DROPPED, ERROR = "kept", "dropped", "error"


def kept(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"source": record["source"], "status": KEPT, "reason": None, "record": dict(record), "where": None}


def dropped(
    source: str, reason: str, where: str | None = None, example: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A dropped record; `example` (the record) lets the report show what the rule removed."""
    out = {"source": source, "status": DROPPED, "reason": reason, "record": None, "where": where}
    if example is not None and example.get("text"):
        out["example"] = (example.get("id") or where or "", example["text"])
    return out


def error(source: str, reason: str, where: str, detail: str | None = None) -> dict[str, Any]:
    return {"source": source, "status": ERROR, "reason": reason, "record": None, "where": where, "detail": detail}


def is_kept(outcome: Mapping[str, Any]) -> bool:
    return outcome["status"] == KEPT


def apply_rule(outcome: dict[str, Any], rule: Callable[[dict], Any]) -> dict[str, Any]:
    """Run `rule(record)` on a kept outcome: it returns the new record, or a drop reason string."""
    if not is_kept(outcome):
        return outcome
    result = rule(outcome["record"])
    if isinstance(result, str):
        return dropped(outcome["source"], result, outcome.get("where"), example=outcome["record"])
    return {**outcome, "record": result}


def funnel_from_counts(counts: Iterable[tuple[tuple[str, str, str | None], int]]):
    """{source: Funnel} from ((source, status, reason), n) pairs."""
    funnels: dict[str, Funnel] = {}
    for (source, status, reason), n in counts:
        f = funnels.setdefault(source, Funnel())
        f.input += n
        if status == KEPT:
            f.kept += n
        elif status == DROPPED:
            f.drop(reason, n)
        else:
            f.error(reason, n)
    return funnels


@dataclass
class Funnel:
    """Where every input record went: input = kept + Σ dropped + Σ errors."""

    input: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    def error(self, reason: str, n: int = 1) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + n

    @property
    def accounted(self) -> int:
        return self.kept + sum(self.dropped.values()) + sum(self.errors.values())

    def balanced(self) -> bool:
        return self.input == self.accounted

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "errors": dict(sorted(self.errors.items())),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Funnel:
        return cls(
            int(d.get("input", 0)),
            int(d.get("kept", 0)),
            {str(k): int(v) for k, v in (d.get("dropped") or {}).items()},
            {str(k): int(v) for k, v in (d.get("errors") or {}).items()},
        )

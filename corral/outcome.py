"""Outcomes flow as data (docs/design.md#contracts): every input record becomes exactly one outcome.

An outcome is a small dict: `source`, `status` (kept / dropped / error), `reason` (None when kept),
`record` (the document record while kept; dropped and failed ones carry none), and `where` (the
input location, for errors). Stages map kept outcomes to new outcomes and pass the others through;
the funnel is a count per (source, status, reason) over the final stream, so it is computed as data
on every runner, whether or not the runner reports Beam metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


def funnel_key(outcome: Mapping[str, Any]) -> tuple[str, str, str | None]:
    return (outcome["source"], outcome["status"], outcome["reason"])


def funnel_from_counts(counts: Iterable[tuple[tuple[str, str, str | None], int]]):
    """{source: Funnel} from ((source, status, reason), n) pairs."""
    from corral.manifests.build import Funnel

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

"""Small tasks over numbers for the engine's tests: squares, their total, failures, deaths."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from corral.engine.graph import Graph, Item, Ledger, Summary, Task


@dataclass(frozen=True)
class Number(Item):
    n: int = 0


@dataclass
class Squared(Summary):
    n: int = 0
    square: int = 0


@dataclass
class Totalled(Summary):
    total: int = 0
    seen: list[int] = field(default_factory=list)


class Square(Task):
    phase = "square"
    summary = Squared

    def setup(self):
        self.ready = os.getpid()

    def run(self, item: Number, *earlier) -> Squared:
        assert self.ready == os.getpid()  # set up in the process that runs it
        return Squared(n=item.n, square=item.n**2, records=1)


class After(Square):
    """A square in a phase of its own (a phase's records are its task's `phase` folder of the unit)."""

    phase = "after"


class Total(Task):
    phase = "total"
    summary = Totalled

    def run(self, item: Item, squares) -> Totalled:
        return Totalled(total=sum(s.square for s in squares), seen=sorted(s.n for s in squares))


class Fail(Task):
    phase = "fail"

    def run(self, item: Item, *earlier) -> Summary:
        if item.key == "b":
            raise ValueError("bad item")
        return Summary()


class Die(Task):
    phase = "die"

    def run(self, item: Item, *earlier) -> Summary:
        os._exit(3)


def plan_total(squares) -> list[Item]:
    return [Item("all")]


def ledger(root: str, fingerprint: str = "f") -> Ledger:
    return Ledger(root, "s", fingerprint)


def numbers_graph(root: str, fingerprint: str = "f") -> Graph:
    """Nine squares, their total (planned from them), then one more square that waits for it."""
    g = Graph()
    at = ledger(root, fingerprint)
    squares = g.add("s/square", Square(), at, items=[Number(f"{n:02d}", n) for n in range(9)], inputs=True)
    total = g.add("s/total", Total(), at, plan=plan_total, earlier=[squares])
    g.add("s/after", After(), at, items=[Number("x", 10)], waits=[total])
    return g

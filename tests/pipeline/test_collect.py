"""What a built source leaves for the manifest (corral.pipeline.collect): its funnel, with the groups
it drops whole counted under their own reason."""

from dataclasses import dataclass, field

from corral.engine.graph import Item, Summary, Task
from corral.engine.records import run_item
from corral.pipeline.collect import funnel_counts
from corral.pipeline.rounds.stage import ledger
from corral.pipeline.sources.base import Source


@dataclass
class Counted(Summary):
    counts: list = field(default_factory=list)
    groups: dict = field(default_factory=dict)


class Recorded(Task):
    """A task whose summary is given: what a stage or select phase would have recorded."""

    def __init__(self, phase: str, summary: Counted):
        self.phase, self.summary, self.given = phase, Counted, summary

    def run(self, item, *earlier):
        return self.given


class Sites(Source):
    name = "sites"
    excluded_reason = "not_top_site"


def test_the_funnel_counts_every_phase_and_a_dropped_groups_rows_under_its_reason(tmp_path):
    out = str(tmp_path)
    stage = Counted(
        counts=[["dropped", "other", "big", 2], ["dropped", "other", "small", 1], ["error", "bad", "", 1]],
        groups={"big": 10, "small": 4},
    )
    select = Counted(counts=[["kept", None, "", 7], ["dropped", "duplicate_id", "", 1]])
    run_item(Recorded("stage", stage), ledger(out, "sites", "f"), Item("000000"), [])
    run_item(Recorded("select", select), ledger(out, "sites", "f"), Item("select-000000"), [])
    counts = funnel_counts(out, Sites(), ("stage", "select"), {"small"})
    # small's 4 rows: 1 dropped at stage, 3 staged (left out at select): all not_top_site
    assert counts == {
        ("dropped", "other"): 2,
        ("dropped", "not_top_site"): 4,
        ("error", "bad"): 1,
        ("kept", None): 7,
        ("dropped", "duplicate_id"): 1,
    }
    assert funnel_counts(out, Sites(), ("stage",), set())[("dropped", "other")] == 3

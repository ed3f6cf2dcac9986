"""The graph (corral.engine.graph): phases in the order added, each a level after what it reads or
waits for; merged handles; planned items; summaries told apart by their type."""

from engine_tasks import Number, Squared, Totalled, ledger, numbers_graph, plan_total

from corral.engine.graph import Graph, Item, Summary, merged, of_type, planned_items


def test_levels_follow_what_a_phase_reads_and_waits_for(tmp_path):
    g = numbers_graph(str(tmp_path))
    assert [(ph.label, ph.level) for ph in g.phases] == [("s/square", 0), ("s/total", 1), ("s/after", 2)]
    assert [ph.inputs for ph in g.phases] == [True, False, False]


def test_items_are_given_or_planned_from_earlier_summaries(tmp_path):
    g = numbers_graph(str(tmp_path))
    square, total, _ = g.phases
    assert [i.n for i in planned_items(square, [])] == list(range(9))
    assert planned_items(total, [[Squared(n=1, square=1)]]) == plan_total([]) == [Item("all")]


def test_merged_handles_hold_every_phase_and_summaries_are_told_apart_by_type(tmp_path):
    g = Graph()
    a = g.add("a", None, ledger(str(tmp_path)), items=[Number("1", 1)])
    b = g.add("b", None, ledger(str(tmp_path)), items=[Number("2", 2)])
    both = merged("both", [a, b])
    assert [ph.label for ph in both.phases] == ["a", "b"]
    c = g.add("c", None, ledger(str(tmp_path)), plan=lambda s: [], earlier=[both])
    assert c.phases[0].level == 1
    mixed = [Squared(n=2), Totalled(total=4), Summary()]
    assert of_type(mixed, Squared) == [Squared(n=2)] and of_type(mixed, Summary) == mixed

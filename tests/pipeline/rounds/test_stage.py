"""Staged files and their keys (corral.pipeline.rounds.stage): parts, key arrays with each row's
group, tallies of what was dropped, and the summary of a staged file."""

import json

import numpy as np

from corral.core.outcome import dropped, error, kept
from corral.core.schema import make_record
from corral.pipeline.rounds.stage import (
    KeyCollector,
    StagedFile,
    StagedSummary,
    Tally,
    iter_staged,
    row_groups,
    stage_outcomes,
    staged_parts,
)

STAGES = {"exact_dedup": {"enabled": True}, "minhash": {"enabled": False}}


def _kept(key, group=None):
    outcome = kept(make_record("books", key, f"text of {key}"))
    return {**outcome, "group": group} if group else outcome


def test_a_file_is_staged_with_its_keys_counts_and_dead_letters(tmp_path):
    target = StagedFile(str(tmp_path), "books", 3)
    outcomes = [_kept("a"), dropped("books", "too_short", "f:2"), _kept("b"), error("books", "bad", "f:4", "why")]
    s = stage_outcomes(target, outcomes, STAGES)
    assert isinstance(s, StagedSummary) and (s.index, s.rows, s.records) == (3, 2, 4)
    assert ["dropped", "too_short", "", 1] in s.counts and ["error", "bad", "", 1] in s.counts
    texts = [r for b in iter_staged(s.parts) for r in b.column("text").to_pylist()]
    assert texts == ["text of a", "text of b"]
    lines = (tmp_path / "_build" / "books" / "errors" / "000003.jsonl").read_text().splitlines()
    assert [json.loads(ln)["reason"] for ln in lines] == ["bad"]


def test_each_staged_row_keeps_its_group(tmp_path):
    target = StagedFile(str(tmp_path), "stackexchange", 0)
    outcomes = [_kept("x"), _kept("a", "site.a"), dropped("stackexchange", "answer_merged"), _kept("b", "site.b")]
    s = stage_outcomes(target, outcomes, STAGES)
    assert s.rows == 3 and s.groups == {"site.a": 1, "site.b": 1}
    assert row_groups(target).tolist() == ["", "site.a", "site.b"]  # a row before the first group has none


def test_rows_without_groups_read_back_as_no_group(tmp_path):
    target = StagedFile(str(tmp_path), "books", 1)
    stage_outcomes(target, [_kept("a"), _kept("b")], STAGES)
    assert row_groups(target).tolist() == ["", ""]


def test_the_staged_parts_are_read_back_from_the_completion_records(tmp_path):
    from corral.engine.records import run_item
    from corral.pipeline.sources.base import Piece, PieceItem, StageTask
    from corral.pipeline.sources.books import Books

    book = tmp_path / "b.txt"
    book.write_text("A book of some words.\n")
    task = StageTask(str(tmp_path), Books(), {**STAGES, "read": {"strip_gutenberg": True}})
    from corral.pipeline.rounds.stage import ledger

    run_item(task, ledger(str(tmp_path), "books", "f"), PieceItem("000000", Piece(str(book)), 0), [])
    parts = staged_parts(str(tmp_path), "books", "stage", [0, 1])
    assert list(parts) == [0] and parts[0][0].rows == 1


def test_tally_keeps_a_few_examples_per_reason():
    t = Tally()
    for i in range(5):
        t.reason("dropped", "too_short", example=(f"d{i}", "x" * 1000))
    assert len(t.examples["too_short"]) == 3 and len(t.examples["too_short"][0][1]) == 400


def test_key_collector_arrays_line_up_with_the_rows():
    keys = KeyCollector(STAGES)
    for k in "abc":
        keys.add(make_record("books", k, "same text"), "g" if k == "b" else None)
    a = keys.arrays()
    assert len(a["id_key"]) == len(a["exact"]) == len(a["group"]) == 3
    assert len(set(a["exact"].tolist())) == 1 and a["group"].tolist() == [-1, 0, -1]
    assert np.array_equal(a["group_names"], np.array(["g"]))


def test_staged_values_come_back_in_the_locators_order(tmp_path):
    from corral.dedup.keys import loc
    from corral.pipeline.rounds.stage import StagedRows

    parts = {}
    for index in (0, 1, 2):
        target = StagedFile(str(tmp_path), "books", index)
        summary = stage_outcomes(target, [_kept(f"f{index}-{r}") for r in range(4)], STAGES)
        parts[index] = summary.parts
    ids = {r["id"]: r for batch in iter_staged(parts[1]) for r in batch.to_pylist()}
    rows = StagedRows(parts)
    locators = [loc(2, 1), loc(0, 3), loc(2, 0), loc(1, 2), loc(0, 3)]
    texts = rows.values(locators, "text")
    assert texts == ["text of f2-1", "text of f0-3", "text of f2-0", "text of f1-2", "text of f0-3"]
    assert rows.values([loc(1, 0)], "id") == [next(iter(ids))] and rows.values([], "id") == []

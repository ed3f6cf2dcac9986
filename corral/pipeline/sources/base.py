"""The source protocol: what every source of a build implements, with the defaults most sources take.

A source is an object (a subclass of `Source`, listed in corral.pipeline.sources.registry) with:
  name             the manifest's key, the `source` column, the folder under OUT/docs
  options          its own stage sections: {stage: {option: Option}} (corral.manifests.options);
                   every source also takes the common stages, `exact_dedup` and `minhash`
  common_defaults  defaults of those common stages that differ for it
  learns_from      sources whose build it may learn from (they are built first)
  excluded_reason  the drop reason of a group it drops whole (see `excluded_groups`)
and methods:
  inputs(patterns, field)   what its inputs are: (path, bytes) of every file the patterns match
  split(path, size, stages, piece_size)  how one input splits into pieces of about `piece_size`
                   input bytes (one whole piece unless it says; a file no larger is never split)
  read(piece, stages)       one piece's outcomes: each record kept, dropped or failed by its rules
  learning(stages)          the settings that make it learn from `learns_from` (none: it does not)
  stage(graph, plan)        its phases up to staged documents with their keys (default: one task per
                            piece, reading it with `read`)
  rounds(stages)            the dedup rounds it takes after staging: `unique` ids, `exact`, `near`
  content_key(record)       the key exact dedup compares (default: the text's md5)
  excluded_groups(stages, staged)   groups (of the outcomes' `group`) dropped whole (default: none)
The generic phases (corral.pipeline.phases) add the rounds and the select pass after `stage`; they
never name a source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from corral.dedup.exact import text_md5
from corral.engine.graph import Graph, Handle, Item, Ledger, Task
from corral.manifests.options import Option
from corral.pipeline.inputs.match import match_inputs
from corral.pipeline.inputs.streams import guarded
from corral.pipeline.rounds.select import SelectRule
from corral.pipeline.rounds.stage import StagedFile, StagedSummary, file_key, ledger, stage_outcomes

WHOLE = "file"  # a Piece's kind: the whole input file


@dataclass(frozen=True)
class Piece:
    """A unit of input, what one stage task reads: a whole input file, or a range of one.

    `kind` says what `start`/`end` count, and only the source that split the file reads them:
    `bytes` (a byte range; `header` bytes from the file's start are read first, as Wikipedia's
    siteinfo stream), `buckets` (StackExchange's dealt posts), `chunks` (the chunk files of one
    decompressing pass), `row_groups` (Parquet). `part` of `parts` is its place in the file, and
    `size` the input bytes it stands for (progress counts them)."""

    path: str
    kind: str = WHOLE
    start: int = 0
    end: int = 0
    header: int = 0
    part: int = 0
    parts: int = 1
    size: int = 0

    @property
    def whole(self) -> bool:
        return self.kind == WHOLE

    def where(self) -> str:
        """The piece in a dead letter or a log line: the path, and its range when it is one."""
        return self.path if self.whole else f"{self.path} [{self.kind} {self.start}-{self.end}]"


def ranges(path: str, kind: str, cuts: list[int], size: int, header: int = 0) -> list[Piece]:
    """The pieces between consecutive cuts (`cuts` from the first start to the last end) of one
    input of `size` bytes; each piece's `size` is its share of the file's bytes."""
    n = len(cuts) - 1
    span = max(cuts[-1] - cuts[0], 1)
    return [
        Piece(
            path,
            kind,
            cuts[i],
            cuts[i + 1],
            header=header,
            part=i,
            parts=n,
            size=size * (cuts[i + 1] - cuts[i]) // span,
        )
        for i in range(n)
    ]


@dataclass(frozen=True)
class PieceItem(Item):
    """A stage task's item: one piece, its position among the source's pieces (the file index of
    its documents' locators) and the input bytes it reads (for progress)."""

    piece: Piece = Piece("")
    index: int = 0
    input_bytes: int = 0


@dataclass
class SourcePlan:
    """What a source's phases need to know: its settings, pieces and fingerprint, the phases it waits
    for (those of the sources it learns from) and where its outputs go."""

    name: str
    stages: dict[str, Any]
    output: dict[str, Any]
    out: str
    pieces: list[Piece]
    fingerprint: str
    waits: list[Handle] = field(default_factory=list)
    docs_dir: str | None = None  # where select writes (default OUT/docs/<source>)
    cluster_rows: str | None = None  # also write the near-dup clusters as rows here (`corral dedup`)

    @property
    def ledger(self) -> Ledger:
        """Where its phases keep their completion records (OUT/_build/<source>/done/…)."""
        return ledger(self.out, self.name, self.fingerprint)

    def piece_items(self) -> list[PieceItem]:
        return [PieceItem(file_key(i), piece, i, piece.size) for i, piece in enumerate(self.pieces)]


@dataclass
class Staged:
    """What a source's own phases leave for the dedup rounds and the select pass."""

    handle: Handle  # the phase whose summaries (StagedSummary) list the staged files
    phase: str = "stage"  # its task's phase name: its records list each file's staged parts
    counted: tuple[str, ...] = ("stage",)  # phases whose summaries carry funnel counts (besides select)
    models: tuple[str, ...] = ()  # phases whose summaries name side models
    rule: SelectRule | None = None  # the source's own thresholds at select
    select_waits: list[Handle] = field(default_factory=list)  # phases select waits for (side models)
    working: tuple[str, ...] = ()  # folders its own phases write under OUT/_build/<source>, removed when built


class Source:
    """The base of every source; see the module docstring for the protocol."""

    name: str = ""
    options: dict[str, dict[str, Option]] = {}
    common_defaults: dict[str, dict[str, Any]] = {}
    learns_from: tuple[str, ...] = ()
    excluded_reason: str = "excluded_group"

    def inputs(self, patterns: list[str | dict], field_: str) -> list[tuple[str, int]]:
        return match_inputs(patterns, field_)

    def split(self, path: str, size: int, stages: dict[str, Any], piece_size: int) -> list[Piece]:
        return [Piece(path, size=size)]

    def read(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def outcomes(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """`read`, with a failure mid-piece turned into one counted error (the rest of it lost)."""
        return guarded(self.name, piece.where(), self.read(piece, stages))

    def learning(self, stages: dict[str, Any]) -> list[str]:
        return []

    def stage(self, graph: Graph, plan: SourcePlan) -> Staged:
        task = StageTask(plan.out, self, plan.stages)
        staged = graph.add(
            f"{self.name}/stage", task, plan.ledger, items=plan.piece_items(), waits=plan.waits, inputs=True
        )
        return Staged(staged)

    def rounds(self, stages: dict[str, Any]) -> list[str]:
        wanted = [("unique", True), ("exact", stages["exact_dedup"]["enabled"]), ("near", stages["minhash"]["enabled"])]
        return [name for name, on in wanted if on]

    def content_key(self, record: dict[str, Any]) -> str:
        return text_md5(record)

    def excluded_groups(self, stages: dict[str, Any], staged: list[StagedSummary]) -> list[str]:
        return []


class SourceTask(Task):
    """A task of a source's own phases: the build folder, the source and its stage options."""

    def __init__(self, out: str, source: Source, stages: dict[str, Any]):
        self.out, self.source, self.stages = out, source, stages


class StageTask(SourceTask):
    """One piece → its staged documents, key file and dead letters, through the source's `read`."""

    phase = "stage"
    summary = StagedSummary

    def run(self, item: PieceItem, *earlier) -> StagedSummary:
        target = StagedFile(self.out, self.source.name, item.index)
        outcomes = self.source.outcomes(item.piece, self.stages)
        return stage_outcomes(target, outcomes, self.stages, self.source.content_key)

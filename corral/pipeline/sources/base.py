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
  prepare(piece, folder)    the one pass over a file whose pieces need it (kinds in PASS_KINDS):
                            leaves in `folder` what the pieces read (default: the chunks of a JSON-
                            lines file; StackExchange's dealt posts)
  read(piece, stages)       one piece's outcomes: each record kept, dropped or failed by its rules
  learning(stages)          the settings that make it learn from `learns_from` (none: it does not)
  stage(graph, plan)        its phases up to staged documents with their keys (default: a `prepare`
                            task per file that needs one, then one task per piece, reading it with `read`)
  rounds(stages)            the dedup rounds it takes after staging: `unique` ids, `exact`, `near`
  content_key(record)       the key exact dedup compares (default: the text's md5)
  excluded_groups(stages, staged)   groups (of the outcomes' `group`) dropped whole (default: none)
The generic phases (corral.pipeline.phases) add the rounds and the select pass after `stage`; they
never name a source.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from corral.core import fs
from corral.dedup.exact import text_md5
from corral.engine.graph import Graph, Handle, Item, Ledger, Summary, Task
from corral.manifests.options import Option
from corral.pipeline.inputs.chunks import is_jsonl, write_chunks
from corral.pipeline.inputs.match import match_inputs
from corral.pipeline.inputs.row_groups import row_group_cuts
from corral.pipeline.inputs.streams import guarded
from corral.pipeline.rounds.against import NEAR
from corral.pipeline.rounds.select import SelectRule
from corral.pipeline.rounds.stage import StagedFile, StagedSummary, file_key, ledger, stage_outcomes, work_dir

WHOLE = "file"  # a Piece's kind: the whole input file
FILES = "files"  # a Piece's kind: several small whole files, read one after the other (`paths`)
PASS_KINDS = ("buckets", "chunks")  # kinds of piece read from what one pass over their file prepared
PREPARED = "prepared"  # OUT/_build/<source>/prepared/<the file's first piece>/: what that pass left
PREPARED_DONE = "_done"  # written last in a prepared folder: the pass finished


@dataclass(frozen=True)
class Piece:
    """A unit of input, what one stage task reads: a whole input file, or a range of one.

    `kind` says what `start`/`end` count, and only the source that split the file reads them:
    `bytes` (a byte range; `header` bytes from the file's start are read first, as Wikipedia's
    siteinfo stream), `buckets` (StackExchange's dealt posts), `chunks` (the chunk files of one
    decompressing pass), `row_groups` (Parquet). `part` of `parts` is its place in the file, and
    `size` the input bytes it stands for (progress counts them). `prepared` is set by the stage task
    on a piece of a kind in PASS_KINDS: the folder its file's pass left. A piece of kind `files`
    (`combine_small`) is several whole files, `paths`, read in order (`path` is the first)."""

    path: str
    kind: str = WHOLE
    start: int = 0
    end: int = 0
    header: int = 0
    part: int = 0
    parts: int = 1
    size: int = 0
    prepared: str = ""
    paths: tuple[str, ...] = ()

    @property
    def whole(self) -> bool:
        return self.kind == WHOLE

    def files(self) -> list[Piece]:
        """What a reader reads: each whole file of a `files` piece, or the piece itself."""
        return [Piece(p) for p in self.paths] if self.kind == FILES else [self]

    def where(self) -> str:
        """The piece in a dead letter or a log line: the path, and its range when it is one."""
        if self.kind == FILES:
            return f"{self.path} and {len(self.paths) - 1} more files"
        return self.path if self.whole else f"{self.path} [{self.kind} {self.start}-{self.end}]"


def combine_small(pieces: list[Piece], limit: int, key=lambda i: 0) -> list[tuple[int, Piece]]:
    """Runs of whole files smaller than `limit` bytes (and of equal `key(index)`) as `files` pieces
    of at most `limit` bytes, each other piece as it is; with the index of each one's first piece.
    A task has a cost of its own (its staged files, key file and completion record: milliseconds),
    which files of a few hundred records would otherwise pay one by one."""
    out: list[tuple[int, Piece]] = []
    run: list[tuple[int, Piece]] = []
    run_bytes = 0

    def close() -> None:
        if len(run) > 1:
            files = [p for _, p in run]
            out.append((run[0][0], Piece(files[0].path, FILES, size=run_bytes, paths=tuple(p.path for p in files))))
        else:
            out.extend(run)
        run.clear()

    for i, piece in enumerate(pieces):
        small = piece.whole and 0 < piece.size < limit
        if run and (not small or key(i) != key(run[0][0]) or run_bytes + piece.size > limit):
            close()
            run_bytes = 0
        if small:
            run.append((i, piece))
            run_bytes += piece.size
        else:
            out.append((i, piece))
    close()
    return out


def ranges(path: str, kind: str, cuts: list[int], size: int, header: int = 0) -> list[Piece]:
    """The pieces between consecutive cuts (`cuts` from the first start to the last end) of one
    input of `size` bytes; each piece's `size` is its share of the file's bytes (they add up to it)."""
    span = max(cuts[-1] - cuts[0], 1)
    at = [size * (c - cuts[0]) // span for c in cuts]
    n = len(cuts) - 1
    return [
        Piece(path, kind, cuts[i], cuts[i + 1], header=header, part=i, parts=n, size=at[i + 1] - at[i])
        for i in range(n)
    ]


def even_parts(path: str, kind: str, units: int, size: int, parts: int) -> list[Piece]:
    """`parts` pieces of a file of `size` bytes, each a range of `units` units (buckets, chunks) cut
    as evenly as they go."""
    return ranges(path, kind, [units * i // parts for i in range(parts + 1)], size)


def chunked(path: str, size: int, piece_size: int) -> list[Piece]:
    """A file larger than a piece: one chunk each of one pass over it (corral.pipeline.inputs.chunks);
    a smaller one: itself."""
    parts = math.ceil(size / piece_size)
    return even_parts(path, "chunks", parts, size, parts) if parts > 1 else [Piece(path, size=size)]


def jsonl_pieces(path: str, size: int, piece_size: int) -> list[Piece]:
    """A JSON-lines file larger than a piece: its chunks; another file, or a smaller one: itself."""
    return chunked(path, size, piece_size) if is_jsonl(path) else [Piece(path, size=size)]


def parquet_pieces(path: str, size: int, piece_size: int) -> list[Piece] | None:
    """A Parquet file larger than a piece: ranges of its row groups (corral.pipeline.inputs.row_groups);
    a smaller one: itself; another file: None."""
    if not path.lower().endswith(".parquet"):
        return None
    try:
        cuts = row_group_cuts(path, piece_size) if size > piece_size else []
    except (OSError, ValueError):  # unreadable here (no footer, no seek): one task reads it, and says why
        cuts = []
    return ranges(path, "row_groups", cuts, size) if len(cuts) > 2 else [Piece(path, size=size)]


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
    piece_size: int = 0  # the build's piece size (input bytes); small files are combined up to at most it
    cluster_rows: str | None = None  # also write the near-dup clusters as rows here (`corral dedup`)
    near_dir: str | None = None  # where select writes the kept documents' band tables (default OUT/near/<source>)
    against: tuple[str, ...] = ()  # the band-table indexes of earlier outputs to deduplicate against
    fresh: bool = False  # its working folder was new or cleared: no item has a record to look for

    @property
    def ledger(self) -> Ledger:
        """Where its phases keep their completion records (OUT/_build/<source>/done/…)."""
        return ledger(self.out, self.name, self.fingerprint, self.fresh)

    @property
    def tables_dir(self) -> str:
        """Where select writes the kept documents' band tables (corral.pipeline.rounds.against)."""
        return self.near_dir or fs.join(self.out, f"{NEAR}/{self.name}")

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

    def prepare(self, piece: Piece, folder: str) -> None:
        write_chunks(piece.path, piece.parts, folder)

    def read(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def outcomes(self, piece: Piece, stages: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """`read` of each file of the piece, a failure mid-file turned into one counted error (the
        rest of that file lost)."""
        for one in piece.files():
            yield from guarded(self.name, one.where(), self.read(one, stages))

    def learning(self, stages: dict[str, Any]) -> list[str]:
        return []

    def stage(self, graph: Graph, plan: SourcePlan) -> Staged:
        items, waits = plan.piece_items(), list(plan.waits)
        passes = [it for it in items if it.piece.kind in PASS_KINDS and it.piece.part == 0]
        if passes:
            task = PrepareTask(plan.out, self, plan.stages)
            waits.append(graph.add(f"{self.name}/prepare", task, plan.ledger, items=passes, waits=plan.waits))
        staged = graph.add(
            f"{self.name}/stage",
            StageTask(plan.out, self, plan.stages),
            plan.ledger,
            items=items,
            waits=waits,
            inputs=True,
        )
        return Staged(staged, working=(PREPARED,) if passes else ())

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
        piece = item.piece
        if piece.kind in PASS_KINDS:
            piece = replace(piece, prepared=prepared_folder(self.out, self.source.name, item.index - piece.part))
        outcomes = self.source.outcomes(piece, self.stages)
        return stage_outcomes(target, outcomes, self.stages, self.source.content_key)


def prepared_folder(out: str, source: str, first: int) -> str:
    """Where the pass over the file whose first piece has index `first` leaves what its pieces read."""
    return fs.join(work_dir(out, source), f"{PREPARED}/{file_key(first)}")


class PrepareTask(SourceTask):
    """The one pass over a file whose pieces need it (the source's `prepare`), item: its first piece.
    What an interrupted pass left is cleared first; a finished one is marked last."""

    phase = "prepare"

    def run(self, item: PieceItem, *earlier) -> Summary:
        folder = prepared_folder(self.out, self.source.name, item.index)
        fs.remove([folder])
        self.source.prepare(item.piece, folder)
        fs.atomic_write_bytes(fs.join(folder, PREPARED_DONE), b"", durable=False)
        return Summary(input_bytes=0)

    def still_done(self, item: PieceItem, summary: Summary) -> bool:
        return fs.exists(fs.join(prepared_folder(self.out, self.source.name, item.index), PREPARED_DONE))

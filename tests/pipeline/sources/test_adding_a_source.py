"""A new source is one module and one line in the registry (README.md, "Adding a source"): the toy
`lines` source is read, deduplicated and selected by the same engine as the paper's sources."""

import gzip

from helpers import shard_records, write_manifest
from toy_source import Lines, line_reason

from corral.engine.runners import Executor
from corral.pipeline.build import build
from corral.pipeline.sources import registry


def test_the_toy_sources_rule():
    assert line_reason("   ", 5) == "blank" and line_reason("tiny", 5) == "too_short"
    assert line_reason("long enough", 5) is None


def test_a_source_added_to_the_registry_builds(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "SOURCES", (*registry.SOURCES, Lines()))  # the one line
    (tmp_path / "a.txt").write_text("the first document of a\n\nshort\nthe same line twice\n")
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(b"the same line twice\nthe last document of b\n"))
    m = write_manifest(tmp_path / "m.yaml", {"lines": {"inputs": [str(tmp_path / "*.txt*")], "read": {"min_chars": 6}}})
    for workers in (1, 2):
        manifest = build(m, str(tmp_path / f"out-{workers}"), Executor(workers=workers))
        f = manifest.sources["lines"].funnel
        assert (f.input, f.kept) == (6, 3)
        assert f.dropped == {"blank": 1, "too_short": 1, "duplicate_exact": 1}
        texts = sorted(r["text"] for r in shard_records(tmp_path / f"out-{workers}", "lines"))
        assert texts == ["the first document of a", "the last document of b", "the same line twice"]


def test_small_whole_files_combine_into_pieces_of_at_most_the_limit():
    from corral.pipeline.sources.base import FILES, Piece, combine_small

    sizes = [1, 1, 5, 1, 1, 1, 0, 2, 2]  # 0: a size not known
    pieces = [Piece(f"f{i}", size=s) for i, s in enumerate(sizes)] + [Piece("big", "bytes", 0, 9, size=9)]
    got = combine_small(pieces, 3, key=lambda i: i >= 4)  # files 0–3 and 4– are in different groups
    assert [(i, p.kind, p.paths, p.size) for i, p in got] == [
        (0, FILES, ("f0", "f1"), 2),
        (2, "file", (), 5),  # not small
        (3, "file", (), 1),  # alone in its group
        (4, FILES, ("f4", "f5"), 2),
        (6, "file", (), 0),
        (7, "file", (), 2),  # 2 + 2 > 3
        (8, "file", (), 2),
        (9, "bytes", (), 9),
    ]
    assert [p.path for p in got[0][1].files()] == ["f0", "f1"] and got[0][1].where() == "f0 and 1 more files"

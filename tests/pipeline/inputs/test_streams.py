import bz2
import gzip
import lzma
import random

import pytest

from corral.core.outcome import kept
from corral.core.schema import make_record
from corral.pipeline.inputs.match import InputError, match_inputs
from corral.pipeline.inputs.streams import TruncatedInput, guarded, open_input


def lines(n, seed=0):
    r = random.Random(seed)
    return b"".join(b"line %d %d\n" % (i, r.randrange(10**9)) for i in range(n))


@pytest.mark.parametrize("suffix,compress", [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)])
def test_multi_member_streams(tmp_path, suffix, compress):
    p = tmp_path / f"x{suffix}"
    p.write_bytes(compress(b"first\n") + compress(b"second\n"))
    assert list(open_input(str(p))) == [b"first\n", b"second\n"]


def test_truncated_gzip_returns_complete_members_then_raises(tmp_path):
    members = [gzip.compress(lines(200, s)) for s in range(3)]
    p = tmp_path / "t.gz"
    p.write_bytes(b"".join(members[:2]) + members[2][: len(members[2]) // 2])
    got = []
    with pytest.raises(TruncatedInput):
        for line in open_input(str(p)):
            got.append(line)
    assert b"".join(got).startswith(lines(200, 0) + lines(200, 1))  # nothing before the damage lost


def test_read_all_of_a_truncated_file_raises(tmp_path):
    data = gzip.compress(lines(5000))
    p = tmp_path / "t.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedInput):
        open_input(str(p)).read()


def test_garbage_after_gzip_members_is_an_error(tmp_path):
    p = tmp_path / "g.gz"
    p.write_bytes(gzip.compress(b"ok\n") + b"this is not gzip")
    s = open_input(str(p))
    assert s.readline() == b"ok\n"
    with pytest.raises(TruncatedInput):
        s.read()


def test_plain_files_pass_through(tmp_path):
    p = tmp_path / "plain.txt"
    p.write_bytes(b"a\nb\n")
    assert open_input(str(p)).read() == b"a\nb\n"


def test_match_inputs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("x")
    (tmp_path / "y.txt").write_text("yy")
    assert match_inputs([str(tmp_path / "**" / "*.txt")]) == [
        (str(tmp_path / "a" / "x.txt"), 1),
        (str(tmp_path / "y.txt"), 2),
    ]
    with pytest.raises(InputError, match=r"m.yaml: sources.c4.inputs\[0\]: .* matches no file"):
        match_inputs([str(tmp_path / "*.json")], "m.yaml: sources.c4.inputs")


def test_guarded_turns_failures_into_one_error():
    def reader():
        yield kept(make_record("c4", "a", "t"))
        raise TruncatedInput("cut")

    def buggy():
        yield kept(make_record("c4", "a", "t"))
        raise KeyError("surprise")

    out = list(guarded("c4", "f.gz", reader()))
    assert [o["status"] for o in out] == ["kept", "error"]
    assert out[1]["reason"] == "truncated_or_corrupt" and out[1]["where"] == "f.gz after record 1"
    assert list(guarded("c4", "f", buggy()))[1]["reason"] == "read_failed"


def test_single_file_7z_is_transparent(tmp_path):
    import py7zr

    with py7zr.SevenZipFile(tmp_path / "book.txt.7z", "w") as z:
        z.writestr(lines(3000), "book.txt")
    assert open_input(str(tmp_path / "book.txt.7z")).read() == lines(3000)
    with py7zr.SevenZipFile(tmp_path / "two.7z", "w") as z:
        z.writestr(b"a", "a.txt")
        z.writestr(b"b", "b.txt")
    with pytest.raises(TruncatedInput, match="exactly one file"):
        open_input(str(tmp_path / "two.7z"))

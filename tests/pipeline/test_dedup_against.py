"""Near dedup against earlier outputs: `corral dedup --against` and a source's `minhash.against` —
what is removed and why, the earlier output left as it was, its band tables reused, settings that
differ refused."""

import hashlib
import json
import random

import pytest
from helpers import shard_records, write_manifest

from corral.cli import main
from corral.dedup import minhash
from corral.pipeline.build import BuildError, build
from corral.pipeline.dedup_job import DedupInputError, DedupSettings, dedup
from corral.pipeline.rounds import near

VOCAB = [f"w{i}" for i in range(5000)]


def words(rng, n=150):
    return [rng.choice(VOCAB) for _ in range(n)]


def edited(ws, rng, k=1):
    ws = list(ws)
    for i in rng.sample(range(len(ws)), k):
        ws[i] = "changed"
    return ws


def write(path, docs):
    path.write_text("".join(json.dumps({"id": i, "text": " ".join(w)}) + "\n" for i, w in docs))
    return str(path)


def corpora(tmp_path, seed=0):
    """An earlier corpus (originals, and near copies it drops itself) and a new one: near copies of
    earlier originals, a near copy of an earlier document the earlier job dropped, an exact copy, its
    own originals with their near copies, and far variants of earlier originals (which stay).
    Returns the two files and what the new job should remove, {id: (reason, duplicate_of)}."""
    rng = random.Random(seed)
    first = [(f"a{i:03d}", words(rng)) for i in range(80)]
    first_dups = [(f"a{i:03d}-near", edited(first[i][1], rng)) for i in range(0, 20)]
    own = [(f"n{i:03d}", words(rng)) for i in range(60)]
    expect = {}
    second = []
    for i in range(20, 50):  # near copies of documents the earlier job kept
        second.append((f"m{i:03d}", edited(first[i][1], rng, 2)))
        expect[f"m{i:03d}"] = ("duplicate_of_existing", f"a{i:03d}")
    second.append(("m-exact", first[60][1]))
    expect["m-exact"] = ("duplicate_of_existing", "a060")
    # a near copy of a dropped earlier near copy: it matches the kept original (one word away)
    second.append(("m-of-dropped", first_dups[3][1]))
    expect["m-of-dropped"] = ("duplicate_of_existing", "a003")
    for i in range(60, 70):  # far variants: every 4th word changed (J ≈ 0.2), kept
        second.append((f"f{i:03d}", [w if k % 4 else "zz" for k, w in enumerate(first[i][1])]))
    second += own
    for i in range(0, 15):  # the new corpus's own near copies
        second.append((f"n{i:03d}-near", edited(own[i][1], rng)))
        expect[f"n{i:03d}-near"] = ("near_duplicate", f"n{i:03d}")
    rng.shuffle(second)
    return write(tmp_path / "first.jsonl", first + first_dups), write(tmp_path / "second.jsonl", second), expect


def removed(out):
    rows = [json.loads(line) for line in (out / "removed.jsonl").read_text().splitlines()]
    return {r["id"]: (r["reason"], r["duplicate_of"]) for r in rows}


def digests(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_dedup_against_an_earlier_output_removes_exactly_its_near_copies(tmp_path):
    first, second, expect = corpora(tmp_path)
    dedup(first, str(tmp_path / "A"))
    before = digests(tmp_path / "A")
    m = dedup(second, str(tmp_path / "B"), against=[str(tmp_path / "A")])
    assert removed(tmp_path / "B") == expect
    f = m.sources["input"].funnel
    existing = sum(1 for r, _ in expect.values() if r == "duplicate_of_existing")
    assert f.dropped == {"duplicate_of_existing": existing, "near_duplicate": len(expect) - existing}
    assert f.balanced()
    assert {r["id"] for r in shard_records(str(tmp_path / "B"), "")}.isdisjoint(expect)
    assert digests(tmp_path / "A") == before  # the earlier output is only read
    assert m.settings["dedup"]["against"] == [str((tmp_path / "A").resolve())]


def test_outputs_chain_and_the_earlier_tables_are_read_not_recomputed(tmp_path, monkeypatch):
    """B against A, then C (a copy of B's input) against A and B: C keeps nothing of B's kept
    documents, and signs only its own documents (A's and B's band keys come from their tables),
    in any number of LSH partitions."""
    first, second, _ = corpora(tmp_path)
    dedup(first, str(tmp_path / "A"))
    b = dedup(second, str(tmp_path / "B"), against=[str(tmp_path / "A")])
    signed = []
    sign = minhash.signatures
    monkeypatch.setattr(minhash, "signatures", lambda sets, *a: signed.append(len(sets)) or sign(sets, *a))
    monkeypatch.setattr(near, "BANDS_PER_PARTITION", 300)
    c = dedup(second, str(tmp_path / "C"), against=[str(tmp_path / "A"), str(tmp_path / "B")])
    fc, fb = c.sources["input"].funnel, b.sources["input"].funnel
    assert sum(signed) == fc.input  # its own documents only
    assert fc.kept == 0 and fc.dropped == {"duplicate_of_existing": fc.input}
    # each document matches its own copy where B kept it, else what B's own match was
    gone_from_b = removed(tmp_path / "B")
    kept_by_b = {r["id"] for r in shard_records(str(tmp_path / "B"), "")}
    want = {i: ("duplicate_of_existing", i) for i in kept_by_b}
    want |= {i: ("duplicate_of_existing", of) for i, (_, of) in gone_from_b.items()}
    assert removed(tmp_path / "C") == want
    index = json.loads((tmp_path / "B" / "near" / "index.json").read_text())
    assert index["documents"] == fb.kept and index["settings"]["bands"] == 10


def test_other_settings_or_no_tables_are_refused_in_one_line(tmp_path, capsys):
    first, second, _ = corpora(tmp_path)
    dedup(first, str(tmp_path / "A"))
    made = r"--against: .*near/index.json: its band tables were made with .*7 bands × 9 rows"
    with pytest.raises(DedupInputError, match=made):
        dedup(second, str(tmp_path / "B"), settings=DedupSettings(threshold=0.9), against=[str(tmp_path / "A")])
    assert main(["dedup", second, "--out", str(tmp_path / "B"), "--against", str(tmp_path / "nothing")]) == 2
    assert "has no near-dup band tables" in capsys.readouterr().err
    assert main(["dedup", second, "--out", str(tmp_path / "A"), "--against", str(tmp_path / "A")]) == 2
    assert "overlaps this job's output folder" in capsys.readouterr().err
    assert main(["dedup", second, "--out", str(tmp_path / "B"), "--against", str(tmp_path / "A")]) == 0
    assert "duplicates of earlier outputs 32" in capsys.readouterr().out


def book(rng, n=3000):
    return words(rng, n)


def test_a_build_source_deduplicated_against_an_earlier_build(tmp_path):
    """Books' 0.9 MinHash stage with `against`: a second dump's near copy of a kept book goes as
    duplicate_of_existing; the earlier build stays as it was; other settings fail fast."""
    rng = random.Random(7)
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    kept = book(rng)
    (old / "a.txt").write_text(" ".join(kept))
    (old / "b.txt").write_text(" ".join(book(rng)))
    (new / "a-again.txt").write_text(" ".join(edited(kept, rng, 8)))  # > 90% overlap
    (new / "c.txt").write_text(" ".join(book(rng)))
    m1 = write_manifest(tmp_path / "m1.yaml", {"books": {"inputs": [str(old / "*.txt")]}})
    build(m1, str(tmp_path / "out1"))
    before = digests(tmp_path / "out1")
    spec = {"books": {"inputs": [str(new / "*.txt")], "minhash": {"against": ["out1"]}}}
    m2 = write_manifest(tmp_path / "m2.yaml", spec)  # a path relative to the manifest
    manifest = build(m2, str(tmp_path / "out2"))
    f = manifest.sources["books"].funnel
    assert f.kept == 1 and f.dropped == {"duplicate_of_existing": 1}
    assert [r["id"] for r in shard_records(str(tmp_path / "out2"), "books")] != []
    assert digests(tmp_path / "out1") == before
    assert (tmp_path / "out2" / "near" / "books" / "index.json").exists()
    spec["books"]["minhash"]["threshold"] = 0.8
    m3 = write_manifest(tmp_path / "m3.yaml", spec)
    with pytest.raises(BuildError, match=r"m3.yaml: sources.books.minhash.against"):
        build(m3, str(tmp_path / "out3"))
    spec["books"]["minhash"] = {"against": ["nothing-here"]}
    with pytest.raises(BuildError, match=r"nothing-here has no near-dup band tables \(near/books/index.json"):
        build(write_manifest(tmp_path / "m4.yaml", spec), str(tmp_path / "out4"))


def test_verify_checks_the_band_tables(tmp_path):
    from corral.manifests.verify import verify_build

    first, _, _ = corpora(tmp_path)
    dedup(first, str(tmp_path / "A"))
    report = verify_build(str(tmp_path / "A"))
    assert report.ok and report.tables_checked == 1, report.summary()
    table = next((tmp_path / "A" / "near").glob("part-*.npz"))
    data = bytearray(table.read_bytes())
    data[-100] ^= 1
    table.write_bytes(bytes(data))
    report = verify_build(str(tmp_path / "A"))
    assert [p for p in report.problems if "band table near/part-000000.npz: sha256 differs" in p], report.summary()


def test_beams_runner_gives_the_same_result(tmp_path):
    """The earlier tables' indexes travel in the work items: Beam's FnApiRunner (`--runner direct`,
    one worker process) removes the same documents as the local pool."""
    first, second, expect = corpora(tmp_path, seed=2)
    dedup(first, str(tmp_path / "A"))
    args = [second, "--against", str(tmp_path / "A"), "--workers", "1"]
    assert main(["dedup", *args, "--out", str(tmp_path / "local")]) == 0
    assert main(["dedup", *args, "--out", str(tmp_path / "beam"), "--runner", "direct"]) == 0
    assert removed(tmp_path / "beam") == removed(tmp_path / "local") == expect


@pytest.mark.parametrize("ids", ["shared", "long numeric"])
def test_ids_that_meet_never_merge_two_documents(tmp_path, ids):
    """Documents are nodes by their locators, not by their ids: the same id in two earlier outputs
    (small integers), or ids alike in their first 15 characters (16-digit numbers), still name
    different documents, and the order of --against does not matter."""
    rng = random.Random(3)
    if ids == "shared":
        a = [(str(i), words(rng)) for i in range(1, 6)]
        b = [(str(i), words(rng)) for i in range(1, 6)]
    else:
        a = [(str(1000000000000000 + i), words(rng)) for i in range(10)]
        b = [(str(1000000000000000 + i), words(rng)) for i in range(10, 20)]
    new = [(f"new-{i}", edited(w, rng, 2)) for i, w in a + b]
    dedup(write(tmp_path / "a.jsonl", a), str(tmp_path / "A"))
    dedup(write(tmp_path / "b.jsonl", b), str(tmp_path / "B"))
    first, second = str(tmp_path / "A"), str(tmp_path / "B")
    dedup(write(tmp_path / "new.jsonl", new), str(tmp_path / "N1"), against=[first, second])
    dedup(str(tmp_path / "new.jsonl"), str(tmp_path / "N2"), against=[second, first])
    want = {f"new-{i}": ("duplicate_of_existing", i) for i, _ in a + b}
    assert removed(tmp_path / "N1") == removed(tmp_path / "N2") == want


def test_an_earlier_output_given_by_a_relative_path_or_overlapping_out(tmp_path, monkeypatch):
    """--against relative to the working folder (the output, or its near/ folder), and the same
    output spelled two ways, is one output; one that overlaps the job's own output is refused
    before anything is cleared, in a build as in `corral dedup`."""
    first, second, expect = corpora(tmp_path)
    dedup(first, str(tmp_path / "A"))
    monkeypatch.chdir(tmp_path / "A")
    m = dedup(second, str(tmp_path / "B"), against=["near", str(tmp_path / "A"), "."])
    assert removed(tmp_path / "B") == expect
    assert m.settings["dedup"]["against"] == sorted({str((tmp_path / "A").resolve()), str(tmp_path / "A" / "near")})
    with pytest.raises(DedupInputError, match="overlaps this job's output folder"):
        dedup(second, str(tmp_path / "A" / "inner"), against=["."])
    rng = random.Random(1)
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "a.txt").write_text(" ".join(book(rng)))
    (tmp_path / "m").mkdir()
    spec = {"books": {"inputs": [str(tmp_path / "books" / "*.txt")]}}
    build(write_manifest(tmp_path / "m" / "m1.yaml", spec), str(tmp_path / "out"))
    before = digests(tmp_path / "out")
    spec["books"]["minhash"] = {"against": ["../out"]}  # the build's own OUT, relative to the manifest
    with pytest.raises(BuildError, match="overlaps this job's output folder"):
        build(write_manifest(tmp_path / "m" / "m2.yaml", spec), str(tmp_path / "out"))
    assert digests(tmp_path / "out") == before

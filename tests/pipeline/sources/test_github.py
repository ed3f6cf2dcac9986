"""docs/recipe/github.md GitHub rules on inline cases, then package trees with their license files."""

import collections
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import package_repos, run_read, shard_records, stages, write_manifest

from corral.manifests.verify import verify_build
from corral.pipeline.build import build
from corral.pipeline.sources import github as gh
from corral.pipeline.sources.github import GITHUB_EXTENSIONS

ST = stages("github")


def test_clean_copyright_block_removed_only_when_it_mentions_copyright():
    src = "/* Copyright 2020 ACME */\nint x;\n/* Copyright again */\n"
    assert gh.clean_copyright_comments(src) == "\nint x;\n/* Copyright again */\n"
    plain = "/* just a note */\n// Copyright 2020\nint x;\n"
    assert gh.clean_copyright_comments(plain) == plain  # first block only; no line stripping then


def test_clean_leading_comment_lines_when_no_block():
    # docs/recipe/github.md quirk (checked by running RP): #include, shebangs and Markdown titles go too.
    assert gh.clean_copyright_comments("#!/bin/sh\n# Copyright\n\necho hi\n# tail\n") == "echo hi\n# tail\n"
    assert gh.clean_copyright_comments("#include <stdio.h>\nint main(){}\n") == "int main(){}\n"
    assert gh.clean_copyright_comments("-- sql header\nSELECT 1;\n") == "SELECT 1;\n"
    assert gh.clean_copyright_comments("# Title\nText\n") == "Text\n"


def test_stats_match_rp_definitions():
    s = gh.file_stats("ab\ncd\n")
    assert s["avg_line_length"] == 3.0 and s["line_count"] == 2 and s["max_line_length"] == 2
    assert gh.file_stats("a!")["alnum_prop"] == 0.5


@pytest.mark.parametrize(
    "content,reason",
    [
        ("", "empty"),
        ("x" * 1001 + "\n", "long_lines"),
        ("\n".join(["y" * 150] * 3), "long_average_line"),
        ("!!!! ???? ;;;; a\n" * 3, "low_alnum"),
        ("1 2 3 4 5 6 7 8 9 0 1 2 3 4\n" * 3, "low_alpha_per_token"),
        ("def hello_world():\n    return 'hello'\n", None),
    ],
)
def test_quality_thresholds(content, reason):
    assert gh.quality_reason(content, gh.file_stats(content), ST["filter"]) == reason


def test_constants():
    f = ST["filter"]
    assert (f["max_line_length"], f["max_avg_line_length"], f["min_alnum_fraction"], f["min_alpha_per_token"]) == (
        1000,
        100,
        0.25,
        1.5,
    )
    assert len(GITHUB_EXTENSIONS) == 66 and "Dockerfile" in GITHUB_EXTENSIONS and ".C" in GITHUB_EXTENSIONS


def test_extension_whitelist_is_case_sensitive_endswith():
    ext = ST["filter"]["extensions"]
    assert gh.path_reason("src/a.py", ext) is None
    assert gh.path_reason("src/A.PY", ext) == "extension_not_allowed"
    assert gh.path_reason("docker/Dockerfile", ext) is None
    assert gh.path_reason("certs/ca.crt", ext) == "skipped_path"
    assert gh.path_reason("LICENSE", ext) == "skipped_path"


def test_token_count_is_a_bpe_lower_bound():
    assert gh.count_tokens("def foo(bar): return bar") == 7  # def, ␣foo, (, bar, ):, ␣return, ␣bar
    assert gh.alpha_per_token("hello world") == 5.0


def test_binary_detection():
    assert gh.decode_source(b"\x7fELF\x00\x01") is None
    assert gh.decode_source(b"\xff\xfe\x00") is None
    assert gh.decode_source("café".encode()) == "café"


MIT = "Permission is hereby granted, free of charge, to any person obtaining a copy of this software"
APACHE = "Apache License\n                           Version 2.0, January 2004"
GPL = "GNU GENERAL PUBLIC LICENSE\n Version 3"


def test_detect_license_and_decision():
    assert gh.detect_license(MIT) == "mit" and gh.detect_license(APACHE) == "apache"
    assert gh.detect_license(MIT.replace("person obtaining", "person\n obtaining")) == "mit"  # wrapped lines
    assert (
        gh.detect_license("Redistribution and use in source and binary forms, with or without\nmodification") == "bsd"
    )
    assert gh.detect_license(GPL) == "gpl" and gh.detect_license("GNU LESSER GENERAL PUBLIC LICENSE") == "lgpl"
    assert gh.detect_license("All rights reserved.") is None
    allowed = ST["license"]["allowed"]
    assert gh.license_decision({"mit", "apache"}, allowed) is None
    assert gh.license_decision({"mit", "gpl"}, allowed) == "license_not_allowed"
    assert gh.license_decision(set(), allowed) == "no_license"
    assert [gh.license_family(x) for x in ("MIT", "apache-2.0", "bsd-3-clause", "gpl-2.0", None)] == [
        "mit",
        "apache",
        "bsd",
        "gpl",
        None,
    ]


def make_repo(root, files, license_text=None):
    root.mkdir(parents=True)
    if license_text:
        (root / "LICENSE").write_text(license_text)
    for name, content in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def test_repo_folders(tmp_path):
    good = "import os\n\ndef main():\n    return os.getcwd()\n"
    a = make_repo(
        tmp_path / "repos" / "alpha",
        {
            "a.py": good,
            "dup.py": good,
            "img.png": b"\x89PNG\x00",
            "lib.so.py": b"\x00\x01binary",
            "big.py": "x = 1\n" * 200_000,
            "notes.txt": "hello",
        },
        MIT,
    )
    os.symlink("/etc/passwd", a / "leak.py")
    make_repo(tmp_path / "repos" / "beta", {"b.py": good + "# beta\n"}, GPL)
    make_repo(tmp_path / "repos" / "gamma", {"c.py": good + "# gamma\n"})
    outs = run_read(gh.GitHub(), sorted(str(p) for p in (tmp_path / "repos").iterdir()), tmp_path)
    reasons = collections.Counter((o["status"], o["reason"]) for o in outs if o["status"] != "kept")
    assert reasons == {
        ("dropped", "skipped_path"): 1,
        ("dropped", "extension_not_allowed"): 2,
        ("dropped", "binary"): 1,
        ("dropped", "too_large"): 1,
        ("error", "link"): 1,
        ("dropped", "license_not_allowed"): 2,
        ("dropped", "no_license"): 1,
    }
    kept = sorted(o["record"]["url"] for o in outs if o["status"] == "kept")
    assert kept == ["alpha/a.py", "alpha/dup.py"]  # exact dedup happens in the build


def test_exports_jsonl_and_parquet(tmp_path):
    rows = [
        {
            "repo_name": "o/r",
            "path": "m.py",
            "content": "def greeting():\n    return 'hello there'\n",
            "license": "mit",
        },
        {"repo_name": "o/r", "path": "n.go", "content": "package main\n\nfunc main() {}\n", "license": "apache-2.0"},
        {"repo_name": "o/g", "path": "x.py", "content": "def g():\n    return 2\n", "license": "gpl-3.0"},
    ]
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{bad json\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "e.parquet")
    outs = run_read(gh.GitHub(), [str(tmp_path / "e.jsonl"), str(tmp_path / "e.parquet")], tmp_path)
    kept = sorted(o["record"]["url"] for o in outs if o["status"] == "kept")
    assert kept == [
        "https://github.com/o/r/blob/HEAD/m.py",
        "https://github.com/o/r/blob/HEAD/m.py",
        "https://github.com/o/r/blob/HEAD/n.go",
        "https://github.com/o/r/blob/HEAD/n.go",
    ]
    assert sorted(o["reason"] for o in outs if o["status"] != "kept") == [
        "bad_row",
        "license_not_allowed",
        "license_not_allowed",
    ]


def test_package_trees_build(tmp_path):
    package_repos(tmp_path / "github")
    m = write_manifest(tmp_path / "m.yaml", {"github": {"inputs": [str(tmp_path / "github" / "*")]}})
    manifest = build(m, str(tmp_path / "out"))
    f = manifest.sources["github"].funnel
    assert f.balanced() and f.kept > 20
    assert f.dropped["license_not_allowed"] > 0  # certifi (MPL-2.0) and py7zr (LGPL)
    assert verify_build(str(tmp_path / "out")).ok
    recs = shard_records(str(tmp_path / "out"), "github")
    repos = {json.loads(r["meta"])["repo_name"] for r in recs}
    assert repos == {"yaml", "bs4", "mwparserfromhell"}
    assert all(json.loads(r["meta"])["license"] == "mit" for r in recs)
    md5s = [json.loads(r["meta"])["content_md5"] for r in recs]
    assert len(md5s) == len(set(md5s))  # exact dedup over the whole input


@pytest.mark.parametrize("name", ["e.parquet", "e.jsonl.gz"])
def test_a_big_export_split_into_pieces_reads_what_one_task_reads(tmp_path, name):
    """Parquet by row groups (no pass first), JSON lines by the chunks of one pass: the same
    outcomes, in the same order, with the whole file's `#n` / `:n` locations."""
    import gzip
    from dataclasses import replace

    from helpers import stages

    rows = [
        {
            "repo_name": f"o/r{i % 7}",
            "path": f"m{i}.py",
            "content": f"def greeting_{i}():\n    return 'hello there, friend number {i}'\n",
            "license": "mit" if i % 5 else "gpl-3.0",
        }
        for i in range(600)
    ]
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=50)
    else:
        path.write_bytes(gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows)))
    source, st = gh.GitHub(), stages(gh.GitHub())
    size = path.stat().st_size
    whole = source.split(str(path), size, st, size)
    pieces = source.split(str(path), size, st, size // 8)
    assert len(whole) == 1 and len(pieces) >= 4
    if pieces[0].kind == "chunks":
        source.prepare(pieces[0], str(tmp_path / "prepared"))
        pieces = [replace(p, prepared=str(tmp_path / "prepared")) for p in pieces]
    else:
        assert pieces[0].kind == "row_groups" and pieces[-1].end == 12
    read = [[json.loads(json.dumps(o)) for p in ps for o in source.outcomes(p, st)] for ps in (whole, pieces)]
    assert read[0] == read[1] and sum(o["status"] == "kept" for o in read[0]) == 480
    dropped = [o["where"] for o in read[0] if o["status"] == "dropped"]  # rows 1, 6, 11, … (gpl-3.0)
    assert dropped[0].endswith(("#1", ":1")) and dropped[-1].endswith(("#596", ":596"))

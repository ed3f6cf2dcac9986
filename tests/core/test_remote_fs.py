"""Shards, manifests and verify on a non-local Beam filesystem (as with gs:// or s3://).

A test filesystem registered with Beam under `fakefs://` stores files in a temporary folder; corral
reaches it only through Beam's FileSystems API, exactly as it would reach a bucket.
"""

import os

import numpy as np
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from corral.core.fs import is_remote
from corral.core.schema import make_record
from corral.core.shards import ShardWriter, count_rows, read_token_shard, write_token_shard
from corral.manifests.build_manifest import BuildManifest, Funnel, SourceBuild, load_build, relative_shard
from corral.manifests.verify import verify_build

ROOT = {"dir": None}


class FakeFS(LocalFileSystem):
    """fakefs://x/y  ->  <ROOT>/x/y on local disk."""

    @classmethod
    def scheme(cls):
        return "fakefs"

    def join(self, base, *paths):
        return "/".join([base.rstrip("/"), *paths])

    def split(self, path):
        head, tail = path.rstrip("/").rsplit("/", 1)
        return head, tail

    def mkdirs(self, path):
        return super().mkdirs(self._p(path))

    def has_dirs(self):
        return True

    def create(self, path, *a, **kw):
        os.makedirs(os.path.dirname(self._p(path)), exist_ok=True)
        return super().create(self._p(path), *a, **kw)

    def open(self, path, *a, **kw):
        return super().open(self._p(path), *a, **kw)

    def rename(self, src, dst):
        return super().rename([self._p(s) for s in src], [self._p(d) for d in dst])

    def delete(self, paths):
        return super().delete([self._p(p) for p in paths])

    def exists(self, path):
        return super().exists(self._p(path))

    def match(self, patterns, limits=None):
        import glob

        from apache_beam.io.filesystem import FileMetadata, MatchResult

        results = []
        for pat in patterns:  # files only, `**` across folders: what an object store's match gives
            local = sorted(x for x in glob.glob(self._p(pat), recursive=True) if os.path.isfile(x))
            found = [f"{self.scheme()}://" + os.path.relpath(x, ROOT["dir"]) if "://" in pat else x for x in local]
            results.append(MatchResult(pat, [FileMetadata(f, os.path.getsize(self._p(f))) for f in found]))
        return results

    @classmethod
    def _p(cls, path):  # a path of the scheme to its file; a local one (Beam's own calls) as it is
        return os.path.join(ROOT["dir"], path.split("://", 1)[1]) if "://" in path else path


class FakeGCS(FakeFS):
    """gs:// on local disk, through Beam's FileSystems as Google Cloud Storage would be reached
    (apache-beam[gcp] is not installed here: nothing else claims the scheme)."""

    @classmethod
    def scheme(cls):
        return "gs"


@pytest.fixture
def fakefs(tmp_path):
    ROOT["dir"] = str(tmp_path)
    yield tmp_path
    ROOT["dir"] = None


def test_shards_and_manifest_on_a_remote_filesystem(fakefs):
    out = "fakefs://bucket/build"
    assert is_remote(out)
    recs = [make_record("c4", f"k{i}", f"text {i}") for i in range(25)]
    w = ShardWriter(f"{out}/docs/c4", max_rows=10)
    with w:
        w.write_all(recs)
    assert [s.documents for s in w.shards] == [10, 10, 5]
    assert w.shards[0].path == "fakefs://bucket/build/docs/c4/part-00000.arrow"
    # Only final names remain: temporary files were renamed through Beam.
    assert sorted(os.listdir(fakefs / "bucket/build/docs/c4")) == [f"part-0000{i}.arrow" for i in range(3)]
    assert count_rows(w.shards[2].path) == 5

    info = write_token_shard(
        f"{out}/tokens/c4/part-00000.arrow",
        [r["id"] for r in recs],
        [np.arange(i + 1, dtype=np.uint16) for i in range(25)],
    )
    ts = read_token_shard(info.path)
    assert int(ts.offsets[-1]) == sum(range(1, 26))

    sb = SourceBuild(
        weight=1.0,
        documents=25,
        bytes=100,
        tokens=int(ts.offsets[-1]),
        funnel=Funnel(input=25, kept=25),
        shards=[relative_shard(s, out) for s in w.shards],
        token_shards=[relative_shard(info, out)],
    )
    assert sb.shards[0]["path"] == "docs/c4/part-00000.arrow"
    BuildManifest(mixture={"name": "r", "target_tokens": 100}, settings={}, sources={"c4": sb}).save(out)
    assert FileSystems.exists(f"{out}/manifest.json")
    assert load_build(out).sources["c4"].documents == 25
    report = verify_build(out)
    assert report.ok, report.summary()

    # A flipped byte on the remote side is caught too.
    p = fakefs / "bucket/build/docs/c4/part-00001.arrow"
    data = bytearray(p.read_bytes())
    data[100] ^= 0xFF
    p.write_bytes(bytes(data))
    assert any("part-00001.arrow: sha256" in x for x in verify_build(out).problems)


def test_a_build_into_gs_goes_through_beams_filesystems_and_equals_the_local_one(fakefs, sample, tmp_path):
    """gs:// (like every scheme but s3://) is reached through Beam's FileSystems: a build of the
    sample into it, its verify and a rerun that reuses it, against the same build on local disk."""
    from helpers import SAMPLE_MANIFEST, bucket_documents

    from corral.cli import main

    assert main(["build", SAMPLE_MANIFEST, "--out", str(tmp_path / "local"), "--workers", "2"]) == 0
    assert main(["build", SAMPLE_MANIFEST, "--out", "gs://bucket/build", "--workers", "2"]) == 0
    assert bucket_documents("gs://bucket/build") == bucket_documents(str(tmp_path / "local"))
    assert main(["verify", "gs://bucket/build"]) == 0
    assert main(["build", SAMPLE_MANIFEST, "--out", "gs://bucket/build"]) == 0  # reused, not rebuilt

"""`corral fetch MANIFEST --to DIR`: mirror a manifest's remote inputs into DIR, and write a copy of
the manifest that reads the local files.

- Each remote file goes to DIR/<host or bucket>/<path>, first as `<name>.part`, renamed when it is
  whole: its size equals the server's, and its sha1 or md5 equals the publisher's where there is a
  checksum list beside it (Wikimedia's `<wiki>-<date>-sha1sums.txt` / `-md5sums.txt`). A file under
  its final name is complete: a rerun never downloads it again.
- A `.part` left by a killed fetch is resumed with a Range request (restarted where the server
  ignores Range). Downloads run `--parallel` at a time (default 4), each with corral.core.http_fs's
  retries; a file that still fails is reported and the others go on.
- Paths lists are copied too, and the manifest copy names them with `base` pointing into DIR and
  the `limit`/`every` that was fetched. Local inputs stay as they are. `--only SOURCE` fetches one
  source; `--limit N` at most N files per input.
- Progress: files and bytes done, rate and ETA on one line (rewritten on a terminal, every 10 s in
  a log).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from corral.core import fs
from corral.core.errors import UsageError
from corral.manifests.mixture import ManifestError, load_mixture
from corral.pipeline.inputs.match import InputError, match_inputs, paths_list_problem, read_paths_list
from corral.pipeline.sources.registry import SOURCES

PARALLEL = 4  # downloads at once (corral's choice: polite to one publisher)
PART = ".part"  # a download in progress
LOG_EVERY_S = 10.0  # progress line interval when stderr is not a terminal
# Wikimedia's dump file names: <wiki>-<date>-<rest>; its checksum lists sit in the same folder.
WIKIMEDIA_NAME = re.compile(r"^([a-z_\-]+wiki)-(\d{8}|latest)-")
SUM_KINDS = (("sha1", "sha1sums"), ("md5", "md5sums"))


class FetchError(UsageError):
    """The manifest or an input cannot be fetched as asked (one line)."""


@dataclass
class Job:
    url: str
    dest: str
    source: str


@dataclass
class Report:
    done: list[str] = field(default_factory=list)  # downloaded now
    complete: list[str] = field(default_factory=list)  # already there
    missing: list[str] = field(default_factory=list)  # 404 at the publisher
    failed: list[str] = field(default_factory=list)  # "url: why"
    bytes: int = 0


def local_path_of(url: str, to: str) -> str:
    """DIR/<host or bucket>/<path> for a remote URL."""
    rest = url.split("://", 1)[1].split("?", 1)[0]
    return os.path.join(to, *[p for p in rest.split("/") if p not in ("", ".", "..")])


def _checksums(url: str, cache: dict[str, dict[str, tuple[str, str]]], lock: threading.Lock) -> tuple[str, str] | None:
    """(algorithm, hex digest) the publisher gives for `url`, if it gives one."""
    folder, name = url.rsplit("/", 1)
    m = WIKIMEDIA_NAME.match(name)
    if not m or "://" not in url:
        return None
    with lock:
        if folder not in cache:
            sums: dict[str, tuple[str, str]] = {}
            for algo, suffix in SUM_KINDS:
                try:
                    text = fs.read_bytes(f"{folder}/{m.group(1)}-{m.group(2)}-{suffix}.txt").decode("utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[1] not in sums:
                        sums[parts[1]] = (algo, parts[0].lower())
            cache[folder] = sums
        return cache[folder].get(name)


class _Progress:
    def __init__(self, files: int, out=None):
        self.files, self.out, self.t0 = files, out or sys.stderr, time.time()
        self.finished, self.bytes, self.last = 0, 0, 0.0
        self.lock = threading.Lock()
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()

    def add(self, n: int) -> None:
        with self.lock:
            self.bytes += n
        self.show()

    def file_done(self) -> None:
        with self.lock:
            self.finished += 1
        self.show(force=self.finished == self.files)

    def show(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last < (0.5 if self.tty else LOG_EVERY_S):
            return
        self.last = now
        took = max(now - self.t0, 1e-6)
        rate = self.bytes / took
        eta = (self.files - self.finished) * took / self.finished if self.finished else None
        line = f"fetch: {self.finished}/{self.files} files, {self.bytes / 1e6:,.1f} MB, {rate / 1e6:,.2f} MB/s" + (
            f", ETA {eta:,.0f} s" if eta is not None and self.finished < self.files else ""
        )
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=self.out, flush=True)


def _download(job: Job, progress: _Progress, sums: dict, lock: threading.Lock) -> str:
    """Fetch one file into place; returns "done" or "complete" (raises on failure)."""
    if os.path.isfile(job.dest):
        return "complete"
    os.makedirs(os.path.dirname(job.dest), exist_ok=True)
    part = job.dest + PART
    have = os.path.getsize(part) if os.path.isfile(part) else 0
    expected = _checksums(job.url, sums, lock)
    if job.url.split("://", 1)[0].lower() in ("http", "https"):
        from corral.core.http_fs import HttpReader

        reader = HttpReader(job.url, start=have)
        if reader.pos != have:  # the server ignored the Range: start over
            have = 0
        mode = "ab" if have else "wb"
        src, size = reader, reader.size
    else:
        src, size, mode, have = fs.open_read(job.url), None, "wb", 0
    with src, open(part, mode) as out:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            out.write(chunk)
            progress.add(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    got = os.path.getsize(part)
    if size is not None and got != size:
        raise OSError(f"{job.url}: {got} bytes on disk, the server says {size}")
    if expected:  # over the whole file: a resumed .part holds bytes of an earlier run
        algo, digest = expected
        got_digest = fs.digest_of(part, algo)
        if got_digest != digest:
            os.remove(part)
            raise OSError(f"{job.url}: {algo} {got_digest} differs from the publisher's {digest}")
    os.replace(part, job.dest)
    return "done"


def plan(manifest_path: str, to: str, only: str | None, limit: int | None) -> tuple[list[Job], dict[str, Any]]:
    """The files to fetch, and the manifest copy's sources (inputs rewritten to DIR)."""
    import yaml

    mixture = load_mixture(manifest_path, SOURCES)
    if only and only not in mixture.sources:
        raise FetchError(f"--only {only}: the manifest has no such source ({', '.join(mixture.sources)})")
    with open(manifest_path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    jobs: list[Job] = []
    for name in mixture.sources:
        if only and name != only:  # left as they are, made absolute where they can be
            try:
                raw["sources"][name]["inputs"] = mixture.resolved_inputs(name)
            except ManifestError:  # an unset ${VAR}: the copy keeps the variable
                pass
            continue
        resolved = mixture.resolved_inputs(name)
        inputs = []
        for i, item in enumerate(resolved):
            field_ = f"{manifest_path}: sources.{name}.inputs[{i}]"
            if isinstance(item, dict):
                limits = [x for x in (item.get("limit"), limit) if x]
                base = item.get("base") or item["paths"].rsplit("/", 1)[0]
                spec = {**item, "base": base, "limit": min(limits) if limits else None}
                list_dest = item["paths"]
                try:
                    if fs.is_remote(item["paths"]):  # copied once, then read from the copy
                        list_dest = local_path_of(item["paths"], to)
                        try:
                            fs.atomic_write_bytes(list_dest, fs.read_bytes(item["paths"]))
                        except OSError as e:
                            raise paths_list_problem(field_, item["paths"], e) from e
                    files = read_paths_list({**spec, "paths": list_dest}, field_)
                except InputError as e:
                    raise FetchError(str(e)) from e
                copy = {"paths": list_dest, "base": local_path_of(base, to) if fs.is_remote(base) else base}
                for key in ("every", "limit"):
                    if spec.get(key):
                        copy[key] = spec[key]
                inputs.append(copy)
                jobs += [Job(u, local_path_of(u, to), name) for u in files if fs.is_remote(u)]
            elif fs.is_remote(item):
                try:
                    found = [p for p, _ in match_inputs([item], field_)][:limit]
                except InputError as e:
                    raise FetchError(str(e)) from e
                jobs += [Job(u, local_path_of(u, to), name) for u in found]
                inputs += [local_path_of(u, to) for u in found]
            else:
                inputs.append(item)
        raw["sources"][name]["inputs"] = inputs
    return jobs, raw


def fetch(
    manifest_path: str, to: str, only: str | None = None, limit: int | None = None, parallel: int = PARALLEL
) -> tuple[Report, str]:
    """Mirror the manifest's remote inputs into `to`; returns the report and the manifest copy's path."""
    import yaml

    jobs, raw = plan(manifest_path, to, only, limit)
    report, progress = Report(), _Progress(len(jobs))
    sums: dict = {}
    lock = threading.Lock()

    def run(job: Job) -> None:
        try:
            what = _download(job, progress, sums, lock)
        except FileNotFoundError:
            report.missing.append(job.url)
        except Exception as e:  # a failure of one file: reported, the others go on
            report.failed.append(f"{job.url}: {type(e).__name__}: {e}")
        else:
            (report.done if what == "done" else report.complete).append(job.url)
        progress.file_done()

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool_:
        list(pool_.map(run, jobs))
    if progress.tty and jobs:
        print(file=sys.stderr)
    report.bytes = progress.bytes
    name = os.path.basename(manifest_path)
    copy = os.path.join(to, name if name.endswith((".yaml", ".yml")) else name + ".yaml")
    raw.setdefault("description", "")
    raw["description"] = (
        f"{raw['description']} " if raw["description"] else ""
    ) + f"(local copy by corral fetch of {os.path.abspath(manifest_path)})"
    fs.atomic_write_bytes(copy, yaml.safe_dump(raw, sort_keys=False, allow_unicode=True).encode("utf-8"))
    record = {
        "manifest": os.path.abspath(manifest_path),
        "done": report.done,
        "complete": report.complete,
        "missing": report.missing,
        "failed": report.failed,
    }
    fs.atomic_write_bytes(os.path.join(to, "fetch.json"), json.dumps(record, indent=1).encode("utf-8"))
    return report, copy

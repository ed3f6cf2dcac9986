"""Runners (corral.engine.runners): builds on a real dask.distributed cluster (a `dask scheduler`
and two `dask worker` processes on 127.0.0.1, driven through Beam's DaskRunner by `corral build
--runner dask`), Beam's FnApiRunner, and the options the cluster profiles produce."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions
from helpers import package_repos, raw_inputs, shard_records, six_sources, write_manifest

from corral.cli import main
from corral.engine.runners import WORKER_COMMAND, RunnerProfileError, local_runner, profile_flags
from corral.pipeline.build import build

DASK = Path(sys.prefix) / "bin" / "dask"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def cluster(tmp_path, workers: int = 2):
    """A scheduler and `workers` single-threaded worker processes, torn down at the end."""
    if not DASK.exists():
        pytest.skip("dask is not installed (the dev extra installs apache-beam[dask])")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [
        subprocess.Popen(
            [
                str(DASK),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                ":0",
                "--no-show",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.2)
        for i in range(workers):
            procs.append(
                subprocess.Popen(
                    [
                        str(DASK),
                        "worker",
                        address,
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--name",
                        f"w{i}",
                    ],
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address, procs
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _sources(tmp_path):
    sources = raw_inputs(tmp_path / "raw", n=150)
    package_repos(tmp_path / "github")
    sources["github"] = {"inputs": [str(tmp_path / "github" / "*")]}
    return sources


def _same(a: Path, b: Path, names) -> None:
    ma, mb = (json.loads((x / "manifest.json").read_text()) for x in (a, b))
    for n in names:
        assert sorted((r["id"], r["text"]) for r in shard_records(str(a), n)) == sorted(
            (r["id"], r["text"]) for r in shard_records(str(b), n)
        ), n
        assert ma["sources"][n]["funnel"] == mb["sources"][n]["funnel"], n


def corral_build(m: str, out: Path, *extra: str) -> float:
    """`corral build` in a subprocess (which must succeed); its wall time."""
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "corral.cli", "build", m, "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return time.perf_counter() - t0


def test_a_build_on_a_dask_cluster_equals_the_local_build(tmp_path):
    sources = _sources(tmp_path)
    m = write_manifest(tmp_path / "m.yaml", sources)
    local_s = corral_build(m, tmp_path / "local")
    with cluster(tmp_path) as (address, _):
        dask_s = corral_build(m, tmp_path / "dask", "--runner", "dask", "--dask-scheduler", address)
    print(f"same manifest: local runner {local_s:.1f} s, dask cluster (2 workers) {dask_s:.1f} s")
    _same(tmp_path / "local", tmp_path / "dask", sources)


def test_a_dask_cluster_builds_into_a_bucket_as_the_local_runner_builds_on_disk(bucket, sample, tmp_path):
    """A scheduler and two workers on loopback, OUT in a bucket on loopback: the workers read the AWS
    environment they were started with, and the seven-source sample comes out as on local disk."""
    from helpers import SAMPLE_MANIFEST, bucket_documents

    local_s = corral_build(SAMPLE_MANIFEST, tmp_path / "local")
    with cluster(tmp_path) as (address, _):
        t0 = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "-m", "corral.cli", "build", SAMPLE_MANIFEST, "--out", f"{bucket}/build"]
            + ["--runner", "dask", "--dask-scheduler", address],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 0, res.stderr[-3000:]
    print(f"sample: local runner on disk {local_s:.1f} s, dask cluster into a bucket {time.perf_counter() - t0:.1f} s")
    assert bucket_documents(f"{bucket}/build") == bucket_documents(str(tmp_path / "local"))


def test_a_killed_worker_gives_a_complete_build_or_a_clear_failure(tmp_path):
    sources = _sources(tmp_path)
    m = write_manifest(tmp_path / "m.yaml", sources)
    build(m, str(tmp_path / "local"))
    with cluster(tmp_path) as (address, procs):
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "corral.cli",
                "build",
                m,
                "--out",
                str(tmp_path / "dask"),
                "--runner",
                "dask",
                "--dask-scheduler",
                address,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)
        os.killpg(procs[1].pid, signal.SIGKILL)  # one of the two workers dies mid-build
        out, err = run.communicate(timeout=600)
    print("build after a killed worker: exit", run.returncode)
    if run.returncode == 0:
        _same(tmp_path / "local", tmp_path / "dask", sources)  # dask rescheduled the lost work
    else:
        assert "corral build" in err or "Error" in err  # a clear failure …
        assert not (tmp_path / "dask" / "manifest.json").exists()  # … never a silently partial build


def seven_sources(shared, tmp_path) -> dict:
    """Every source of the real samples; CommonCrawl's side models trained on the build's Wikipedia."""

    sources = six_sources(shared, tmp_path)
    wet = shared / "commoncrawl" / "CC-MAIN-20170720121902-20170720141902-00000.head43.warc.wet.gz"
    twin = tmp_path / "twin.warc.wet.gz"
    twin.write_bytes(wet.read_bytes())  # a second file, so CommonCrawl's tasks spread over the workers
    sources["commoncrawl"] = {
        "inputs": [str(wet), str(twin)],
        "url_dedup": {"enabled": True},
        "perplexity": {"sp_vocab_size": 2000},
        "quality": {"min_chars": 200, "threshold": 0.3},
    }
    return sources


def test_all_seven_real_sources_on_dask_equal_the_local_build(shared_data, tmp_path):
    sources = seven_sources(shared_data, tmp_path)
    m = write_manifest(tmp_path / "m.yaml", sources)
    local_s = corral_build(m, tmp_path / "local")
    with cluster(tmp_path) as (address, procs):
        dask_s = corral_build(m, tmp_path / "dask", "--runner", "dask", "--dask-scheduler", address)
        # Again into a new folder, one of the two workers killed mid-build.
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "corral.cli",
                "build",
                m,
                "--out",
                str(tmp_path / "killed"),
                "--runner",
                "dask",
                "--dask-scheduler",
                address,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(dask_s * 0.4)
        os.killpg(procs[1].pid, signal.SIGKILL)
        out, err = run.communicate(timeout=600)
    print(
        f"seven real sources: local runner {local_s:.1f} s, dask cluster (2 workers) {dask_s:.1f} s "
        f"({dask_s / local_s:.2f}x)"
    )
    _same(tmp_path / "local", tmp_path / "dask", sources)
    manifest = json.loads((tmp_path / "dask" / "manifest.json").read_text())
    assert {"en.sp.model", "en.arpa.bin", "quality.bin"} <= set(manifest["models"])
    print("seven real sources, a worker killed mid-build: exit", run.returncode)
    if run.returncode == 0:
        _same(tmp_path / "local", tmp_path / "killed", sources)  # dask rescheduled the lost work
    else:
        assert "Error" in err and not (tmp_path / "killed" / "manifest.json").exists()


# --- runner profiles: the options each named runner gets ------------------------------------------


def test_the_direct_profile_is_the_fn_api_runner_with_corrals_worker_processes():
    from apache_beam.transforms.environments import SubprocessSDKEnvironment

    one, _ = local_runner(1)
    runner, options = local_runner(2)
    assert type(runner).__name__ == "FnApiRunner" and options.get_all_options()["direct_num_workers"] == 2
    assert runner._default_environment == SubprocessSDKEnvironment.from_command_string(WORKER_COMMAND)
    assert not isinstance(one._default_environment, SubprocessSDKEnvironment)  # one worker: in this process


def test_flink_spark_dataflow_profiles_produce_beams_standard_options():
    flink = PipelineOptions(
        profile_flags("flink", flink_master="jm:8081", parallelism=16, extra=["--environment_type=DOCKER"])
    ).get_all_options()
    assert flink["runner"] == "FlinkRunner" and flink["flink_master"] == "jm:8081" and flink["parallelism"] == 16
    assert flink["environment_type"] == "DOCKER"
    spark = PipelineOptions(profile_flags("spark", spark_master="spark://m:7077")).get_all_options()
    assert spark["runner"] == "SparkRunner" and spark["spark_master_url"] == "spark://m:7077"
    opts = PipelineOptions(
        profile_flags("dataflow", project="p", region="europe-west4", temp_location="gs://b/tmp", parallelism=50)
    )
    gc = opts.view_as(GoogleCloudOptions)
    assert opts.view_as(StandardOptions).runner == "DataflowRunner"
    assert (gc.project, gc.region, gc.temp_location) == ("p", "europe-west4", "gs://b/tmp")
    assert opts.get_all_options()["max_num_workers"] == 50


@pytest.mark.parametrize(
    "name, kwargs, missing",
    [
        ("flink", {}, "--flink-master"),
        ("spark", {}, "--spark-master"),
        ("dataflow", {"project": "p"}, "--region, --temp-location"),
        ("dataflow", {"project": "p", "region": "r", "temp_location": "/tmp/x"}, "gs://"),
        ("prism", {}, "choose local, dask"),
    ],
)
def test_profiles_name_what_is_missing(name, kwargs, missing):
    with pytest.raises(RunnerProfileError, match=re.escape(missing)):
        profile_flags(name, **kwargs)


def test_build_cli_refuses_a_profile_without_its_options(tmp_path, capsys):
    manifest = Path(__file__).resolve().parents[2] / "manifests" / "sample.yaml"
    assert main(["build", str(manifest), "--out", str(tmp_path / "o"), "--runner", "flink"]) == 2
    assert "--flink-master" in capsys.readouterr().err


def test_without_workers_a_job_uses_every_cpu_it_may(monkeypatch):
    """No `--workers`: one worker per CPU of this process's affinity; `--workers 1` stays one."""
    from corral.engine import runners

    monkeypatch.setattr(runners.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert runners.usable_cpus() == 3
    with runners.executor(runners.RunnerFlags()) as how:
        assert (how.name, how.workers) == ("local", 3)
    with runners.executor(runners.RunnerFlags(workers=1)) as how:
        assert how.workers == 1

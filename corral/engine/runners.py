"""Where a job's phases run: the local pool, or a Beam runner with the pipeline options each named
runner gets.

- `local` (the default): the local pool of worker processes (corral.engine.pool); no Beam runner.
- `direct`: Beam's embedded FnApiRunner, named explicitly (the DirectRunner would first try to
  download the Prism binary, which fails offline); multi-process when more than one worker is asked.
- `dask`: Beam's DaskRunner on a dask.distributed cluster, or a LocalCluster started for the job.
- `flink`, `spark`, `dataflow`: Beam's runners through their standard options.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from corral.core.errors import UsageError


@dataclass
class Executor:
    """How a job's graph runs: `workers` processes of the local pool, or a Beam `runner` with its
    `options` (`name` is the runner's name on the command line)."""

    name: str = "local"
    workers: int = 1
    runner: Any = None
    options: Any = None


@dataclass
class RunnerFlags:
    """The command line's runner settings (the flags every job command takes)."""

    runner: str = "local"
    workers: int | None = None
    dask_scheduler: str | None = None
    dask_local: int | None = None
    flink_master: str | None = None
    spark_master: str | None = None
    project: str | None = None
    region: str | None = None
    temp_location: str | None = None
    parallelism: int | None = None
    beam_arg: list[str] = field(default_factory=list)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container or `taskset` narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def executor(flags: RunnerFlags) -> Iterator[Executor]:
    """The executor the flags name, held while the job runs (a Dask LocalCluster is stopped after).
    Without `--workers`, a job on this machine uses every CPU it may (`usable_cpus`)."""
    workers = flags.workers or usable_cpus()
    if flags.runner == "dask":
        with dask_runner(flags.dask_scheduler, flags.dask_local) as (runner, options):
            yield Executor("dask", workers, runner, options)
    elif flags.runner == "direct":
        yield Executor("direct", workers, *local_runner(workers))
    elif flags.runner != "local":
        runner, options = cluster_runner(
            flags.runner,
            flink_master=flags.flink_master,
            spark_master=flags.spark_master,
            project=flags.project,
            region=flags.region,
            temp_location=flags.temp_location,
            parallelism=flags.parallelism,
            extra=flags.beam_arg,
        )
        yield Executor(flags.runner, workers, runner, options)
    else:
        yield Executor("local", workers)


# The command of each FnApiRunner worker process: Beam's SDK worker with SIGINT ignored (corral.engine.beam_worker).
WORKER_COMMAND = f"{sys.executable} -m corral.engine.beam_worker"
# What Beam's FnApiRunner says of more than one worker without its own multi-process mode, whose
# worker command corral replaces with WORKER_COMMAND: the workers are processes all the same.
RUNNING_MODE_NOTICE = "direct_running_mode should be `multi_processing`"


def _not_running_mode_notice(record: logging.LogRecord) -> bool:
    return RUNNING_MODE_NOTICE not in record.getMessage()


def local_runner(workers: int | None = None):
    """(runner, options) for Beam's embedded FnApiRunner: in this process with one worker, else with
    `workers` worker processes, each running WORKER_COMMAND."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner, fn_runner
    from apache_beam.transforms.environments import SubprocessSDKEnvironment

    workers = workers or 1
    # No type check: corral's transforms carry no type hints, and Beam's inference costs ~0.3 s a job.
    flags = [f"--direct_num_workers={workers}", "--default_sdk_harness_log_level=WARNING", "--no_pipeline_type_check"]
    if workers == 1:
        return FnApiRunner(), PipelineOptions(flags)
    log = logging.getLogger(fn_runner.__name__)
    if _not_running_mode_notice not in log.filters:
        log.addFilter(_not_running_mode_notice)
    environment = SubprocessSDKEnvironment.from_command_string(WORKER_COMMAND)
    return FnApiRunner(default_environment=environment), PipelineOptions(flags)


# Partitions of each phase's work items on Dask: Beam's default puts up to 128 items in one
# partition, so a job's input files would all run on one worker.
DASK_PARTITIONS = 32


@contextlib.contextmanager
def dask_runner(scheduler: str | None = None, local_workers: int | None = None):
    """(runner, options) for Beam's DaskRunner on a dask.distributed cluster: the scheduler at
    `scheduler` (tcp://HOST:PORT), or a LocalCluster of `local_workers` worker processes started
    for the run and stopped after it."""
    from apache_beam.options.pipeline_options import PipelineOptions

    try:
        from apache_beam.runners.dask.dask_runner import DaskRunner
        from distributed import LocalCluster
    except ImportError as e:
        raise RuntimeError("the dask runner needs apache-beam[dask]: pip install -e '.[dask]'") from e
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=local_workers or 2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        scheduler = cluster.scheduler_address
    try:
        yield (
            DaskRunner(),
            PipelineOptions([f"--dask_client_address={scheduler}", f"--dask_npartitions={DASK_PARTITIONS}"]),
        )
    finally:
        if cluster is not None:
            cluster.close()


# --- cluster profiles: Beam's standard pipeline options, nothing corral-specific ------------------

CLUSTER_RUNNERS = {"flink": "FlinkRunner", "spark": "SparkRunner", "dataflow": "DataflowRunner"}


class RunnerProfileError(UsageError):
    """A runner profile is missing an option it needs."""


def profile_flags(
    name: str,
    *,
    flink_master: str | None = None,
    spark_master: str | None = None,
    project: str | None = None,
    region: str | None = None,
    temp_location: str | None = None,
    parallelism: int | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """The pipeline-option flags of a cluster profile (`flink`, `spark`, `dataflow`); `extra` flags
    (any Beam option, e.g. `--environment_type=DOCKER`) are passed through after them."""
    if name not in CLUSTER_RUNNERS:
        raise RunnerProfileError(f"runner {name!r}: choose local, dask or one of {', '.join(CLUSTER_RUNNERS)}")
    flags = [f"--runner={CLUSTER_RUNNERS[name]}"]
    if name == "flink":
        if not flink_master:
            raise RunnerProfileError("--runner flink needs --flink-master HOST:PORT (the JobManager's REST address)")
        flags.append(f"--flink_master={flink_master}")
        if parallelism:
            flags.append(f"--parallelism={parallelism}")
    elif name == "spark":
        if not spark_master:
            raise RunnerProfileError("--runner spark needs --spark-master spark://HOST:PORT")
        flags.append(f"--spark_master_url={spark_master}")
    else:
        missing = [
            flag
            for flag, v in (("--project", project), ("--region", region), ("--temp-location", temp_location))
            if not v
        ]
        if missing:
            raise RunnerProfileError(f"--runner dataflow needs {', '.join(missing)}")
        if not temp_location.startswith("gs://"):
            raise RunnerProfileError(f"--temp-location {temp_location}: Dataflow stages through gs:// paths")
        flags += [f"--project={project}", f"--region={region}", f"--temp_location={temp_location}"]
        if parallelism:
            flags.append(f"--max_num_workers={parallelism}")
    return flags + list(extra or [])


def cluster_runner(name: str, **kwargs):
    """(runner name, options) for a cluster profile; Beam makes the runner from its name."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return CLUSTER_RUNNERS[name], PipelineOptions(profile_flags(name, **kwargs))

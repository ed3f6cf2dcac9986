"""Runner profiles: the pipeline options each named runner gets.

Beam's embedded FnApiRunner (`--runner direct`, and the tokenizing pipeline) is corral.beam_local;
`corral build --runner local` needs no Beam runner (corral.pipeline.pool).
"""

from __future__ import annotations

import contextlib
import os

from apache_beam.options.pipeline_options import PipelineOptions

from corral.errors import UsageError


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


# Partitions of each phase's work items on Dask: Beam's default puts up to 128 items in one
# partition, so a build's input files would all run on one worker.
DASK_PARTITIONS = 32


@contextlib.contextmanager
def dask_runner(scheduler: str | None = None, local_workers: int | None = None):
    """(runner, options) for Beam's DaskRunner on a dask.distributed cluster: the scheduler at
    `scheduler` (tcp://HOST:PORT), or a LocalCluster of `local_workers` worker processes started
    for the run and stopped after it."""
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
    return CLUSTER_RUNNERS[name], PipelineOptions(profile_flags(name, **kwargs))

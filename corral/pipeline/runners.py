"""Runner profiles: the pipeline options each named runner gets.

`local` is Beam's FnApiRunner named explicitly (the DirectRunner would first try to download the
Prism binary, which fails offline), multi-process when more than one worker is asked for.
"""

from __future__ import annotations

import os

from apache_beam.options.pipeline_options import PipelineOptions


def local_runner(workers: int | None = None):
    """(runner, options) for the embedded local runner."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    workers = workers or 1
    flags = [f"--direct_num_workers={workers}", "--default_sdk_harness_log_level=WARNING"]
    if workers > 1:
        flags.append("--direct_running_mode=multi_processing")
    return FnApiRunner(), PipelineOptions(flags)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))

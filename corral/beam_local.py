"""Beam's embedded FnApiRunner, named explicitly: the DirectRunner would first try to download the
Prism binary, which fails offline. Multi-process when more than one worker is asked for. Used by
`corral build --runner direct` and by the tokenizing pipeline; it sits below both layers.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions


def local_runner(workers: int | None = None):
    """(runner, options) for Beam's embedded FnApiRunner."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    workers = workers or 1
    # No type check: corral's transforms carry no type hints, and Beam's inference costs ~0.3 s a build.
    flags = [f"--direct_num_workers={workers}", "--default_sdk_harness_log_level=WARNING", "--no_pipeline_type_check"]
    if workers > 1:
        flags.append("--direct_running_mode=multi_processing")
    return FnApiRunner(), PipelineOptions(flags)

"""The FnApiRunner's worker process (corral.engine.beam_worker): Beam's SDK worker with SIGINT
ignored (Ctrl-C is the driver's to handle) and Beam's notices that do not apply left out."""

import logging
import signal

from apache_beam.runners.worker import sdk_worker_main

from corral.engine import beam_worker
from corral.engine.runners import WORKER_COMMAND


def test_beams_notices_are_left_out_and_everything_else_kept():
    def record(message):
        return logging.LogRecord("apache_beam", logging.WARNING, __file__, 1, message, None, None)

    assert not beam_worker.quiet(record("apitools not found, and bigquery client libraries are not available"))
    assert not beam_worker.quiet(record("No semi_persistent_directory found: ..."))
    assert beam_worker.quiet(record("Worker subprocess exited with return code 1"))


def test_the_worker_runs_beams_worker_main_with_sigint_ignored(monkeypatch):
    seen = []
    monkeypatch.setattr(sdk_worker_main, "main", lambda argv: seen.append(signal.getsignal(signal.SIGINT)))
    before = signal.getsignal(signal.SIGINT)
    try:
        beam_worker.main()
    finally:
        signal.signal(signal.SIGINT, before)
    assert seen == [signal.SIG_IGN]
    assert WORKER_COMMAND.endswith("-m corral.engine.beam_worker")

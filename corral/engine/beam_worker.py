"""One worker process of Beam's FnApiRunner (`--runner direct --workers N`): Beam's SDK worker, started
with SIGINT ignored, so that a Ctrl-C at the terminal, which reaches the whole process group, is the
driver's alone to handle (corral.cli stops the workers and says what is kept, in one line), and with
Beam's notices that do not apply to corral left out of its log (the driver's log leaves them out too).
"""

from __future__ import annotations

import logging
import signal
import sys

# What Beam logs that does not apply to corral: GCP client libraries it does not use are missing; a
# worker has no staged main session (corral never pickles one: its tasks are importable classes).
NOTICES = ("apitools not found", "No semi_persistent_directory found")


def quiet(record: logging.LogRecord) -> bool:
    """Whether a log record is worth a line: anything but one of Beam's NOTICES."""
    message = record.getMessage()
    return not any(notice in message for notice in NOTICES)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:  # Beam's harness logs INFO to the runner, not here
        handler.setLevel(logging.WARNING)
        handler.addFilter(quiet)
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main()

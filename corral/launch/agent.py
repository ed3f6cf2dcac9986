"""`python -m corral.launch.agent TORCHRUN-ARGS…`: torchrun's launcher, run in-process, with corral's
handling of signals and failures.

- SIGINT and SIGTERM are passed on to the ranks, once each, and the agent waits for them: each rank
  finishes its step, the run saves a checkpoint, and the ranks leave with 128 + the signal. (torchrun
  itself would send the signal and SIGKILL the ranks 30 s later, mid-checkpoint if need be.)
- A rank that fails has already printed why (one line for an expected failure, a traceback for a
  bug); the agent leaves with that rank's exit code instead of adding torchrun's ChildFailedError
  report to it.
"""

from __future__ import annotations

import os
import signal
import sys

from corral.core.procs import children

# torchrun still handles these itself (a hung-up terminal, a quit request)
AGENT_SIGNALS = "SIGHUP,SIGQUIT"


class _QuietExit:
    """Drop torchrun's "failed (exitcode: N)" line for ranks that left on their own: they said why
    themselves (one line, or a traceback). A rank killed by a signal (a negative code) said nothing,
    so that line stays, and main() names the signal."""

    def filter(self, record) -> bool:
        message = record.getMessage()
        return "failed (exitcode: -" in message or "failed (exitcode: " not in message


def main(argv: list[str] | None = None) -> int:
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(_QuietExit())
    args = parse_args(argv if argv is not None else sys.argv[1:])
    args.signals_to_handle = AGENT_SIGNALS
    received: list[int] = []

    def forward(signum, frame) -> None:
        received.append(signum)
        ranks = children()
        if not ranks:  # no rank started yet: stop the launch itself
            raise KeyboardInterrupt
        for pid in ranks:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        run(args)
    except ChildFailedError as e:
        if received:
            return 128 + received[0]
        for rank, failure in sorted(e.failures.items()):
            if failure.exitcode < 0:
                name = signal.Signals(-failure.exitcode).name
                print(
                    f"corral train: rank {rank} was killed by {name} (out of memory, or from outside); "
                    "resume from its last checkpoint with --resume",
                    file=sys.stderr,
                    flush=True,
                )
                return 128 - failure.exitcode
        return next((f.exitcode for f in e.failures.values() if f.exitcode > 0), 1)
    except KeyboardInterrupt:
        return 128 + (received[0] if received else signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())

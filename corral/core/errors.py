"""The two kinds of error a corral command reports in one line rather than a traceback.

- `UsageError`: what was asked cannot be done as asked (a manifest field, a path, a flag); the
  message names the file and field. The CLI exits 2.
- `Failure`: the work started and failed on what it met (a shard that does not read back); the
  CLI exits 1.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A mistake in what was asked: the message says what to fix."""


class Failure(RuntimeError):
    """The work failed on what it met: the message says what and where."""

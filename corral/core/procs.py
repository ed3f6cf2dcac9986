"""This process's children, read from Linux's /proc (no psutil): what the training launcher passes
signals to, and what a Ctrl-C'd command stops before it leaves (Beam's SDK worker processes)."""

from __future__ import annotations

import os
import signal


def children(pid: int | None = None) -> list[int]:
    """The processes whose parent is `pid` (this one by default)."""
    pid = os.getpid() if pid is None else pid
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state, ppid, …
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry))
    return found


def kill_descendants(sig: int = signal.SIGKILL) -> None:
    """Send `sig` to every process below this one, deepest first."""
    tree, frontier = [], children()
    while frontier:
        tree += frontier
        frontier = [c for p in frontier for c in children(p)]
    for pid in reversed(tree):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

"""The phase graph on this machine: a pool of worker processes forked from the driver, or the
driver alone with one worker (corral.engine.graph).

A phase starts as soon as the phases it reads or waits for have finished, so the phases of
different sources overlap. Its items go to the pool one at a time, each to the next free worker, so
one large file does not hold back the rest. A worker reads a phase's task and the earlier phases'
summaries once, from a file the driver writes when the phase starts, and sets the task up once.

Beam's FnApiRunner in multi-process mode runs the same graph (`--runner direct`) but starts its
workers as fresh interpreters, about 2 s before the first item here and 1 s to stop, and splits a
stage's input across workers by count: on 4,300 CommonCrawl records its 2 workers were 1.04× one.
Forked workers start in milliseconds with everything the driver imported.
"""

from __future__ import annotations

import collections
import copy
import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any

from corral.core.errors import Failure
from corral.engine.graph import Graph, Handle, Ledger, Phase, Summary, Task, planned_items
from corral.engine.records import run_item

KEEP_TASKS = 4  # phases a worker keeps set up at once (phases of several sources interleave)


class WorkerDied(Failure, RuntimeError):
    """A worker process ended without finishing its item (killed, or out of memory)."""


def _summaries(done: dict[int, list[Summary]], h: Handle) -> list[Summary]:
    return [s for ph in h.phases for s in done[id(ph)]]


def _run_here(graph: Graph) -> None:
    """One worker: the phases in the order they were added (each after those it depends on), in
    this process, each on a copy of its task that is set up for the phase and dropped after it."""
    done: dict[int, list[Summary]] = {}
    for ph in graph.phases:
        lists = [_summaries(done, e) for e in ph.earlier]
        items = planned_items(ph, lists)
        task = copy.copy(ph.task)
        if items:
            task.setup()
        done[id(ph)] = [_noted(ph, item, partial(run_item, task, ph.ledger, item, lists)) for item in items]


def _noted(ph: Phase, item, fn):
    """`fn()`, an exception it raises noted with the phase and item."""
    try:
        return fn()
    except Exception as e:
        e.add_note(f"in phase {ph.label}, item {item.key}")
        raise


class LocalPool:
    """Worker processes forked once, when entered (so before the job starts a thread of its own);
    with one worker, none: the driver runs the phases itself."""

    def __init__(self, workers: int):
        self.workers = workers
        self.executor = None

    def __enter__(self):
        if self.workers <= 1:
            return self
        self.folder = tempfile.mkdtemp(prefix="corral-pool-")
        self.executor = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("fork"), initializer=_init_worker
        )
        wait([self.executor.submit(os.getpid) for _ in range(self.workers)])  # fork them all now
        return self

    def __exit__(self, *exc):
        if self.executor is None:
            return False
        if exc[0] is None:
            self.executor.shutdown(wait=True)
        else:
            # An error or an interrupt: stop the workers now rather than after their current items.
            processes = list(getattr(self.executor, "_processes", {}).values())
            self.executor.shutdown(wait=False, cancel_futures=True)
            for proc in processes:
                proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
        return False

    def run(self, graph: Graph) -> None:
        if self.executor is None:
            _run_here(graph)
            return
        done: dict[int, list[Summary]] = {}
        waiting = list(graph.phases)
        running: dict[Any, tuple[Phase, Any, int]] = {}
        slots: dict[int, list[Any]] = {}
        left: dict[int, int] = {}
        while waiting or running:
            started = True
            while started:
                started = False
                for ph in list(waiting):
                    if all(id(p) in done for h in ph.earlier + ph.waits for p in h.phases):
                        waiting.remove(ph)
                        started = True
                        lists = [_summaries(done, e) for e in ph.earlier]
                        items = planned_items(ph, lists)
                        if not items:
                            done[id(ph)] = []
                            continue
                        context = os.path.join(self.folder, f"{graph.phases.index(ph)}.pickle")
                        with open(context, "wb") as f:
                            pickle.dump((ph.task, ph.ledger, lists), f, protocol=pickle.HIGHEST_PROTOCOL)
                        slots[id(ph)], left[id(ph)] = [None] * len(items), len(items)
                        for i, item in enumerate(items):
                            running[self.executor.submit(_work, context, item)] = (ph, item, i)
            if not running:
                if waiting:
                    raise RuntimeError(f"phases wait on phases that never run: {[ph.label for ph in waiting]}")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                ph, item, i = running.pop(fut)
                try:
                    slots[id(ph)][i] = _noted(ph, item, fut.result)
                except BrokenProcessPool as e:
                    raise WorkerDied(
                        f"a worker process died while running phase {ph.label}, item {item.key} "
                        "(killed, or out of memory?); run the same command again to resume from what finished"
                    ) from e
                left[id(ph)] -= 1
                if not left[id(ph)]:
                    done[id(ph)] = slots.pop(id(ph))


# --- in the worker processes ------------------------------------------------------------------------

_TASKS: collections.OrderedDict[str, tuple[Task, Ledger, list]] = collections.OrderedDict()


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group: the driver handles it and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the driver dies, even by SIGKILL."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1  # prctl(2)
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _work(context: str, item) -> Summary:
    ctx = _TASKS.get(context)
    if ctx is None:
        with open(context, "rb") as f:
            task, ledger, lists = pickle.load(f)
        task.setup()
        _TASKS[context] = ctx = (task, ledger, lists)
        while len(_TASKS) > KEEP_TASKS:
            _TASKS.popitem(last=False)
    else:
        _TASKS.move_to_end(context)
    task, ledger, lists = ctx
    return run_item(task, ledger, item, lists)

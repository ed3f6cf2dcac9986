"""Batches prepared ahead of the step that uses them, on a background thread.

The thread takes each step's micro-batches from the loader, makes them contiguous int64 tensors and,
on CUDA, copies them into pinned (page-locked) host memory, so the trainer's `non_blocking` copies
to the device really overlap compute. `depth` steps wait ready at most (a bounded queue). Each
step carries the loader's state after it, so a checkpoint records the data the model has
consumed, not what the thread has read ahead: resume is unchanged by prefetching.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from corral.train.data import Batch, MixtureLoader

DEPTH = 2  # steps prepared ahead: one being consumed, one ready


@dataclass
class HostBatch:
    inputs: torch.Tensor  # (B, L) int64, pinned on CUDA
    targets: torch.Tensor  # (B, L) int64
    doc_lengths: list[np.ndarray] | None  # per row, its documents' lengths (attention's document structure)
    sources: list[str]


@dataclass
class Step:
    batches: list[HostBatch]
    state: dict[str, Any]  # the loader's state after this step


def to_host(b: Batch, pin: bool) -> HostBatch:
    x = torch.from_numpy(np.ascontiguousarray(b.inputs, dtype=np.int64))
    y = torch.from_numpy(np.ascontiguousarray(b.targets, dtype=np.int64))
    if pin:
        x, y = x.pin_memory(), y.pin_memory()
    return HostBatch(x, y, b.doc_lengths, b.sources)


class Prefetcher:
    """`get()` returns the next step; the loader is touched by the thread only from `start()` on."""

    def __init__(self, loader: MixtureLoader, accum: int, pin: bool, depth: int = DEPTH):
        self.loader, self.accum, self.pin = loader, accum, pin
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="corral-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                step = Step([to_host(b, self.pin) for b in self.loader.next_step(self.accum)], self.loader.state_dict())
                while not self._stop.is_set():
                    try:
                        self._queue.put(step, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # handed to the trainer, which raises it on its own thread
            self._queue.put(e)

    def get(self) -> Step:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

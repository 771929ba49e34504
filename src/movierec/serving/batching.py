"""Requests to one model answered together: opportunistic batching, with no wait added at low load.

A server answers each new person from their history (a fold-in, a sequence pass, a profile). Alone, each
request pays the same fixed costs: Python calls, small-array numpy and torch operations, a pass over the
catalogue. :class:`Batcher` lets requests that arrive while the model is busy share them: a call that finds a
free slot (one per core) runs at once, alone; calls that arrive while every slot is busy wait, and when a slot
frees, everything waiting (up to ``max_batch``) runs as one batch. At low load nothing waits for a batch to
fill; under load the batches grow with the queue, so throughput rises where it is needed.

Each person's answer is what they would get alone: a batch is one ``run`` over several inputs, and the models
score each history on its own (a batch of histories is a :class:`~movierec.data.history.History` of several
rows). Where a batch fails, its calls are run again one by one, so one bad input fails only its own request.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Call(Generic[In]):
    value: In
    answered: bool = False
    result: Any = None
    error: BaseException | None = None
    wake: threading.Event = field(default_factory=threading.Event)  # answered, or chosen to run the next batch


class Batcher(Generic[In, Out]):
    """Call ``run(inputs) -> outputs`` (same length, same order) on batches of concurrent calls.

    ``slots``: batches that may run at once (default: the CPU cores); ``max_batch``: inputs per batch.
    Thread-safe; each call blocks its thread until its own output is ready (or raises its own error). The
    thread of a call that runs a batch computes the others' outputs too.
    """

    def __init__(self, run: Callable[[Sequence[In]], Sequence[Out]], slots: int | None = None,
                 max_batch: int = 32) -> None:
        self._run = run
        self._slots = max(1, slots or os.cpu_count() or 1)
        self.max_batch = max(1, max_batch)
        self._lock = threading.Lock()
        self._waiting: list[_Call[In]] = []
        self._running = 0
        #: how many batches ran, and how many inputs they held (tests and benchmarks read them)
        self.batches = 0
        self.inputs = 0

    def __call__(self, value: In) -> Out:
        call = _Call(value)
        with self._lock:
            leads = self._running < self._slots
            if leads:
                self._running += 1
            else:
                self._waiting.append(call)
        if not leads:
            call.wake.wait()
        if not call.answered:  # a free slot, or handed one by the batch before
            self._lead(call)
        if call.error is not None:
            raise call.error
        return call.result

    def _lead(self, own: _Call[In]) -> None:
        """Run ``own`` and the calls waiting as one batch, then hand the slot to the next waiting call."""
        with self._lock:
            batch = [own, *self._waiting[: self.max_batch - 1]]
            del self._waiting[: self.max_batch - 1]
        try:
            self._answer(batch)
        except BaseException as e:  # an interrupt: every call of the batch hears of it
            for c in batch:
                c.error = c.error or e
            raise
        finally:
            with self._lock:
                self.batches += 1
                self.inputs += len(batch)
                heir = self._waiting.pop(0) if self._waiting else None
                if heir is None:
                    self._running -= 1
            for c in batch:
                c.answered = True
                c.wake.set()
            if heir is not None:
                heir.wake.set()  # not answered: it runs the next batch

    def _answer(self, batch: list[_Call[In]]) -> None:
        try:
            outputs = self._run([c.value for c in batch])
            if len(outputs) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} inputs gave {len(outputs)} outputs")
        except Exception as e:
            if len(batch) == 1:
                batch[0].error = e
                return
            for c in batch:  # one bad input must not fail the others: each alone
                self._answer([c])
            return
        for c, out in zip(batch, outputs, strict=True):
            c.result = out

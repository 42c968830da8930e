"""The local engine: a job's batches scored on worker processes, answers in input order.

With one worker, batches are scored in the calling process. With more, worker processes
(started fresh, ``spawn``: no lock or thread of the parent is inherited) each load the
version once (digest-verified, by :meth:`WorkerSpec.scorer`) and score the batches they
are sent. At most ``2 × workers`` batches are in flight, and answers are taken back in the order
the batches were read, so memory is bounded by the batch size, not the input's size, and the
output keeps the input's order.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.batch.scorer import Scored, Scorer

if TYPE_CHECKING:
    import pyarrow as pa

    from dockyard.settings import Settings

__all__ = ["WorkerSpec", "cores", "numbered", "scored"]

IN_FLIGHT_PER_WORKER = 2
"""Batches queued per worker: one scoring, one ready to start."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to build its own :class:`Scorer` (picklable)."""

    settings: Settings
    ref: str  # the exact name@version, resolved once by the job
    accelerate: bool
    keep: tuple[str, ...]
    id_column: str | None
    for_log: bool
    workers: int

    def scorer(self) -> Scorer:
        """Open the registry, load the version (digest-verified), close the registry."""
        from dockyard.registry import Registry

        with Registry.open(self.settings) as registry:
            return Scorer.open(
                registry,
                self.ref,
                accelerate=self.accelerate,
                workers=self.workers,
                keep=self.keep,
                id_column=self.id_column,
                for_log=self.for_log,
            )


def _work(spec: WorkerSpec, tasks: Any, answers: Any) -> None:
    """A worker process: load the version once, then score each batch it is sent until
    told to stop (``None``); a failure is sent back for the parent to raise."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    try:
        scorer = spec.scorer()
    except BaseException as exc:
        answers.put((-1, exc))
        return
    while True:
        task = tasks.get()
        if task is None:
            return
        index, first_row, batch = task
        try:
            answers.put((index, scorer.score(batch, first_row)))
        except BaseException as exc:
            answers.put((index, exc))


def scored(
    batches: Iterator[tuple[int, pa.RecordBatch]],
    *,
    scorer: Scorer,
    spec: WorkerSpec,
    workers: int,
) -> Iterator[Scored]:
    """Each ``(first row, batch)`` scored, in order: here with one worker, else on
    ``workers`` processes built from ``spec``."""
    if workers <= 1:
        for first_row, batch in batches:
            yield scorer.score(batch, first_row)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    tasks = context.Queue()
    answers = context.Queue()
    processes = [
        context.Process(target=_work, args=(spec, tasks, answers), daemon=True)
        for _ in range(workers)
    ]
    with _main_not_reimported():
        for process in processes:
            process.start()
    sent = taken = 0
    ready: dict[int, Scored] = {}
    finished = False
    try:
        for first_row, batch in batches:
            tasks.put((sent, first_row, batch))
            sent += 1
            while sent - taken >= IN_FLIGHT_PER_WORKER * workers:
                yield _next(answers, ready, taken, processes)
                taken += 1
        while taken < sent:
            yield _next(answers, ready, taken, processes)
            taken += 1
        finished = True
    finally:
        # Done: each worker is told to stop. Failed or interrupted: the batches still queued
        # are not worth finishing, so the workers are stopped at once.
        for process in processes:
            if finished:
                tasks.put(None)
            else:
                process.terminate()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
        tasks.cancel_join_thread()
        tasks.close()
        answers.close()


def _next(answers: Any, ready: dict[int, Scored], index: int, processes: list[Any]) -> Scored:
    """The answer for batch ``index``, keeping answers that arrive early."""
    import queue

    while index not in ready:
        try:
            got, answer = answers.get(timeout=1.0)
        except queue.Empty:
            dead = [p for p in processes if not p.is_alive()]
            if dead:
                raise RuntimeError(
                    f"a scoring worker stopped (exit code {dead[0].exitcode})"
                ) from None
            continue
        if isinstance(answer, BaseException):
            raise answer
        ready[got] = answer
    return ready.pop(index)


@contextmanager
def _main_not_reimported() -> Iterator[None]:
    """Start processes without them importing the caller's main script: a worker needs only
    Dockyard's modules, and a script without an ``if __name__ == "__main__"`` guard would
    otherwise run again in every worker."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    spec, path = getattr(main, "__spec__", None), getattr(main, "__file__", None)
    try:
        main.__spec__ = None
        if path is not None:
            del main.__file__
        yield
    finally:
        main.__spec__ = spec
        if path is not None:
            main.__file__ = path


def numbered(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Each batch with the input row number of its first row."""
    first = 0
    for batch in batches:
        yield first, batch
        first += batch.num_rows


def cores() -> int:
    """The cores this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

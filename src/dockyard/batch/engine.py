"""The local engine: a job's batches scored here and on worker processes, answers in input order.

With one worker, batches are scored in the calling process. With ``n``, the calling process
still scores (it has the version loaded already) and ``n - 1`` worker processes are started
beside it (fresh, ``spawn``: no lock or thread of the parent is inherited), all at once; each
loads the version (digest-verified, by :meth:`WorkerSpec.scorer`) and says when it is ready.
Each batch goes to a ready worker with room in its queue, else is scored here: a worker that
is still starting (importing its libraries, loading the model) costs the job nothing but the
core it takes meanwhile, and the job is never left waiting for one. Scored batches are handed
on in the order they were read, and no more than a few per worker are held at once, so memory
is bounded by the batch size, not the input's size, and the output keeps the input's order.
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

__all__ = ["Tally", "WorkerSpec", "cores", "numbered", "scored"]

IN_FLIGHT_PER_WORKER = 2
"""Batches queued per ready worker: one scoring, one ready to start."""

HELD_PER_WORKER = 4
"""Batches read but not yet handed on, per worker: scored here while a worker still holds an
earlier one; past this the job waits for that worker."""

READY = -1
"""The index a worker answers with when its version failed to load."""


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


@dataclass
class Tally:
    """Where a job's batches were scored: here, or on worker processes; and how many
    workers have loaded the version (counted by the workers themselves, so it is live)."""

    here: int = 0
    on_workers: int = 0
    loaded: Any = None  # a shared counter while workers run

    @property
    def ready(self) -> int:
        return 0 if self.loaded is None else int(self.loaded.value)


def _work(spec: WorkerSpec, tasks: Any, answers: Any, loaded: Any) -> None:
    """A worker process: load the version once, count itself ready, then score each batch
    it is sent until told to stop (``None``); a failure is sent back for the parent to
    raise."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    try:
        scorer = spec.scorer()
    except BaseException as exc:
        answers.put((READY, exc))
        return
    with loaded.get_lock():
        loaded.value += 1
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
    tally: Tally | None = None,
) -> Iterator[Scored]:
    """Each ``(first row, batch)`` scored, in order: here with one worker, else here and on
    ``workers - 1`` processes built from ``spec``, whichever is free (see the module)."""
    tally = tally if tally is not None else Tally()
    if workers <= 1:
        for first_row, batch in batches:
            tally.here += 1
            yield scorer.score(batch, first_row)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    tasks = context.Queue()
    answers = context.Queue()
    tally.loaded = context.Value("i", 0)
    processes = [
        context.Process(target=_work, args=(spec, tasks, answers, tally.loaded), daemon=True)
        for _ in range(workers - 1)
    ]
    with _main_not_reimported():
        for process in processes:
            process.start()
    pool = _Pool(answers, processes, tally)
    finished = False
    try:
        for index, (first_row, batch) in enumerate(batches):
            pool.collect(block=False)
            if pool.room():
                tasks.put((index, first_row, batch))
                pool.sent.add(index)
                tally.on_workers += 1
            else:
                pool.done[index] = scorer.score(batch, first_row)
                tally.here += 1
            pool.read = index + 1
            yield from pool.ordered()
            while pool.read - pool.next >= HELD_PER_WORKER * workers:
                pool.collect(block=True)
                yield from pool.ordered()
        while pool.next < pool.read:
            pool.collect(block=True)
            yield from pool.ordered()
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


class _Pool:
    """The parent's view of its workers: how many are ready, which batches they hold, and
    the scored batches not yet handed on."""

    def __init__(self, answers: Any, processes: list[Any], tally: Tally) -> None:
        self.answers = answers
        self.processes = processes
        self.tally = tally
        self.sent: set[int] = set()
        self.done: dict[int, Scored] = {}
        self.read = 0  # batches read so far
        self.next = 0  # the next batch to hand on

    def room(self) -> bool:
        return len(self.sent) < IN_FLIGHT_PER_WORKER * self.tally.ready

    def ordered(self) -> Iterator[Scored]:
        while self.next in self.done:
            result = self.done.pop(self.next)
            self.next += 1
            yield result

    def collect(self, *, block: bool) -> None:
        """Take the answers that have arrived; with ``block``, wait for at least one (raising
        if a worker died meanwhile)."""
        import queue

        while True:
            try:
                got, answer = self.answers.get(timeout=1.0) if block else self.answers.get_nowait()
            except queue.Empty:
                if not block:
                    return
                dead = [p for p in self.processes if not p.is_alive()]
                if dead:
                    raise RuntimeError(
                        f"a scoring worker stopped (exit code {dead[0].exitcode})"
                    ) from None
                continue
            if isinstance(answer, BaseException):
                raise answer
            self.sent.discard(got)
            self.done[got] = answer
            block = False  # one answer is enough; take the rest only if already there


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

"""Adaptive batching: concurrent requests to one model share model calls, boundaries kept.

A :class:`Batcher` sits between the event loop and one model. Callers ``await
submit(item, rows)``; the batcher hands lists of items to ``run`` in an executor thread and
gives each caller exactly its own result back.

Dispatch policy
---------------
* **One batch at a time.** At most one call to ``run`` is in progress per batcher: one
  model is one compute stream, and the model parallelises inside a call with its own
  threads. Requests that arrive while a batch runs wait in a FIFO queue.
* **No waiting when idle.** When nothing is running, what is queued is dispatched on the
  next turn of the event loop (everything that arrived during the current turn goes
  together), with no timer: a lone request pays no batching latency.
* **One more turn under load.** When the last batch held several requests, the next waits
  one more turn before it is dispatched, and the requests read in that turn join it. A
  request's first step, its model call and its answer fall in three turns of the loop, so
  a batch of one turn's requests held about a third of the connections in flight; two
  turns' make about half as many model calls, each with its fixed cost (and fewer turns),
  which under load outweighs the turn waited. A lone request (the last batch held one) is
  dispatched on the next turn, as before; a batch that is full already does not wait.
* **Batches form under load.** When a batch finishes, the next one takes queued requests in
  arrival order while their rows fit in ``max_batch_size``. Requests are never split or
  reordered; a single request with more rows than ``max_batch_size`` is dispatched alone.
* **Optional gathering.** With ``max_wait_ms > 0``, a batch that would hold fewer than
  ``max_batch_size`` rows waits until ``max_wait_ms`` after its oldest request arrived, or
  until enough rows are queued, whichever comes first. ``0`` (the default) is natural
  batching: batch size follows load by itself.
* **Queue bounded by waiting time.** ``submit`` refuses a request (:class:`QueueFullError`,
  HTTP 503 with ``Retry-After``) when the rows ahead of it (queued and running) would take
  longer than ``max_queue_wait_ms`` at the model's measured cost (every batch is timed; a
  queued request of ``max_batch_size`` rows or more counts as a call of its own; see
  :mod:`dockyard.serving.admission`), or when they and its own would exceed the memory cap
  ``max_queue_rows``; nothing already queued is affected. A single request larger than
  ``max_queue_rows`` can never fit and gets a 413.
* **Failures stay with their request.** ``run`` returns one result per item, in order; an
  exception instance in that list fails that item's caller alone. If ``run`` itself raises,
  every request of that batch gets the exception. ``serving/calls.py``'s
  :func:`~dockyard.serving.calls.run_batched` builds a ``run`` that predicts once per batch
  and, when that fails, retries each request alone.
* **Cancellation.** A caller cancelled while queued frees its rows at once and is skipped;
  one cancelled while its batch runs simply does not receive the result.
* **Closing.** :meth:`Batcher.close` refuses new requests (HTTP 503) and returns once every
  queued and running request has its answer.
* **Cheap models run on the loop.** Handing a batch to a thread and back costs the event
  loop more than an ONNX call on a few rows (tens of microseconds): the submit, the worker's
  wake-up and its wait for the GIL, the call back. A batcher given an ``inline_budget_s``
  and told, by :meth:`Batcher.calibrate`, that a full batch costs no more than that runs
  batches of up to ``max_batch_size`` rows on the loop itself, and a bigger one (a single
  large request) too when the measured cost model (:mod:`dockyard.serving.admission`) puts
  it under the budget; anything else, or any model not calibrated under budget, runs in the
  executor. Inline calls are timed, and a model
  whose calls take over twice the budget (the median of each ``INLINE_WINDOW`` calls, in two
  windows running) goes back to the executor for good.

All state lives on the event loop's thread (one loop at a time; an idle batcher may move to
another); ``run`` is the only code that runs elsewhere.
This module imports no I/O or numeric library at import time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from threading import get_ident
from typing import Any, Generic, TypeVar

from dockyard.errors import DockyardError, PayloadTooLargeError, UnavailableError
from dockyard.serving.admission import Admission, Refusal

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger("dockyard.serving")

INLINE_WINDOW = 512
"""Inline calls per review of their median duration; two slow windows in a row send the
model to the threads (one alone may be the first seconds of load: cold caches)."""


@dataclass(frozen=True)
class BatchPolicy:
    """How a :class:`Batcher` forms batches; all sizes count rows, not requests."""

    max_batch_size: int = 64
    """Most rows per model call (a single larger request still runs, alone)."""
    max_wait_ms: float = 0.0
    """Extra time to wait for more rows when a batch is not full (0: natural batching)."""
    max_queue_wait_ms: float = 1000.0
    """Longest estimated wait a new request may be queued behind; beyond it ``submit``
    refuses with :class:`QueueFullError`."""
    max_queue_rows: int = 65_536
    """Hard cap on the rows that may wait, whatever the model's speed (memory)."""

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, not {self.max_batch_size}")
        if not self.max_wait_ms >= 0:
            raise ValueError(f"max_wait_ms must be 0 or more, not {self.max_wait_ms}")
        if not self.max_queue_wait_ms > 0:
            raise ValueError(f"max_queue_wait_ms must be more than 0, not {self.max_queue_wait_ms}")
        if self.max_queue_rows < 1:
            raise ValueError(f"max_queue_rows must be at least 1, not {self.max_queue_rows}")


class QueueFullError(UnavailableError):
    """The endpoint's queue would make a new request wait too long (or holds
    ``max_queue_rows``): it is overloaded. ``retry_after_s`` says when to try again."""

    code = "queue_full"

    def __init__(self, message: str, *, retry_after_s: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class _Request(Generic[In, Out]):
    __slots__ = ("arrived", "dispatched", "future", "item", "rows")

    def __init__(self, item: In, rows: int, future: asyncio.Future[Out], arrived: float) -> None:
        self.item = item
        self.rows = rows
        self.future = future
        self.arrived = arrived
        self.dispatched = False


class Batcher(Generic[In, Out]):
    """Coalesces concurrent :meth:`submit` calls into calls of ``run``; see the module docs.

    ``run(items)`` runs in ``executor`` and returns one result per item in order (an
    exception instance fails that item alone); it runs on the event loop only once
    :meth:`calibrate` has found a full batch cheaper than ``inline_budget_s``. ``on_batch(rows,
    requests)`` is called on the event loop for every dispatched batch (metrics); if it
    raises, the loop's exception handler hears of it and the batch runs anyway.
    """

    def __init__(
        self,
        run: Callable[[Sequence[In]], Sequence[Out | BaseException]],
        policy: BatchPolicy,
        *,
        executor: concurrent.futures.Executor,
        on_batch: Callable[[int, int], None] | None = None,
        inline_budget_s: float = 0.0,
        name: str = "",
    ) -> None:
        self.policy = policy
        self.name = name
        self.inline_budget_s = inline_budget_s
        self._inline = False
        self.calibrated_s: float | None = None  # a full batch's time at warm-up
        self._inline_times: list[float] = []  # the latest inline calls' durations
        self._slow_windows = 0  # consecutive windows whose median was over twice the budget
        self._run = run
        self._executor = executor
        self._on_batch = on_batch
        self._queue: deque[_Request[In, Out]] = deque()
        self._queued_rows = 0
        self._alone = 0  # queued requests of max_batch_size rows or more: a batch each
        self._alone_rows = 0
        self._running: list[_Request[In, Out]] | None = None
        self._running_rows = 0
        self._took = 0.0  # seconds the last batch on the executor took, timed in its thread
        self.admission = Admission(
            max_wait_s=policy.max_queue_wait_ms / 1000.0,
            max_rows=policy.max_queue_rows,
            batch_rows=policy.max_batch_size,
        )
        self._wakeup: asyncio.Handle | None = None
        self._timed = False  # whether _wakeup is a max_wait timer
        self._busy = False  # the last batch held several requests: gather one more turn
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0  # the thread _loop was bound in: running there, it runs submit
        self._closed = False
        self._drained: asyncio.Future[None] | None = None

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a batch (not counting the batch running now)."""
        return self._queued_rows

    @property
    def in_flight(self) -> int:
        """Requests in the batch running now (0 when idle)."""
        return 0 if self._running is None else len(self._running)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def inline(self) -> bool:
        """Whether batches run on the event loop (see :meth:`calibrate`)."""
        return self._inline

    def calibrate(self, full_batch_s: float) -> bool:
        """Tell the batcher what ``run`` takes on ``max_batch_size`` rows (measured off the
        loop, at warm-up): at most ``inline_budget_s`` lets batches run on the loop. Returns
        whether they will."""
        self.calibrated_s = full_batch_s
        self._inline = self.inline_budget_s > 0 and 0 <= full_batch_s <= self.inline_budget_s
        self._inline_times.clear()
        self._slow_windows = 0
        return self._inline

    async def submit(self, item: In, rows: int) -> Out:
        """Queue ``item`` (``rows`` rows) and return its result, or raise its exception.

        Raises :class:`QueueFullError` when the queue cannot take ``rows`` more rows and
        ``UnavailableError`` once the batcher is closing.
        """
        if self._closed:
            raise UnavailableError(
                "The endpoint is shutting down and takes no new requests.",
                hint="Retry; another replica or the new revision will answer.",
            )
        policy = self.policy
        if rows < 0:
            raise ValueError(f"rows must be 0 or more, not {rows}")
        refusal = self.admission.decide(
            self._queued_rows, rows, self._running_rows, self._alone, self._alone_rows
        )
        if refusal is not None:
            raise self._refusal(rows, refusal)
        loop = self._loop
        if loop is None or get_ident() != self._thread or not loop.is_running():
            loop = asyncio.get_running_loop()  # a system call (getpid) on Python 3.11
            if loop is not self._loop:
                self._bind(loop)
        request: _Request[In, Out] = _Request(item, rows, loop.create_future(), loop.time())
        self._queue.append(request)
        self._queued_rows += rows
        if rows >= policy.max_batch_size:
            self._alone += 1
            self._alone_rows += rows
        if self._running is None:
            if self._wakeup is None:
                self._schedule(loop, now=False)
            elif self._timed and self._queued_rows >= policy.max_batch_size:
                self._wakeup.cancel()  # a full batch waits for no timer
                self._wakeup = loop.call_soon(self._dispatch)
                self._timed = False
        try:
            return await request.future
        except asyncio.CancelledError:
            if not request.dispatched:
                self._forget(rows)  # skipped when its turn comes
            raise

    def _forget(self, rows: int) -> None:
        """A queued request of ``rows`` rows was cancelled: they no longer wait (``submit``
        and ``_take`` keep the same counts inline)."""
        self._queued_rows -= rows
        if rows >= self.policy.max_batch_size:
            self._alone -= 1
            self._alone_rows -= rows

    async def close(self) -> None:
        """Refuse new requests; return when every queued and running one has its answer."""
        self._closed = True
        loop = self._loop
        if loop is None or (self._running is None and not self._queue):
            return
        if self._running is None and self._timed and self._wakeup is not None:
            self._wakeup.cancel()  # nothing more will arrive: stop gathering
            self._wakeup = loop.call_soon(self._dispatch)
            self._timed = False
        if self._drained is None:
            self._drained = loop.create_future()
        await asyncio.shield(self._drained)

    # --- on the event loop -----------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve ``loop`` from now on; only an idle batcher may move to another loop."""
        if self._running is not None or self._queue:
            raise RuntimeError("This Batcher is busy on another event loop.")
        self._loop = loop
        self._thread = get_ident()

    def _schedule(self, loop: asyncio.AbstractEventLoop, *, now: bool) -> None:
        """Arrange the next dispatch; nothing is running and no wakeup is pending."""
        if not self._queue:
            self._settle()
            return
        wait = self.policy.max_wait_ms
        if wait <= 0 or self._closed or self._queued_rows >= self.policy.max_batch_size:
            if now:
                self._dispatch()
            else:
                self._wakeup = loop.call_soon(self._gather if self._busy else self._dispatch)
            return
        deadline = self._queue[0].arrived + wait / 1000.0
        if now and deadline <= loop.time():
            self._dispatch()
            return
        self._wakeup = loop.call_at(deadline, self._dispatch)
        self._timed = True

    def _gather(self) -> None:
        """Under load, one more turn of the loop before the batch (see the module
        docstring): the requests read in this turn join it (their first steps run behind
        this call)."""
        assert self._loop is not None
        if self._queued_rows >= self.policy.max_batch_size or self._closed:
            self._dispatch()
        else:
            self._wakeup = self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._wakeup = None
        self._timed = False
        if self._running is not None:
            return
        batch, rows = self._take()
        self._busy = len(batch) > 1
        if not batch:
            self._settle()
            return
        assert self._loop is not None
        self._running = batch
        self._running_rows = rows
        items = [request.item for request in batch]
        if self._inline and (
            rows <= self.policy.max_batch_size
            or 0 < self.admission.batch_s(rows) <= self.inline_budget_s
        ):
            self._batched(rows, len(batch))
            self._run_here(batch, items)
            return
        # executor.submit plus call_soon_threadsafe rather than loop.run_in_executor: the
        # asyncio wrapper future would cost one more turn of the loop per batch.
        try:
            job = self._executor.submit(self._run_timed, items)
        except Exception as exc:  # the executor is shut down
            self._running = None
            self._running_rows = 0
            _answer(batch, None, exc)
            self._schedule(self._loop, now=False)
            return
        job.add_done_callback(self._completed)
        self._batched(rows, len(batch))

    def _run_here(self, batch: list[_Request[In, Out]], items: list[In]) -> None:
        """Run a calibrated-cheap batch on the loop, then let the loop turn before the next
        one (never recursing through a long queue)."""
        assert self._loop is not None
        started = time.perf_counter()
        try:
            results = self._run(items)
        except Exception as exc:  # run raised: the whole batch shares the error
            _answer(batch, None, exc)
        else:
            _deliver(batch, results)
        took = time.perf_counter() - started
        self.admission.observe(self._running_rows, took)
        self._inline_times.append(took)
        if len(self._inline_times) >= INLINE_WINDOW:
            self._review_inline()
        self._running = None
        self._running_rows = 0
        self._schedule(self._loop, now=False)

    def _review_inline(self) -> None:
        """Send the model to the threads once the median of its inline calls is over twice
        the budget in two windows running; the median ignores lone stalls (the GIL held by
        another thread, a garbage collection)."""
        times = sorted(self._inline_times)
        self._inline_times.clear()
        median = times[len(times) // 2]
        self._slow_windows = self._slow_windows + 1 if median > 2 * self.inline_budget_s else 0
        if self._slow_windows >= 2:
            self._inline = False
            log.warning(
                "%s: batches take %.0f µs (median) on the event loop, over twice the inline "
                "budget of %.0f µs; running them on the compute threads from now on",
                self.name or "a model",
                median * 1e6,
                self.inline_budget_s * 1e6,
            )

    def _batched(self, rows: int, requests: int) -> None:
        """Report a dispatched batch to ``on_batch`` (metrics), never failing the batch."""
        assert self._loop is not None
        if self._on_batch is not None:
            try:
                self._on_batch(rows, requests)
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "Batcher on_batch callback failed", "exception": exc}
                )

    def _take(self) -> tuple[list[_Request[In, Out]], int]:
        """The next batch in FIFO order: requests while their rows fit, at least one."""
        queue, limit = self._queue, self.policy.max_batch_size
        batch: list[_Request[In, Out]] = []
        rows = 0
        while queue:
            request = queue[0]
            if request.future.done():  # cancelled while queued; its rows are already freed
                queue.popleft()
                continue
            if batch and rows + request.rows > limit:
                break
            queue.popleft()
            request.dispatched = True
            batch.append(request)
            rows += request.rows
            if request.rows >= limit:
                self._alone -= 1
                self._alone_rows -= request.rows
            if rows >= limit:
                break
        self._queued_rows -= rows
        return batch, rows

    def _run_timed(self, items: list[In]) -> Sequence[Out | BaseException]:
        """In the worker thread: ``run``, timed there (the loop may answer its completion
        late when busy, which is no cost of the model's)."""
        started = time.perf_counter()
        try:
            return self._run(items)
        finally:
            self._took = time.perf_counter() - started

    def _completed(self, job: concurrent.futures.Future[Sequence[Out | BaseException]]) -> None:
        """In the worker thread: hand the finished batch back to the event loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._finished, job)

    def _finished(self, future: concurrent.futures.Future[Sequence[Out | BaseException]]) -> None:
        batch = self._running
        assert batch is not None
        assert self._loop is not None
        self.admission.observe(self._running_rows, self._took)
        self._running = None
        self._running_rows = 0
        try:
            results = future.result()
        except BaseException as exc:  # run raised: the whole batch shares the error
            _answer(batch, None, exc)
        else:
            _deliver(batch, results)
        self._schedule(self._loop, now=True)

    def _settle(self) -> None:
        """Nothing queued or running: release :meth:`close` if it waits."""
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _refusal(self, rows: int, refusal: Refusal) -> DockyardError:
        policy = self.policy
        limit = policy.max_queue_rows
        details = {
            "rows": rows,
            "queued_rows": self._queued_rows,
            "running_rows": self._running_rows,
            # rounded up: a wait refused for passing the limit never reads as the limit
            "estimated_wait_ms": math.ceil(refusal.wait_s * 10_000.0) / 10.0,
            "max_queue_wait_ms": policy.max_queue_wait_ms,
            "max_queue_rows": limit,
        }
        if refusal.too_large:
            return PayloadTooLargeError(
                f"The request has {rows} rows; this endpoint queues at most {limit}.",
                hint="Send it in smaller requests, or raise the deployment's max_queue_rows.",
                details=details,
            )
        return QueueFullError(
            f"The endpoint is overloaded: the {self._queued_rows + self._running_rows} rows "
            f"ahead would take "
            f"about {details['estimated_wait_ms']:.1f} ms (the limit is "
            f"{policy.max_queue_wait_ms:.0f} ms, or {limit} rows).",
            hint="Retry after the Retry-After header's seconds, with backoff.",
            details=details,
            retry_after_s=refusal.retry_after_s,
        )


def _answer(
    batch: Sequence[_Request[Any, Any]],
    results: Sequence[Any] | None,
    error: BaseException | None,
) -> None:
    for index, request in enumerate(batch):
        future = request.future
        if future.done():  # the caller was cancelled while its batch ran
            continue
        result = results[index] if results is not None else error
        if isinstance(result, BaseException):
            if isinstance(result, StopIteration):  # futures refuse it
                result = RuntimeError(f"run returned StopIteration: {result}")
            future.set_exception(result)
        else:
            future.set_result(result)


def _deliver(batch: Sequence[_Request[Any, Any]], results: Sequence[Any]) -> None:
    """Hand each caller its result, or all of them the miscount error."""
    if len(results) == len(batch):
        _answer(batch, results, None)
    else:
        _answer(batch, None, _miscount(len(results), len(batch)))


def _miscount(got: int, wanted: int) -> DockyardError:
    return DockyardError(f"The batch function returned {got} results for {wanted} requests.")

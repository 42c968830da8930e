"""The batcher on a real event loop and a real thread pool: boundaries, limits, failures,
closing (the once-per-batch ``run`` built by ``run_batched``: ``test_calls.py``)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dockyard.errors import DockyardError, PayloadTooLargeError, UnavailableError
from dockyard.serving.batching import (
    INLINE_WINDOW,
    Batcher,
    BatchPolicy,
    QueueFullError,
)

Rows = list[tuple[int, int]]
"""A request: rows tagged (request id, row index)."""


class Recorder:
    """A real ``run``: echoes each request's rows back, remembering every batch it saw, the
    thread it ran on, and (optionally) blocking until released."""

    def __init__(self, *, hold: bool = False, delay: float = 0.0) -> None:
        self.batches: list[list[Rows]] = []
        self.threads: set[int] = set()
        self.delay = delay
        self.gate = threading.Event()
        if not hold:
            self.gate.set()
        self.started = threading.Event()

    def __call__(self, items: Sequence[Rows]) -> list[Rows | BaseException]:
        self.threads.add(threading.get_ident())
        self.started.set()
        self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        self.batches.append(list(items))
        return [
            ValueError(f"request {item[0][0]} is poisoned")
            if item and item[0][0] < 0
            else list(item)
            for item in items
        ]


def rows_of(request: int, count: int) -> Rows:
    return [(request, index) for index in range(count)]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_every_caller_gets_exactly_its_rows_in_order_under_200_concurrent_submits(
    executor: ThreadPoolExecutor,
) -> None:
    recorder = Recorder(delay=0.001)
    policy = BatchPolicy(max_batch_size=32, max_queue_rows=100_000)
    sizes = [random.Random(request).randint(1, 12) for request in range(200)]
    dispatched: list[tuple[int, int]] = []

    async def scenario() -> list[Rows]:
        batcher: Batcher[Rows, Rows] = Batcher(
            recorder, policy, executor=executor, on_batch=lambda r, n: dispatched.append((r, n))
        )

        async def caller(request: int) -> Rows:
            await asyncio.sleep(random.Random(-request).random() / 100)
            return await batcher.submit(rows_of(request, sizes[request]), sizes[request])

        return await asyncio.gather(*(caller(request) for request in range(200)))

    answers = run(scenario())

    assert answers == [rows_of(request, size) for request, size in enumerate(sizes)]
    assert sum(len(batch) for batch in recorder.batches) == 200
    assert len(recorder.batches) < 200  # requests did share model calls
    assert [(sum(len(item) for item in batch), len(batch)) for batch in recorder.batches] == (
        dispatched
    )


def test_batches_hold_at_most_max_batch_size_rows_but_a_big_request_runs_alone(
    executor: ThreadPoolExecutor,
) -> None:
    recorder = Recorder(hold=True)
    policy = BatchPolicy(max_batch_size=10, max_queue_rows=1000)
    sizes = [3, 4, 2, 25, 5, 5, 1, 9, 10, 11, 1]

    async def scenario() -> list[Rows]:
        batcher: Batcher[Rows, Rows] = Batcher(recorder, policy, executor=executor)
        blocker = asyncio.ensure_future(batcher.submit(rows_of(99, 1), 1))
        await asyncio.get_running_loop().run_in_executor(None, recorder.started.wait, 5)
        waiting = [
            asyncio.ensure_future(batcher.submit(rows_of(request, size), size))
            for request, size in enumerate(sizes)
        ]
        await asyncio.sleep(0)
        assert batcher.queued_rows == sum(sizes)
        assert batcher.in_flight == 1
        recorder.gate.set()
        await blocker
        return list(await asyncio.gather(*waiting))

    answers = run(scenario())

    assert answers == [rows_of(request, size) for request, size in enumerate(sizes)]
    batch_rows = [[len(item) for item in batch] for batch in recorder.batches[1:]]
    # FIFO, never split, never reordered; 25 and 11 exceed the limit and run alone.
    assert batch_rows == [[3, 4, 2], [25], [5, 5], [1, 9], [10], [11], [1]]


def test_one_failing_request_fails_alone(executor: ThreadPoolExecutor) -> None:
    recorder = Recorder(hold=True)

    async def scenario() -> list[Any]:
        batcher: Batcher[Rows, Rows] = Batcher(recorder, BatchPolicy(), executor=executor)
        first = asyncio.ensure_future(batcher.submit(rows_of(0, 1), 1))
        await asyncio.get_running_loop().run_in_executor(None, recorder.started.wait, 5)
        rest = [
            asyncio.ensure_future(batcher.submit(rows_of(request, 2), 2)) for request in (1, -2, 3)
        ]
        await asyncio.sleep(0)
        assert batcher.queued_rows == 6
        recorder.gate.set()
        return list(await asyncio.gather(first, *rest, return_exceptions=True))

    first, one, poisoned, three = run(scenario())

    assert [len(batch) for batch in recorder.batches] == [1, 3]  # the failure shared a batch
    assert (first, one, three) == (rows_of(0, 1), rows_of(1, 2), rows_of(3, 2))
    assert isinstance(poisoned, ValueError)
    assert str(poisoned) == "request -2 is poisoned"


def test_run_raising_fails_its_whole_batch_and_the_batcher_goes_on(
    executor: ThreadPoolExecutor,
) -> None:
    calls: list[int] = []

    def flaky(items: Sequence[int]) -> list[int]:
        calls.append(len(items))
        if len(calls) == 1:
            raise RuntimeError("model crashed")
        return [item * 2 for item in items]

    async def scenario() -> tuple[list[Any], int]:
        batcher: Batcher[int, int] = Batcher(flaky, BatchPolicy(), executor=executor)
        failed = await asyncio.gather(
            batcher.submit(1, 1), batcher.submit(2, 1), return_exceptions=True
        )
        return failed, await batcher.submit(21, 1)

    failed, later = run(scenario())

    assert [str(error) for error in failed] == ["model crashed", "model crashed"]
    assert later == 42


def test_a_full_queue_refuses_without_losing_anything(executor: ThreadPoolExecutor) -> None:
    recorder = Recorder(hold=True)
    policy = BatchPolicy(max_batch_size=8, max_queue_rows=10)

    async def scenario() -> tuple[list[Rows], QueueFullError, PayloadTooLargeError]:
        batcher: Batcher[Rows, Rows] = Batcher(recorder, policy, executor=executor)
        running = asyncio.ensure_future(batcher.submit(rows_of(0, 8), 8))
        await asyncio.get_running_loop().run_in_executor(None, recorder.started.wait, 5)
        queued = [asyncio.ensure_future(batcher.submit(rows_of(i, 3), 3)) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        assert batcher.queued_rows == 9
        with pytest.raises(QueueFullError) as full:
            await batcher.submit(rows_of(4, 2), 2)
        with pytest.raises(PayloadTooLargeError) as huge:
            await batcher.submit(rows_of(5, 11), 11)
        assert batcher.queued_rows == 9
        tail = asyncio.ensure_future(batcher.submit(rows_of(6, 1), 1))  # still fits
        recorder.gate.set()
        answers = list(await asyncio.gather(running, *queued, tail))
        return answers, full.value, huge.value

    answers, full, huge = run(scenario())

    assert answers == [rows_of(0, 8), rows_of(1, 3), rows_of(2, 3), rows_of(3, 3), rows_of(6, 1)]
    assert (full.status, full.code, full.exit_code) == (503, "queue_full", 7)
    assert isinstance(full, UnavailableError)
    assert "overloaded" in full.message
    assert "Retry-After" in str(full)
    assert full.details == {
        "rows": 2,
        "queued_rows": 9,
        "running_rows": 8,
        "estimated_wait_ms": 0.0,  # nothing measured yet: only the row cap applies
        "max_queue_wait_ms": 1000.0,
        "max_queue_rows": 10,
    }
    assert full.retry_after_s == 1
    assert huge.status == 413


def test_the_queue_refuses_by_estimated_wait_with_a_retry_after(
    executor: ThreadPoolExecutor,
) -> None:
    """Rows, not the count of them, decide: at a measured 10 ms a row, the request that
    would wait past ``max_queue_wait_ms`` (50 ms) is refused, far below the row cap, and
    every request already admitted is answered."""
    recorder = Recorder(hold=True)
    policy = BatchPolicy(max_batch_size=4, max_queue_wait_ms=50)

    async def scenario() -> tuple[list[Rows], QueueFullError]:
        batcher: Batcher[Rows, Rows] = Batcher(recorder, policy, executor=executor)
        batcher.admission.observe(1, 0.01)
        running = asyncio.ensure_future(batcher.submit(rows_of(0, 1), 1))
        await asyncio.get_running_loop().run_in_executor(None, recorder.started.wait, 5)
        queued = [asyncio.ensure_future(batcher.submit(rows_of(i, 1), 1)) for i in range(1, 6)]
        await asyncio.sleep(0)  # the last was admitted 50 ms behind: at the limit, not over
        assert batcher.queued_rows == 5
        with pytest.raises(QueueFullError) as full:
            await batcher.submit(rows_of(6, 1), 1)
        recorder.gate.set()
        answers = list(await asyncio.gather(running, *queued))
        return answers, full.value

    answers, full = run(scenario())

    assert answers == [rows_of(i, 1) for i in range(6)]
    assert full.details["estimated_wait_ms"] == pytest.approx(60.0)
    assert full.details["queued_rows"] == 5
    assert full.retry_after_s == 1
    assert full.details["max_queue_rows"] == 65_536


def test_requests_of_a_batch_or_more_count_a_call_each_in_the_wait(
    executor: ThreadPoolExecutor,
) -> None:
    """At 5 ms a call and 1 ms a row, requests of 6 rows with batches of 4 each cost one
    call: behind a running one, four are admitted (44 ms ahead of the last, under 50 ms)
    and the fifth refused at 55 ms. Counted as rows packed 4 to a batch, the fourth would
    have been refused already (54 ms)."""
    recorder = Recorder(hold=True)
    policy = BatchPolicy(max_batch_size=4, max_queue_wait_ms=50)

    async def scenario() -> tuple[list[Rows], QueueFullError]:
        batcher: Batcher[Rows, Rows] = Batcher(recorder, policy, executor=executor)
        for rows in (1, 4, 1, 4):
            batcher.admission.observe(rows, 0.005 + rows * 0.001)
        running = asyncio.ensure_future(batcher.submit(rows_of(0, 6), 6))
        await asyncio.get_running_loop().run_in_executor(None, recorder.started.wait, 5)
        queued = [asyncio.ensure_future(batcher.submit(rows_of(i, 6), 6)) for i in range(1, 5)]
        await asyncio.sleep(0)
        assert batcher.queued_rows == 24
        with pytest.raises(QueueFullError) as full:
            await batcher.submit(rows_of(5, 6), 6)
        recorder.gate.set()
        answers = list(await asyncio.gather(running, *queued))
        return answers, full.value

    answers, full = run(scenario())

    assert answers == [rows_of(i, 6) for i in range(5)]
    assert full.details["estimated_wait_ms"] == pytest.approx(55.0)


def test_close_drains_queued_and_running_requests_then_refuses(
    executor: ThreadPoolExecutor,
) -> None:
    recorder = Recorder(hold=True)
    policy = BatchPolicy(max_batch_size=4, max_wait_ms=10_000)

    async def scenario() -> tuple[list[Rows], UnavailableError, int]:
        batcher: Batcher[Rows, Rows] = Batcher(recorder, policy, executor=executor)
        first = asyncio.ensure_future(batcher.submit(rows_of(0, 4), 4))
        await asyncio.get_running_loop().run_in_executor(None, recorder.started.wait, 5)
        queued = [asyncio.ensure_future(batcher.submit(rows_of(i, 1), 1)) for i in (1, 2)]
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(batcher.close())
        for _ in range(10):  # turns of the loop, no timer: close waits for the held batch
            await asyncio.sleep(0)
        assert not closing.done()
        with pytest.raises(UnavailableError) as refused:
            await batcher.submit(rows_of(3, 1), 1)
        recorder.gate.set()
        started = time.monotonic()
        await closing  # does not wait out the 10 s max_wait: nothing more can arrive
        assert time.monotonic() - started < 5
        assert all(future.done() for future in [first, *queued])
        return [first.result(), *(f.result() for f in queued)], refused.value, batcher.in_flight

    answers, refused, in_flight = run(scenario())

    assert answers == [rows_of(0, 4), rows_of(1, 1), rows_of(2, 1)]
    assert (refused.status, refused.code) == (503, "unavailable")
    assert "shutting down" in refused.message
    assert in_flight == 0


def test_run_never_executes_on_the_event_loop_thread(executor: ThreadPoolExecutor) -> None:
    recorder = Recorder()

    async def scenario() -> int:
        batcher: Batcher[Rows, Rows] = Batcher(recorder, BatchPolicy(), executor=executor)
        await asyncio.gather(*(batcher.submit(rows_of(i, 1), 1) for i in range(20)))
        return threading.get_ident()

    loop_thread = run(scenario())

    assert recorder.threads
    assert loop_thread not in recorder.threads


def test_a_batcher_calibrated_under_budget_runs_batches_on_the_loop_keeping_boundaries(
    executor: ThreadPoolExecutor,
) -> None:
    recorder = Recorder()
    policy = BatchPolicy(max_batch_size=8, max_queue_rows=1000)
    sizes = [random.Random(request).randint(1, 4) for request in range(100)] + [20]

    async def scenario() -> tuple[list[Rows], int, bool]:
        batcher: Batcher[Rows, Rows] = Batcher(
            recorder, policy, executor=executor, inline_budget_s=0.001
        )
        assert batcher.calibrate(0.0005)
        answers = await asyncio.gather(
            *(batcher.submit(rows_of(i, size), size) for i, size in enumerate(sizes))
        )
        return list(answers), threading.get_ident(), batcher.inline

    answers, loop_thread, still_inline = run(scenario())

    assert answers == [rows_of(request, size) for request, size in enumerate(sizes)]
    assert still_inline
    # the 20-row request is over max_batch_size but measured cheap: it stays on the loop too
    assert recorder.threads == {loop_thread}
    assert all(sum(len(item) for item in batch) <= 8 for batch in recorder.batches[:-1])
    assert recorder.batches[-1] == [rows_of(100, 20)]


def test_a_request_over_max_batch_size_measured_over_budget_runs_on_a_thread(
    executor: ThreadPoolExecutor,
) -> None:
    recorder = Recorder()
    policy = BatchPolicy(max_batch_size=8)

    async def scenario() -> int:
        batcher: Batcher[Rows, Rows] = Batcher(
            recorder, policy, executor=executor, inline_budget_s=0.001
        )
        assert batcher.calibrate(0.0005)
        batcher.admission.observe(1, 0.0001)
        batcher.admission.observe(8, 0.0008)  # 100 µs a row: 20 rows are 2 ms, over budget
        assert await batcher.submit(rows_of(0, 20), 20) == rows_of(0, 20)
        assert await batcher.submit(rows_of(1, 8), 8) == rows_of(1, 8)  # a full batch: loop
        return threading.get_ident()

    loop_thread = run(scenario())

    assert len(recorder.threads) == 2
    assert loop_thread in recorder.threads


def test_a_batcher_calibrated_over_budget_or_without_one_never_runs_on_the_loop(
    executor: ThreadPoolExecutor,
) -> None:
    recorder = Recorder()

    async def scenario() -> tuple[int, list[bool]]:
        over: Batcher[Rows, Rows] = Batcher(
            recorder, BatchPolicy(), executor=executor, inline_budget_s=0.001
        )
        unbudgeted: Batcher[Rows, Rows] = Batcher(recorder, BatchPolicy(), executor=executor)
        verdicts = [over.calibrate(0.002), unbudgeted.calibrate(0.0)]
        for batcher in (over, unbudgeted):
            await asyncio.gather(*(batcher.submit(rows_of(i, 1), 1) for i in range(10)))
        return threading.get_ident(), verdicts

    loop_thread, verdicts = run(scenario())

    assert verdicts == [False, False]
    assert loop_thread not in recorder.threads


def test_inline_calls_slower_than_twice_the_budget_send_the_model_to_the_threads(
    executor: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    slow = [True]
    threads: set[int] = set()

    def model(items: Sequence[Rows]) -> list[Rows | BaseException]:
        threads.add(threading.get_ident())
        if slow[0]:
            time.sleep(0.0025)  # the budget is 1 ms: over twice that
        return [list(item) for item in items]

    async def scenario() -> tuple[list[bool], int]:
        batcher: Batcher[Rows, Rows] = Batcher(
            model, BatchPolicy(), executor=executor, inline_budget_s=0.001, name="slow@1"
        )
        batcher.calibrate(0.0001)  # a warm-up that lied
        seen = []
        for phase, (slow_calls, fast_calls) in enumerate([(1, 1), (2, 0)]):
            for i in range(INLINE_WINDOW * (slow_calls + fast_calls) + 1):
                slow[0] = i < INLINE_WINDOW * slow_calls
                request = rows_of(phase * 10_000 + i, 1)
                assert await batcher.submit(request, 1) == request
            seen.append(batcher.inline)
        return seen, threading.get_ident()

    with caplog.at_level("WARNING", logger="dockyard.serving"):
        inline, loop_thread = run(scenario())

    # one slow window (say the first seconds of load) is forgiven; two in a row are not
    assert inline == [True, False]
    assert loop_thread in threads
    assert len(threads) >= 2
    assert "slow@1: batches take" in caplog.text
    assert "compute threads" in caplog.text


def test_lone_stalls_do_not_send_a_cheap_model_to_the_threads(
    executor: ThreadPoolExecutor,
) -> None:
    calls = [0]

    def mostly_fast(items: Sequence[Rows]) -> list[Rows | BaseException]:
        calls[0] += 1
        if calls[0] % 10 == 0:
            time.sleep(0.01)  # a stall: 10x the budget, one call in ten
        return [list(item) for item in items]

    async def scenario() -> bool:
        batcher: Batcher[Rows, Rows] = Batcher(
            mostly_fast, BatchPolicy(), executor=executor, inline_budget_s=0.001
        )
        batcher.calibrate(0.0001)
        for i in range(2 * INLINE_WINDOW):
            await batcher.submit(rows_of(i, 1), 1)
        return batcher.inline

    assert run(scenario())


def test_an_inline_run_that_raises_fails_its_batch_and_the_batcher_goes_on(
    executor: ThreadPoolExecutor,
) -> None:
    def broken_once(items: Sequence[Rows]) -> list[Rows | BaseException]:
        if any(item[0][0] == 0 for item in items):
            raise RuntimeError("the model fell over")
        return [list(item) for item in items]

    async def scenario() -> tuple[list[Any], Rows]:
        batcher: Batcher[Rows, Rows] = Batcher(
            broken_once, BatchPolicy(), executor=executor, inline_budget_s=0.001
        )
        batcher.calibrate(0.0001)
        first = await asyncio.gather(
            *(batcher.submit(rows_of(i, 1), 1) for i in range(3)), return_exceptions=True
        )
        return list(first), await batcher.submit(rows_of(7, 2), 2)

    first, later = run(scenario())

    assert all(isinstance(answer, RuntimeError) for answer in first)
    assert later == rows_of(7, 2)


def test_max_wait_gathers_requests_that_arrive_apart(executor: ThreadPoolExecutor) -> None:
    recorder = Recorder()
    policy = BatchPolicy(max_batch_size=64, max_wait_ms=200)

    async def scenario() -> float:
        batcher: Batcher[Rows, Rows] = Batcher(recorder, policy, executor=executor)
        started = time.monotonic()

        async def later(request: int) -> Rows:
            await asyncio.sleep(request * 0.01)
            return await batcher.submit(rows_of(request, 1), 1)

        await asyncio.gather(*(later(request) for request in range(5)))
        return time.monotonic() - started

    elapsed = run(scenario())

    assert [len(batch) for batch in recorder.batches] == [5]
    assert elapsed >= 0.19  # waited for the oldest request's max_wait


def test_max_wait_dispatches_at_once_when_the_batch_is_full(
    executor: ThreadPoolExecutor,
) -> None:
    recorder = Recorder()
    policy = BatchPolicy(max_batch_size=4, max_wait_ms=5_000)

    async def scenario() -> float:
        batcher: Batcher[Rows, Rows] = Batcher(recorder, policy, executor=executor)
        started = time.monotonic()
        await asyncio.gather(*(batcher.submit(rows_of(i, 2), 2) for i in range(2)))
        return time.monotonic() - started

    elapsed = run(scenario())

    assert [len(batch) for batch in recorder.batches] == [2]
    assert elapsed < 2


def test_without_max_wait_a_lone_request_is_dispatched_immediately(
    executor: ThreadPoolExecutor,
) -> None:
    recorder = Recorder(hold=True)
    dispatched = threading.Event()

    async def scenario() -> Rows:
        batcher: Batcher[Rows, Rows] = Batcher(
            recorder, BatchPolicy(), executor=executor, on_batch=lambda r, n: dispatched.set()
        )
        pending = asyncio.ensure_future(batcher.submit(rows_of(7, 3), 3))
        await asyncio.sleep(0)  # one turn of the loop, no timer
        await asyncio.sleep(0)
        assert dispatched.is_set()
        assert batcher.in_flight == 1
        assert batcher.queued_rows == 0
        recorder.gate.set()
        return await pending

    assert run(scenario()) == rows_of(7, 3)
    assert [len(batch) for batch in recorder.batches] == [1]


def test_after_a_batch_of_several_requests_the_next_waits_a_turn_for_more(
    executor: ThreadPoolExecutor,
) -> None:
    recorder = Recorder()

    async def scenario() -> None:
        batcher: Batcher[Rows, Rows] = Batcher(
            recorder, BatchPolicy(), executor=executor, inline_budget_s=0.001
        )
        assert batcher.calibrate(0.0005)  # on the loop: each batch runs within its turn

        async def a_turn_apart(first: int) -> None:
            async def next_turn() -> Rows:
                await asyncio.sleep(0)
                return await batcher.submit(rows_of(first + 1, 1), 1)

            await asyncio.gather(batcher.submit(rows_of(first, 1), 1), next_turn())

        await a_turn_apart(0)  # lone traffic: each request its own batch, no turn waited
        await asyncio.gather(*(batcher.submit(rows_of(i, 1), 1) for i in (2, 3)))
        await a_turn_apart(4)  # after a batch of two: the next turn's request joins

    run(scenario())

    assert [[item[0][0] for item in batch] for batch in recorder.batches] == [
        [0], [1], [2, 3], [4, 5],
    ]  # fmt: skip


def test_a_caller_cancelled_while_queued_frees_its_rows_and_is_skipped(
    executor: ThreadPoolExecutor,
) -> None:
    recorder = Recorder(hold=True)

    async def scenario() -> Rows:
        batcher: Batcher[Rows, Rows] = Batcher(recorder, BatchPolicy(), executor=executor)
        first = asyncio.ensure_future(batcher.submit(rows_of(0, 1), 1))
        await asyncio.get_running_loop().run_in_executor(None, recorder.started.wait, 5)
        doomed = asyncio.ensure_future(batcher.submit(rows_of(1, 5), 5))
        kept = asyncio.ensure_future(batcher.submit(rows_of(2, 2), 2))
        await asyncio.sleep(0)
        doomed.cancel()
        await asyncio.sleep(0)
        assert batcher.queued_rows == 2
        recorder.gate.set()
        await first
        return await kept

    assert run(scenario()) == rows_of(2, 2)
    assert [[item[0][0] for item in batch] for batch in recorder.batches] == [[0], [2]]


def test_a_miscounting_run_fails_its_batch_with_a_clear_error(
    executor: ThreadPoolExecutor,
) -> None:
    async def scenario() -> BaseException:
        batcher: Batcher[int, int] = Batcher(lambda items: [1], BatchPolicy(), executor=executor)
        results = await asyncio.gather(
            batcher.submit(1, 1), batcher.submit(2, 1), return_exceptions=True
        )
        assert isinstance(results[0], DockyardError)
        return results[0]

    error = run(scenario())
    assert "returned 1 results for 2 requests" in str(error)


def test_an_idle_batcher_can_serve_a_new_event_loop(executor: ThreadPoolExecutor) -> None:
    batcher: Batcher[int, int] = Batcher(
        lambda items: [item + 1 for item in items], BatchPolicy(), executor=executor
    )

    first = run(batcher.submit(1, 1))
    second = run(batcher.submit(2, 1))  # asyncio.run makes a fresh loop

    assert (first, second) == (2, 3)


def test_a_batcher_bound_to_a_loop_running_in_another_thread_moves_to_this_one_when_idle(
    executor: ThreadPoolExecutor,
) -> None:
    batcher: Batcher[int, int] = Batcher(
        lambda items: [item + 1 for item in items], BatchPolicy(), executor=executor
    )
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    try:
        first = asyncio.run_coroutine_threadsafe(batcher.submit(1, 1), other).result(20)
        assert other.is_running()
        second = run(batcher.submit(2, 1))  # this thread's loop, while the other runs on
        third = asyncio.run_coroutine_threadsafe(batcher.submit(3, 1), other).result(20)
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(20)
        other.close()

    assert (first, second, third) == (2, 3, 4)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_batch_size": 0}, {"max_wait_ms": -1.0}, {"max_queue_rows": 0}, {"max_queue_wait_ms": 0}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        BatchPolicy(**kwargs)

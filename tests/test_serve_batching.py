"""`MicroBatcher`: items arriving together share one call, in order, within the limits."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from dmwan_qdrant.server.batching import MicroBatcher


def run(coro):
    return asyncio.run(coro)


def test_items_arriving_together_share_calls_and_keep_their_order():
    calls: list[list[int]] = []
    threads: set[str] = set()

    def double(items):
        calls.append(list(items))
        threads.add(threading.current_thread().name)
        return [2 * i for i in items]

    async def main():
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="worker") as ex:
            b = MicroBatcher(double, ex, max_batch=4, wait_s=0.05)
            out = await asyncio.gather(*[b.submit(i) for i in range(10)])
            await b.close()
            return out

    assert run(main()) == [2 * i for i in range(10)]
    assert [len(c) for c in calls] == [4, 4, 2] and sum(calls, []) == list(range(10))
    assert all(t.startswith("worker") for t in threads)  # off the event loop


def test_max_batch_one_is_one_item_per_call():
    calls: list[int] = []

    async def main():
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(lambda items: calls.append(len(items)) or list(items), ex, max_batch=1, wait_s=0.05)
            return await asyncio.gather(*[b.submit(i) for i in range(5)])

    assert run(main()) == list(range(5)) and calls == [1] * 5


def test_a_failing_batch_fails_its_members_and_the_next_batch_runs():
    def flaky(items):
        if 0 in items:
            raise RuntimeError("boom")
        return list(items)

    async def main():
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(flaky, ex, max_batch=2, wait_s=0.05)
            first = await asyncio.gather(b.submit(0), b.submit(1), return_exceptions=True)
            second = await b.submit(7)
            return first, second

    first, second = run(main())
    assert all(isinstance(e, RuntimeError) for e in first) and second == 7


def test_a_cancelled_waiter_is_dropped_from_its_batch():
    seen: list[list[int]] = []

    async def main():
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(lambda items: seen.append(list(items)) or list(items), ex, max_batch=8, wait_s=0.1)
            gone = asyncio.ensure_future(b.submit(1))
            kept = asyncio.ensure_future(b.submit(2))
            await asyncio.sleep(0.01)
            gone.cancel()
            return await kept

    assert run(main()) == 2 and seen == [[2]]


def test_bad_limits():
    with pytest.raises(ValueError):
        MicroBatcher(list, concurrent.futures.ThreadPoolExecutor(1), max_batch=0)

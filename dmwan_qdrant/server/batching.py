"""Micro-batching: requests that arrive together go through the encoder in one forward pass.

A single consumer takes the first waiting request, waits up to ``wait_s`` for more (at most
``max_batch``), and runs the batch function on a worker thread, off the event loop. While a batch
runs, new requests queue up and form the next batch: under load batches grow by themselves, and
one request alone waits ``wait_s`` at most. This is what Ray Serve's ``@serve.batch`` does; the
Ray deployment (`dmwan_qdrant.server.ray_app`) uses that one instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from dmwan_qdrant.settings import DEFAULT_MAX_BATCH, DEFAULT_WAIT_S

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Collects items from many coroutines into batches for ``fn`` (a list in, a list out).

    Args:
        fn: the batch function; returns one result per item, in order. It runs on ``executor``.
        executor: where ``fn`` runs (one thread: ``fn`` is never run twice at once).
        max_batch: most items per call; 1 disables batching (one item per call, in turn).
        wait_s: how long the first item of a batch waits for company.
    """

    def __init__(
        self,
        fn: Callable[[Sequence[T]], Sequence[R]],
        executor: concurrent.futures.Executor,
        max_batch: int = DEFAULT_MAX_BATCH,
        wait_s: float = DEFAULT_WAIT_S,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn = fn
        self.executor = executor
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._consumer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """The result of ``item``, computed in a batch with whatever arrives meanwhile."""
        if self._consumer is None or self._consumer.done():
            self._queue = asyncio.Queue()
            self._consumer = asyncio.get_running_loop().create_task(self._run())
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        assert self._queue is not None
        self._queue.put_nowait((item, fut))
        return await fut

    async def _run(self) -> None:
        queue = self._queue
        assert queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.wait_s
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), left))
                except asyncio.TimeoutError:
                    break
            live = [(item, fut) for item, fut in batch if not fut.done()]  # drop cancelled ones
            if not live:
                continue
            try:
                results = await loop.run_in_executor(self.executor, self.fn, [item for item, _ in live])
            except BaseException as e:  # noqa: BLE001 - every waiter of the batch gets the error
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(e)
                if isinstance(e, asyncio.CancelledError):
                    raise
                continue
            for (_, fut), res in zip(live, results):
                if not fut.done():
                    fut.set_result(res)

    async def close(self) -> None:
        """Stop the consumer (pending items are cancelled)."""
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._consumer
            self._consumer = None
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait()[1].cancel()

"""Live updates: the service's changes, coalesced, pushed over ONE server-sent-event stream
per browser tab.

The service calls :meth:`Hub.on_change` on whatever thread made the change (the recorder's
writer, a request); it only notes what changed and wakes the hub's task on the event loop.
The task waits :attr:`Hub.coalesce_s` (0.5 s) so a burst (a window of 10,000 rooms
answering) becomes one batch, then hands the batch to every open stream. Each stream renders
only what its page shows — the changed rooms *on its page*, the alert banner if alerts changed
— and sends it as one SSE message (``event: update``) holding one fragment per changed thing,
each marked ``hx-swap-oob`` so htmx puts it in place. What several tabs need of one batch (the
changed rooms' tiles, the counts over every room, a fragment in one language) is computed
once per batch for all of them (:meth:`Batch.once`), not once per tab. A stream that falls
behind drops its backlog and gets a full refresh of its page instead, so a slow tab never
holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from district.model import Change

log = logging.getLogger(__name__)

COALESCE_S = 0.5
PING_S = 15.0
QUEUE_MAX = 20
T = TypeVar("T")


@dataclass
class Batch:
    """What changed during one coalescing interval (``full``: refresh everything)."""

    sites: set[str] = field(default_factory=set)
    windows: set[str] = field(default_factory=set)
    commands: set[str] = field(default_factory=set)
    alerts: bool = False
    health: bool = False
    """What :func:`district.health.problems` says has changed."""
    full: bool = False
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    _memo_lock: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                       compare=False)
    computed: int = field(default=0, compare=False)
    """How many values :meth:`once` computed (the rest were shared)."""

    def __bool__(self) -> bool:
        return bool(self.sites or self.windows or self.commands or self.alerts or self.health
                    or self.full)

    def once(self, key: Any, make: Callable[[], T]) -> T:
        """``make()`` computed by the first stream that asks for ``key`` during this batch;
        every other stream gets the same value (streams render in worker threads: the others
        wait for it rather than compute it again)."""
        with self._memo_lock:
            if key not in self._memo:
                self._memo[key] = make()
                self.computed += 1
            return self._memo[key]  # type: ignore[no-any-return]

    def add(self, change: Change) -> None:
        """Note one change."""
        if change.site:
            self.sites.add(change.site)
        if change.window_id:
            self.windows.add(change.window_id)
        if change.what == "alert":
            self.alerts = True
        if change.what == "health":
            self.health = True
        if change.what in ("command", "reply") and isinstance(change.ref, str):
            self.commands.add(change.ref)


class Stream:
    """One browser tab's stream: batches to render, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(QUEUE_MAX)

    def offer(self, batch: Batch) -> None:
        """Queue a batch (never blocks; a full queue becomes one full refresh)."""
        try:
            self.queue.put_nowait(batch)
        except asyncio.QueueFull:
            # Behind: forget the backlog, refresh the page's whole view instead.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(Batch(full=True, alerts=True))


class Hub:
    """Collects changes from any thread; pushes coalesced batches to the open streams."""

    def __init__(self, coalesce_s: float = COALESCE_S,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.coalesce_s = coalesce_s
        self._sleep = sleep
        self._lock = threading.Lock()
        self._pending = Batch()
        self._wake_asked = False
        """The loop was woken for the pending batch (a change in it wakes no one again)."""
        self._streams: set[Stream] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches_sent = 0
        self.wakes = 0
        """How many times a change woke the loop (once per batch, however many changes)."""
        """How many batches went out (tests and the docs' scale figures read it)."""
        self.after_batch: Callable[[], None] | None = None
        """Run in a worker thread once the hub starts and after each batch, whether or not
        a stream is open (the dashboard reads its kept tiles' changed rooms with it); one
        run at a time, batches during a run make one run more after it."""
        self._after_running = False
        self._after_again = False

    # -- any thread ------------------------------------------------------------------------
    def on_change(self, change: Change) -> None:
        """The service's listener: note the change, wake the loop (never blocks)."""
        with self._lock:
            self._pending.add(change)
            loop, wake = self._loop, self._wake
            if self._wake_asked:
                return   # the loop is already woken for this batch: one wake per batch
            self._wake_asked = loop is not None and wake is not None
            self.wakes += self._wake_asked
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wake.set)

    # -- the event loop -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the coalescing task on the running loop."""
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._wake_asked = False
        self._task = asyncio.create_task(self._run(), name="district-web-hub")
        self._after()

    def _after(self) -> None:
        """Start :attr:`after_batch` in a worker thread (on the loop); if it is running, once
        more when it ends."""
        fn = self.after_batch
        if fn is None:
            return
        if self._after_running:
            self._after_again = True
            return
        self._after_running = True
        self._after_again = False

        def done(f: asyncio.Future[None]) -> None:
            self._after_running = False
            if not f.cancelled() and f.exception() is not None:
                log.error("after_batch failed", exc_info=f.exception())
            if self._after_again:
                self._after()

        asyncio.get_running_loop().run_in_executor(None, fn).add_done_callback(done)

    async def stop(self) -> None:
        """End every stream and the task."""
        self.close_streams()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with self._lock:
            self._loop = None

    def close_streams(self) -> None:
        """End every open stream (on the loop's thread)."""
        for s in list(self._streams):
            with contextlib.suppress(asyncio.QueueFull):
                s.queue.put_nowait(None)

    def close_streams_threadsafe(self) -> None:
        """:meth:`close_streams` from another thread (the server's stop)."""
        with self._lock:
            loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.close_streams)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            await self._sleep(self.coalesce_s)
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, Batch()
                self._wake_asked = False
            if not batch:
                continue
            self.batches_sent += 1
            for s in list(self._streams):
                s.offer(batch)
            self._after()

    def open(self) -> Stream:
        """A new stream (call on the loop's thread)."""
        s = Stream()
        self._streams.add(s)
        return s

    def close(self, s: Stream) -> None:
        """Forget a stream that ended."""
        self._streams.discard(s)

    @property
    def streams(self) -> int:
        """How many streams are open."""
        return len(self._streams)


def sse_message(data: str, event: str = "update") -> str:
    """One SSE message (each line of ``data`` as its own ``data:`` line)."""
    lines = data.splitlines() or [""]
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


async def stream_events(hub: Hub, render: Callable[[Batch], str],
                        ping_s: float = PING_S) -> AsyncIterator[str]:
    """The SSE body of one tab: first its whole view (a reconnecting tab may have missed
    changes), then one message per batch that touches it, and a comment line every
    ``ping_s`` so proxies keep the connection. ``render`` runs in a worker thread."""
    from starlette.concurrency import run_in_threadpool

    s = hub.open()
    try:
        yield "retry: 2000\n\n"
        first = await run_in_threadpool(render, Batch(full=True, alerts=True))
        yield sse_message(first)
        while True:
            try:
                batch = await asyncio.wait_for(s.queue.get(), ping_s)
            except TimeoutError:
                yield ": ping\n\n"
                continue
            if batch is None:
                return
            html = await run_in_threadpool(render, batch)
            if html:
                yield sse_message(html)
    finally:
        hub.close(s)

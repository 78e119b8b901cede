"""The agent's loop stays quick: counted, not timed.

* a backlog of events going out costs one queue item per loop pass (PUBACKs coalesced), reads
  each stored event once, and deleting acknowledged events costs no disk sync;
* the clock probe looks libc up once, not a child process per heartbeat;
* an idle loop sleeps until its next deadline (no polling);
* the agent's queue and paho's outgoing queue are bounded;
* reconnect delays have random jitter.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from agent import clock
from agent.cli import serve
from agent.core.events import Tick
from agent.hardware.pins import mock_factory
from agent.link.mqtt import MAX_OUTGOING, Backoff, Link, Published
from agent.link.topics import RoomTopics
from agent.outbox import Outbox
from agent.runtime import QUEUE_MAX, Agent, LocalCall, SignalWaker, Stop
from agent.store import StateDir
from broker.local import LocalBroker, free_port
from tests.agent.harness import offline_config, site_config, watcher

BACKLOG = 500


def test_a_backlog_goes_out_without_flooding_the_queue_or_the_disk(broker: LocalBroker,
                                                                    short_tmp: Path) -> None:
    agent = Agent(site_config(broker), mock_factory(), StateDir(short_tmp / "st"))
    agent.outbox.append_many([("schedule_cache_failed", {"error": f"backlog {i}"})
                              for i in range(BACKLOG)])
    handled: Counter[str] = Counter()
    rows_read = [0]
    real_handle, real_pending = agent.handle, agent.outbox.pending

    def handle(msg: Any) -> None:
        handled[type(msg).__name__] += 1
        real_handle(msg)

    def pending(*args: Any, **kw: Any) -> Any:
        recs = real_pending(*args, **kw)
        rows_read[0] += len(recs)
        return recs

    agent.handle = handle  # type: ignore[method-assign]
    agent.outbox.pending = pending  # type: ignore[method-assign]
    stop = threading.Event()
    with watcher(broker) as w:
        loop = threading.Thread(target=serve, args=(agent, True, stop), daemon=True)
        loop.start()
        try:
            assert agent.started.wait(10)
            syncs = agent.outbox.synced_commits
            w.until(lambda evs: sum(e["data"].get("error", "").startswith("backlog ")
                                    for e in evs) == BACKLOG, timeout=60)
            # A button press while the backlog drains is behind at most one PUBACK signal.
            pin = agent.board.factory.pin(16)
            mark = agent.button_mark()
            pin.drive_low()
            pin.drive_high()
            assert agent.wait_button(mark, timeout=10) is not None
            deadline = time.monotonic() + 20
            while agent.outbox.stats().pending:   # the last PUBACKs are taken in
                assert time.monotonic() < deadline, agent.outbox.stats()
                time.sleep(0.05)
            assert agent.link.pubacks >= BACKLOG
            # One Published per loop pass at most, not one per PUBACK.
            assert handled["Published"] < BACKLOG / 5, handled
            assert agent.link.published_signals < BACKLOG / 5
            # Every stored event was read about once, not re-read with every PUBACK.
            assert rows_read[0] <= BACKLOG + 50, rows_read
            # Deleting 500 acknowledged events synced the disk for none of them (only the
            # events the agent made meanwhile, e.g. the press, were synced).
            assert agent.outbox.synced_commits - syncs < 20
        finally:
            stop.set()
            agent.queue.put(Stop())
            loop.join(15)
    assert not loop.is_alive()


def test_acknowledging_events_does_not_sync_the_disk(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        recs = box.append_many([("e", {"n": i}) for i in range(100)])
        before = box.synced_commits
        for r in recs:
            box.ack(r.seq)
        assert box.synced_commits == before
        assert box.pending() == []
        box.append("e", {})
        assert box.synced_commits == before + 1   # an event made is synced at once
    with Outbox(tmp_path / "o.sqlite") as again:  # and the deletions were kept
        assert [r.seq for r in again.pending()] == [101]


def test_the_clock_probe_looks_for_libc_once(monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: list[Any] = []
    real = subprocess.Popen

    class Counting(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kw: Any) -> None:
            spawned.append(args[0] if args else kw.get("args"))
            super().__init__(*args, **kw)

    monkeypatch.setattr(subprocess, "Popen", Counting)
    probe = clock.adjtimex_probe()
    answers = {probe() for _ in range(20)}
    assert len(answers) == 1
    assert len(spawned) <= 2, spawned   # find_library's own lookups, on the first call only
    for _ in range(20):
        probe()
    assert len(spawned) <= 2


def test_an_idle_room_sleeps_until_its_next_deadline(short_tmp: Path) -> None:
    agent = Agent(offline_config(), mock_factory(), StateDir(short_tmp / "st"), connect=False)
    agent.start()
    try:
        # No window, no sequence, no check: the next thing to do is the heartbeat (30 s in
        # this config) or the alive stamp, not a poll every half second.
        assert agent._wait_s() > 20
    finally:
        agent.close()


def test_queues_are_bounded(short_tmp: Path) -> None:
    agent = Agent(offline_config(), mock_factory(), StateDir(short_tmp / "st"), connect=False)
    try:
        assert agent.queue.maxsize == QUEUE_MAX
    finally:
        agent.close()
    # paho's outgoing queue: a link that cannot reach its broker keeps at most MAX_OUTGOING.
    link = Link(offline_config().broker, RoomTopics("diemcau/v2", "xa-thu"), lambda _: None,
                use_files=False)
    taken = [link.publish_state(b"{}") is not None for _ in range(MAX_OUTGOING + 50)]
    assert taken.count(True) == MAX_OUTGOING and taken[-1] is False


def test_reconnect_delays_have_jitter() -> None:
    seqs = []
    for seed in (1, 2, 3):
        b = Backoff(rng=random.Random(seed))
        seqs.append([b.next() for _ in range(30)])
    assert len({s[0] for s in seqs}) == 3            # three rooms do not retry in step
    for s in seqs:
        assert all(1.0 <= d <= 60.0 for d in s)
        assert max(s) == 60.0                         # it backs off to the minute
    b = Backoff(rng=random.Random(4))
    for _ in range(20):
        b.next()
    b.reset()
    assert b.next() <= 3.0                            # connected: back to the bottom


def test_a_link_that_cannot_connect_waits_jittered_delays() -> None:
    cfg = offline_config().broker
    link = Link(cfg, RoomTopics("diemcau/v2", "xa-thu"), lambda _: None, "127.0.0.1",
                free_port(), use_files=False)
    link.backoff = Backoff(0.02, 0.3, rng=random.Random(11))
    link.start()
    try:
        deadline = time.monotonic() + 20
        while len(link.delays) < 4:
            assert time.monotonic() < deadline, "no connection attempts"
            time.sleep(0.02)
        delays = list(link.delays)[:4]
        assert len(set(delays)) == 4
        assert delays != sorted(delays) or delays[1] != 2 * delays[0]
    finally:
        link.stop()



def test_a_puback_seen_before_paho_marks_the_message_is_not_missed(short_tmp: Path) -> None:
    """paho calls on_publish before it marks the message published; when the loop takes the
    signal in between, the acknowledgement must not wait for some later PUBACK."""
    agent = Agent(offline_config(), mock_factory(), StateDir(short_tmp / "st"), connect=False)
    agent.start()
    try:
        (rec,) = agent.outbox.append_many([("e", {})])
        info = mqtt.MQTTMessageInfo(4242)   # as paho returned it; not yet marked published
        agent._inflight[rec.seq] = info
        agent._sent_upto = rec.seq
        # paho's network thread, inside _do_on_publish, before _set_as_published():
        agent.link._on_publish(agent.link.client, None, 4242,
                               ReasonCode(PacketTypes.PUBACK, "Success"), None)
        msg = agent.queue.get_nowait()
        assert isinstance(msg, Published)
        agent.handle(msg)
        assert not info.is_published()
        assert rec.seq not in agent._inflight
        assert [r.seq for r in agent.outbox.pending() if r.seq == rec.seq] == []
    finally:
        agent.close()


def test_acknowledged_events_are_forgotten_once_the_loop_is_idle(short_tmp: Path) -> None:
    """A PUBACK handled while other messages wait: the deletion waits for the loop to be idle,
    not for some later PUBACK (a kill -9 meanwhile would send the event again)."""
    agent = Agent(offline_config(), mock_factory(), StateDir(short_tmp / "st"), connect=False)
    agent.start()
    try:
        (rec,) = agent.outbox.append_many([("e", {})])
        info = mqtt.MQTTMessageInfo(77)
        agent._inflight[rec.seq] = info
        agent._sent_upto = rec.seq
        agent.link._on_publish(agent.link.client, None, 77,
                               ReasonCode(PacketTypes.PUBACK, "Success"), None)
        published = agent.queue.get_nowait()
        agent.queue.put(LocalCall("status", lambda _: None))   # something else waits
        agent.handle(published)
        agent.handle(agent.queue.get_nowait())                 # now the loop is idle
        with Outbox(agent.store.outbox_file) as other:          # what a restart would see
            assert rec.seq not in [r.seq for r in other.pending()]
    finally:
        agent.close()


def test_a_signal_wakes_the_sleeping_loop() -> None:
    """The loop sleeps until its next deadline; a signal handler may only append to a deque
    (it can interrupt the loop holding the queue's lock), so SignalWaker wakes the loop."""
    signals: deque[Any] = deque()
    woken: queue.Queue[Any] = queue.Queue()
    old = signal.signal(signal.SIGUSR1, lambda *_: signals.append(Stop()))
    waker = SignalWaker(woken.put)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert isinstance(woken.get(timeout=5), Tick)
        assert list(signals) == [Stop()]
    finally:
        waker.close()
        signal.signal(signal.SIGUSR1, old)


def test_a_room_offline_past_its_host_interval_does_not_spin(short_tmp: Path) -> None:
    """The host message is due but cannot go out while the link is down: that deadline must not
    make the loop wake at once, over and over, until the link is back."""
    agent = Agent(offline_config(), mock_factory(), StateDir(short_tmp / "st"), connect=False)
    agent.start()
    try:
        agent._host.sent(time.monotonic() - agent.cfg.timing.host_interval_s - 60)
        assert not agent.link.connected
        assert agent._wait_s() > 20
    finally:
        agent.close()

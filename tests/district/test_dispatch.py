"""The dispatcher at scale, against a real Mosquitto: schedules and commands for many rooms
are handed to the broker together (not one PUBACK at a time), marked published or sent in one
transaction per batch as the PUBACKs come back, and nothing handed out but unacknowledged is
forgotten across a console restart. Speed is never timed: the tests count what the dispatcher
holds in flight while the broker is frozen (SIGSTOP) and the store transactions it opens."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from broker.local import LocalBroker
from tests.district.helpers import ACTOR, T0, TIMEOUT, ConsoleRig, rig

N = 60


def _count_transactions(store: Any) -> list[int]:
    """Count the outermost transactions ``store`` opens from now on (``[n]``)."""
    count = [0]
    inner: Callable[[], AbstractContextManager[None]] = store.transaction

    @contextmanager
    def counted() -> Iterator[None]:
        if store._depth == 0:
            count[0] += 1
        with inner():
            yield

    store.transaction = counted
    return count


@contextmanager
def _frozen(broker: LocalBroker) -> Iterator[None]:
    """The broker takes what is written to its socket but answers nothing until thawed."""
    pid = int(broker._proc.pid)  # type: ignore[union-attr]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _held(c: ConsoleRig) -> int:
    return len(c.recorder.client._out_messages)  # type: ignore[union-attr]


def _wait_held(c: ConsoleRig, n: int) -> int:
    """Wait until paho holds ``n`` messages for the broker (or TIMEOUT); what it holds."""
    deadline = time.monotonic() + TIMEOUT
    while _held(c) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return _held(c)


def test_every_room_s_schedule_is_in_flight_at_once(broker: LocalBroker,
                                                     tmp_path: Path) -> None:
    """A window for N rooms: all N schedules go to the broker before the first PUBACK, and
    are marked published in a few transactions (one per batch of acknowledgements), not N."""
    sites = [f"xa-{i:03d}" for i in range(N)]
    with rig(broker, tmp_path, sites) as c:
        with _frozen(broker):
            c.console.create_window(ACTOR, kind="test", title="Thử tải", start=T0 + 3600,
                                    end=T0 + 7200, rooms="all")
            assert _wait_held(c, N) == N, "the dispatcher waited for a PUBACK per schedule"
            assert all(c.console.schedule_status(s) == "queued" for s in sites), \
                "nothing is marked published before the broker acknowledged it"
            count = _count_transactions(c.store)
        c.wait(lambda: all(c.console.schedule_status(s) == "published" for s in sites),
               "every schedule published")
        assert count[0] <= 3, f"{count[0]} transactions to mark {N} schedules published"


def test_commands_to_every_room_are_in_flight_at_once(broker: LocalBroker,
                                                      tmp_path: Path) -> None:
    sites = [f"xa-{i:03d}" for i in range(N)]
    with rig(broker, tmp_path, sites) as c:
        with _frozen(broker):
            rows = c.console.operator_check(ACTOR, "all", timeout_s=60)
            assert _wait_held(c, N) == N, "the dispatcher waited for a PUBACK per command"
            assert {c.console.command(r.id).status for r in rows} == {"queued"}
            count = _count_transactions(c.store)
        c.wait(lambda: all(c.console.command(r.id).status == "sent" for r in rows),
               "every command sent")
        assert count[0] <= 3, f"{count[0]} transactions to mark {N} commands sent"


def test_a_storm_of_pubacks_reads_nothing_from_the_store(broker: LocalBroker,
                                                        tmp_path: Path) -> None:
    """N commands in flight, then their N PUBACKs: the dispatcher marks them sent without
    reading the store's queue again (it reads it when the service queues something, and on
    its timer, set here beyond the test)."""
    sites = [f"xa-{i:03d}" for i in range(N)]
    with rig(broker, tmp_path, sites) as c:
        c.recorder.reread_s = 3600.0
        reads = [0]
        unsent = c.store.unsent_commands

        def counted() -> Any:
            reads[0] += 1
            return unsent()

        c.store.unsent_commands = counted  # type: ignore[method-assign]
        with _frozen(broker):
            rows = c.console.operator_check(ACTOR, "all", timeout_s=60)
            assert _wait_held(c, N) == N
            before = reads[0]
        c.wait(lambda: all(c.console.command(r.id).status == "sent" for r in rows),
               "every command sent")
        assert reads[0] == before, f"{reads[0] - before} reads of the queue for {N} PUBACKs"


def test_what_was_in_flight_at_a_console_restart_goes_out_again(broker: LocalBroker,
                                                                tmp_path: Path) -> None:
    """Handed to paho, never acknowledged, the console stopped: after its restart every room
    has its schedule and its command (once by command id), all marked published and sent."""
    with rig(broker, tmp_path, ["xa-r1", "xa-r2"]) as c:
        rooms = [c.online(s, T0) for s in ("xa-r1", "xa-r2")]
        with _frozen(broker):
            c.console.create_window(ACTOR, kind="test", title="Thử", start=T0 + 3600,
                                    end=T0 + 7200, rooms="all")
            rows = c.console.request_state(ACTOR, "all")
            assert _wait_held(c, 4) == 4
            c.stop()
        assert all(c.store.latest_schedule(s).published_at is None for s in ("xa-r1", "xa-r2"))
        c.start()
        for r in rooms:
            assert r.wait_schedules(1)
            assert r.wait_commands(1)
        c.wait(lambda: all(c.console.schedule_status(s) in ("published", "applied")
                           for s in ("xa-r1", "xa-r2")), "published after the restart")
        c.wait(lambda: all(c.console.command(r.id).status == "accepted" for r in rows),
               "each command answered")
        assert len(c.store._q("SELECT * FROM replies")) == 2


def test_a_room_that_never_answers_holds_nobody_back(broker: LocalBroker,
                                                     tmp_path: Path) -> None:
    """Commands to a room that is not there (no reply ever) and to one that is: the second's
    reply comes while the first's waits (sent, unanswered)."""
    with rig(broker, tmp_path, ["xa-gone", "xa-here"]) as c:
        here = c.online("xa-here", T0)
        gone = c.console.request_state(ACTOR, ["xa-gone"])
        mine = c.console.request_state(ACTOR, ["xa-here"])
        assert here.wait_commands(1)
        c.wait(lambda: c.console.command(mine[0].id).status == "accepted", "answered")
        c.wait(lambda: c.console.command(gone[0].id).status == "sent", "sent")
        assert c.console.command(gone[0].id).reply is None

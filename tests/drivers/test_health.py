"""The health poller and the serial-confirmed sequencing helpers, on real emulators."""

from __future__ import annotations

import queue
import threading

import pytest

from agent.core.events import DeviceHealthChanged, DeviceReady, DeviceStandby
from agent.drivers import health as h
from agent.drivers.health import HealthPoller

from .conftest import FakeClock, Pair


def poller_for(p: Pair, events: list, **kw) -> HealthPoller:
    opts = {"silent_polls_for_fault": 3, "boot_grace_s": 0, "clock": p.clock,
            "sleep": p.clock.sleep}
    poller = HealthPoller(p.name, p.driver, events.append, **{**opts, **kw})
    poller.set_relay(True)
    return poller


def statuses(events: list) -> list[tuple[str, str]]:
    return [(e.status, e.reason) for e in events if isinstance(e, DeviceHealthChanged)]


def test_silent_with_relay_on_becomes_a_fault_and_recovers(pair: Pair) -> None:
    events: list = []
    poller = poller_for(pair, events)
    first = poller.poll_once()
    assert first.status == "ok" and first.power in ("on", "unknown")
    pair.emu.silent = True
    for _ in range(3):
        poller.poll_once()
    pair.emu.silent = False
    poller.poll_once()
    assert statuses(events)[1:] == [
        ("degraded", h.R_SILENT), ("fault", h.R_SILENT_FAULT), ("ok", first.reason)]


def test_port_gone_is_a_fault_and_the_port_is_reopened(pair: Pair) -> None:
    events: list = []
    poller = poller_for(pair, events)
    poller.poll_once()
    pair.emu.unplug()
    assert poller.poll_once().status == "fault"
    assert poller.poll_once().reason == h.R_PORT_GONE       # cannot open: still gone
    pair.emu.replug()
    assert poller.poll_once().status == "ok"
    assert [s for s, _ in statuses(events)] == ["ok", "fault", "ok"]


def test_relay_off_and_silent_is_off(pair_factory) -> None:
    p = pair_factory("sony_visca")
    events: list = []
    poller = poller_for(p, events)
    poller.set_relay(False)
    p.emu.power(False)
    health = poller.poll_once()
    assert (health.status, health.power, health.reason) == ("ok", "off", h.R_OFF)


def test_relay_off_but_answering_is_degraded(pair_factory) -> None:
    p = pair_factory("extron_sis")
    poller = poller_for(p, [])
    poller.set_relay(False)
    assert poller.poll_once().reason == h.R_RELAY_OFF_ALIVE


def test_garbled_replies_are_reported(pair_factory) -> None:
    p = pair_factory("yealink_vc")
    poller = poller_for(p, [])
    p.emu.garbage_prefix = b"\x80\x81\xfe"
    health = poller.poll_once()
    assert (health.status, health.reason) == ("degraded", h.R_GARBLED)


def test_booting_within_grace_is_unknown(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("sony_visca", {"boot_s": 30})
    events: list = []
    poller = poller_for(p, events, boot_grace_s=60)
    p.emu.power(False)
    p.emu.power(True)
    poller.set_relay(False)
    poller.set_relay(True)
    health = poller.poll_once()                 # VISCA refuses: "booting"
    assert (health.status, health.power) == ("unknown", "booting")
    clock.advance(30)
    assert poller.poll_once().status == "ok"


def test_slow_boot_after_grace_is_degraded(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("sony_visca", {"boot_s": 300})
    poller = poller_for(p, [], boot_grace_s=60)
    p.emu.power(False)
    p.emu.power(True)
    clock.advance(61)
    assert poller.poll_once().reason == h.R_SLOW_BOOT


def test_in_call_and_emits_only_on_change(pair_factory) -> None:
    p = pair_factory("cisco_xapi")
    events: list = []
    poller = poller_for(p, events)
    poller.poll_once()
    poller.poll_once()
    p.emu.start_call()
    poller.poll_once()
    poller.poll_once()
    assert [(e.reason, e.in_call) for e in events] == [(h.R_ON, False), (h.R_IN_CALL, True)]


def test_unknown_relay_never_declares_a_fault(pair_factory) -> None:
    p = pair_factory("extron_sis")
    poller = HealthPoller("amp", p.driver, lambda e: None, silent_polls_for_fault=1)
    p.emu.silent = True
    assert poller.poll_once().status == "unknown"


def test_wait_ready_after_power_on(pair: Pair) -> None:
    pair.emu.boot_s = 20
    events: list = []
    poller = poller_for(pair, events)
    pair.emu.power(False)
    pair.emu.power(True)
    outcome = poller.wait_ready(60, interval_s=10)
    assert outcome.ok and outcome.attempts == 3
    assert outcome.elapsed_s == pytest.approx(20)
    assert DeviceReady(pair.name) in events


def test_wait_ready_is_bounded(pair_factory) -> None:
    p = pair_factory("extron_sis")
    events: list = []
    poller = poller_for(p, events)
    p.emu.power(False)
    outcome = poller.wait_ready(3, interval_s=1)
    assert (outcome.ok, outcome.state, outcome.attempts, outcome.reason) == (
        False, "silent", 4, h.R_SILENT)
    assert outcome.elapsed_s == pytest.approx(3)
    assert events == []


def test_wait_ready_can_wake(pair_factory) -> None:
    p = pair_factory("poly_group", {"asleep": True})
    poller = poller_for(p, [])
    p.driver.standby()
    assert poller.wait_ready(5, wake=True).ok
    assert not p.emu.asleep


def test_standby_and_confirm(pair: Pair) -> None:
    events: list = []
    poller = poller_for(pair, events)
    outcome = poller.standby_and_confirm(10)
    if pair.name == "generic_line":
        assert outcome.state == "standby"
    assert outcome.ok and outcome.attempts == 1
    assert events == [DeviceStandby(pair.name)]


def test_standby_refused_in_call_is_retried(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("cisco_xapi")
    p.emu.start_call()
    events: list = []

    def sleep(s: float) -> None:
        clock.advance(s)
        p.emu.end_call()                        # the meeting ends while we wait

    poller = poller_for(p, events, sleep=sleep)
    outcome = poller.standby_and_confirm(30, interval_s=5)
    assert outcome.ok and outcome.attempts == 2 and outcome.elapsed_s == 5
    assert p.emu.standby_state == "Standby"


def test_standby_not_confirmed_in_time(pair_factory) -> None:
    p = pair_factory("cisco_xapi")
    p.emu.start_call()
    outcome = poller_for(p, []).standby_and_confirm(2, interval_s=1)
    assert not outcome.ok and outcome.state == "refused"
    assert "Not allowed while in call" in outcome.reason


def test_run_on_a_thread_and_cancel(pair_factory) -> None:
    p = pair_factory("extron_sis")
    q: queue.Queue = queue.Queue()
    poller = HealthPoller("amp", p.driver, q.put, interval_s=0.01, relay_on=True)
    stop = threading.Event()
    t = threading.Thread(target=poller.run, args=(stop,))
    t.start()
    assert q.get(timeout=2).status == "ok"
    p.driver.standby()
    assert q.get(timeout=2).power == "standby"
    stop.set()
    t.join(timeout=2)
    assert not t.is_alive()


def test_poll_with_a_login_refusal_is_degraded(pair_factory) -> None:
    p = pair_factory("poly_group", {"password": "1234", "quiet_wrong_password": True},
                     {"password": "wrong"})
    health = poller_for(p, []).poll_once()
    assert health.status == "degraded" and health.reason.startswith(h.R_REFUSED)


def test_run_survives_an_unexpected_exception(pair_factory) -> None:
    p = pair_factory("extron_sis")
    q: queue.Queue = queue.Queue()
    poller = HealthPoller("amp", p.driver, q.put, interval_s=0.01, relay_on=True)
    real = p.driver.power_state
    calls = {"n": 0}

    def buggy() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("driver bug")
        return real()

    p.driver.power_state = buggy  # type: ignore[method-assign]
    stop = threading.Event()
    t = threading.Thread(target=poller.run, args=(stop,))
    t.start()
    try:
        first = q.get(timeout=2)
        assert first.status == "unknown" and "RuntimeError: driver bug" in first.reason
        assert q.get(timeout=2).status == "ok"          # the poller carried on
    finally:
        stop.set()
        t.join(timeout=2)
    assert not t.is_alive()


def test_wait_ready_wakes_a_poly_whose_state_is_unknown(pair_factory) -> None:
    """A Poly that fell asleep while the port was closed: after reopening, its state is
    unknown; the poller calls it alive and ``wait_ready(wake=True)`` wakes it."""
    p = pair_factory("poly_group", {"asleep": True})
    events: list = []
    poller = poller_for(p, events)
    health = poller.poll_once()
    assert (health.status, health.power, health.reason) == ("ok", "unknown", h.R_ANSWERING)
    assert health.in_call is False
    outcome = poller.wait_ready(5, wake=True)
    assert outcome.ok and "wake" in p.emu.received()
    assert not p.emu.asleep
    assert p.driver.power_state() == "on"


def test_wait_ready_wakes_a_cisco_in_halfwake(pair_factory) -> None:
    p = pair_factory("cisco_xapi", {"standby": True})
    p.emu.halfwake()
    assert poller_for(p, []).wait_ready(5, wake=True).ok
    assert "xCommand Standby Deactivate" in p.emu.received()
    assert p.emu.standby_state == "Off"


def test_standby_confirmed_only_once_entering_standby_is_over(pair_factory,
                                                               clock: FakeClock) -> None:
    p = pair_factory("cisco_xapi", {"entering_standby_s": 10})
    events: list = []
    outcome = poller_for(p, events).standby_and_confirm(30, interval_s=2)
    assert outcome.ok and outcome.state == "standby"
    assert (outcome.attempts, outcome.elapsed_s) == (6, 10)
    assert events == [DeviceStandby("cisco_xapi")]
    assert p.emu.received().count("xCommand Standby Activate") == 1


def test_port_gone_does_not_close_a_port_reopened_meanwhile(pair_factory) -> None:
    """The poller's call fails with PortGone; before it judges, another thread (a sequencing
    step) reopens the port. The poller must not close that fresh port."""
    from agent.drivers import PortGone

    p = pair_factory("extron_sis")
    p.driver.power_state()
    real = p.driver.power_state

    def vanishes_then_reopened() -> str:
        p.emu.unplug()
        try:
            return real()
        except PortGone:
            p.emu.replug()
            p.driver.open()                     # the other thread, in between
            raise

    p.driver.power_state = vanishes_then_reopened  # type: ignore[method-assign]
    assert poller_for(p, []).poll_once().reason == h.R_PORT_GONE
    assert p.driver.is_open
    p.driver.power_state = real  # type: ignore[method-assign]
    assert p.driver.power_state() in ("on", "standby")


@pytest.mark.parametrize("name", ["cisco_xapi", "poly_group"])
def test_garbage_inside_a_call_reply_is_garbled_not_out_of_call(pair_factory,
                                                                name: str) -> None:
    p = pair_factory(name)
    events: list = []
    poller = poller_for(p, events)
    p.emu.start_call()
    assert poller.poll_once().in_call is True
    p.emu.garble_next_reply(b"xStatus Call" if name == "cisco_xapi" else b"callinfo all",
                            0, 1)
    health = poller.poll_once()
    assert (health.status, health.reason, health.in_call) == ("degraded", h.R_GARBLED, None)
    assert poller.poll_once().in_call is True
    assert [e.in_call for e in events] == [True, None, True]


def test_ready_and_standby_name_their_step(pair_factory) -> None:
    p = pair_factory("extron_sis")
    events: list = []
    poller = poller_for(p, events)
    assert poller.wait_ready(5, step=4).ok
    assert poller.standby_and_confirm(5, step=5).ok
    assert poller.wait_ready(5).ok                  # no step given: 0
    assert [e for e in events if isinstance(e, DeviceReady | DeviceStandby)] == [
        DeviceReady(p.name, 4), DeviceStandby(p.name, 5), DeviceReady(p.name, 0)]


class _OwnedLock:
    """A re-entrant lock that knows which thread holds it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        ok = self._lock.acquire(blocking, timeout)
        if ok:
            self._owner = threading.get_ident()
            self._depth += 1
        return ok

    def release(self) -> None:
        self._depth -= 1
        if not self._depth:
            self._owner = None
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()

    def held(self) -> bool:
        return self._owner == threading.get_ident()


def test_failure_counter_changes_only_under_the_lock(pair_factory) -> None:
    """The poll thread (poll_once) and the sequencing worker (wait_ready, judge) hammer the
    failure counter at once: every change happens with the poller's lock held, and no
    count is lost."""
    p = pair_factory("extron_sis")
    unlocked: list[str] = []

    class Watched(HealthPoller):
        watching = False

        def __setattr__(self, name: str, value: object) -> None:
            if name == "failures" and self.watching and not self._lock.held():
                unlocked.append(threading.current_thread().name)
            super().__setattr__(name, value)

    poller = Watched("amp", p.driver, lambda e: None, relay_on=True, boot_grace_s=0,
                     silent_polls_for_fault=10**9, clock=p.clock, sleep=p.clock.sleep)
    poller._lock = _OwnedLock()  # type: ignore[assignment]
    poller.watching = True
    silent = h._Reading(failure="silent", detail="amp: no reply")

    def poll_thread() -> None:
        for _ in range(150):
            poller.poll_once()
            poller.judge(silent)

    def worker() -> None:
        for _ in range(150):
            assert poller.wait_ready(5).ok
            poller.judge(silent)

    threads = [threading.Thread(target=poll_thread, name="poll"),
               threading.Thread(target=worker, name="seq")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert unlocked == [], f"failure counter changed without the lock by {set(unlocked)}"

    poller.set_relay(False)
    poller.set_relay(True)                      # counter back to 0
    counters = [threading.Thread(target=lambda: [poller.judge(silent) for _ in range(3000)])
                for _ in range(2)]
    for t in counters:
        t.start()
    for t in counters:
        t.join(timeout=60)
    assert poller.failures == 6000

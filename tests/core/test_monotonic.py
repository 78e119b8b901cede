"""Durations run on the monotonic clock (docs/time.md rule 6): the wall clock may jump a day
either way during a sequence, a check or a refusal, and no wait gets shorter or longer."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.contract import events as ev
from agent.core import room as core
from agent.core.events import (
    ButtonHeld,
    ButtonPressed,
    Command,
    DeviceReady,
    DeviceStandby,
    LocalPowerRequest,
    ScheduleReceived,
    Tick,
    Window,
)
from tests.core.helpers import Room, for_current_step
from tests.core.helpers import settings as room_settings

DAY = 86_400.0
ALL_ON = {"codec": True, "camera": True, "amplifier": True}


def test_a_power_on_delay_is_not_cut_short_by_a_wall_clock_jump() -> None:
    r = Room()
    r.feed(LocalPowerRequest(True, "cli"), at=0, mono=0)          # codec on, camera in 5 s
    # NTP steps the wall clock a day forward one second later: the camera still waits.
    assert [a for a in r.feed(Tick(), at=DAY + 1, mono=1).actions
            if isinstance(a, core.SetRelay)] == []
    out = r.feed(Tick(), at=DAY + 5, mono=5)
    assert [(a.device, a.on) for a in out.actions if isinstance(a, core.SetRelay)] == [
        ("camera", True)]
    step = next(a for a in out.actions if isinstance(a, core.Emit) and a.kind == "power_step")
    assert step.data["elapsed_s"] == 5


def test_an_off_grace_is_not_stretched_by_a_clock_going_back() -> None:
    r = Room(relays=ALL_ON)
    r.feed(LocalPowerRequest(False, "cli"), at=DAY, mono=100)     # codec's 10 s grace
    out = r.feed(Tick(), at=5, mono=110)                          # the clock went back a day
    assert [(a.device, a.on) for a in out.actions if isinstance(a, core.SetRelay)] == [
        ("codec", False)]


def test_check_timeout_and_latency_are_monotonic() -> None:
    r = Room()
    r.feed(Command("k1", "operator_check", {"timeout_s": 60}), at=1000, mono=10)
    out = r.feed(Tick(), at=1000 + DAY, mono=20)                 # not a day of waiting
    assert "operator_check_unanswered" not in [a.kind for a in out.actions
                                               if isinstance(a, core.Emit)]
    assert core.next_deadline(r.settings, r.state, 1000 + DAY, 20) == 50
    out = r.feed(ButtonPressed(), at=1000 - DAY, mono=22.5)
    acks = [a.data for a in out.actions if isinstance(a, core.Emit)
            and a.kind == "operator_check_acknowledged"]
    assert acks == [{"check_id": "k1", "latency_s": 12.5}]


def test_refusal_is_shown_for_its_time_whatever_the_wall_clock_does() -> None:
    r = Room(relays=ALL_ON)
    r.feed(ScheduleReceived((Window("s1", "session", 1000, 2000),), "v1"), at=0, mono=0)
    r.feed(Tick(), at=500, mono=500)
    assert r.feed(ButtonHeld(), at=510, mono=510).led.name == "refused"
    assert r.feed(Tick(), at=510 + DAY / 4, mono=511).led.name == "refused"
    assert r.feed(Tick(), at=511, mono=518).led.name != "refused"


def test_a_restored_sequence_and_check_start_their_timers_again() -> None:
    r = Room()
    r.feed(LocalPowerRequest(True, "cli"), at=0, mono=1000)
    r.feed(Command("k1", "operator_check", {"timeout_s": 60}), at=1, mono=1001)
    saved = core.persistent(r.state)
    # A new boot: the monotonic clock starts again near zero.
    r2 = Room(relays=saved["relays"], saved=saved)
    assert core.next_deadline(r2.settings, r2.state, 3, 2) == 0     # due: go on at once
    r2.feed(Tick(), at=3, mono=2)
    assert core.next_deadline(r2.settings, r2.state, 3, 2) == 5     # the codec's 5 s again
    out = r2.feed(Tick(), at=4, mono=62)
    assert "operator_check_unanswered" in [a.kind for a in out.actions
                                           if isinstance(a, core.Emit)]


# --------------------------------------------------------------------------- property

requests = st.sampled_from([
    LocalPowerRequest(True, "cli"), LocalPowerRequest(False, "cli"), ButtonHeld(), Tick(),
    Tick(), Tick(), ButtonPressed(), "check", *(DeviceReady(d) for d in ("codec", "camera")),
    DeviceStandby("amplifier")])
# The monotonic clock moves on a little; the wall clock mostly with it, sometimes a day
# (or a random amount) either way.
wall_moves = st.one_of(st.just(0.0), st.sampled_from([DAY, -DAY]),
                       st.floats(-DAY, DAY, allow_nan=False))
script_steps = st.tuples(st.floats(0, 12, allow_nan=False), wall_moves, requests)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(confirm=st.booleans(), script=st.lists(script_steps, min_size=1, max_size=80))
def test_every_delay_and_timeout_is_held_in_monotonic_time(
        confirm: bool, script: list[tuple[float, float, Any]]) -> None:
    s = room_settings(confirm=confirm)
    state = core.initial_state(s)
    wall, mono = 1_000_000.0, 50.0
    began: float | None = None     # monotonic time the running step (or sequence) began
    todo: tuple[str, ...] = ()     # devices of the running sequence, in order
    asked: dict[str, float] = {}   # operator checks: id -> monotonic time asked
    n = 0
    for dt, jump, request in script:
        mono += dt
        wall += dt + jump
        if request == "check":
            n += 1
            request = Command(f"k{n}", "operator_check", {"timeout_s": 30})
        out = core.step(s, state, for_current_step(request, state), wall, mono)
        for a in out.actions:
            if not isinstance(a, core.Emit):
                continue
            e = a.event
            if isinstance(e, ev.PowerSequenceStarted):
                began, todo = mono, e.devices
            elif isinstance(e, ev.PowerStep):
                assert began is not None
                assert abs(e.elapsed_s - (mono - began)) <= 5e-4 + 1e-9, (e, mono, began)
                spec = s.spec(e.device)
                if e.outcome == "timeout":
                    wait = spec.ready_timeout_s if e.on else max(spec.off_grace_s, 1.0)
                    assert e.elapsed_s >= wait - 5e-4
                elif e.outcome == "done" and not spec.confirm:
                    last = todo[-1] == e.device
                    wait = (spec.on_delay_s if not last else 0) if e.on else spec.off_grace_s
                    assert e.elapsed_s >= wait - 5e-4, (e, todo)
                began = mono
            elif isinstance(e, ev.PowerSequenceCancelled | ev.PowerSequenceFinished):
                began = None
            elif isinstance(e, ev.OperatorCheckRequested):
                asked[e.check_id] = mono
            elif isinstance(e, ev.OperatorCheckUnanswered):
                assert abs(e.waited_s - (mono - asked[e.check_id])) <= 5e-4 + 1e-9
                if e.reason == "timeout":
                    assert e.waited_s >= 30 - 5e-4
            elif isinstance(e, ev.OperatorCheckAcknowledged):
                assert abs(e.latency_s - (mono - asked[e.check_id])) <= 5e-4 + 1e-9
        # Nothing due is left waiting: what the step did not do is in the future.
        due = core.next_deadline(s, out.state, wall, mono)
        assert due is None or due > 0
        state = out.state

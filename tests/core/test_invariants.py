"""Safety invariants under random input: presses, holds, local and district requests, schedule
changes, serial confirmations and clock jumps (forward and back).

1. No device is switched off while the room is locked, except by a district override.
2. Every power sequence switches on in ascending order and off in descending order.
3. The core's idea of each relay always equals what its SetRelay actions made it.
4. Every self-test started ends with one ``selftest_finished`` (a restart's at its first step).

The clock may also lose and regain NTP synchronisation (``ClockStatus``), and the agent may be
killed and restarted, or the Pi rebooted, at any point (only what ``persistent`` saved, and the
pins, survive).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core import room as core
from agent.core.events import (
    BrokerConnection,
    ButtonHeld,
    ButtonPressed,
    ClockStatus,
    Command,
    DeviceHealthChanged,
    DeviceReady,
    DeviceStandby,
    HelpRequested,
    LocalPowerRequest,
    ScheduleReceived,
    SelfTestRequested,
    Tick,
    Window,
)
from tests.core.helpers import for_current_step
from tests.core.helpers import settings as room_settings

DEVICES = ("codec", "camera", "amplifier")

windows = st.builds(
    lambda i, kind, start, length: Window(f"w{i}", kind, start, start + length),
    st.integers(0, 4), st.sampled_from(["test", "session"]),
    # Around the test's start time (1000), so that locks are common.
    st.floats(0, 6000, allow_nan=False), st.floats(60, 3000, allow_nan=False))

schedules = st.lists(windows, max_size=3, unique_by=lambda w: w.id).map(
    lambda ws: ScheduleReceived(tuple(ws), "v"))

commands = st.one_of(
    st.builds(lambda on, dev, ovr: Command("c", "power", {"on": on, **(
        {"device": dev} if dev else {}), "override": ovr}, "console"),
        st.booleans(), st.sampled_from([None, *DEVICES]), st.booleans()),
    st.builds(lambda i: Command("c", "complete_window", {"window_id": f"w{i}"}),
              st.integers(0, 4)),
    st.builds(lambda d: Command("c", "start_window", {"duration_min": d}),
              st.floats(1, 240, allow_nan=False)),
    st.just(Command("c", "operator_check", {"timeout_s": 30})),
    st.just(Command("c", "answer_help", {})),
)

events = st.one_of(
    st.just(Tick()), st.just(ButtonPressed()), st.just(ButtonHeld()),
    st.builds(HelpRequested, st.sampled_from(["button", "cli"])),
    st.builds(LocalPowerRequest, st.booleans(), st.sampled_from(["button", "cli", "system"])),
    commands, schedules,
    st.builds(DeviceReady, st.sampled_from(DEVICES)),
    st.builds(DeviceStandby, st.sampled_from(DEVICES)),
    st.builds(BrokerConnection, st.booleans()),
    st.builds(ClockStatus, st.booleans(), st.floats(0, 10_000, allow_nan=False)),
    st.just("restart"), st.just("reboot"),
    st.builds(DeviceHealthChanged, st.sampled_from(DEVICES),
              st.sampled_from(["ok", "fault", "degraded", "unknown"]), st.just("r"),
              st.sampled_from([None, "on", "standby"]), st.sampled_from([None, True, False]),
              st.sampled_from([None, "A", "B"]), st.sampled_from([None, "1", "2"])),
)

# The safety invariants also with self-tests asked for (their settle asks for a step at once:
# a deadline of 0, which the purity test below does not allow).
events_and_selftests = st.one_of(events, st.builds(SelfTestRequested,
                                                   st.sampled_from(["button", "cli"])))

# Mostly small steps forward; sometimes a big jump, sometimes the clock goes back.
time_steps = st.one_of(st.floats(0, 30, allow_nan=False), st.floats(0, 600, allow_nan=False),
                       st.floats(-3000, 30_000, allow_nan=False))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(confirm=st.booleans(),
       start_on=st.booleans(),
       off_after=st.sampled_from([None, 60.0]),
       script=st.lists(st.tuples(time_steps, events_and_selftests), min_size=1,
                       max_size=60))
def test_no_local_off_while_locked_and_power_order_kept(
        confirm: bool, start_on: bool, off_after: float | None,
        script: list[tuple[float, Any]]) -> None:
    s = replace(room_settings(confirm=confirm), off_after_release_s=off_after)
    order = {d.name: d.order for d in s.devices}
    state = core.initial_state(s, {n: start_on for n in DEVICES})
    relays = dict(state.relays)
    seq_steps: dict[int, list[tuple[str, bool]]] = {}
    now = 1000.0
    cmd_no = 0
    testing = False
    for dt, event in script:
        now += dt
        if event == "restart":
            # kill -9 and start again: only what persistent() saved, and the pins, survive.
            state = core.initial_state(s, relays, core.persistent(state))
            event = Tick()
        elif event == "reboot":
            # A power cut: the boot released every coil (here every contact is NC: all on).
            relays = dict.fromkeys(DEVICES, True)
            state = core.initial_state(s, relays, core.persistent(state), rebooted=True)
            event = Tick()
        if isinstance(event, Command):
            cmd_no += 1
            event = Command(f"c{cmd_no}", event.name, event.args, event.sender)
        out = core.step(s, state, for_current_step(event, state), now, now)
        locked = core.lock_window(s, out.state, now) is not None
        for a in out.actions:
            if not isinstance(a, core.SetRelay):
                continue
            # 1. Off while locked only by an override the district asked for.
            if not a.on and locked:
                assert a.reason.startswith("override:"), (a, event)
            relays[a.device] = a.on
            seq_steps.setdefault(a.sequence, []).append((a.device, a.on))
        # 3. The core agrees with the pins.
        assert dict(out.state.relays) == relays
        # 4. A self-test, once started, is finished once.
        for a in out.actions:
            if isinstance(a, core.Emit) and a.kind == "selftest_started":
                assert not testing, event
                testing = True
            elif isinstance(a, core.Emit) and a.kind == "selftest_finished":
                assert testing, event
                testing = False
        assert testing == (out.state.selftest is not None), event
        state = out.state
    # 2. Order within every sequence.
    for steps in seq_steps.values():
        directions = {on for _, on in steps}
        assert len(directions) == 1, steps
        positions = [order[d] for d, _ in steps]
        if steps[0][1]:
            assert positions == sorted(positions) and len(set(positions)) == len(positions)
        else:
            assert positions == sorted(positions, reverse=True)
            assert len(set(positions)) == len(positions)


@settings(max_examples=200, deadline=None)
@given(script=st.lists(st.tuples(time_steps, events), min_size=1, max_size=40))
def test_step_is_pure_and_deadline_is_never_in_the_past(script: list[tuple[float, Any]]) -> None:
    s = room_settings()
    state = core.initial_state(s)
    now = 0.0
    for dt, event in script:
        now += dt
        a = core.step(s, state, event, now, now)
        b = core.step(s, state, event, now, now)
        assert a == b
        state = a.state
        due = core.next_deadline(s, state, now, now)
        # Anything due now has been handled by this step.
        assert due is None or due > 0

"""Poly Group Series driver against the Poly emulator on a pty."""

from __future__ import annotations

import logging

import pytest

from agent.drivers import BadReply, DeviceRefused, DeviceTimeout
from agent.drivers.poly_group import PolyGroup

from .conftest import FakeClock


def test_registers_then_reports_unknown_until_told(pair_factory) -> None:
    """No power query exists: after opening the port the state is unknown (the codec may
    have gone to sleep meanwhile) until an acknowledgement or a notification says."""
    p = pair_factory("poly_group", {"asleep": True})
    assert p.driver.power_state() == "unknown"
    assert p.emu.received()[:2] == ["sleep register", "callstate register"]
    p.driver.wake()
    assert p.driver.power_state() == "on"
    p.driver.close()
    assert p.driver.power_state() == "unknown"      # a reopened port knows nothing again


def test_sleep_and_wake_are_acknowledged_by_echo(pair_factory) -> None:
    p = pair_factory("poly_group")
    p.driver.standby()
    assert p.emu.asleep
    assert p.driver.power_state() == "standby"
    p.driver.wake()
    assert not p.emu.asleep
    assert p.driver.power_state() == "on"


def test_sleep_notification_updates_the_state(pair_factory) -> None:
    p = pair_factory("poly_group")
    assert p.driver.power_state() == "unknown"
    p.emu.fall_asleep()
    assert p.driver.power_state() == "standby"


def test_callinfo_and_callstate_events(pair_factory) -> None:
    p = pair_factory("poly_group")
    assert p.driver.call_state() is None
    p.emu.start_call(remote="Xa Tan Doan", number="10.0.0.7")
    call = p.driver.call_state()
    assert call is not None and (call.id, call.remote, call.status) == (
        "34", "Xa Tan Doan", "connected")
    assert [(e.kind, e.state) for e in p.driver.events] == [
        ("cs", "RINGING"), ("cs", "COMPLETE"), ("active", "ACTIVE")]
    p.emu.end_call()
    assert p.driver.call_state() is None
    assert p.driver.events[-1].kind == "ended"


def test_unsupported_command_is_refused(pair_factory) -> None:
    p = pair_factory("poly_group")
    with pytest.raises(DeviceRefused, match="not supported"):
        p.driver.command("gendial 1234", lambda f: None)
    p.emu.fail_next()
    with pytest.raises(DeviceRefused):
        p.driver.standby()


def test_paces_commands_with_the_injected_sleeper(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("poly_group", settings={"command_gap_s": 0.2})
    p.driver.power_state()                      # sleep register ×2, callstate register
    p.driver.standby()
    assert len(clock.slept) == 3
    assert all(s == pytest.approx(0.2) for s in clock.slept)
    clock.advance(5)
    p.driver.wake()                             # long after the last: no wait
    assert len(clock.slept) == 3


def test_admin_password(pair_factory) -> None:
    p = pair_factory("poly_group", {"password": "1234"}, {"password": "1234"})
    assert p.driver.power_state() == "unknown"
    assert "1234" in p.emu.received()


def test_missing_password_is_explained(pair_factory) -> None:
    p = pair_factory("poly_group", {"password": "1234"})
    with pytest.raises(DeviceRefused, match=r"settings\.password"):
        p.driver.power_state()


def test_silent_while_booting(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("poly_group", {"boot_s": 120})
    p.emu.power(False)
    p.emu.power(True)
    with pytest.raises(DeviceTimeout):
        p.driver.power_state()
    clock.advance(120)
    assert p.driver.power_state() == "unknown"


def test_settings_model_is_strict() -> None:
    from agent.drivers import SettingsError

    with pytest.raises(SettingsError) as e:
        PolyGroup.validate_settings({"pasword": "x", "command_gap_s": -1})
    assert sorted(e.value.problems) == [
        "settings.command_gap_s: Input should be greater than or equal to 0",
        "settings.pasword: unknown setting (check its spelling)",
    ]


def test_password_prompt_again_later_is_a_login_refusal(pair_factory) -> None:
    """A wrong password that the codec answers only with the next line's prompt: a typed
    login refusal, never a stray internal exception."""
    p = pair_factory("poly_group", {"password": "1234", "quiet_wrong_password": True},
                     {"password": "wrong"})
    with pytest.raises(DeviceRefused) as e:
        p.driver.power_state()
    assert e.value.code == "login"
    with pytest.raises(DeviceRefused) as e:    # and again on the next call, still typed
        p.driver.power_state()
    assert e.value.code == "login"


def test_notification_right_after_an_answer_is_kept(pair_factory) -> None:
    p = pair_factory("poly_group")
    p.driver.power_state()
    p.emu.follow_next_reply(b"cs: call[40] chan[0] dialstr[10.0.0.7] state[RINGING]\r\n"
                            b"sleep\r\n")
    p.driver.power_state()                      # the answer and both lines in one read
    assert p.driver.power_state() == "standby"  # the sleep notification was seen
    assert [(e.kind, e.call_id, e.state) for e in p.driver.events] == [
        ("cs", "40", "RINGING")]


def test_callstate_register_refused_by_the_model_is_skipped(pair_factory, caplog) -> None:
    """A model without call notifications refuses ``callstate register``: logged once and
    skipped, and power, calls and liveness work as before (default settings)."""
    p = pair_factory("poly_group", {"unsupported": ["callstate register"]})
    with caplog.at_level(logging.WARNING, logger="agent.drivers"):
        assert p.driver.power_state() == "unknown"
        p.driver.wake()
        assert p.driver.power_state() == "on"
        assert p.driver.call_state() is None
        p.emu.start_call(number="10.0.0.7")
        call = p.driver.call_state()
        assert call is not None and call.id == "34"
        p.driver.standby()
        assert p.driver.power_state() == "standby"
        assert p.emu.received().count("callstate register") == 1    # not asked every time
        p.driver.close()                            # a reopened port asks once more…
        assert p.driver.power_state() == "unknown"
        assert p.emu.received().count("callstate register") == 2
    refusals = [r for r in caplog.records if "callstate register" in r.getMessage()]
    assert len(refusals) == 1                       # …but says so only once


def test_callstate_refusal_never_degrades_the_poller(pair_factory) -> None:
    from agent.drivers.health import R_ANSWERING, R_ON, HealthPoller

    p = pair_factory("poly_group", {"unsupported": ["callstate register"], "asleep": True})
    poller = HealthPoller("codec", p.driver, lambda e: None, relay_on=True, boot_grace_s=0,
                          clock=p.clock, sleep=p.clock.sleep)
    for _ in range(3):
        health = poller.poll_once()
        assert (health.status, health.reason) == ("ok", R_ANSWERING)
    assert poller.wait_ready(5, wake=True).ok and not p.emu.asleep
    assert poller.poll_once().reason == R_ON


@pytest.mark.parametrize("lines", [(0, 1), (1, 1), (0, 0)])
def test_garbage_inside_callinfo_is_a_bad_reply(pair_factory, lines: tuple[int, int]) -> None:
    """Noise between ``callinfo begin`` and ``callinfo end`` (or over the begin line): a
    BadReply, never "not in a call". The next try reads the call."""
    p = pair_factory("poly_group")
    p.emu.start_call(remote="Xa Tan Doan", number="10.0.0.7")
    p.emu.garble_next_reply(b"callinfo all", *lines)
    with pytest.raises(BadReply):
        p.driver.call_state()
    call = p.driver.call_state()
    assert call is not None and (call.id, call.remote) == ("34", "Xa Tan Doan")


def test_password_prompt_mid_session_makes_the_state_unknown(pair_factory) -> None:
    """The codec asks for the password again (its session restarted) and meanwhile fell
    asleep without a notification: after logging in again the state is unknown, not the
    "on" remembered from before."""
    p = pair_factory("poly_group", {"password": "1234"}, {"password": "1234"})
    p.driver.wake()
    assert p.driver.power_state() == "on"
    p.emu.drop_session()
    p.emu.fall_asleep()                         # not registered: no notification
    assert p.driver.power_state() == "unknown"
    assert p.emu.received().count("1234") == 2  # it logged in again
    p.driver.wake()
    assert p.driver.power_state() == "on"


def test_timeout_then_reregistration_makes_the_state_unknown(pair_factory) -> None:
    p = pair_factory("poly_group")
    p.driver.wake()
    assert p.driver.power_state() == "on"
    p.emu.silent = True
    with pytest.raises(DeviceTimeout):
        p.driver.power_state()
    p.emu.fall_asleep()                         # silent: its notification is lost
    p.emu.silent = False
    assert p.driver.power_state() == "unknown"
    assert p.emu.received().count("callstate register") == 2    # registered again

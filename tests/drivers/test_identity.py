"""Model and serial number: each driver reads them where its protocol allows, once per
session; the health poller reports them; a swapped unit shows in the next report after the
port reopens (or the device comes back from silence); garbage is a BadReply, never a wrong
serial."""

from __future__ import annotations

import logging

import pytest

from agent.core.events import DeviceHealthChanged
from agent.drivers import BadReply, DeviceIdentity
from agent.drivers import health as h
from agent.drivers.health import HealthPoller

from .conftest import DEVICES, QUERYING, FakeClock, Pair


def poller_for(p: Pair, events: list) -> HealthPoller:
    poller = HealthPoller(p.name, p.driver, events.append, silent_polls_for_fault=3,
                          boot_grace_s=0, clock=p.clock, sleep=p.clock.sleep)
    poller.set_relay(True)
    return poller


def queries(p: Pair) -> int:
    """How many identity queries the emulator received."""
    asked = DEVICES[p.name].identity_queries
    return sum(1 for ex in p.emu.log if ex.received and
               any(ex.received.strip(b"\r\n").startswith(q) for q in asked))


def test_identity_from_the_device(pair: Pair) -> None:
    want = DEVICES[pair.name].identity
    if pair.name == "yealink_vc":
        want = DeviceIdentity(None, None)       # its version line came before the port opened
    assert pair.driver.identity() == want


@pytest.mark.parametrize("name", QUERYING)
def test_read_once_per_session_and_in_every_report(pair_factory, name: str) -> None:
    p = pair_factory(name)
    events: list = []
    poller = poller_for(p, events)
    want = DEVICES[name].identity
    for _ in range(3):
        health = poller.poll_once()
        assert (health.status, health.model, health.serial) == ("ok", want.model, want.serial)
    p.driver.standby()
    health = poller.poll_once()                 # a new report, same identity
    assert (health.power, health.model, health.serial) == ("standby", want.model, want.serial)
    assert queries(p) == len(DEVICES[name].identity_queries)    # asked once, not every poll
    assert len(events) == 2 and all(isinstance(e, DeviceHealthChanged) for e in events)


@pytest.mark.parametrize("name", QUERYING)
def test_a_swapped_unit_shows_after_the_port_reopens(pair_factory, name: str) -> None:
    p = pair_factory(name)
    events: list = []
    poller = poller_for(p, events)
    case = DEVICES[name]
    assert (poller.poll_once().serial, poller.health.model) == (case.identity.serial,
                                                                  case.identity.model)
    p.emu.unplug()                              # the technician swaps the unit
    for attr, value in case.swap.items():
        setattr(p.emu, attr, value)
    gone = poller.poll_once()
    assert (gone.status, gone.model, gone.serial) == ("fault", None, None)
    p.emu.replug()
    back = poller.poll_once()
    assert (back.status, back.model, back.serial) == (
        "ok", case.swapped.model, case.swapped.serial)
    assert events[-1] == back


@pytest.mark.parametrize("name", QUERYING)
def test_a_unit_swapped_while_silent_shows_when_it_answers(pair_factory, name: str) -> None:
    """Relay off (silent), the unit swapped, relay on: the port never closed, but the
    identity is read again once the device answers after a silence."""
    p = pair_factory(name)
    poller = poller_for(p, [])
    case = DEVICES[name]
    assert poller.poll_once().serial == case.identity.serial
    p.emu.silent = True
    for attr, value in case.swap.items():
        setattr(p.emu, attr, value)
    silent = poller.poll_once()
    assert (silent.status, silent.model, silent.serial) == ("degraded", None, None)
    p.emu.silent = False
    back = poller.poll_once()
    assert (back.status, back.model, back.serial) == (
        "ok", case.swapped.model, case.swapped.serial)


@pytest.mark.parametrize("name", QUERYING)
def test_garbage_in_an_identity_reply_is_a_bad_reply(pair_factory, name: str) -> None:
    p = pair_factory(name)
    case = DEVICES[name]
    p.driver.power_state()
    p.emu.garble_next_reply(case.identity_queries[-1], *case.garble)
    with pytest.raises(BadReply):
        p.driver.identity()
    assert p.driver.known_identity == DeviceIdentity(None, None)   # nothing half-read kept
    assert p.driver.identity() == case.identity                     # the next try reads it


@pytest.mark.parametrize("name", QUERYING)
def test_garbled_identity_in_a_poll_is_garbled_health(pair_factory, name: str) -> None:
    p = pair_factory(name)
    case = DEVICES[name]
    poller = poller_for(p, [])
    p.emu.garble_next_reply(case.identity_queries[-1], *case.garble)
    health = poller.poll_once()
    assert (health.status, health.reason, health.model, health.serial) == (
        "degraded", h.R_GARBLED, None, None)
    health = poller.poll_once()
    assert (health.status, health.model, health.serial) == (
        "ok", case.identity.model, case.identity.serial)


def test_yealink_model_from_its_version_line(pair_factory) -> None:
    """Yealink says its model only in the ``version`` line it sends at boot (no serial in
    its protocol); a swapped unit shows when it announces itself."""
    p = pair_factory("yealink_vc")
    poller = poller_for(p, [])
    assert (poller.poll_once().model, poller.health.serial) == (None, None)
    p.emu.power(False)
    p.emu.power(True)                           # boot_s = 0: the version line at once
    p.emu.wait_for(lambda ex: ex.answer.startswith("version"))
    assert poller.poll_once().model == "VC800"
    p.emu.power(False)
    p.emu.model = "VC880"                       # swapped while the relay was off
    p.emu.power(True)
    p.emu.wait_for(lambda ex: "VC880" in ex.answer)
    health = poller.poll_once()
    assert (health.status, health.model, health.serial) == ("ok", "VC880", None)
    p.driver.close()
    assert p.driver.identity() == DeviceIdentity(None, None)    # reopened: not heard yet


def test_cisco_without_a_serial_path_gives_the_model_only(pair_factory, caplog) -> None:
    p = pair_factory("cisco_xapi", {"serial_number": None})
    poller = poller_for(p, [])
    with caplog.at_level(logging.WARNING, logger="agent.drivers"):
        health = poller.poll_once()
        assert (health.status, health.model, health.serial) == ("ok", "Cisco Codec Pro", None)
        p.driver.close()
        assert poller.poll_once().serial is None
    assert len([r for r in caplog.records if "SerialNumber" in r.getMessage()]) == 1


@pytest.mark.parametrize("name,emu", [
    ("poly_group", {"unsupported": ["whoami"]}),
    ("sony_visca", {"version_inquiry": False}),
    ("extron_sis", {"part_number": None}),
])
def test_a_refused_identity_query_never_blocks_liveness(pair_factory, caplog, name: str,
                                                        emu: dict) -> None:
    p = pair_factory(name, emu)
    poller = poller_for(p, [])
    with caplog.at_level(logging.WARNING, logger="agent.drivers"):
        for _ in range(2):
            health = poller.poll_once()
            assert (health.status, health.model, health.serial) == ("ok", None, None)
        p.driver.close()                        # asked again after a reopen, logged once
        assert poller.poll_once().status == "ok"
    assert queries(p) == 2
    assert len([r for r in caplog.records if "model and serial" in r.getMessage()]) == 1


def test_poly_serialnum(pair_factory) -> None:
    p = pair_factory("poly_group", settings={"identity_command": "serialnum"})
    assert p.driver.identity() == DeviceIdentity(None, "82161234567890AB")
    assert "serialnum" in p.emu.received()


def test_identity_can_be_turned_off(pair_factory) -> None:
    p = pair_factory("poly_group", settings={"identity_command": None})
    assert p.driver.identity() == DeviceIdentity(None, None)
    assert "whoami" not in p.emu.received()
    c = pair_factory("cisco_xapi", settings={"product_status": None, "serial_status": None})
    assert c.driver.identity() == DeviceIdentity(None, None)
    assert not [x for x in c.emu.received() if "SystemUnit" in x]


def test_generic_line_without_an_identity_query(pair_factory) -> None:
    p = pair_factory("generic_line", settings={"identity": None})
    assert p.driver.identity() == DeviceIdentity(None, None)
    assert "ID?" not in p.emu.received()


def test_extron_odd_part_number_is_not_taken(pair_factory) -> None:
    p = pair_factory("extron_sis", {"part_number": "1.00"})
    assert p.driver.identity() == DeviceIdentity(None, None)


def test_visca_identity_is_not_read_while_booting(pair_factory, clock: FakeClock) -> None:
    p = pair_factory("sony_visca", {"boot_s": 8})
    poller = poller_for(p, [])
    poller.boot_grace_s = 60
    p.emu.power(False)
    p.emu.power(True)
    poller.set_relay(False)
    poller.set_relay(True)
    booting = poller.poll_once()
    assert (booting.power, booting.model) == ("booting", None)
    clock.advance(8)
    assert poller.poll_once().model == "Sony 0519"

"""The typed event kinds of contract 2.0: one definition per kind, each saying when it happens."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from agent.contract import events as ev
from agent.core.actions import Emit

# Every kind /work/spec/contract-v2.md lists, core decisions then the agent shell.
SPEC_CORE = {
    "power_requested", "shutdown_refused", "help_requested", "power_sequence_started",
    "power_step", "power_sequence_finished", "power_sequence_cancelled", "window_power_up",
    "window_ready", "lock_engaged", "lock_moved", "lock_released", "lock_overridden",
    "window_started", "window_completed", "after_window_power_off", "check_in",
    "operator_check_requested", "operator_check_acknowledged", "operator_check_unanswered",
    "schedule_applied", "device_health", "device_identity_changed", "self_help_power_cycle",
    "self_help_withheld", "unscheduled_use", "unscheduled_use_ended",
}
# Kinds added since that list (additive: a reader that does not know them passes them by).
ADDED_CORE = {"selftest_started", "selftest_refused", "selftest_device", "selftest_finished"}
SPEC_SHELL = {
    "agent_started", "agent_stopping", "link_restored", "schedule_rejected",
    "schedule_cache_failed", "relay_failed", "config_reloaded", "config_reload_refused",
    "events_dropped", "outbox_reset",
    "ha_command_refused",   # an addition: Home Assistant's commands (docs/homeassistant.md)
}


def test_every_kind_of_the_spec_has_one_definition() -> None:
    assert {t.KIND for t in ev.CORE_EVENTS} == SPEC_CORE | ADDED_CORE  # type: ignore[attr-defined]
    assert {t.KIND for t in ev.SHELL_EVENTS} == SPEC_SHELL  # type: ignore[attr-defined]
    assert len(ev.EVENT_TYPES) == len(ev.CORE_EVENTS) + len(ev.SHELL_EVENTS)


@pytest.mark.parametrize("kind", sorted(SPEC_CORE | ADDED_CORE | SPEC_SHELL))
def test_each_kind_is_frozen_typed_and_says_when_it_happens(kind: str) -> None:
    t = ev.EVENT_TYPES[kind]
    assert dataclasses.is_dataclass(t) and t.__dataclass_params__.frozen  # type: ignore[attr-defined]
    doc = " ".join((t.__doc__ or "").split())
    assert doc.endswith(".") and doc.count(". ") == 0, doc   # one sentence
    hints = typing.get_type_hints(t)
    for f in dataclasses.fields(t):
        assert f.name in hints
        # Optional fields, and only they, default to None (left out of the wire).
        optional = type(None) in typing.get_args(hints[f.name])
        assert optional == (f.default is None), (kind, f.name)


def test_data_leaves_out_what_has_no_value_and_is_json_ready() -> None:
    e = ev.PowerSequenceCancelled(True, "window:t1", "local:cli")
    assert ev.data(e) == {"on": True, "reason": "window:t1", "replaced_by": "local:cli"}
    ready = ev.WindowReady("2026-11-29T02:00:00.000Z", False, {
        "codec": ev.ReadyDevice(True, "on_silent", "unknown")})
    assert ev.data(ready)["devices"] == {"codec": {"relay": True, "state": "on_silent",
                                                   "health": "unknown"}}
    assert ev.data(ev.PowerSequenceStarted(True, "r", ("a", "b")))["devices"] == ["a", "b"]


def test_emit_takes_only_events_of_the_contract() -> None:
    e = Emit(ev.CheckIn("test"), "t1", False)
    assert (e.kind, e.data, e.window_id, e.clock_trusted) == ("check_in", {"kind": "test"},
                                                              "t1", False)
    with pytest.raises(TypeError):
        Emit({"kind": "check_in"})

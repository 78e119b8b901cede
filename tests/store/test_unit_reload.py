"""The unit reloads the agent with SIGHUP and lets journald read its priority prefixes."""

from __future__ import annotations

from tests.store.test_deploy import one, values


def test_reload_is_sighup_to_the_main_process() -> None:
    assert one("Service", "ExecReload") == "/bin/kill -HUP $MAINPID"


def test_journald_reads_the_priority_prefix() -> None:
    assert values("Service", "SyslogLevelPrefix") in ([], ["yes"])
    assert values("Service", "StandardError") in ([], ["journal"])

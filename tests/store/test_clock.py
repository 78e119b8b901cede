"""Clock trust policy and sync probes."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import clock
from agent.clock import (
    MIN_PLAUSIBLE_TIME,
    STA_UNSYNC,
    TIME_ERROR,
    clock_synchronized,
    earliest_possible_now,
    flag_file_probe,
    read_last_known_good,
    timex_synchronized,
    trust_wall_clock,
    write_last_known_good,
)

LKG = 1_760_000_000.0  # last known good time persisted on disk
DAY = 86400.0


@pytest.mark.parametrize(
    "now,synced,lkg,expected,why",
    [
        (LKG + 60, True, LKG, True, "synced and after the last known good time"),
        (LKG, True, LKG, True, "equal to the last known good time"),
        (LKG + 60, False, LKG, False, "not synced: may be stuck at the last shutdown time"),
        (LKG + 30 * DAY, False, LKG, False, "not synced, even if it looks plausible"),
        (LKG - 1, True, LKG, False, "earlier than the time persisted on disk"),
        (LKG - DAY, True, LKG, False, "synced but a day before the persisted time"),
        (0.0, False, LKG, False, "1970 after a boot without a saved time"),
        (100.0, True, 0.0, False, "1970 is never trusted, synced or not"),
        (MIN_PLAUSIBLE_TIME - 1, True, 0.0, False, "before the plausibility floor"),
        (MIN_PLAUSIBLE_TIME + 1, True, 0.0, True, "fresh install: nothing persisted yet"),
        (LKG - 1, False, LKG, False, "unsynced and earlier than persisted"),
    ],
)
def test_trust_policy(now: float, synced: bool, lkg: float, expected: bool, why: str) -> None:
    assert trust_wall_clock(now, synced, lkg) is expected, why


def test_earliest_possible_now() -> None:
    # unsynced clock restored from a saved time and running forward: a lower bound
    assert earliest_possible_now(LKG + 100, LKG) == LKG + 100
    # clock behind the persisted time: the persisted time is the bound
    assert earliest_possible_now(LKG - 100, LKG) == LKG
    # 1970 clock, nothing persisted: only the district's message time proves anything
    assert earliest_possible_now(5.0, 0.0, [LKG + 3600]) == LKG + 3600
    assert earliest_possible_now(5.0, 0.0) is None
    # message evidence later than the local clock wins
    assert earliest_possible_now(LKG + 10, LKG, [LKG + 500, 7.0]) == LKG + 500


def test_timex_decision() -> None:
    assert timex_synchronized(0, 0, 1000) is True
    assert timex_synchronized(0, STA_UNSYNC, 1000) is False
    assert timex_synchronized(TIME_ERROR, 0, 1000) is False
    assert timex_synchronized(0, 0, 16_000_000) is False


def test_probes_first_answer_wins_and_fall_back_safely(tmp_path: Path) -> None:
    def boom() -> bool | None:
        raise OSError("no")

    flag = tmp_path / "synchronized"
    assert clock_synchronized([flag_file_probe(flag), lambda: False]) is False
    flag.touch()
    assert clock_synchronized([flag_file_probe(flag), lambda: False]) is True
    assert clock_synchronized([boom, lambda: None]) is False  # nobody knows: not synced
    assert clock_synchronized([boom, lambda: True]) is True
    assert clock_synchronized([]) is False


def test_real_probes_do_not_crash() -> None:
    assert clock.adjtimex_probe()() in (True, False, None)
    assert clock.adjtimex_probe("libdoesnotexist.so.9")() is None
    assert isinstance(clock_synchronized(), bool)


def test_last_known_good_file(tmp_path: Path) -> None:
    p = tmp_path / "clock"
    assert read_last_known_good(p) == 0.0
    write_last_known_good(p, LKG)
    assert read_last_known_good(p) == LKG
    p.write_text("garbage")
    assert read_last_known_good(p) == 0.0
    p.write_text("nan")
    assert read_last_known_good(p) == 0.0

"""Many room messages stored at once (``Store.record_batch``, what the recorder does with each
batch) give the same answers and the same rows as one ``record_*`` call per message, in
order, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.localpg import LocalPostgres
from district.model import EventRow, Incoming, Reply
from district.store.postgres import PostgresStore
from district.store.sqlite import SqliteStore
from tests.district.helpers import T0


def _event(site: str, seq: int, at: float) -> EventRow:
    return EventRow(site=site, seq=seq, kind="check_in", ts=at, received_at=at,
                    window_id=None, clock_trusted=True, late=False, first_due=None,
                    data={"n": seq}, event_id=f"{site}-{seq}")


def _messages() -> list[Incoming]:
    def state(site: str, power: str, at: float) -> Incoming:
        raw = json.dumps({"power": power, "last_seq": 4}).encode()
        return Incoming("state", site, at, raw, json.loads(raw))

    def ev(site: str, seq: int, at: float) -> Incoming:
        return Incoming("events", site, at, b'{"seq":%d}' % seq, _event(site, seq, at))

    reply = Reply("c-1", "xa-a", "accepted", "", {}, T0 + 9)
    return [
        Incoming("availability", "xa-a", T0 + 1, b"online", "online", True),
        Incoming("availability", "xa-a", T0 + 2, b"online", "online", False),  # no change
        state("xa-a", "off", T0 + 3), state("xa-a", "off", T0 + 4),  # the second: no change
        state("xa-a", "on", T0 + 5),
        ev("xa-a", 1, T0 + 5), ev("xa-a", 2, T0 + 6), ev("xa-a", 1, T0 + 7),  # a copy
        ev("xa-b", 1, T0 + 7), ev("xa-a", 3, T0 + 8),  # 3 was stored before the batch
        Incoming("availability", "xa-b", T0 + 8, b"online", "online"),
        Incoming("availability", "xa-a", T0 + 9, b"offline", "offline"),
        Incoming("replies", "xa-a", T0 + 9, b"{}", reply),
        Incoming("replies", "xa-a", T0 + 9, b"{}", reply),  # a copy
        Incoming("info", "xa-b", T0 + 10, b'{"v":1}', {"v": 1}),
    ]


def _one_by_one(store: Any, items: list[Incoming]) -> list[bool]:
    out = []
    with store.transaction():
        for it in items:
            if it.kind == "availability":
                out.append(store.record_availability(it.site, it.value, it.received_at,
                                                     it.retained))
            elif it.kind == "events":
                out.append(store.record_event(it.value, it.raw))
            elif it.kind == "replies":
                out.append(store.record_reply(it.value, it.raw))
            else:
                out.append(store.record_retained(it.site, it.kind, it.value, it.raw,
                                                 it.received_at))
    return out


def _rows(store: Any) -> dict[str, Any]:
    q = store._q
    return {
        "live": {s: (lv.availability, lv.availability_at, lv.state, lv.state_at, lv.info,
                     lv.last_seen_at) for s, lv in sorted(store.live_all().items())},
        "availability": q("SELECT site, value, received_at, retained FROM availability "
                          "ORDER BY id"),
        "snapshots": q("SELECT site, kind, received_at, payload FROM snapshots ORDER BY id"),
        "events": q("SELECT site, seq, received_at, payload FROM events ORDER BY site, seq"),
        "replies": q("SELECT command_id, received_at FROM replies"),
    }


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    if request.param == "sqlite":
        pair = (SqliteStore(tmp_path / "a.db"), SqliteStore(tmp_path / "b.db"))
    else:
        pg: LocalPostgres = request.getfixturevalue("postgres")
        pair = (PostgresStore(pg.new_database()), PostgresStore(pg.new_database()))
    try:
        yield pair
    finally:
        for s in pair:
            s.close()


def test_a_batch_answers_and_stores_as_one_call_per_message(stores: tuple[Any, Any]) -> None:
    batched, single = stores
    for s in stores:
        s.record_event(_event("xa-a", 3, T0), b'{"seq":3}')
    items = _messages()
    want = _one_by_one(single, items)
    with batched.transaction():
        got = batched.record_batch(items)
    assert got == want
    assert want == [True, False, True, False, True, True, True, False, True, False, True,
                    True, True, False, True]
    assert _rows(batched) == _rows(single)


def test_a_batch_that_fails_stores_nothing(stores: tuple[Any, Any]) -> None:
    store, _ = stores
    bad = EventRow("xa-a", 9, "check_in", T0, T0, None, True, False, None, {"t": "\ud800"})
    items = [*_messages()[:6], Incoming("events", "xa-a", T0, b"{}", bad)]
    with pytest.raises(UnicodeEncodeError), store.transaction():
        store.record_batch(items)
    assert _rows(store) == {"live": {}, "availability": [], "snapshots": [],
                            "events": [], "replies": []}

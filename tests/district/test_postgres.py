"""The PostgreSQL store: chosen by the config, the same answers as SQLite (one whole report
window played on each), several writers at once without deadlocks or doubles, and a
database restart survived. The recorder's and the service's own tests also run on it
(``[postgres]``, see ``conftest.py``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from bench.localpg import LocalPostgres
from broker.local import LocalBroker
from district.config import ConfigError, parse_config
from district.model import EventRow
from district.store import open_store
from district.store.postgres import PostgresStore
from district.store.sqlite import SqliteStore
from tests.district import helpers, test_report
from tests.district.helpers import T0, ConsoleRig, config_yaml


def _event(site: str, seq: int, ts: float | None = T0, at: float = T0) -> EventRow:
    return EventRow(site=site, seq=seq, kind="check_in", ts=ts, received_at=at,
                    window_id=None, clock_trusted=True, late=False, first_due=None,
                    data={"kind": "test"}, event_id=f"e{seq}")


def test_backend_chosen_by_the_config(postgres: LocalPostgres, tmp_path: Path) -> None:
    url = postgres.new_database()
    cfg = parse_config(config_yaml(1883, url, []))
    assert cfg.database.url == url
    store = open_store(cfg.database)
    try:
        assert isinstance(store, PostgresStore) and repr(store) == f"PostgresStore({url!r})"
    finally:
        store.close()
    cfg = parse_config(config_yaml(1883, tmp_path / "c.db", []))
    store = open_store(cfg.database)
    try:
        assert isinstance(store, SqliteStore) and not isinstance(store, PostgresStore)
    finally:
        store.close()


def test_a_password_in_the_url_is_refused_and_never_shown() -> None:
    text = config_yaml(1883, "postgresql://diemcau:s3cret-pw@127.0.0.1:5432/console", [])
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    msg = str(e.value)
    assert "database.url: no password in the URL" in msg and "passfile" in msg
    assert "s3cret-pw" not in msg
    with pytest.raises(ConfigError, match=r"database\.url: expected postgresql://"):
        parse_config(config_yaml(1883, "postgresql://127.0.0.1:5432", []))


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    from broker.local import free_port
    from district.store import StoreError

    with pytest.raises(StoreError, match=r"cannot open the database postgresql://"):
        PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/none", timeout_s=2)


def _decisions(report: dict[str, Any]) -> dict[str, Any]:
    """What a report decides about each room (the play's receive times move with its clock,
    so exact times are left out): lists, causes and the columns' findings."""
    rooms = {}
    for r in report["rooms"]:
        rooms[r["site"]] = {
            "list": r["list"], "cause": r["cause"], "ever_connected": r["ever_connected"],
            "on_by_start": (r["on_by_start"]["value"], r["on_by_start"]["source"],
                            r["on_by_start"]["devices"], r["on_by_start"]["late"]),
            "online": (r["online"]["contact"], r["online"]["throughout"],
                       [g["sources"] for g in r["online"]["gaps"]]),
            "operator": (r["operator"]["present"], r["operator"]["by"],
                         r["operator"]["latency_s"], len(r["operator"]["check_ins"])),
            "refused": r["refused_attempts"]["count"],
            "lost": [x["what"] for x in r["lost_before_release"]],
            "released": r["released"] and (r["released"]["reason"], r["released"]["via"]),
            "overrides": len(r["overrides"]), "late": sorted(r["late_evidence"]),
            "mic_speaker": (r["mic_speaker"]["mic"], r["mic_speaker"]["speaker"]),
        }
    summary = {k: v for k, v in report["summary"].items() if k != "text"}
    return {"summary": summary, "rooms": rooms}


def test_a_whole_report_window_gives_the_same_report_on_both(postgres: LocalPostgres,
                                                              tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """test_report.py's window (one room per cause and column, late evidence, a gap, an
    override, refusals) played once on each store: every report taken along the way is the
    same in every list, cause and column finding."""
    reports = {}
    for backend in ("sqlite", "postgres"):
        if backend == "postgres":
            monkeypatch.setattr(helpers, "DATABASE", lambda _tmp: postgres.new_database())
        root = tmp_path / backend
        b = LocalBroker(root / "broker")
        b.start()
        c = ConsoleRig(b, root, test_report.ROOMS,
                       groups={s: "Cụm A" for s in test_report.ROOMS[:6]})
        try:
            c.start()
            played = test_report.play(c)
            assert isinstance(c.store, PostgresStore) == (backend == "postgres")
            reports[backend] = [_decisions(getattr(played, k))
                                for k in ("before_completion", "at_completion", "after_late")]
        finally:
            c.close()
            b.stop()
    for sqlite_rep, pg_rep in zip(reports["sqlite"], reports["postgres"], strict=True):
        assert pg_rep == sqlite_rep
    assert reports["postgres"][2]["rooms"]["r-linkdown"]["cause"] == "link_down"


def test_missing_time_stamps_sort_as_in_sqlite(postgres: LocalPostgres, tmp_path: Path) -> None:
    pg = PostgresStore(postgres.new_database())
    lite = SqliteStore(tmp_path / "c.db")
    try:
        for store in (pg, lite):
            with store.transaction():
                store.record_event(_event("xa", 1, ts=T0 + 5), b"{}")
                store.record_event(_event("xa", 2, ts=None), b"{}")
                store.record_event(_event("xa", 3, ts=T0), b"{}")
        for newest in (False, True):
            assert [e.seq for e in pg.events("xa", newest_first=newest)] == \
                   [e.seq for e in lite.events("xa", newest_first=newest)]
        assert [e.seq for e in pg.events("xa")] == [2, 3, 1]
        assert [e.seq for e in pg.window_evidence("xa", "w", T0 - 1, T0 + 9)] == [3, 1]
    finally:
        pg.close()
        lite.close()


def test_live_stamps_change_with_the_live_view_as_in_sqlite(postgres: LocalPostgres,
                                                            tmp_path: Path) -> None:
    """The dashboard's kept tiles read a room again when its stamp changes: both stores
    give the same stamps, and each write the live view shows changes the room's stamp."""
    pg = PostgresStore(postgres.new_database())
    lite = SqliteStore(tmp_path / "c.db")
    try:
        seen: list[dict[str, Any]] = []
        steps = [
            lambda st: st.record_availability("xa", "online", T0, True),
            lambda st: st.record_retained("xa", "state", {}, b'{"power": "on"}', T0 + 1),
            lambda st: st.record_retained("xa", "state", {}, b'{"power": "off"}', T0 + 1),
            lambda st: st.record_event(_event("xa", 1, at=T0 + 2), b"{}"),
            lambda st: st.record_event(_event("xb", 1, at=T0 + 3), b"{}"),
            lambda st: st.record_availability("xa", "offline", T0 + 4, False),
        ]
        for step in steps:
            for store in (pg, lite):
                with store.transaction():
                    step(store)
            stamps = pg.live_stamps()
            assert stamps == lite.live_stamps()
            seen.append(stamps)
        assert len({repr(s.get("xa")) for s in seen[:4] + seen[5:]}) == 5, seen
        assert seen[4]["xa"] == seen[3]["xa"] and "xb" in seen[4]
    finally:
        pg.close()
        lite.close()


def test_several_writers_share_rooms_without_deadlock(postgres: LocalPostgres) -> None:
    """Two stores (as two recorder processes behind one shared subscription) write batches
    of the same 40 rooms at once, in opposite room orders, each getting every other event of
    each room: no batch waits on the other in a cycle (a deadlock fails one of them), every
    event is stored once, and each room's last-heard time is the latest of both."""
    url = postgres.new_database()
    stores = [PostgresStore(url), PostgresStore(url)]
    sites = [f"xa-{i:02d}" for i in range(40)]
    errors: list[BaseException] = []
    go = threading.Barrier(2)

    def writer(k: int, order: list[str], base: float) -> None:
        store = stores[k]
        try:
            go.wait(10)
            for batch in range(15):
                with store.transaction():
                    for i, site in enumerate(order):
                        store.record_event(_event(site, 2 * batch + k + 1,
                                                  at=base + batch + i / 100), b"{}")
                        if k == 0 and batch == 0:
                            store.record_availability(site, "online", base, False)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(0, sites, T0)),
               threading.Thread(target=writer, args=(1, sites[::-1], T0 + 0.5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        n = stores[0]._q("SELECT COUNT(*), COUNT(DISTINCT (site, seq)) FROM events")[0]
        assert n == (40 * 30, 40 * 30)
        live = stores[1].live_all()
        assert set(live) == set(sites)
        assert {s: v.last_seen_at for s, v in live.items()} == {
            s: T0 + 0.5 + 14 + sites[::-1].index(s) / 100 for s in sites}
        assert {v.availability for v in live.values()} == {"online"}
        assert all(stores[0].seq_gaps(s).holes == [] for s in sites)
    finally:
        for s in stores:
            s.close()


def test_the_store_survives_a_database_restart(short_tmp: Path) -> None:
    pg = LocalPostgres(short_tmp)
    pg.start()
    try:
        store = PostgresStore(pg.new_database())
        assert store.record_event(_event("xa", 1), b"{}") is True
        pg.stop()
        with pytest.raises(Exception):  # noqa: B017 - any error: the connection is gone
            store.record_event(_event("xa", 2), b"{}")
        pg.start()
        assert store.record_event(_event("xa", 2), b"{}") is True
        assert store.record_event(_event("xa", 1), b"{}") is False
        assert [e.seq for e in store.events("xa")] == [1, 2]
        store.close()
    finally:
        pg.stop()


def test_a_password_never_reaches_a_message_in_either_place_of_a_url() -> None:
    from district.store.postgres import redacted

    assert redacted("mqtt://console:s3cret@127.0.0.1:1883") == "mqtt://console:***@127.0.0.1:1883"
    assert "s3cret" not in redacted("postgresql://db.local/diemcau?sslmode=require&password=s3cret")
    assert redacted("postgresql://db.local/diemcau") == "postgresql://db.local/diemcau"


def test_the_batch_s_look_at_the_live_rows_is_never_a_prepared_statement(
        postgres: LocalPostgres) -> None:
    """The query that reads the held live rows of a batch's rooms is planned for its rooms
    every time: once prepared (psycopg prepares a query at its fifth run), the server's
    generic plan made it 10 times slower, a quarter of a storm batch's time. The inserts may
    be prepared (their plans do not depend on the arrays' contents)."""
    from district.model import Incoming

    url = postgres.new_database()
    store = PostgresStore(url)
    try:
        for i in range(8):
            raw = b'{"api": "2.0", "power": "on", "n": %d}' % i
            with store.transaction():
                store.record_batch([Incoming("state", f"xa-{k}", T0 + i, raw,
                                             {"api": "2.0", "power": "on", "n": i})
                                    for k in range(3)])
        prepared = [r[0] for r in store._q("SELECT statement FROM pg_prepared_statements")]
        assert any("INSERT INTO snapshots" in s for s in prepared), \
            "psycopg prepares what runs often (else this test shows nothing)"
        assert not any("FROM live" in s and "ANY" in s for s in prepared), prepared
        assert store.live("xa-1").state == {"api": "2.0", "power": "on", "n": 7}
    finally:
        store.close()

"""The recorder against a real Mosquitto (the project's local config) and scripted v2 rooms:
every event once (replays, a recorder restart, a broker restart), gaps, changes only,
bad payloads kept aside, schedules published and applied, commands and their replies."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from broker.local import LocalBroker
from district.recorder import Recorder
from tests.district.helpers import ACTOR, T0, rig


def _seqs(store, site):  # type: ignore[no-untyped-def]
    return [e.seq for e in store.events(site)]


def _count(rig_, site: str) -> int:  # type: ignore[no-untyped-def]
    return int(rig_.store._q("SELECT COUNT(*) FROM events WHERE site = ?", (site,))[0][0])


def test_events_stored_once_through_replays_and_restarts(broker: LocalBroker,
                                                         tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-a"]) as c:
        r = c.online("xa-a", T0)
        for i in range(5):
            c.send("xa-a", "check_in", {"kind": "test"}, at=T0 + i)
        # The outbox lost its PUBACKs: everything from seq 2 comes again, marked late.
        assert r.replay(2, T0 + 10) == 4
        c.send("xa-a", "check_in", {"kind": "marker"}, at=T0 + 11)
        assert _seqs(c.store, "xa-a") == [1, 2, 3, 4, 5, 6]
        assert not any(e.late for e in c.store.events("xa-a")), "the live copy is kept"

        # The console restarts: what the room sent meanwhile waits in its session.
        c.stop()
        for i in range(3):
            r.event("check_in", {"kind": "away"}, ts=T0 + 20 + i)
        rec = c.start()
        c.wait_seq("xa-a", 9)
        assert rec.session_present is True
        assert _seqs(c.store, "xa-a") == list(range(1, 10))

        # The broker restarts (persistence kept): the room's events meanwhile go out late.
        broker.stop()
        c.wait(lambda: not c.recorder.connected.is_set(), "console sees the broker gone")
        with r._cv:
            assert r._cv.wait_for(lambda: not r.connected, 10)
        r.event("check_in", {"kind": "during-outage"}, ts=T0 + 30)
        r.event("shutdown_refused", {"source": "button", "kind": "test", "title": "x"},
                ts=T0 + 31)
        broker.start()
        with r._cv:
            assert r._cv.wait_for(lambda: r.connected, 30), "room did not reconnect"
        assert c.recorder.connected.wait(40), "console did not reconnect"
        c.clock.set(T0 + 40)
        sent = r.flush(T0 + 40)
        assert [e["seq"] for e in sent] == [10, 11]
        r.replay(9, T0 + 41)  # and once more, duplicates
        c.send("xa-a", "check_in", {"kind": "marker"}, at=T0 + 42)
        assert _seqs(c.store, "xa-a") == list(range(1, 13))
        assert _count(c, "xa-a") == 12
        late = {e.seq for e in c.store.events("xa-a") if e.late}
        assert late == {10, 11}
        ev10 = next(e for e in c.store.events("xa-a") if e.seq == 10)
        assert (ev10.ts, ev10.first_due, ev10.received_at) == (T0 + 30, T0 + 30, T0 + 40)


def test_first_connect_is_clean_then_the_session_persists(broker: LocalBroker,
                                                           tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-a"]) as c:
        assert c.recorder.session_present is False
        assert c.store.meta_get("mqtt_session:diemcau-console-test") == "1"
        c.restart()
        assert c.recorder.session_present is True


def test_gaps_holes_and_tail(broker: LocalBroker, tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-g"]) as c:
        r = c.online("xa-g", T0)
        c.send("xa-g", "check_in", {}, at=T0 + 1)
        c.send("xa-g", "check_in", {}, at=T0 + 2)
        r.seq += 2  # seqs 3 and 4 were never sent (lost on the room's side)
        c.send("xa-g", "check_in", {}, at=T0 + 3)
        r.seq += 2  # 6 and 7 recorded by the room, still in its outbox
        r.publish_state(T0 + 4, last_seq=7)
        c.wait(lambda: (c.store.live("xa-g").state or {}).get("last_seq") == 7, "state")
        g = c.console.gaps("xa-g")
        assert (g.first_held, g.last_held, g.held, g.last_seq) == (1, 5, 3, 7)
        assert g.holes == [(3, 4)] and g.tail == (6, 7) and g.missing == 4
        assert c.console.room("xa-g").missing_events == 4
        # The same count for every room at once (one query, what the dashboard reads).
        assert [v.missing_events for v in c.console.rooms()] == [4]
        assert [v.missing_events for v in c.console.rooms(["xa-g"])] == [4]
        assert c.console.all_gaps() == {"xa-g": g}


def test_changes_only_and_bad_payloads_kept_aside(broker: LocalBroker, tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-b"]) as c:
        r = c.online("xa-b", T0)
        r.publish_state(T0 + 1, power="on")
        r.publish_info(T0 + 1)
        r.publish_host(T0 + 1)
        c.wait(lambda: c.store.live("xa-b").host is not None, "host")
        # A console restart gets nothing new: retained messages are not sent again to an
        # existing subscription, and one seen again would not be a change.
        c.restart()
        r._send(f"{r.base}/events", b"{not json")
        r._send(f"{r.base}/events", json.dumps({"kind": "x", "data": {}}).encode())
        r._send(f"{r.base}/availability", b"maybe")
        c.send("xa-b", "check_in", {}, at=T0 + 5)
        snaps = c.store._q("SELECT kind, COUNT(*) FROM snapshots WHERE site = 'xa-b' "
                           "GROUP BY kind ORDER BY kind")
        assert snaps == [("host", 1), ("info", 1), ("state", 1)]
        assert [a.value for a in c.store.availability_history("xa-b")] == ["online"]
        problems = [p for _s, _t, _at, p in c.store.rejected()]
        assert len(problems) == 3
        assert any("not JSON" in p for p in problems)
        assert any("seq" in p for p in problems)
        assert any("online or offline" in p for p in problems)
        assert _seqs(c.store, "xa-b") == [1]


def test_availability_changes_carry_the_console_receive_time(broker: LocalBroker,
                                                              tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-v"]) as c:
        r = c.online("xa-v", T0 + 5)
        c.clock.set(T0 + 100)
        r.drop()  # the broker publishes the last will
        c.wait_availability("xa-v", "offline")
        hist = c.store.availability_history("xa-v")
        assert [(h.value, h.received_at) for h in hist] == [("online", T0 + 5),
                                                             ("offline", T0 + 100)]
        c.online("xa-v", T0 + 200)
        r.stop_clean()
        c.wait(lambda: len(c.store.availability_history("xa-v")) == 4, "clean stop")
        view = {v.site: v for v in c.console.rooms()}
        assert view["xa-v"].availability == "offline"


def test_never_connected_room_in_the_roster(broker: LocalBroker, tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-n", "xa-m"]) as c:
        c.online("xa-m", T0)
        view = {v.site: v for v in c.console.rooms()}
        assert view["xa-n"].availability == "never_connected"
        assert view["xa-m"].availability == "online"


def test_schedule_published_applied_and_completed(broker: LocalBroker, tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-s", "xa-t"]) as c:
        ra = c.online("xa-s", T0)
        rb = c.online("xa-t", T0)
        w = c.console.create_window(ACTOR, kind="test", title="Kiểm tra kết nối",
                                    start=T0 + 3600, end=T0 + 7200, rooms="all")
        sched = ra.wait_schedules(1)[0]
        rb.wait_schedules(1)
        body = json.loads(sched)
        assert body["site"] == "xa-s" and body["windows"][0]["id"] == w.id
        assert body["windows"][0]["start"].endswith("Z") and "completed" not in body["windows"][0]
        ours = c.store.latest_schedule("xa-s")
        assert ours is not None and ours.payload == sched
        assert ours.digest == hashlib.sha256(sched).hexdigest()[:16]
        c.wait(lambda: c.console.schedule_status("xa-s") == "applied", "applied")
        assert sched.decode().find(", ") == -1, "compact JSON"

        c.clock.set(T0 + 7300)
        c.console.complete_window(ACTOR, w.id)
        cmds = ra.wait_commands(1)
        assert cmds[0]["name"] == "complete_window" and cmds[0]["args"] == {"window_id": w.id}
        assert cmds[0]["sender"] == "console:hung"
        sched2 = json.loads(ra.wait_schedules(2)[1])
        assert sched2["windows"][0]["completed"]["by"] == "console:hung"
        c.wait(lambda: all(x.status == "accepted" for x in c.console.commands(window_id=w.id)),
               "replies")
        c.wait(lambda: c.console.schedule_status("xa-s") == "applied", "applied again")
        # Completing again changes nothing.
        assert c.console.complete_window(ACTOR, w.id).completed_at == T0 + 7300
        assert len(c.console.commands(window_id=w.id)) == 2


def test_command_without_answer_and_queued_while_the_console_is_away(
        broker: LocalBroker, tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-c", "xa-d"]) as c:
        c.online("xa-c", T0)
        c.stop()
        rows = c.console.operator_check(ACTOR, "xa-c,xa-d", timeout_s=60)
        assert [x.status for x in rows] == ["queued", "queued"]
        c.start()
        ra = c.rooms["xa-c"]
        ra.wait_commands(1)
        c.wait(lambda: c.console.command(rows[0].id).status == "accepted", "accepted")
        c.wait(lambda: c.console.command(rows[1].id).status == "sent", "sent")
        assert c.console.command(rows[1].id).reply is None  # xa-d never connected


def test_schedule_sent_again_after_the_broker_lost_everything(tmp_path: Path) -> None:
    b = LocalBroker(tmp_path / "b", persistence=False)
    b.start()
    try:
        with rig(b, tmp_path, ["xa-p"]) as c:
            c.console.create_window(ACTOR, kind="session", title="Họp", start=T0 + 3600,
                                    end=T0 + 7200, rooms=["xa-p"])
            c.wait(lambda: c.console.schedule_status("xa-p") == "published", "published")
            first = c.store.latest_schedule("xa-p")
            b.stop()
            c.wait(lambda: not c.recorder.connected.is_set(), "down")
            b.start()
            assert c.recorder.connected.wait(40)
            assert c.recorder.session_present is False
            r = c.room("xa-p")
            r.connect()
            got = r.wait_schedules(1)
            assert got[0] == first.payload, "the same bytes, so the same digest"
    finally:
        b.stop()


def test_recorder_client_id_is_fixed(broker: LocalBroker, tmp_path: Path) -> None:
    with rig(broker, tmp_path, []) as c:
        assert isinstance(c.recorder, Recorder)
        assert c.recorder.client.__dict__["_client_id"] == b"diemcau-console-test"


def test_stop_does_not_wait_out_a_publish_in_flight(broker: LocalBroker, tmp_path: Path) -> None:
    """A command in flight to a broker that does not answer must not hold up the stop."""
    import os
    import signal
    import time

    with rig(broker, tmp_path, ["xa-f"]) as c:
        pid = int(broker._proc.pid)  # type: ignore[union-attr]
        os.kill(pid, signal.SIGSTOP)  # the broker takes the PUBLISH but never answers
        try:
            c.console.request_state(ACTOR, ["xa-f"])
            deadline = time.monotonic() + 5
            while not c.recorder.client._out_messages:  # paho holds it until the PUBACK
                assert time.monotonic() < deadline, "the command was not published"
                time.sleep(0.01)
            t = time.monotonic()
            c.stop()
            assert time.monotonic() - t < 3
        finally:
            os.kill(pid, signal.SIGCONT)


def test_window_started_now_reaches_rooms_as_a_command_then_in_the_schedule(
        broker: LocalBroker, tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-q"]) as c:
        r = c.online("xa-q", T0)
        c.clock.set(T0 + 10)
        w = c.console.start_window_now(ACTOR, kind="session", title="Họp khẩn",
                                       duration_min=45, rooms="all")
        assert (w.start, w.end) == (T0 + 10, T0 + 10 + 45 * 60)
        cmd = r.wait_commands(1)[0]
        assert cmd["name"] == "start_window"
        assert cmd["args"] == {"kind": "session", "window_id": w.id, "title": "Họp khẩn",
                               "duration_min": 45}
        sched = json.loads(r.wait_schedules(1)[0])
        assert [x["id"] for x in sched["windows"]] == [w.id]
        assert r.arrivals == ["command", "schedule"]
        c.wait(lambda: c.console.commands(window_id=w.id)[0].status == "accepted", "reply")


def test_a_message_the_database_refuses_does_not_block_the_others(broker: LocalBroker,
                                                                   tmp_path: Path) -> None:
    with rig(broker, tmp_path, ["xa-x"]) as c:
        r = c.online("xa-x", T0)
        # Valid JSON that SQLite cannot take (a lone surrogate in a text), and a seq past
        # SQLite's integers: each kept aside, the messages around them stored.
        bad_text = {"seq": 7, "id": "p", "ts": "2026-11-18T00:00:00.000Z",
                    "kind": "check_in", "data": {"note": "\ud800"}}
        huge_seq = {**bad_text, "seq": 2**70, "data": {}}
        r._send(f"{r.base}/events", json.dumps(bad_text).encode())
        r._send(f"{r.base}/events", json.dumps(huge_seq).encode())
        c.send("xa-x", "check_in", {}, at=T0 + 1)
        assert _seqs(c.store, "xa-x") == [1]
        problems = [p for _s, _t, _at, p in c.store.rejected()]
        assert len(problems) == 2
        assert any(p.startswith("could not be stored") for p in problems)
        assert any(p.startswith("seq:") for p in problems)
        c.restart()  # nothing left unacknowledged: nothing comes again
        c.send("xa-x", "check_in", {}, at=T0 + 2)
        assert _seqs(c.store, "xa-x") == [1, 2]
        assert len(c.store.rejected()) == 2


def test_the_recorder_stores_while_the_console_s_connection_is_busy(broker: LocalBroker,
                                                                   tmp_path: Path) -> None:
    """The writer stores through a connection of its own: a long query on the console's
    connection (the dashboard, the dispatcher reading its queue) holds no room message back."""
    with rig(broker, tmp_path, ["xa-b"]) as c:
        r = c.online("xa-b", T0)
        reader = c.store.second_connection()
        try:
            with c.store._lock:   # what a long query on the console's connection holds
                env = r.event("check_in", {}, ts=T0 + 1)
                c.wait(lambda: env["seq"] in _seqs(reader, "xa-b"),
                       "stored while the console's connection was busy")
        finally:
            reader.close()

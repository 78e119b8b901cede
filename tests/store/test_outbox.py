"""The disk outbox: order, durability across SIGKILL, bounds, threads, corruption."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.outbox import DROPPED, RESET, Outbox, Record, iso_ms

T0 = 1_760_000_000.0  # 2025-10-09, a plausible time
ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_append_pending_ack_in_order(tmp_path: Path, clock: FakeClock) -> None:
    with Outbox(tmp_path / "o.db", clock=clock) as box:
        assert box.next_seq() == 1
        recs = [box.append("ev", {"n": i}) for i in range(5)]
        assert [r.seq for r in recs] == [1, 2, 3, 4, 5]
        assert len({r.id for r in recs}) == 5
        assert box.pending() == recs
        assert box.pending(limit=2) == recs[:2]
        box.ack(2)
        box.ack(2)  # idempotent
        box.ack(999)  # unknown: fine
        assert [r.seq for r in box.pending()] == [1, 3, 4, 5]
        st = box.stats()
        assert st.pending == 4 and st.durable and st.bytes_on_disk > 0 and st.next_seq == 6


def test_record_json_shape(tmp_path: Path, clock: FakeClock) -> None:
    clock.t = 1_760_000_000.1234
    with Outbox(tmp_path / "o.db", clock=clock) as box:
        rec = box.append("lock_refused", {"source": "button", "tên": "Tân Đoàn"})
    payload = rec.to_json()
    assert b" " not in payload.replace("Tân Đoàn".encode(), b"")
    obj = json.loads(payload)
    assert list(obj) == ["seq", "id", "ts", "kind", "clock_trusted", "data"]
    assert obj["clock_trusted"] is True   # no window: none named, none null
    assert obj["ts"] == "2025-10-09T08:53:20.123Z"
    assert obj["data"] == {"source": "button", "tên": "Tân Đoàn"}
    assert len(obj["id"]) == 32 and int(obj["id"], 16) >= 0
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"


def test_record_is_frozen_and_data_copied(tmp_path: Path, clock: FakeClock) -> None:
    data = {"a": [1]}
    with Outbox(tmp_path / "o.db", clock=clock) as box:
        rec = box.append("x", data)
        data["a"].append(2)
        with pytest.raises(AttributeError):
            rec.seq = 5  # type: ignore[misc]
        assert box.pending()[0].data == {"a": [1]}


@pytest.mark.parametrize("kind,data", [("", {}), ("x", {"v": float("nan")}),
                                       ("x", {"v": object()}), ("x", [1])])
def test_bad_input_changes_nothing(tmp_path: Path, clock: FakeClock, kind: str,
                                   data: object) -> None:
    with Outbox(tmp_path / "o.db", clock=clock) as box:
        with pytest.raises(ValueError):
            box.append(kind, data)  # type: ignore[arg-type]
        assert box.pending() == [] and box.next_seq() == 1


def test_seq_continues_after_everything_acked(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path, clock=clock)
    for i in range(3):
        box.ack(box.append("ev", {"i": i}).seq)
    assert box.pending() == []
    box.close()
    box = Outbox(path, clock=clock)
    assert box.next_seq() == 4
    assert box.append("ev", {}).seq == 4
    box.close()


def test_seq_continues_when_database_deleted_by_hand(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock) as box:
        for _ in range(3):
            box.append("ev", {})
    for p in tmp_path.glob("o.db*"):
        if not p.name.endswith(".seqmark"):
            p.unlink()
    with Outbox(path, clock=clock) as box:
        (reset,) = box.pending()
        assert reset.kind == RESET and reset.data["reason"] == "behind" and reset.seq > 3
        assert box.append("ev", {}).seq == reset.seq + 1


def test_use_after_close_raises(tmp_path: Path, clock: FakeClock) -> None:
    box = Outbox(tmp_path / "o.db", clock=clock)
    box.close()
    box.close()
    with pytest.raises(RuntimeError):
        box.append("x", {})


CHILD = """
import os, signal, sys
from pathlib import Path
from agent.outbox import Outbox
box = Outbox(Path(sys.argv[1]))
n = int(sys.argv[2])
for i in range(n):
    rec = box.append("ev", {"i": i})
if sys.argv[3] == "self":
    os.kill(os.getpid(), signal.SIGKILL)
print(rec.seq, rec.id, flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("who", ["self", "parent"])
def test_append_survives_sigkill(tmp_path: Path, who: str) -> None:
    path = tmp_path / "o.db"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), "20", who],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    if who == "parent":
        line = proc.stdout.readline().decode().split()
        os.kill(proc.pid, signal.SIGKILL)  # right after append returned
        assert int(line[0]) == 20
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "o.db-wal").exists()  # nothing checkpointed it on a clean close
    with Outbox(path) as box:
        recs = box.pending()
        assert [r.seq for r in recs] == list(range(1, 21))
        assert recs[-1].data == {"i": 19}
        assert box.next_seq() == 21


def test_size_bound_one_notice_per_drop(tmp_path: Path, clock: FakeClock) -> None:
    with Outbox(tmp_path / "o.db", max_events=10, clock=clock) as box:
        for i in range(10):
            box.append("ev", {"i": i})
        assert box.stats().pending == 10
        assert not [r for r in box.pending() if r.kind == DROPPED]
        box.append("ev", {"i": 10})  # seq 11: over the bound
        recs = box.pending()
        notices = [r for r in recs if r.kind == DROPPED]
        assert len(notices) == 1
        assert notices[0].data == {"count": 2, "first_seq": 1, "last_seq": 2, "reason": "size"}
        assert notices[0].seq == 12 and recs[-1] == notices[0]
        assert [r.seq for r in recs] == [*range(3, 12), 12]
        assert len(recs) <= 10


def test_size_bound_folds_older_notices(tmp_path: Path, clock: FakeClock) -> None:
    with Outbox(tmp_path / "o.db", max_events=5, clock=clock) as box:
        for i in range(40):
            box.append("ev", {"i": i})
            assert box.stats().pending <= 5
        recs = box.pending()
        notices = [r for r in recs if r.kind == DROPPED]
        assert len(notices) == 1  # older notices were folded into the newest
        (notice,) = notices
        kept = [r for r in recs if r.kind != DROPPED]
        assert notice.data["count"] + len(kept) == 40  # every event still there or counted
        assert notice.data["first_seq"] == 1
        # every seq below the notice is either still pending or inside its range
        pending = {r.seq for r in recs}
        assert all(s in pending or s <= notice.data["last_seq"] for s in range(1, notice.seq))


def test_size_drops_are_batched(tmp_path: Path, clock: FakeClock) -> None:
    with Outbox(tmp_path / "o.db", max_events=200, clock=clock) as box:
        for i in range(300):
            box.append("ev", {"i": i})
        notices = [r for r in box.pending() if r.kind == DROPPED]
        assert len(notices) == 1
        assert box.stats().pending <= 200


def test_age_bound(tmp_path: Path, clock: FakeClock) -> None:
    day = 86400.0
    with Outbox(tmp_path / "o.db", max_age_s=14 * day, clock=clock) as box:
        for i in range(5):  # seq 1..5 on day 0..4
            clock.t = T0 + i * day
            box.append("ev", {"i": i})
        clock.t = T0 + 14 * day + 1  # seq 1 is just over 14 days old: within the 1 % grace
        box.append("ev", {"i": 5})
        assert not [r for r in box.pending() if r.kind == DROPPED]
        clock.t = T0 + 16.5 * day  # seq 1..3 are over 14 days old
        box.append("ev", {"i": 6})
        recs = box.pending()
        notices = [r for r in recs if r.kind == DROPPED]
        assert [n.data for n in notices] == [
            {"count": 3, "first_seq": 1, "last_seq": 3, "reason": "age"}]
        assert [r.seq for r in recs] == [4, 5, 6, 7, 8]
        assert box.stats().oldest_age_s == pytest.approx(16.5 * day - 3 * day)


def test_age_bound_applied_on_open(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, max_age_s=100, clock=clock) as box:
        box.append("ev", {})
        box.append("ev", {})
    clock.t += 1000
    with Outbox(path, max_age_s=100, clock=clock) as box:
        recs = box.pending()
        assert [(r.kind, r.data) for r in recs] == [
            (DROPPED, {"count": 2, "first_seq": 1, "last_seq": 2, "reason": "age"})]
        assert recs[0].seq == 3


def test_age_ignores_implausible_clock(tmp_path: Path, clock: FakeClock) -> None:
    """Records stamped 1970 (no saved time at boot) are not "55 years old" once synced."""
    clock.t = 100.0
    with Outbox(tmp_path / "o.db", max_age_s=3600, clock=clock) as box:
        box.append("ev", {"early": True})
        clock.t = T0
        box.append("ev", {})
        assert [r.kind for r in box.pending()] == ["ev", "ev"]


def test_concurrent_ack_while_appending(tmp_path: Path, clock: FakeClock) -> None:
    n = 300
    acked: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()
    with Outbox(tmp_path / "o.db", clock=clock) as box:

        def acker() -> None:
            try:
                while not (done.is_set() and not box.pending()):
                    for rec in box.pending(limit=10):
                        box.ack(rec.seq)
                        acked.append(rec.seq)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        t = threading.Thread(target=acker)
        t.start()
        seqs = [box.append("ev", {"i": i}).seq for i in range(n)]
        done.set()
        t.join(timeout=15)
        assert not t.is_alive() and not errors
        assert seqs == list(range(1, n + 1))
        assert sorted(set(acked)) == seqs
        assert box.pending() == [] and box.next_seq() == n + 1


def test_corrupt_file_is_moved_aside(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock) as box:
        for _ in range(5):
            box.append("ev", {})
    path.write_bytes(b"this is not sqlite at all " * 400)
    with Outbox(path, clock=clock) as box:
        recs = box.pending()
        assert len(recs) == 1 and recs[0].kind == RESET
        assert recs[0].seq > 5  # numbers are never reused
        assert recs[0].data["reason"] == "corrupt"
        assert recs[0].data["moved_to"].startswith("o.db.corrupt-")
        assert (tmp_path / recs[0].data["moved_to"]).exists()
        assert box.append("ev", {}).seq == recs[0].seq + 1
        assert box.stats().durable


def test_corrupt_page_is_detected(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock) as box:
        for i in range(200):
            box.append("ev", {"pad": "x" * 200, "i": i})
    raw = bytearray(path.read_bytes())
    assert len(raw) > 4096 * 4
    raw[4096 * 2:4096 * 3] = b"\xff" * 4096  # smash a b-tree page
    path.write_bytes(bytes(raw))
    with Outbox(path, clock=clock) as box:
        assert box.pending()[-1].kind == RESET
        assert box.next_seq() > 200


def test_unusable_location_falls_back_to_memory(tmp_path: Path, clock: FakeClock) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with Outbox(blocker / "sub" / "o.db", clock=clock) as box:  # parent is a file
        recs = box.pending()
        assert [r.kind for r in recs] == [RESET]
        assert recs[0].data["durable"] is False
        rec = box.append("ev", {})
        assert box.pending()[-1] == rec
        assert box.stats().durable is False


def test_record_roundtrip_type(tmp_path: Path, clock: FakeClock) -> None:
    with Outbox(tmp_path / "o.db", clock=clock) as box:
        rec = box.append("ev", {"nested": {"a": [1, 2, None, True]}})
        (again,) = box.pending()
        assert isinstance(again, Record) and again == rec


class FlakyConnection:
    """Wraps the outbox's connection and fails the next ``execute`` with ``error``."""

    def __init__(self, real: sqlite3.Connection, error: sqlite3.DatabaseError) -> None:
        self.real = real
        self.error: sqlite3.DatabaseError | None = error

    def execute(self, *args: object) -> sqlite3.Cursor:
        if self.error is not None:
            err, self.error = self.error, None
            raise err
        return self.real.execute(*args)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_corruption_found_at_run_time_resets_and_keeps_the_event(
        tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock) as box:
        box.append("ev", {"before": True})
        malformed = sqlite3.DatabaseError("database disk image is malformed")
        box._db = FlakyConnection(box._db, malformed)  # type: ignore[assignment]
        rec = box.append("ev", {"after": True})  # no exception reaches the agent
        kinds = [(r.kind, r.seq) for r in box.pending()]
        assert kinds == [(RESET, 2), ("ev", 3)] and rec.seq == 3
        assert list(tmp_path.glob("o.db.corrupt-*"))


def test_io_error_at_run_time_reopens(tmp_path: Path, clock: FakeClock) -> None:
    with Outbox(tmp_path / "o.db", clock=clock) as box:
        box.append("ev", {})
        box._db = FlakyConnection(box._db, sqlite3.OperationalError("disk I/O error"))  # type: ignore[assignment]
        assert box.append("ev", {}).seq == 2
        assert [r.seq for r in box.pending()] == [1, 2]
        assert box.stats().durable


def test_append_many_is_one_ordered_durable_batch(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    recs = box.append_many([("a", {"n": 1}), ("b", {"n": 2}), ("c", {"n": 3})])
    assert [r.seq for r in recs] == [1, 2, 3] and [r.kind for r in recs] == ["a", "b", "c"]
    box.ack_many([1, 3])
    assert [r.seq for r in box.pending()] == [2]
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert [r.kind for r in again.pending()] == ["b"] and again.next_seq() == 4
    again.close()

"""The ACL matrix, cell by cell, against the real district broker.

Rows are roles: ``room`` (room-a, over TLS with certificate and password), ``console``,
``viewer``, ``province`` and ``province_cmd`` (province allowed to command), all staff on the
loopback listener. Columns are topic classes: ``self/<kind>`` is room-a's own topic,
``other/<kind>`` room-b's, ``district`` the console's own space. Each cell is checked by doing it:

* publish: the role publishes at QoS 1; a privileged spy subscribed to ``diemcau/v2/#`` must
  receive it iff allowed;
* subscribe: the role subscribes to the exact topic and a client allowed to publish there does;
  the role must receive it iff allowed (Mosquitto 2.0 grants the SUBACK either way and applies
  the read ACL to each message).

"Never received" is proven with a sentinel: after the cell's message is acknowledged, a sentinel
goes to a topic the receiver may read, and we wait for it. Mosquitto queues a message for its
subscribers before it sends the PUBACK, and delivers each subscriber's queue in order, so once
the sentinel is in, the cell's message would have been in before it. The sentinel comes from
the same client when that client may publish anywhere; roles that may publish nothing (viewer,
province) have their sentinel sent by the console after their PUBACK.

Contract 2.0 (``diemcau/v2``, 17 topic classes: 5 roles x 17 x publish/subscribe + the wildcard
check = 171 cells); while rooms are upgraded, the 1.0 grants under ``diemcau/v1`` stand too
(:func:`test_legacy_prefix`, by the same method).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from broker.local import BrokerProcess
from tests.broker.conftest import District
from tests.broker.helpers import Client, token

P = "diemcau/v2"
V1 = "diemcau/v1"
KINDS = ("availability", "info", "state", "host", "events", "replies", "commands", "schedule")
ROOM_KINDS = ("availability", "info", "state", "host", "events", "replies")
TOPICS: dict[str, str] = {
    **{f"self/{k}": f"{P}/rooms/room-a/{k}" for k in KINDS},
    **{f"other/{k}": f"{P}/rooms/room-b/{k}" for k in KINDS},
    "district": f"{P}/district/test",
}
ROLES = ("room", "console", "viewer", "province", "province_cmd")

# The contract, written out by hand (not derived from broker/acl.py).
MAY_PUBLISH: dict[str, set[str]] = {
    "room": {f"self/{k}" for k in ROOM_KINDS},
    "console": {"self/commands", "self/schedule", "other/commands", "other/schedule",
                "district"},
    "viewer": set(),
    "province": set(),
    "province_cmd": {"self/commands", "other/commands"},
}
MAY_READ: dict[str, set[str]] = {
    "room": {"self/commands", "self/schedule"},
    "console": set(TOPICS),
    "viewer": set(TOPICS),
    "province": {f"{who}/{k}" for who in ("self", "other")
                 for k in ("availability", "info", "state", "host", "events")},
    "province_cmd": {f"{who}/{k}" for who in ("self", "other")
                     for k in ("availability", "info", "state", "host", "events", "replies")},
}


@dataclass
class Clients:
    by_role: dict[str, Client]
    room_a: Client
    room_b: Client
    console: Client
    spy: Client

    def writer_of(self, cls: str) -> Client:
        """A client allowed to publish to topic class ``cls``."""
        kind = cls.split("/")[-1]
        if kind in ROOM_KINDS:
            return self.room_a if cls.startswith("self/") else self.room_b
        return self.console

    def publish_sentinel(self, role: str) -> bytes:
        """After ``role``'s publish: a sentinel the spy reads (see module docstring)."""
        s = token()
        sender, topic = {
            "room": (self.room_a, f"{P}/rooms/room-a/events"),
            "province_cmd": (self.by_role["province_cmd"], f"{P}/rooms/room-b/commands"),
        }.get(role, (self.console, f"{P}/district/sentinel"))
        assert sender.publish(topic, s).value == 0
        return s

    def read_sentinel(self, role: str) -> bytes:
        """After a publish ``role`` may or may not read: a sentinel ``role`` reads."""
        s = token()
        sender, topic = {
            "room": (self.console, f"{P}/rooms/room-a/commands"),
            "province": (self.room_b, f"{P}/rooms/room-b/events"),
            "province_cmd": (self.room_b, f"{P}/rooms/room-b/events"),
        }.get(role, (self.console, f"{P}/district/sentinel"))
        assert sender.publish(topic, s).value == 0
        return s


SENTINEL_TOPICS = {
    "room": f"{P}/rooms/room-a/commands",
    "console": f"{P}/district/sentinel",
    "viewer": f"{P}/district/sentinel",
    "province": f"{P}/rooms/room-b/events",
    "province_cmd": f"{P}/rooms/room-b/events",
}


@pytest.fixture(scope="module")
def clients(district: District, district_broker: BrokerProcess) -> Iterator[Clients]:
    room_a = district.room("room-a").connect()
    room_b = district.room("room-b").connect()
    console = district.local("console").connect()
    spy = district.local("console").connect()
    by_role = {"room": room_a, "console": console,
               "viewer": district.local("viewer").connect(),
               "province": district.local("prov").connect(),
               "province_cmd": district.local("provcmd").connect()}
    spy.subscribe(f"{P}/#")
    spy.subscribe(f"{V1}/#")
    for role, topic in SENTINEL_TOPICS.items():
        by_role[role].subscribe(topic)
    cs = Clients(by_role, room_a, room_b, console, spy)
    yield cs
    for c in {id(c): c for c in [*by_role.values(), room_b, spy]}.values():
        c.close()


@pytest.mark.parametrize("cls", list(TOPICS))
@pytest.mark.parametrize("role", ROLES)
def test_publish(clients: Clients, role: str, cls: str) -> None:
    allowed = cls in MAY_PUBLISH[role]
    msg = token()
    rc = clients.by_role[role].publish(TOPICS[cls], msg)
    sentinel = clients.publish_sentinel(role)
    assert clients.spy.wait_message(sentinel) is not None, "sentinel never arrived"
    got = clients.spy.received(msg, TOPICS[cls]) is not None
    assert got == allowed, f"{role} publish to {cls}: {'delivered' if got else 'dropped'}"
    assert rc.is_failure != allowed, f"PUBACK {rc}"  # v5 says why: 135 Not authorized


@pytest.mark.parametrize("cls", list(TOPICS))
@pytest.mark.parametrize("role", ROLES)
def test_subscribe(clients: Clients, role: str, cls: str) -> None:
    allowed = cls in MAY_READ[role]
    me = clients.by_role[role]
    me.subscribe(TOPICS[cls])
    msg = token()
    assert clients.writer_of(cls).publish(TOPICS[cls], msg).value == 0
    sentinel = clients.read_sentinel(role)
    assert me.wait_message(sentinel) is not None, "sentinel never arrived"
    got = me.received(msg, TOPICS[cls]) is not None
    assert got == allowed, f"{role} reading {cls}: {'received' if got else 'not received'}"


def test_room_wildcard_sees_only_its_own_inbox(district: District, clients: Clients) -> None:
    """A room subscribing to everything still gets only its own commands and schedule.

    The room's own session is used: the broker takes the client id from the user name, so a
    second connection as room-a would replace the first, not sit beside it."""
    snoop = clients.room_a
    try:
        snoop.subscribe(f"{P}/#")
        snoop.subscribe("#")
        sent = {cls: token() for cls in TOPICS}
        for cls, msg in sent.items():
            assert clients.writer_of(cls).publish(TOPICS[cls], msg).value == 0
        sentinel = token()
        assert clients.console.publish(f"{P}/rooms/room-a/commands", sentinel).value == 0
        assert snoop.wait_message(sentinel) is not None
        got = {cls for cls, msg in sent.items() if snoop.received(msg) is not None}
        assert got == {"self/commands", "self/schedule"}
    finally:
        snoop.c.unsubscribe([f"{P}/#", "#"])


# The 1.0 grants kept for rooms not yet upgraded: (who, action, topic, allowed).
LEGACY_CELLS = [
    ("room", "publish", f"{V1}/rooms/room-a/state", True),
    ("room", "publish", f"{V1}/rooms/room-b/state", False),
    ("room", "publish", f"{V1}/rooms/room-a/info", False),     # 1.0 has no info topic
    ("room", "read", f"{V1}/rooms/room-a/commands", True),
    ("room", "read", f"{V1}/rooms/room-b/commands", False),
    ("province", "read", f"{V1}/rooms/room-b/state", True),
    ("province", "read", f"{V1}/rooms/room-b/replies", False),
    ("viewer", "read", f"{V1}/rooms/room-a/events", True),
]


@pytest.mark.parametrize(("role", "action", "topic", "allowed"), LEGACY_CELLS)
def test_legacy_prefix(clients: Clients, role: str, action: str, topic: str,
                       allowed: bool) -> None:
    msg = token()
    if action == "publish":
        rc = clients.by_role[role].publish(topic, msg)
        sentinel = clients.publish_sentinel(role)
        assert clients.spy.wait_message(sentinel) is not None
        assert (clients.spy.received(msg, topic) is not None) == allowed
        assert rc.is_failure != allowed
        return
    me = clients.by_role[role]
    me.subscribe(topic)
    writer = clients.console if topic.endswith(("commands", "schedule")) else (
        clients.room_a if "/room-a/" in topic else clients.room_b)
    assert writer.publish(topic, msg).value == 0
    sentinel = clients.read_sentinel(role)
    assert me.wait_message(sentinel) is not None
    assert (me.received(msg, topic) is not None) == allowed

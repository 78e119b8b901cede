"""The link-bytes bench, tiny: every peer on both transports runs its day end to end on a real
Mosquitto, and every direction it counts carries bytes. No byte or time figure is asserted
here; the figures are ``bench/link_bytes.py``'s to print (``bench/README.md``)."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench.link_bytes import HDR, Options, Proxy, Result, report, run_bench
from broker.local import LocalBroker

# A relay-only room (no serial devices to boot) with a short button hold: the same day, faster.
ROOM = """\
site: {id: xa-thu, name: "Xã Thử"}
broker: {host: 127.0.0.1, port: 1883}
devices:
  codec: {role: codec, relay: {pin: 26}, order: 1, on_delay_s: 0}
  camera: {role: camera, relay: {pin: 20}, order: 2, on_delay_s: 0}
  amplifier: {role: amplifier, relay: {pin: 21}, order: 3, on_delay_s: 0}
status_led: {kind: rgb, pins: {red: 17, green: 27, blue: 22}}
button: {pin: 16, hold_s: 0.5, bounce_s: 0}
"""


def nonzero(r: Result) -> list[str]:
    """The counted directions of one run that carry no byte."""
    counted = {"connect up": r.connect[0], "connect down": r.connect[1],
               "scripted up": r.scripted[0], "scripted down": r.scripted[1],
               "day up": r.up, "day down": r.down}
    return [f"{r.run.label} {what}" for what, n in counted.items() if n <= 0]


def test_every_peer_and_transport_runs_its_day_and_counts_both_ways(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "room.yaml"
    site.write_text(ROOM)
    results = run_bench(Options(real_s=1.0, site=site))
    assert sorted(r.run.label for r in results) == sorted(
        f"{p} ({t})" for p in ("ours", "mqtt-io", "naive") for t in ("plain", "TLS"))
    assert [bad for r in results for bad in nonzero(r)] == []
    for r in results:
        # The scripted day did its steps: district messages went down, the peer answered.
        assert r.msgs_down and r.msgs_up, r.run.label
        assert any(k.name == "keepalive" and k.up for k in r.kinds), r.run.label
    capsys.readouterr()
    report(results)
    text = capsys.readouterr().out
    assert "ratio to ours" in text and "goal: ours <= 300 KB/day plain" in text
    assert "goal: ours <= 400 KB/day TLS" in text


def test_the_proxy_model_counts_both_ways_with_its_headers(broker: LocalBroker) -> None:
    """Without a capture the proxy's model counts: every chunk read is its payload plus a
    52-byte header one way and a 52-byte ACK the other way."""
    proxy = Proxy()
    port = proxy.start(broker.port)
    try:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.connect("127.0.0.1", port)
        c.loop_start()
        c.publish("bench/x", b"x" * 1000, qos=1).wait_for_publish(10)
        c.disconnect()
        c.loop_stop()
    finally:
        packets = proxy.stop()
    ups = [p for p in packets if p.up]
    downs = [p for p in packets if not p.up]
    assert ups and downs
    # The 1000-byte publish went up as one chunk with its header, and was acknowledged.
    big = [p for p in ups if p.size > 1000 + HDR]
    assert len(big) == 1
    assert any(p.size == HDR and abs(p.t - big[0].t) < 0.5 for p in downs)
    assert sum(p.size for p in downs) > 0

"""The agent with RS-232 devices: emulators on pseudo-terminals, drivers opening them as they
would /dev/ttyUSB0, a real Mosquitto. Power sequencing verified over serial, health, faults,
self-help and unscheduled use."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from agent.config import parse_config
from agent.control import request
from broker.local import LocalBroker
from tests.agent.harness import SITE, running, schedule, watcher


def config(broker: LocalBroker, lead_min: float = 15) -> str:
    return f"""\
site: {{id: {SITE}, name: "Xã Thử"}}
broker: {{host: 127.0.0.1, port: {broker.port}, keepalive_s: 5}}
devices:
  codec:
    role: codec
    relay: {{pin: 26}}
    order: 1
    off_grace_s: 5
    ready_timeout_s: 10
    driver: cisco_xapi
    serial: {{url: /dev/codec, baudrate: 115200}}
    poll_s: 1
    silent_polls_for_fault: 2
    self_help: true
    simulation: {{boot_s: 0.6}}
  camera:
    role: camera
    relay: {{pin: 20}}
    order: 2
    off_grace_s: 5
    ready_timeout_s: 10
    driver: sony_visca
    serial: {{url: /dev/camera}}
    poll_s: 1
    simulation: {{boot_s: 0.3}}
  amplifier:
    role: amplifier
    relay: {{pin: 21}}
    order: 3
    off_grace_s: 5
    ready_timeout_s: 10
    driver: extron_sis
    serial: {{url: /dev/amplifier}}
    poll_s: 1
    simulation: {{boot_s: 0.1}}
button: {{pin: 16, hold_s: 0.5, bounce_s: 0}}
timing: {{lead_min: {lead_min}, heartbeat_s: 30}}
"""


class RelayLog:
    """When the agent switched each simulated relay (monotonic time, as the emulators log)."""

    def __init__(self, agent: Any) -> None:
        self.changes: list[tuple[float, str, bool]] = []
        emulated = agent.emulated
        original = emulated.relay_changed

        def record(device: str, on: bool) -> None:
            self.changes.append((time.monotonic(), device, on))
            original(device, on)

        emulated.relay_changed = record


def test_power_sequences_verified_over_serial(broker: LocalBroker, short_tmp: Path) -> None:
    cfg = parse_config(config(broker))
    with watcher(broker) as w, running(cfg, short_tmp / "st", emulate=True) as room:
        agent = room.agent
        log = RelayLog(agent)
        emus = agent.emulated.emulators
        w.availability("online")
        sock = agent.store.socket_path
        # --- off: amplifier, camera, codec; each told to stand by and confirmed first.
        assert request(sock, "off")["ok"] is True
        w.event("power_sequence_finished", on=False, timeout=20)
        offs = [(t, d) for t, d, on in log.changes if not on]
        assert [d for _, d in offs] == ["amplifier", "camera", "codec"]
        steps = [e["data"] for e in w.events() if e["kind"] == "power_step"]
        assert [(s["device"], s["outcome"]) for s in steps] == [
            ("amplifier", "confirmed"), ("camera", "confirmed"), ("codec", "confirmed")]
        standby = {"amplifier": b"1Z", "camera": bytes.fromhex("8101040003ff"),
                   "codec": b"xCommand Standby Activate"}
        for t_off, device in offs:
            sent = [x.t for x in emus[device].log if standby[device] in x.received]
            assert sent and sent[0] < t_off, f"{device}: relay opened before its standby"
        # --- on: codec, camera, amplifier; each waits until the device answers.
        mark = len(w.events())
        assert request(sock, "on")["ok"] is True
        w.event("power_sequence_finished", on=True, timeout=20)
        ons = [(t, d) for t, d, on in log.changes if on]
        assert [d for _, d in ons] == ["codec", "camera", "amplifier"]
        boot = {"codec": 0.6, "camera": 0.3, "amplifier": 0.1}
        for (t_a, a), (t_b, _) in pairwise(ons):
            assert t_b - t_a >= boot[a], f"{a} was not given its boot time"
            answered = [x.t for x in emus[a].log if x.t > t_a and x.reply]
            assert answered and answered[0] <= t_b, f"next device before {a} answered"
        steps = [e["data"] for e in w.events()[mark:] if e["kind"] == "power_step"]
        assert all(s["outcome"] == "confirmed" for s in steps)


def test_silent_device_is_a_fault_and_recovers(broker: LocalBroker, short_tmp: Path) -> None:
    cfg = parse_config(config(broker).replace("self_help: true", "self_help: false"))
    with watcher(broker) as w, running(cfg, short_tmp / "st", emulate=True) as room:
        w.availability("online")
        w.event("device_health", device="camera", status="ok", timeout=15)
        cam = room.agent.emulated.emulators["camera"]
        cam.silent = True                  # unplugged cable: the relay is on, nothing answers
        fault = w.event("device_health", device="camera", status="fault", timeout=20)
        assert "no power or unplugged" in fault["data"]["reason"]
        w.wait("state", lambda s: s["devices"]["camera"]["health"] == "fault"
               and s["led"] == "fault")
        cam.silent = False
        w.event("device_health", device="camera", status="ok", timeout=20)


def test_usb_adapter_vanishing_and_returning(broker: LocalBroker, short_tmp: Path) -> None:
    cfg = parse_config(config(broker).replace("self_help: true", "self_help: false"))
    with watcher(broker) as w, running(cfg, short_tmp / "st", emulate=True) as room:
        w.availability("online")
        w.event("device_health", device="amplifier", status="ok", timeout=15)
        amp = room.agent.emulated.emulators["amplifier"]
        amp.unplug()
        gone = w.event("device_health", device="amplifier", status="fault", timeout=20)
        assert gone["data"]["reason"]
        amp.replug()
        back = w.wait("events", lambda e: e["kind"] == "device_health"
                      and e["data"]["device"] == "amplifier" and e["data"]["status"] == "ok"
                      and e["seq"] > gone["seq"], timeout=20)
        assert back["data"]["power"] in ("on", "standby")


def test_self_help_cycles_a_silent_codec_once_outside_windows(broker: LocalBroker,
                                                              short_tmp: Path) -> None:
    cfg = parse_config(config(broker))
    with watcher(broker) as w, running(cfg, short_tmp / "st", emulate=True) as room:
        w.availability("online")
        w.event("device_health", device="codec", status="ok", timeout=15)
        codec = room.agent.emulated.emulators["codec"]
        codec.silent = True
        cycle = w.event("self_help_power_cycle", device="codec", timeout=20)
        assert cycle["data"]["reason"]
        w.event("power_sequence_finished", on=False, reason="self_help:codec", timeout=20)
        codec.silent = False              # the cycle cured it
        w.event("power_sequence_finished", on=True, reason="self_help:codec", timeout=20)
        w.event("device_health", device="codec", status="ok", timeout=20)
        cycles = [e for e in w.events() if e["kind"] == "self_help_power_cycle"]
        assert len(cycles) == 1


def test_inside_a_window_nothing_is_cut_automatically(broker: LocalBroker,
                                                      short_tmp: Path) -> None:
    cfg = parse_config(config(broker))
    with watcher(broker) as w, running(cfg, short_tmp / "st", emulate=True) as room:
        w.availability("online")
        w.publish("schedule", schedule(5), retain=True)
        w.event("lock_engaged", window_id="t1")
        w.event("device_health", device="codec", status="ok", timeout=15)
        room.agent.emulated.emulators["codec"].silent = True
        held = w.event("self_help_withheld", device="codec", timeout=20)
        assert held["window_id"] == "t1"   # contract 2.0: in the envelope
        assert not [e for e in w.events() if e["kind"] == "self_help_power_cycle"]
        assert room.factory.pin(26).state is True           # the codec is still powered


def test_codec_in_a_call_outside_windows_is_reported(broker: LocalBroker,
                                                     short_tmp: Path) -> None:
    cfg = parse_config(config(broker))
    with watcher(broker) as w, running(cfg, short_tmp / "st", emulate=True) as room:
        w.availability("online")
        w.event("device_health", device="codec", status="ok", timeout=15)
        room.agent.emulated.emulators["codec"].start_call()
        w.event("unscheduled_use", device="codec", what="in_call", timeout=20)
        room.agent.emulated.emulators["codec"].end_call()
        ended = w.event("unscheduled_use_ended", device="codec", what="in_call", timeout=20)
        assert ended["data"]["duration_s"] >= 0


def test_answers_carry_the_step_they_answer() -> None:
    """``await_ready`` / ``send_standby`` pass the core's step number through to the
    DeviceReady / DeviceStandby they report; a caller that gives none gets step 0."""
    import queue

    from agent.config import Device
    from agent.core.events import DeviceReady, DeviceStandby
    from agent.devices import SerialDevices
    from agent.emulators import PolyEmulator

    with PolyEmulator() as emu:
        dev = Device.model_validate({
            "role": "codec", "relay": {"pin": 17}, "order": 1, "driver": "poly_group",
            "serial": {"url": "/dev/codec"}, "ready_timeout_s": 10, "off_grace_s": 10,
            "poll_s": 600, "settings": {"command_gap_s": 0, "reply_timeout_s": 0.15}})
        events: queue.Queue = queue.Queue()
        devices = SerialDevices({"codec": dev}, events.put, {"codec": True},
                                urls={"codec": emu.url})

        def answer() -> object:
            while True:
                ev = events.get(timeout=10)
                if isinstance(ev, DeviceReady | DeviceStandby):
                    return ev

        devices.start()
        try:
            devices.await_ready("codec", step=7)
            assert answer() == DeviceReady("codec", 7)
            devices.send_standby("codec", step=8)
            assert answer() == DeviceStandby("codec", 8)
            devices.await_ready("codec")
            assert answer() == DeviceReady("codec", 0)
        finally:
            devices.close()

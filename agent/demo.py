"""``diemcau-agent demo``: a local broker, a simulated room and a sample schedule on one machine.

The schedule holds a test window whose lead time begins one minute after start, so within a
minute the room powers itself up in order and locks; ``diemcau-agent off`` is then refused.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import ConfigError, load_config
from broker.local import LocalBroker, free_port


def sample_schedule(site: str, lead_min: float, now: datetime) -> dict[str, object]:
    """A test window whose lead begins in one minute and a session after it."""
    test_start = now + timedelta(minutes=lead_min + 1)
    return {
        "version": now.strftime("demo-%Y%m%dT%H%M%S"),
        "site": site,
        "windows": [
            {"id": "demo-test", "kind": "test", "title": "Kiểm tra kết nối (demo)",
             "start": test_start.isoformat(),
             "end": (test_start + timedelta(minutes=30)).isoformat()},
            {"id": "demo-session", "kind": "session", "title": "Họp trực tuyến (demo)",
             "start": (test_start + timedelta(hours=1)).isoformat(),
             "end": (test_start + timedelta(hours=3)).isoformat()},
        ],
    }


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_demo(config: Path, workdir: Path, port: int) -> int:
    from agent.cli import build_agent, serve

    try:
        cfg = load_config(config)
    except ConfigError as e:
        print("\n".join(e.problems))
        return 2
    if not _port_free(port):
        port = free_port()
    broker = LocalBroker(workdir / "broker", port=port)
    broker.start()
    topics = f"{cfg.broker.topic_prefix}/rooms/{cfg.site.id}"
    sched = sample_schedule(cfg.site.id, cfg.timing.lead_min, datetime.now(UTC))
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    pub.publish(f"{topics}/schedule", json.dumps(sched, ensure_ascii=False), qos=1,
                retain=True).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    state_dir = workdir / cfg.site.id
    print(f"""
diemcau demo — broker {broker.url}, room '{cfg.site.id}' (simulated), state in {state_dir}

Watch every topic of the room (contract 2.0: info, state, host, events, replies, ...):
  mosquitto_sub -h 127.0.0.1 -p {broker.port} -v -t '{topics}/#'
Ask the room for its status, or try to switch it off (refused once the test window locks it):
  .venv/bin/diemcau-agent status --state-dir {state_dir}
  .venv/bin/diemcau-agent off --state-dir {state_dir}
Press or hold the simulated button, or ask the centre for help; each says what the room did:
  .venv/bin/diemcau-agent press --state-dir {state_dir}
  .venv/bin/diemcau-agent help --state-dir {state_dir}
Send a command as the centre (mark the test complete, then switch off is allowed; the same id
sent again gets the same reply and does nothing):
  mosquitto_pub -h 127.0.0.1 -p {broker.port} -q 1 -t '{topics}/commands' \\
    -m '{{"id": "c1", "name": "complete_window", "args": {{"window_id": "demo-test"}}}}'
The test window's lead time starts about one minute from now. Ctrl-C stops the demo.
""", flush=True)
    agent = build_agent(cfg, True, state_dir, broker.url)
    try:
        serve(agent, True)
    finally:
        broker.stop()
    return 0

"""The per-message floor bench in small: 600 events through Mosquitto to paho alone, then to
the recorder on PostgreSQL, which must store every one of them (no timing is asserted: the
figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import mqtt_floor


def test_mqtt_floor_smoke(short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mqtt_floor.main(["--messages", "600", "--rooms", "20", "--publishers", "1",
                            "--workdir", str(short_tmp / "floor")]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert "paho alone" in lines[1] and "recorder" in lines[1], out
    assert any(ln.strip().startswith("CPU per message (us)") for ln in lines), out
    figures = json.loads(lines[-1])
    assert figures["messages"] == 600
    for who in ("paho", "recorder"):   # every message received, then every one stored
        assert figures[who]["seconds"] > 0 and figures[who]["cpu_s"] > 0, figures

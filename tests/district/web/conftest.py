"""Fixtures for the dashboard's browser test: Debian's Chromium under Playwright, the real
console process (``diemcau-district run``) on a real Mosquitto, and where screenshots go."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.local import LocalBroker, free_port
from tests.district.web.helpers import OPERATOR, VIEWER, config_text

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium: deploy/bootstrap.sh --test"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artifacts() -> Path:
    """``test-artifacts/web`` in the repository (git-ignored), for screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class ConsoleProcess:
    """``python -m district run`` with its standard error read line by line."""

    def __init__(self, config: Path) -> None:
        self.config = config
        env = {**os.environ, "PATH": f"/usr/sbin:{os.environ.get('PATH', '')}"}
        self.proc = subprocess.Popen([sys.executable, "-m", "district", "run", "--config",
                                      str(config)], stderr=subprocess.PIPE, text=True,
                                     env=env, cwd=REPO)
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            self._q.put(line)
        self._q.put(None)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """Wait for a log line containing ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no log line with {text!r}:\n{''.join(self.lines)}"
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"console exited:\n{''.join(self.lines)}"
            if text in line:
                return line

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"console did not stop on SIGTERM:\n{''.join(self.lines)}"
                                 ) from None


def _add_user(config: Path, user: tuple[str, str], role: str) -> None:
    r = subprocess.run([sys.executable, "-m", "district", "user", "add", user[0], "--role", role,
                        "--config", str(config)], input=user[1] + "\n", text=True,
                       capture_output=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def console_process(broker: LocalBroker, tmp_path: Path) -> Iterator[tuple[ConsoleProcess, str,
                                                                           Path]]:
    """The real console (recorder, dispatcher, dashboard) for rooms xa-a, xa-b, xa-c, with an
    operator and a viewer; yields ``(process, base URL, config path)``."""
    port = free_port()
    db = tmp_path / "state" / "console.db"
    extra = (f"broker: {{url: 'mqtt://127.0.0.1:{broker.port}', keepalive_s: 5}}\n"
             f"http: {{listen: '127.0.0.1:{port}'}}\n"
             "alerts: {offline_grace_s: 0, schedule_check_before_min: 30}\n")
    config = tmp_path / "console.yaml"
    config.write_text(config_text(db, ["xa-a", "xa-b", "xa-c"],
                                  {"xa-a": "Cụm Bắc", "xa-b": "Cụm Bắc", "xa-c": "Cụm Nam"},
                                  extra), encoding="utf-8")
    _add_user(config, OPERATOR, "operator")
    _add_user(config, VIEWER, "viewer")
    proc = ConsoleProcess(config)
    try:
        proc.wait_for("web dashboard on http://")
        proc.wait_for("console running")
        yield proc, f"http://127.0.0.1:{port}", config
    finally:
        if proc.proc.poll() is None:
            proc.stop()
        shutil.rmtree(tmp_path / "state", ignore_errors=True)

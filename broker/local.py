"""Run a loopback-only Mosquitto with the project's own local configuration.

Used by the simulated room (``diemcau-agent demo``), the benches and the test suite, so all three
talk to the same broker configuration a developer can read in ``broker/mosquitto/``.

Example::

    with LocalBroker(data_dir=Path("/tmp/b")) as broker:
        print(broker.url)   # mqtt://127.0.0.1:40123
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

TEMPLATE = Path(__file__).parent / "mosquitto" / "local.conf.tmpl"


class BrokerNotFound(RuntimeError):
    """The ``mosquitto`` program is not installed (``apt-get install mosquitto``)."""


class BrokerStartFailed(RuntimeError):
    """Mosquitto exited or did not accept connections in time; the message has its log."""


def find_mosquitto() -> str:
    """Path of the ``mosquitto`` binary, also looking in ``/usr/sbin`` as Debian installs it."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise BrokerNotFound("mosquitto is not installed: run deploy/bootstrap.sh "
                             "(apt-get install mosquitto mosquitto-clients)")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render_local_config(port: int, data_dir: Path, persistence: bool = True) -> str:
    """The local broker's configuration text for ``port``, keeping its files in ``data_dir``."""
    return TEMPLATE.read_text().format(
        port=port,
        data_dir=data_dir,
        persistence="true" if persistence else "false",
        user_line=f"user {getpass.getuser()}",
    )


class LocalBroker:
    """One Mosquitto process on 127.0.0.1; it can be stopped, killed and started again on the
    same port with the same persistence file, as a real district broker restarts."""

    def __init__(self, data_dir: Path, port: int | None = None, persistence: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.persistence = persistence
        self._proc: subprocess.Popen[bytes] | None = None
        self.conf_path = self.data_dir / "mosquitto.conf"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start Mosquitto and return once it accepts TCP connections."""
        binary = find_mosquitto()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(render_local_config(self.port, self.data_dir, self.persistence))
        # Its own session: a Ctrl-C meant for the demo must not stop the broker before the
        # room has said "offline".
        self._proc = subprocess.Popen([binary, "-c", str(self.conf_path)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerStartFailed(self._failure_text())
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerStartFailed(f"mosquitto did not listen on port {self.port} within {timeout}s")

    def _failure_text(self) -> str:
        proc = self._proc
        err = proc.stderr.read().decode(errors="replace") if proc and proc.stderr else ""
        log = self.data_dir / "mosquitto.log"
        if log.exists():
            err += log.read_text(errors="replace")[-2000:]
        code = proc.returncode if proc else "?"
        return f"mosquitto exited (code {code}): {err.strip()}"

    def stop(self) -> None:
        """Stop cleanly (SIGTERM), saving persistence."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a power cut would."""
        self._end(signal.SIGKILL)

    def _end(self, sig: int) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.kill(self._proc.pid, sig)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

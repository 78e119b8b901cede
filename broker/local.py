"""Run a loopback-only Mosquitto with the project's own local configuration.

Used by the simulated room (``diemcau-agent demo``), the benches and the test suite, so all three
talk to the same broker configuration a developer can read in ``broker/mosquitto/``.

For the broker tests and the province bench, :class:`LoopbackSite` is a real district (or
province) broker directory made by the ``diemcau-broker`` CLI on free loopback ports, and
:class:`BrokerProcess` runs Mosquitto with any configuration file.

Example::

    with LocalBroker(data_dir=Path("/tmp/b")) as broker:
        print(broker.url)   # mqtt://127.0.0.1:40123

    d = LoopbackSite.make(Path("/tmp/vq"), "vanquan")   # diemcau-broker init
    d.cli("--no-reload", "add-staff", "tuan", "--role", "console")
    proc = d.process().start()                          # its rendered mosquitto.conf
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from broker.provision import Site

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


def end_process(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM,
                timeout: float = 10.0) -> None:
    """Send ``sig`` to ``proc`` if it still runs and wait for it; SIGKILL after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        end_process(self._proc, sig)
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class BrokerProcess:
    """``mosquitto -c conf`` in the foreground; ``start`` returns once every port accepts."""

    def __init__(self, conf: Path, ports: list[int], log: Path) -> None:
        self.conf, self.ports, self.log = conf, ports, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 10.0) -> Self:
        """Start and wait (polling the sockets) until every listener accepts connections."""
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        waiting = list(self.ports)
        while waiting:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise BrokerStartFailed(f"mosquitto exited: {err}\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerStartFailed(f"mosquitto did not listen on {waiting}")
            try:
                with socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.2):
                    waiting.pop(0)
            except OSError:
                time.sleep(0.02)
        return self

    def log_text(self) -> str:
        """The broker's log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def reload_count(self) -> int:
        """How many times the broker has logged ``Reloading config.``."""
        return self.log_text().count("Reloading config.")

    def wait_reloaded(self, before: int, timeout: float = 5.0) -> None:
        """Wait until the broker logged a reload after ``before`` reloads had been logged;
        TimeoutError if it did not within ``timeout``.

        Mosquitto has one thread: once the line is written, the reload finishes before it
        handles any new connection, so a client connecting afterwards sees the new files.
        """
        deadline = time.monotonic() + timeout
        while self.reload_count() <= before:
            if time.monotonic() > deadline:
                raise TimeoutError("broker did not reload")
            time.sleep(0.01)

    def sighup(self) -> None:
        """Ask the broker to reload its password file, ACL and CRL."""
        os.kill(self.pid, signal.SIGHUP)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is None:
            return
        end_process(self.proc)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None


@dataclass
class LoopbackSite:
    """A district (or province) broker directory made by the real ``diemcau-broker`` CLI, its
    listeners on free loopback ports: TLS with client certificates and passwords on
    ``tls_port``, plain with passwords on ``local_port``."""

    dir: Path
    site: Site
    tls_port: int
    local_port: int

    @classmethod
    def make(cls, directory: Path, name: str, province: bool = False) -> LoopbackSite:
        """``diemcau-broker init`` (``--province``) in ``directory`` on free ports, Mosquitto
        running as this user with its pid file in ``directory``; RuntimeError if it fails."""
        from broker.provision import Site

        d = cls(Path(directory), Site(Path(directory)), free_port(), free_port())
        d.init(name, province)
        return d

    def init(self, name: str, province: bool = False) -> None:
        """``diemcau-broker init`` on this site's ports; RuntimeError if it fails."""
        rc = self.cli("init", *(["--province"] if province else []), "--name", name,
                      "--host", "localhost", "--ip", "127.0.0.1",
                      "--tls-port", str(self.tls_port), "--tls-bind", "127.0.0.1",
                      "--local-port", str(self.local_port), "--user", getpass.getuser(),
                      "--pid-file", str(self.dir / "mosquitto.pid"), "--no-reload")
        if rc != 0:
            raise RuntimeError(f"diemcau-broker init {name} failed ({rc})")

    def cli(self, *args: str) -> int:
        """Run ``diemcau-broker --dir <dir> ARGS``; its exit status."""
        from broker.cli import main

        return main(["--dir", str(self.dir), *args])

    def process(self, conf: Path | None = None, ports: tuple[int, ...] = ()) -> BrokerProcess:
        """Mosquitto (not yet started) with the site's rendered standalone configuration, or
        ``conf``, waiting at start for both listeners and ``ports``."""
        return BrokerProcess(conf or self.site.conf, [self.tls_port, self.local_port, *ports],
                             self.dir / "data" / "mosquitto.log")

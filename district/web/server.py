"""Serving the dashboard with uvicorn inside ``diemcau-district run`` (one process: the
recorder's changes reach the live stream without a round trip through the database).

uvicorn runs on its own thread with the plain asyncio loop and h11 (no compiled extras, so it
installs the same on a Raspberry Pi), trusts ``X-Forwarded-*`` only from 127.0.0.1 (a local
TLS proxy: then cookies are marked Secure), writes no access log, and stops within a few
seconds even with live streams open (they are ended first).
"""

from __future__ import annotations

import asyncio
import logging
import threading

import uvicorn

from district.config import ConsoleConfig
from district.health import BEAT_S
from district.service import Console
from district.web.app import create_app
from district.web.auth import load_secret

log = logging.getLogger("district.web")


class _Server(uvicorn.Server):
    """uvicorn's server that tells when it listens (or has given up)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        """uvicorn's start-up, then tell :meth:`WebServer.start` (also when it failed)."""
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


class WebServer:
    """The dashboard on ``HOST:PORT``; :meth:`start` returns once it listens."""

    def __init__(self, cfg: ConsoleConfig, console: Console, listen: str | None = None,
                 health_s: float = BEAT_S) -> None:
        host, _, port = (listen or cfg.http.listen).rpartition(":")
        self.host, self.port = host, int(port)
        secret = load_secret(cfg.database.path.parent)
        self.app = create_app(console, secret, health_s=health_s)
        self.config = uvicorn.Config(
            self.app, host=self.host, port=self.port, loop="asyncio", http="h11", ws="none",
            lifespan="on", access_log=False, log_level="warning", proxy_headers=True,
            forwarded_allow_ips="127.0.0.1", timeout_graceful_shutdown=3,
            timeout_keep_alive=30)
        self.server = _Server(self.config)
        self._thread = threading.Thread(target=self._run, name="district-web", daemon=True)
        self.error: BaseException | None = None

    def __repr__(self) -> str:
        return f"WebServer({self.host}:{self.port})"

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as e:  # uvicorn exits when it cannot bind
            self.error = e
        finally:
            self.server.ready.set()

    def start(self, timeout: float = 30.0) -> None:
        """Listen; raise ``OSError`` if the address cannot be used."""
        self._thread.start()
        self.server.ready.wait(timeout)
        if not self.server.started:
            raise OSError(f"the dashboard cannot listen on {self.host}:{self.port} "
                          f"(http.listen; is it in use?)")
        log.info("web dashboard on http://%s:%d", self.host, self.port)

    def stop(self, timeout: float = 10.0) -> None:
        """End the live streams, then the server."""
        self.app.state.dashboard.hub.close_streams_threadsafe()
        self.server.should_exit = True
        self._thread.join(timeout)


def start_dashboard(cfg: ConsoleConfig, console: Console) -> WebServer:
    """Start the dashboard for ``run``; exit with status 2 when it cannot listen."""
    web = WebServer(cfg, console)
    try:
        web.start()
    except OSError as e:
        log.error("%s", e)
        raise SystemExit(2) from None
    return web

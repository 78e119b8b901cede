"""A throw-away PostgreSQL server on 127.0.0.1, from Debian's ``postgresql`` package.

For the tests and the benches: ``initdb`` into a temporary directory, ``pg_ctl start`` on a
free port (loopback only, trust authentication: nothing off this machine can reach it), one
fresh database per caller, ``pg_ctl stop`` at the end. PostgreSQL refuses to run as root, so
when this process is root the server programs run as the ``postgres`` user (``runuser``) and
the directory is handed to that user.

Example::

    with LocalPostgres(Path("/tmp/pg")) as pg:
        url = pg.new_database()     # postgresql://postgres@127.0.0.1:40123/t1
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

from broker.local import free_port


class PostgresNotFound(RuntimeError):
    """Debian's ``postgresql`` package is not installed (``deploy/bootstrap.sh --test``)."""


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if not found:
        raise PostgresNotFound("PostgreSQL is not installed: run deploy/bootstrap.sh --test "
                               "(apt-get install postgresql)")
    return Path(found[-1]).parent


class LocalPostgres:
    """One PostgreSQL server in ``root`` (its data directory, socket and log)."""

    def __init__(self, root: Path, port: int | None = None, fsync: bool = False,
                 settings: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.fsync = fsync
        self.settings = dict(settings or {})
        self.bindir = find_bindir()
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._names = itertools.count(1)
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")  # KeyError: the package makes this user
            self._as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        """The libpq URL of ``database`` on this server (TCP on loopback)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        out = subprocess.run([*self._as_user, *args], capture_output=True, text=True,
                             timeout=60)
        if out.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({out.returncode}): "
                               f"{out.stderr.strip()} {log}")

    def start(self) -> None:
        """initdb (first time) and start; returns once the server accepts connections."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_user:
            shutil.chown(self.root, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                      "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        opts = {"listen_addresses": "'127.0.0.1'", "port": str(self.port),
                "unix_socket_directories": f"'{self.root}'",
                "fsync": "on" if self.fsync else "off",
                "synchronous_commit": "on" if self.fsync else "off",
                "full_page_writes": "on" if self.fsync else "off",
                **self.settings}
        conf = "".join(f"{k} = {v}\n" for k, v in opts.items())
        (self.data / "postgresql.auto.conf").write_text(conf)
        if self._as_user:
            shutil.chown(self.data / "postgresql.auto.conf", "postgres", "postgres")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server (fast shutdown); the directory stays for :meth:`start`."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                      "stop")

    def new_database(self, prefix: str = "t") -> str:
        """Create an empty database; its URL."""
        import psycopg

        name = f"{prefix}{next(self._names)}_{os.getpid()}"
        with psycopg.connect(self.admin_url, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

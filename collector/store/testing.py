"""A throwaway PostgreSQL cluster for tests and benchmarks, run as a non-root user.

    with PostgresCluster.start(fast=True) as pg:
        url = pg.create_database("t1")

It uses Debian's server binaries (``/usr/lib/postgresql/*/bin``: ``initdb``,
``pg_ctl``), a temporary folder, a free TCP port on 127.0.0.1 and a Unix
socket in the same folder.  PostgreSQL refuses to run as root, so as root the
cluster runs as ``nobody`` (through ``runuser``).  ``fast=True`` turns off
fsync for test speed; benchmarks keep the durable defaults.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from otsentry.collector.store._errors import StoreError

__all__ = ["PostgresCluster", "free_port", "postgres_bin"]

_RUN_AS = "nobody"


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` with ``initdb``.

    Raises:
        StoreError: PostgreSQL is not installed (``apt-get install postgresql``).
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        raise StoreError("PostgreSQL server binaries not found under /usr/lib/postgresql "
                         "(apt-get install postgresql)")
    return Path(found[-1]).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """One running cluster; :meth:`stop` (or leaving the ``with``) removes it."""

    def __init__(self, root: Path, port: int, as_user: str | None) -> None:
        self.root, self.port, self.as_user = root, port, as_user
        self.data, self.log = root / "data", root / "postgres.log"
        self._n = 0

    @classmethod
    def start(cls, *, fast: bool = False, settings: dict[str, str] | None = None) -> PostgresCluster:
        """Create and start a cluster; ``settings`` are extra ``-c`` server options."""
        root = Path(tempfile.mkdtemp(prefix="otsentry-pg-"))
        root.chmod(0o755)
        as_user = _RUN_AS if os.geteuid() == 0 else None
        if as_user:
            shutil.chown(root, user=as_user)
        cluster = cls(root, free_port(), as_user)
        try:
            cluster._initdb()
            cluster._pg_ctl_start(fast, settings or {})
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, *argv: str) -> None:
        cmd = [str(postgres_bin() / argv[0]), *argv[1:]]
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root, check=False)
        if proc.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise StoreError(f"{' '.join(argv[:2])} failed: {proc.stderr.strip()} {log[-2000:]}")

    def _initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--locale=C")

    def _pg_ctl_start(self, fast: bool, settings: dict[str, str]) -> None:
        opts = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                "unix_socket_directories": str(self.root), "max_connections": "200",
                "shared_buffers": "256MB"}
        if fast:
            opts.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        opts.update(settings)
        o = " ".join(f"-c {k}={v}" for k, v in opts.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", o, "-w", "-t", "60",
                  "start")

    @property
    def url(self) -> str:
        """URL of the ``postgres`` database."""
        return self.url_of("postgres")

    def url_of(self, database: str) -> str:
        """URL of ``database`` on this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """Create a database (optionally a copy of ``template``); return its URL."""
        import psycopg

        self._n += 1
        name = name or f"db{self._n}"
        tpl = f" TEMPLATE {template}" if template else ""
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{tpl}')
        return self.url_of(name)

    def stop(self) -> None:
        """Stop the server at once and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except StoreError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Two collector replicas on one PostgreSQL, ten agents, one replica killed with SIGKILL mid-stream.

Real parts only: ``otsentry-collector serve`` processes, ``otsentry-agent run``
processes replaying the shipped sample capture with real certificates, a
throwaway PostgreSQL cluster.  Each agent lists both replicas; the agents are
spread over them by the hash of their id, and fail over when theirs dies.

Tally checked: for every agent, the collector's high-water mark of its epoch
equals the last sequence number the agent handed out, and the messages stored
equal that number (no seq lost, none stored twice); every incident's (rule,
scope) appears once.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from otsentry.collector.correlate import Rules, correlate_once
from otsentry.collector.store import Store, head, read
from otsentry.collector.store import _schema as S
from otsentry.collector.store.testing import PostgresCluster, free_port
from tests.collector.conftest import Pki

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "plant-small.pcap"
BIN = Path(sys.executable).parent
AGENTS = 10
SPEED = "6"  # the one-minute sample in ~10 s: the kill lands mid-stream


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"collector exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"collector did not listen on {port}")


def _replica(tmp: Path, name: str, port: int, pki: Pki, url: str) -> subprocess.Popen:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\npki_dir = "{pki.ca.dir}"\n'
                   f'[store]\npath = "{tmp / name}.sqlite"\n')
    log = (tmp / f"{name}.log").open("w")
    return subprocess.Popen([str(BIN / "otsentry-collector"), "--log-format", "json", "serve",
                             "--config", str(cfg), "--db", url], stdout=log, stderr=log)


def _agent(tmp: Path, i: int, pki: Pki, ports: list[int]) -> subprocess.Popen:
    site, name = f"plant{i % 5}", f"a{i}"
    creds = pki.agent(site, name)
    state = tmp / f"agent{i}"
    state.mkdir()
    cfg = tmp / f"agent{i}.toml"
    eps = ", ".join(f'"localhost:{p}"' for p in ports)
    cfg.write_text(f'[agent]\nsite = "{site}"\nname = "{name}"\nstate_dir = "{state}"\n'
                   f'[collector]\nendpoints = [{eps}]\nca = "{creds.ca}"\ncert = "{creds.cert}"\n'
                   f'key = "{creds.key}"\nbatch_messages = 50\nstatus_interval = "1s"\n'
                   'backoff_initial = "200ms"\nbackoff_max = "2s"\nack_timeout = "10s"\n')
    log = (tmp / f"agent{i}.log").open("w")
    return subprocess.Popen([str(BIN / "otsentry-agent"), "run", "--config", str(cfg), "--pcap",
                             str(SAMPLE), "--speed", SPEED], stdout=log, stderr=log)


def _outbox_tally(state: Path) -> tuple[int, int, int]:
    """(epoch, last seq handed out, acked seq) from the agent's outbox."""
    (db,) = [p for p in state.iterdir() if p.suffix in (".db", ".sqlite") and "outbox" in p.name]
    with sqlite3.connect(db) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    return int(meta["epoch"]), int(meta["next_seq"]) - 1, int(meta["acked_seq"])


@pytest.fixture(name="pki")
def _pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture(name="cluster")
def _cluster():  # type: ignore[no-untyped-def]
    cluster = PostgresCluster.start(fast=True)
    yield cluster
    cluster.stop()


def test_kill_one_replica_mid_stream(cluster: PostgresCluster, pki: Pki, tmp_path: Path) -> None:
    """Kill -9 one of two replicas while ten agents deliver: nothing lost, no incident twice."""
    url = cluster.create_database("otsentry")
    ports = [free_port(), free_port()]
    replicas = [_replica(tmp_path, f"replica{n}", p, pki, url) for n, p in enumerate(ports)]
    agents: list[subprocess.Popen] = []
    try:
        for p, r in zip(ports, replicas):
            _wait_port(p, r)
        agents = [_agent(tmp_path, i, pki, ports) for i in range(AGENTS)]
        store = Store(url)
        deadline = time.monotonic() + 60
        while _stored(store) < 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # mid-stream: messages are flowing through both replicas
        victim, at_kill = replicas[0], _stored(store)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        codes = [_wait_or_dump(a, 180) for a in agents]
        assert codes == [0] * AGENTS, [(tmp_path / f"agent{i}.log").read_text()[-6000:]
                                       for i, c in enumerate(codes) if c != 0]
        _drain_correlation(store)
        messages, lost = _tally(store, tmp_path)
        duplicated = _duplicated_incidents(store)
        store.close()
        failed_over = sum("delivery interrupted" in (tmp_path / f"agent{i}.log").read_text()
                          for i in range(AGENTS))
        _record("replica kill -9 (PostgreSQL)", 1, messages, lost, duplicated)
        print(f"killed replica0 with {at_kill} messages stored; {failed_over} agents failed over; "
              f"{messages} messages, {lost} lost; {duplicated} incidents duplicated")
        assert failed_over >= 1  # some agents were on the killed replica
        assert lost == 0 and duplicated == 0
    finally:
        for p in [*agents, *replicas]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in [*agents, *replicas]:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def _wait_or_dump(proc: subprocess.Popen, timeout: float) -> int | None:
    """The agent's exit code; None, after it logged its stacks (SIGUSR1), when it hangs."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        return None


def _stored(store: Store) -> int:
    with read(store.engine) as conn:
        return conn.execute(select(func.coalesce(func.sum(S.streams.c.count), 0))).scalar_one()


def _drain_correlation(store: Store) -> None:
    """Wait for the surviving replica to correlate everything (it holds the job while busy)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with read(store.engine) as conn:
            cursor = conn.execute(select(S.jobs.c.cursor).where(S.jobs.c.name == "correlate")).scalar_one()
            if cursor >= head(conn):
                return
        correlate_once(store.engine, Rules())
        time.sleep(0.2)
    raise AssertionError("correlation did not catch up")


def _tally(store: Store, tmp: Path) -> tuple[int, int]:
    """(messages the agents handed out, messages missing or unacked) over every agent."""
    streams, messages, lost = store.streams(), 0, 0
    for i in range(AGENTS):
        epoch, last, acked = _outbox_tally(tmp / f"agent{i}")
        seq, count = streams.get((f"site/plant{i % 5}/agent/a{i}", epoch), (0, 0))
        messages += last
        lost += (last - min(seq, count)) + (last - acked)
    return messages, lost


def _duplicated_incidents(store: Store) -> int:
    """Incidents beyond the first of each (rule, scope)."""
    with read(store.engine) as conn:
        return sum(n - 1 for _, _, n in conn.execute(
            select(S.incidents.c.rule, S.incidents.c.scope, func.count())
            .group_by(S.incidents.c.rule, S.incidents.c.scope).having(func.count() > 1)))


def _record(name: str, faults: int, messages: int, lost: int, duplicated: int) -> None:
    """Add to the fault tier's tally table when its plugin is loaded."""
    record = getattr(sys.modules.get("tests.fault.conftest"), "record", None)
    if record is not None:
        record(name, faults, messages, lost, duplicated)

"""A real collector server (mTLS port and enrolment port) on its own event-loop thread,
so that tests can call it with plain blocking gRPC clients and commands."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from otsentry.collector.enroll import enroll_port_of
from otsentry.collector.server import run_server
from otsentry.common.tls import channel_credentials
from tests.collector.conftest import Creds


@dataclass
class Running:
    """Ports of a running server, and the loop it runs on."""

    port: int
    enroll_port: int
    loop: asyncio.AbstractEventLoop

    def mtls(self, creds: Creds) -> grpc.Channel:
        """A blocking channel to the mTLS port with ``creds``."""
        return grpc.secure_channel(f"localhost:{self.port}",
                                   channel_credentials(creds.ca, creds.cert, creds.key))

    def enrol(self, ca: Path) -> grpc.Channel:
        """A blocking channel to the enrolment port, trusting ``ca``, with no client certificate."""
        return grpc.secure_channel(f"localhost:{self.enroll_port}",
                                   grpc.ssl_channel_credentials(root_certificates=ca.read_bytes()))


@contextmanager
def serving(pki_dir: Path, **kw: Any) -> Iterator[Running]:
    """Run ``run_server(pki_dir, enroll_port=0, **kw)`` until the block ends."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="collector", daemon=True)
    thread.start()
    server, port = asyncio.run_coroutine_threadsafe(
        run_server(pki_dir, enroll_port=0, **kw), loop).result(20)
    try:
        enroll_port = enroll_port_of(server)
        assert enroll_port
        yield Running(port, enroll_port, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(20)
        loop.close()

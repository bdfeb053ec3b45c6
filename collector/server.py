"""The collector's gRPC server: mTLS, authentication, Ingest and health.

``run_server`` only wires plain parts together; see :mod:`.auth` for who may
call what and :mod:`.ingest` for the Ingest stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from otsentry.collector.auth import AuthInterceptor
from otsentry.collector.enroll import add_enroll_service
from otsentry.collector.ingest import Commit, IngestServicer, ack_all
from otsentry.collector.pki import CertificateAuthority
from otsentry.common.tls import KEEPALIVE_OPTIONS, server_credentials
from otsentry.v1 import ingest_pb2, ingest_pb2_grpc

if TYPE_CHECKING:
    from otsentry.collector.feed import FeedHub

__all__ = ["run_server", "MAX_MESSAGE_BYTES"]

#: Largest Batch accepted; larger ones end the stream with RESOURCE_EXHAUSTED.
#: Agents split their batches well below this.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


async def run_server(pki_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
                     commit: Commit = ack_all,
                     max_message_bytes: int = MAX_MESSAGE_BYTES,
                     feed: FeedHub | None = None,
                     enroll_port: int | None = None) -> tuple[grpc.aio.Server, int]:
    """Start the collector's server on ``host:port`` (0 picks a free port).

    With ``feed`` (a started :class:`~otsentry.collector.feed.FeedHub` on the
    store), analysts can also subscribe to the feed (``otsentry.v1.Feed``).
    Agents renew their certificates on this port (``otsentry.v1.Enroll``); with
    ``enroll_port`` (0: a free one, see ``enroll_port_of``) new agents enrol
    there with a one-time token.

    Returns:
        (the started server, the port it listens on); the caller stops it.
    Raises:
        PkiError: the PKI directory lacks a valid CA or server certificate.
    """
    ca = CertificateAuthority(pki_dir)
    creds = server_credentials(ca.server_cert_path, ca.server_key_path, ca.ca_cert_path)
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(ca.revocations)],
        options=[*KEEPALIVE_OPTIONS, ("grpc.max_receive_message_length", max_message_bytes)],
    )
    ingest_pb2_grpc.add_IngestServicer_to_server(IngestServicer(commit, ca.revocations), server)
    services = [ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name]
    if feed is not None:
        from otsentry.collector.feed import FeedServicer, add_feed_to_server
        from otsentry.v1 import feed_pb2

        add_feed_to_server(FeedServicer(feed, ca.revocations), server)
        services.append(feed_pb2.DESCRIPTOR.services_by_name["Feed"].full_name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    add_enroll_service(server, ca, host=host, port=enroll_port)
    bound = server.add_secure_port(f"{host}:{port}", creds)
    await server.start()
    for name in ("", *services):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound

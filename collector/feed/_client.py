"""A small client of ``Feed.Subscribe`` that resumes from its last cursor after a broken link.

    client = FeedClient("collector.example:50051", ca="ca.crt", cert="ana.crt", key="ana.key")
    async for event in client.events(SubscribeRequest(after=0), resume=True):
        ...

The stream carries events in batches (``FeedBatch``); ``events`` hands them
out one by one, ``batches`` as they came.

Only a lost connection (UNAVAILABLE) is retried; a refusal (certificate,
filter) ends the iteration with the error, because retrying cannot fix it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from otsentry.common.tls import KEEPALIVE_OPTIONS, channel_credentials
from otsentry.v1 import feed_pb2, feed_pb2_grpc

__all__ = ["FeedClient"]


class FeedClient:
    """Subscribes to one collector with an analyst's certificate.

    Args:
        address: ``host:port`` of the collector (the name must be in its certificate).
        ca, cert, key: the collector's CA certificate, the analyst's certificate and key.
    Raises:
        PkiError: a file is missing or invalid, or the certificate does not match the key.
    """

    def __init__(self, address: str, *, ca: Path, cert: Path, key: Path) -> None:
        self.address = address
        self._creds = channel_credentials(Path(ca), Path(cert), Path(key))

    async def batches(self, request: feed_pb2.SubscribeRequest, *, resume: bool = False,
                      backoff_s: tuple[float, float] = (0.5, 30.0),
                      on_retry: Callable[[grpc.RpcError, float], None] | None = None,
                      ) -> AsyncIterator[feed_pb2.FeedBatch]:
        """The stream's batches of ``request``; with ``resume``, reconnect after a lost link.

        After a reconnect the request is sent again with ``after`` = the last
        cursor received (events and progress alike), so nothing is missed or
        repeated.  ``on_retry(error, delay)`` is called before each wait.
        """
        req = feed_pb2.SubscribeRequest()
        req.CopyFrom(request)
        delay = backoff_s[0]
        while True:
            try:
                async with grpc.aio.secure_channel(self.address, self._creds,
                                                   options=KEEPALIVE_OPTIONS) as channel:
                    async for batch in feed_pb2_grpc.FeedStub(channel).Subscribe(req):
                        if batch.events:
                            req.after, delay = batch.events[-1].cursor, backoff_s[0]
                        yield batch
                return
            except grpc.aio.AioRpcError as err:
                if not resume or err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                if on_retry is not None:
                    on_retry(err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, backoff_s[1])

    async def events(self, request: feed_pb2.SubscribeRequest, *, resume: bool = False,
                     backoff_s: tuple[float, float] = (0.5, 30.0),
                     on_retry: Callable[[grpc.RpcError, float], None] | None = None,
                     ) -> AsyncIterator[feed_pb2.FeedEvent]:
        """The events of :meth:`batches`, one at a time (same arguments)."""
        stream = self.batches(request, resume=resume, backoff_s=backoff_s, on_retry=on_retry)
        try:
            async for batch in stream:
                for ev in batch.events:
                    yield ev
        finally:
            await stream.aclose()

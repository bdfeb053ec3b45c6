"""The shipper: delivers the outbox to a collector over one gRPC mTLS stream, with acks.

Rules of this module (the delivery half of "nothing is lost silently"):

* **The outbox is the only buffer.**  Messages are read from disk when a batch
  is sent and forgotten once sent; at most ``max_unacked_batches`` batches are
  outstanding, so memory stays bounded however far behind the collector is,
  and the backlog waits on disk.
* **At least once, in order.**  A batch is numbered when taken (the outbox's
  ``take``); after a reconnect or a restart, every message not yet acked is
  resent first with its original (epoch, seq), re-split if needed, and the
  collector drops what it already has.  Acks are cumulative.
* **Batches are bounded** in messages, in bytes (below the collector's
  ``max_message_bytes``) and in time (``batch_linger``: a message waits at
  most that long for others to fill its batch).  A collector that refuses a
  batch as too large (RESOURCE_EXHAUSTED) makes the shipper halve its byte
  bound and resend.
* **Certificate renewal.**  When less than ``renew_fraction`` of our
  certificate's validity remains, a new one is fetched over the open channel
  (:mod:`otsentry.agent.renew`); the stream then stops taking new batches,
  waits briefly for the acks in flight, and reconnects at once with the new
  certificate (anything still unacked is resent, and deduplicated).
* **Failure handling.**  A stream that breaks, cannot connect within
  ``connect_timeout``, or leaves a batch unacked for ``ack_timeout`` (a
  stalled link) is closed; the shipper waits with exponential backoff and
  jitter, then tries the next endpoint (failover).  Each agent starts on the
  endpoint picked by a hash of its id, which spreads agents over collectors.

The outbox (SQLite) is used from one private thread, never from the event loop.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import structlog

from otsentry.agent.outbox import Entry, Outbox
from otsentry.agent.renew import Renewer
from otsentry.common.config import CollectorLink
from otsentry.common.errors import OutboxError
from otsentry.common.logging import get_logger
from otsentry.common.tls import KEEPALIVE_OPTIONS, channel_credentials, explain_rpc_error
from otsentry.v1 import ingest_pb2, status_pb2

__all__ = ["Shipper", "ShipperState", "encode_batch", "STREAM_METHOD"]

STREAM_METHOD = "/otsentry.v1.Ingest/Stream"
T = TypeVar("T")
# Bytes a Batch adds around each message (tag + length) and once (ids, numbers).
_PER_MESSAGE, _HEAD = 6, 256


def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("agent.shipper")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_batch(agent_id: str, epoch: int, first_seq: int, bodies: list[bytes],
                 sent_ns: int) -> bytes:
    """A serialized ``otsentry.v1.Batch`` made from already-serialized Envelopes (no re-parse)."""
    head = ingest_pb2.Batch(agent_id=agent_id, epoch=epoch, first_seq=first_seq,
                            sent_ns=sent_ns).SerializeToString()
    parts = [head]
    for body in bodies:
        parts += (b"\x22", _varint(len(body)), body)  # field 4 (messages), length-delimited
    return b"".join(parts)


@dataclass(slots=True)
class ShipperState:
    """What the shipper is doing, for the status file and ``otsentry-agent status``."""

    endpoint: str = ""
    connected: bool = False
    last_ack_ns: int = 0
    last_ack_seq: int = 0
    last_error: str = ""
    last_error_ns: int = 0
    connects: int = 0
    batches_sent: int = 0
    messages_sent: int = 0
    messages_resent: int = 0
    max_batch_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return asdict(self)


async def _relay(stop: asyncio.Event, ending: asyncio.Event) -> None:
    """Set ``ending`` when ``stop`` is set; never returns (the session's end cancels it)."""
    await stop.wait()
    ending.set()
    await asyncio.Event().wait()


class _AckTimeout(Exception):
    """A sent batch was not acked in time: the link is stalled."""


class Shipper:
    """Streams the outbox to the collectors of ``link``; see the module docstring.

    Args:
        outbox_path: the outbox database (opened here, in the shipper's own thread).
        agent_id: ``site/S/agent/A``, as in our certificate.
        link: endpoints, certificates, batch bounds, timeouts and backoff.
        outbox_kwargs: bounds passed to :class:`Outbox`.
        status: makes an ``AgentStatus`` to queue every ``link.status_interval_s``.
        rng: randomness for the backoff jitter (tests seed it).
    """

    def __init__(self, outbox_path: Path, agent_id: str, link: CollectorLink, *,
                 outbox_kwargs: dict[str, Any] | None = None,
                 status: Callable[[], status_pb2.AgentStatus] | None = None,
                 rng: random.Random | None = None) -> None:
        self.agent_id, self.link = agent_id, link
        self.state = ShipperState(max_batch_bytes=link.batch_bytes)
        self._status = status
        self._rng = rng or random.Random()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="outbox")
        self._outbox: Outbox = self._pool.submit(
            lambda: Outbox(outbox_path, **(outbox_kwargs or {}))).result()
        self.epoch = self._outbox.epoch
        self._renewer = (Renewer(link.cert, link.key, link.ca, fraction=link.renew_fraction)
                         if link.renew_fraction > 0 else None)
        self._creds = channel_credentials(link.ca, link.cert, link.key)
        self._acked = asyncio.Event()
        self._last_ack = 0.0

    async def _io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: fn(*args, **kwargs))

    async def outbox_stats(self) -> dict[str, object]:
        """The outbox's counters (read in the shipper's thread)."""
        return await self._io(self._outbox.stats)

    # -- the reconnect loop -----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then finish what is in flight (briefly) and return."""
        eps = self.link.endpoints
        idx = zlib.crc32(self.agent_id.encode()) % len(eps)
        backoff = self.link.backoff_initial_s
        status_task = asyncio.ensure_future(self._status_loop(stop)) if self._status else None
        try:
            while not stop.is_set():
                acked_before = self.state.last_ack_ns
                try:
                    await self._session(eps[idx], stop)
                except Exception as exc:  # every way a stream can end: retry elsewhere
                    self._failed(eps[idx], exc)
                self.state.connected = False
                if stop.is_set():
                    break
                if self._renewer is not None and self._renewer.switched:
                    self._renewer.switched = False
                    self._creds = channel_credentials(self.link.ca, self.link.cert, self.link.key)
                    continue  # at once, same endpoint, new certificate
                if self.state.last_ack_ns != acked_before:
                    backoff = self.link.backoff_initial_s
                idx = (idx + 1) % len(eps)
                delay = backoff / 2 + self._rng.uniform(0, backoff / 2)
                backoff = min(backoff * 2, self.link.backoff_max_s)
                log().info("reconnecting", endpoint=eps[idx], in_s=round(delay, 3))
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        finally:
            if status_task is not None:
                status_task.cancel()
            await self._io(self._outbox.close)
            self._pool.shutdown(wait=True)

    def _failed(self, endpoint: str, exc: Exception) -> None:
        if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
            reason = explain_rpc_error(exc)  # type: ignore[arg-type]
            if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                self.state.max_batch_bytes = max(4096, self.state.max_batch_bytes // 2)
                reason += f"; batches now split below {self.state.max_batch_bytes} bytes"
        elif isinstance(exc, _AckTimeout):
            reason = str(exc)
        elif isinstance(exc, asyncio.TimeoutError):
            reason = f"could not connect within {self.link.connect_timeout_s:g}s"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        self.state.last_error, self.state.last_error_ns = reason, time.time_ns()
        log().warning("delivery interrupted", endpoint=endpoint, reason=reason)

    async def _status_loop(self, stop: asyncio.Event) -> None:
        assert self._status is not None
        while not stop.is_set():
            env = ingest_pb2.Envelope(queued_ns=time.time_ns(), status=self._status())
            await self._io(self._outbox.put_envelope, env)
            try:
                await asyncio.wait_for(stop.wait(), self.link.status_interval_s)
            except asyncio.TimeoutError:
                pass

    # -- one stream -------------------------------------------------------------------------

    async def _session(self, endpoint: str, stop: asyncio.Event) -> None:
        options = [*KEEPALIVE_OPTIONS, ("grpc.enable_retries", 0)]
        async with grpc.aio.secure_channel(endpoint, self._creds, options=options) as channel:
            await asyncio.wait_for(channel.channel_ready(), self.link.connect_timeout_s)
            method = channel.stream_stream(STREAM_METHOD, request_serializer=bytes,
                                           response_deserializer=ingest_pb2.Ack.FromString)
            call = method()
            self.state.endpoint, self.state.connected = endpoint, True
            self.state.connects += 1
            log().info("connected", endpoint=endpoint, epoch=self.epoch)
            inflight: deque[tuple[int, float]] = deque()
            ending = asyncio.Event()  # stop, or a renewed certificate: finish this stream
            coros = [self._send_loop(call, inflight, ending), self._recv_loop(call, inflight),
                     self._watchdog(inflight), _relay(stop, ending)]
            if self._renewer is not None:
                coros.append(self._renewer.run(channel, ending))
            tasks = [asyncio.ensure_future(c) for c in coros]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()  # raises what ended the session
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                call.cancel()

    async def _send_loop(self, call: Any, inflight: deque[tuple[int, float]],
                         stop: asyncio.Event) -> None:
        after = int((await self.outbox_stats())["acked_seq"])  # type: ignore[call-overload]
        while True:  # first everything sent before but not acked, with its old numbers
            await self._window(inflight, stop)
            entries = await self._io(self._outbox.unacked, after, self.link.batch_messages,
                                     self._body_bytes())
            if not entries:
                break
            self.state.messages_resent += len(entries)
            await self._send(call, entries, inflight)
            after = entries[-1].seq
        while not stop.is_set():
            if not await self._window(inflight, stop):
                break
            entries = await self._next(stop)
            if entries:
                await self._send(call, entries, inflight)
        await self._finish(inflight)

    async def _finish(self, inflight: deque[tuple[int, float]]) -> None:
        """On stop: give the collector a moment to ack what is in flight, then end the session."""
        deadline = time.monotonic() + min(2.0, self.link.ack_timeout_s)
        while inflight and time.monotonic() < deadline:
            self._acked.clear()
            try:
                await asyncio.wait_for(self._acked.wait(), 0.1)
            except asyncio.TimeoutError:
                pass

    def _body_bytes(self) -> int:
        return max(1, self.state.max_batch_bytes - _HEAD - _PER_MESSAGE * self.link.batch_messages)

    async def _window(self, inflight: deque[tuple[int, float]], stop: asyncio.Event) -> bool:
        """Wait until fewer than ``max_unacked_batches`` are outstanding; False on stop."""
        while len(inflight) >= self.link.max_unacked_batches:
            if stop.is_set():
                return False
            self._acked.clear()
            try:
                await asyncio.wait_for(self._acked.wait(), 0.1)
            except asyncio.TimeoutError:
                pass
        return True

    async def _next(self, stop: asyncio.Event) -> list[Entry]:
        """The next batch: full, or as soon as its oldest message lingered long enough."""
        first_seen: float | None = None
        while not stop.is_set():
            n = await self._io(self._outbox.pending_count)
            now = time.monotonic()
            if n and first_seen is None:
                first_seen = now
            if n >= self.link.batch_messages or (
                    n and now - first_seen >= self.link.batch_linger_s):  # type: ignore[operator]
                return await self._io(self._outbox.take, self.link.batch_messages,
                                      self._body_bytes())
            await asyncio.sleep(min(0.01, self.link.batch_linger_s) if n else 0.02)
        return []

    async def _send(self, call: Any, entries: list[Entry],
                    inflight: deque[tuple[int, float]]) -> None:
        data = encode_batch(self.agent_id, self.epoch, entries[0].seq, [e.body for e in entries],
                            time.time_ns())
        inflight.append((entries[-1].seq, time.monotonic()))
        await call.write(data)
        self.state.batches_sent += 1
        self.state.messages_sent += len(entries)

    async def _recv_loop(self, call: Any, inflight: deque[tuple[int, float]]) -> None:
        while True:
            ack = await call.read()
            if ack is grpc.aio.EOF:
                raise ConnectionError("the collector ended the stream")
            if ack.epoch != self.epoch:
                raise OutboxError(f"ack for epoch {ack.epoch}, ours is {self.epoch}")
            await self._io(self._outbox.ack, ack.seq)
            while inflight and inflight[0][0] <= ack.seq:
                inflight.popleft()
            self.state.last_ack_seq, self.state.last_ack_ns = ack.seq, time.time_ns()
            self._last_ack = time.monotonic()
            self._acked.set()

    async def _watchdog(self, inflight: deque[tuple[int, float]]) -> None:
        while True:
            await asyncio.sleep(min(0.2, self.link.ack_timeout_s / 4))
            since = max(inflight[0][1], self._last_ack) if inflight else 0.0
            if inflight and time.monotonic() - since > self.link.ack_timeout_s:
                raise _AckTimeout(f"no ack for {self.link.ack_timeout_s:g}s: the link is stalled")

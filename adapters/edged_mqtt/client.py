"""An MQTT client for Trio: paho-mqtt 2.x driven through its external-loop hooks.

Theory of operation. paho keeps the protocol state (packet ids, in-flight QoS 1 messages,
retransmission after reconnect); this module only moves bytes and events, on the Trio thread,
with no paho thread and no lock taken while the loop waits:

- A supervisor task connects, keeps the connection until it is lost, waits a backoff delay
  (capped exponential, full jitter, reset by an accepted CONNACK) and reconnects, until the
  client is closed. paho's connect() blocks (DNS, TCP, TLS handshake), so it runs in a worker
  thread; while it runs no other code touches the paho client (publish/subscribe/ack wait for
  the connection), and the one callback paho makes from that thread (register-write, for the
  CONNECT packet) is hopped back to Trio with ``TrioToken.run_sync_soon``.
- Per connection, three tasks in one nursery: a reader (``wait_readable`` + ``loop_read``, and
  again while TLS holds decrypted bytes or the socket still has data), a writer (sleeps until
  paho asks to write, then ``loop_write`` and ``wait_writable`` while data remains) and a
  housekeeper (``loop_misc`` once a second: keepalive pings, ping timeout). paho's socket
  calls are replaced by buffered ones: it reads a packet in several tiny recv() calls (type,
  length, body), served from one 64 KiB recv() by ``fastread.PacketReader``, which also
  decodes PUBLISH and PUBACK itself (paho's behaviour, a fraction of its CPU); its per-packet
  send() calls are gathered and flushed by the writer with one send() per loop_write().
  Any of them seeing the connection fail ends the nursery. paho closes sockets itself;
  ``on_socket_close`` calls ``trio.lowlevel.notify_closing`` first so a task waiting on that
  socket wakes with an error instead of waiting on a recycled fd. The same callback also
  fires from ``Client.__del__`` outside ``trio.run``: it is ignored there.
- Sessions are persistent (clean start off, session expiry on MQTT 5; clean_session off on
  3.1.1) under a stable client id, so the broker queues QoS 1 messages while we are away. When
  a CONNACK says the broker has no session, the client subscribes again to every filter.
- ``publish`` returns once the broker acknowledged (PUBACK for QoS 1). At most
  ``max_inflight`` publishes wait for an acknowledgement; more callers wait for a slot
  (back-pressure). A QoS 1 message handed to paho stays in paho's session state across
  reconnects and is retransmitted, so a cancelled or interrupted publish may still be
  delivered: at least once, never silently dropped.
- Received messages go to a per-subscription bounded ``Inbox`` (drop oldest with a count at
  the bound). With ``manual_ack`` the application PUBACKs with ``ack(message)`` after its own
  durable commit; an unacked message is redelivered by the broker when the session resumes.
- Importing this module installs ``fastprops.FastProperties`` into paho's packet decoders
  (paho's MQTT 5 ``Properties`` with its tables built once; it refuses, and paho keeps its
  own class, when paho is not the shape it was written against).
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import trio
from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edged_mqtt import fastprops, fastwrite
from edged_mqtt.backoff import backoff_s
from edged_mqtt.fastread import PacketReader
from edged_mqtt.inbox import Inbox, MqttMessage
from edged_mqtt.session import (
    ClientClosed,
    MqttStatistics,
    PayloadTooLarge,
    PublishRejected,
    Waiter,
    build_paho,
    subscribe_topics,
    subscription_failures,
)
from edged_mqtt.settings import MqttSettings
from edged_mqtt.topics import validate_filter, validate_topic

log = logging.getLogger("edged.mqtt")

# receive() yields to the scheduler at least once per this many messages
_RECEIVE_BURST = 16

# paho builds a Properties for every PUBLISH and PUBACK it decodes: use the cheap one.
fastprops.install()

_OK = MQTTErrorCode.MQTT_ERR_SUCCESS
_MISC_INTERVAL_S = 1.0
_READS_PER_WAKEUP = 256  # then yield to the scheduler so a flood cannot starve other tasks
_FULL_BURST = 4  # messages in one paced burst that double the next read window
# Pacing pays only when a window would gather at least this many messages: sparser traffic
# is read at once (at 200 msg/s a 5 ms window held every message ~4 ms and merged ~12% of
# them: p50 7 ms against 4.4 ms unpaced, for ~5% less CPU per message).
_DENSE = 2


class _ConnectionLost(Exception):
    """Internal: a SUBSCRIBE did not get its SUBACK before the connection dropped."""


class MqttClient:
    """Use through ``open_mqtt_client(settings)``."""

    def __init__(
        self, settings: MqttSettings, *, rand: Callable[[], float] = random.random
    ) -> None:
        self.settings = settings
        self._rand = rand
        self._token = trio.lowlevel.current_trio_token()
        self._trio_thread = threading.get_ident()
        self._paho: Client = build_paho(settings)
        self._install_callbacks()
        self._reader = PacketReader(
            self._paho,
            self._accept,
            self._acked,
            lambda: self._on_register_write(self._paho, None, None),
        )
        self._inbox = Inbox(settings.max_buffered_messages)
        self._direct: Callable[[MqttMessage], bool] | None = None  # see set_direct()
        self._inbox_lot = trio.lowlevel.ParkingLot()
        self._state_lot = trio.lowlevel.ParkingLot()  # woken on connect, loss and close
        self._write_wanted = trio.Event()
        self._wbuf = bytearray()  # bytes paho "sent" that the writer task still has to send
        self._writer_idle = False  # the writer task waits for _write_wanted, nothing unsent
        self._writes_held = False  # see hold_writes()
        self._write_deferred = False  # something was queued while held
        self._lost = trio.Event()
        self._conn_nursery: trio.Nursery | None = None
        self._inflight = trio.Semaphore(settings.max_inflight)
        self._pending_pubs: dict[int, Waiter[ReasonCode]] = {}
        self._pending_subs: dict[int, Waiter[list[ReasonCode]]] = {}
        self._pending_unsubs: dict[int, Waiter[bool]] = {}
        self._burst = 0  # messages handed out by receive() since it last yielded
        self._subscriptions: dict[str, int] = {}
        self._connected = False
        self._closed = False
        self._closing = False
        self._connection = 0  # number of accepted connections so far
        self._published = 0
        self._received = 0
        self._oversized = 0
        self._read_wakeups = 0
        self._pause: trio.CancelScope | None = None  # the read loop's pacing pause, if any
        self._failed_attempts = 0
        self._outage_attempts = 0  # attempts since the last accepted connection

    # ----------------------------------------------------------------- public API

    async def wait_connected(self, after: int = 0) -> int:
        """Wait until connected on a connection numbered above ``after``; return its number."""
        await trio.lowlevel.checkpoint()
        while not (self._connected and self._connection > after):
            if self._closed:
                raise ClientClosed("MQTT client is closed")
            await self._state_lot.park()
        return self._connection

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        """Publish and return once the broker has it (PUBACK for QoS 1, written for QoS 0)."""
        validate_topic(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        if len(payload) > self.settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload of {len(payload)} bytes exceeds {self.settings.max_payload_bytes}"
            )
        async with self._inflight:
            await self.wait_connected()
            info = self._paho.publish(topic, payload, qos, retain, properties)
            if info.rc not in (_OK, MQTTErrorCode.MQTT_ERR_NO_CONN):
                raise PublishRejected(f"publish to {topic}: {info.rc.name}")
            if qos == 0:
                self._published += 1
                return
            waiter: Waiter[ReasonCode] = Waiter()
            self._pending_pubs[info.mid] = waiter
            self._publish_tracked()
            try:
                reason = await waiter.wait()
            finally:
                self._pending_pubs.pop(info.mid, None)
            if reason.is_failure:
                raise PublishRejected(f"broker refused publish to {topic}: {reason}")
            self._published += 1

    async def publish_pipelined(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> PendingPublish:
        """Hand the message to paho now and return without waiting for its PUBACK.

        Successive calls from one task go out in call order (order per topic without a
        round trip per message); ``await handle.wait()`` returns after PUBACK. The message
        holds an in-flight slot until then (waits for a slot and for the connection first).
        """
        self._check_publish(topic, payload, qos)
        await self._acquire_slot_connected()
        mid = self._hand_to_paho(topic, payload, qos, retain, properties)
        if qos == 0:
            return PendingPublish(self, topic, None, 0)
        waiter: Waiter[ReasonCode] = Waiter()
        self._pending_pubs[mid] = waiter
        self._publish_tracked()
        return PendingPublish(self, topic, waiter, mid)

    async def publish_then(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: Properties | None,
        done: Callable[[BaseException | None], None],
    ) -> None:
        """``publish_pipelined`` without a task per message: ``done(None)`` is called
        after PUBACK (``done(error)`` on refusal or close), from the reader task."""
        self._check_publish(topic, payload, qos)
        await self._acquire_slot_connected()
        self._hand_to_paho_then(topic, payload, qos, retain, properties, done)

    def publish_then_nowait(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: Properties | None,
        done: Callable[[BaseException | None], None],
    ) -> None:
        """``publish_then`` that never waits (and never yields to the scheduler): raises
        ``trio.WouldBlock``, having done nothing, when the client is not connected or no
        in-flight slot is free. Same checks and errors as ``publish_then`` otherwise."""
        self._check_publish(topic, payload, qos)
        if not self._connected:
            raise trio.WouldBlock
        self._inflight.acquire_nowait()
        self._hand_to_paho_then(topic, payload, qos, retain, properties, done)

    @property
    def connected(self) -> bool:
        """Connected now (``wait_connected`` would return at once)."""
        return self._connected

    def _check_publish(self, topic: str, payload: bytes, qos: int) -> None:
        validate_topic(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        if len(payload) > self.settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload of {len(payload)} bytes exceeds {self.settings.max_payload_bytes}"
            )

    async def _acquire_slot_connected(self) -> None:
        await self._inflight.acquire()
        try:
            await self.wait_connected()
        except BaseException:
            self._inflight.release()
            raise

    def _hand_to_paho(
        self, topic: str, payload: bytes, qos: int, retain: bool, properties: Properties | None
    ) -> int:
        """With an in-flight slot held: give paho the message, return its mid. The slot
        is released on failure, and at once for QoS 0 (nothing to wait for)."""
        try:
            # paho's publish(), its common case built here (see fastwrite)
            info = fastwrite.publish(self._paho, topic, payload, qos, retain, properties)
            if info.rc not in (_OK, MQTTErrorCode.MQTT_ERR_NO_CONN):
                raise PublishRejected(f"publish to {topic}: {info.rc.name}")
        except BaseException:
            self._inflight.release()
            raise
        if qos == 0:
            self._inflight.release()
            self._published += 1
        return info.mid

    def _hand_to_paho_then(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: Properties | None,
        done: Callable[[BaseException | None], None],
    ) -> None:
        mid = self._hand_to_paho(topic, payload, qos, retain, properties)
        if qos == 0:
            done(None)
            return
        self._pending_pubs[mid] = _CallbackWaiter(self, mid, topic, done)
        self._publish_tracked()

    async def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe (and remember the filter, to subscribe again if the broker loses the
        session); return once the broker granted it."""
        validate_filter(topic_filter)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        self._subscriptions[topic_filter] = qos
        self._inbox.add_route(topic_filter)
        while True:
            await self.wait_connected()
            try:
                await self._send_subscribe({topic_filter: qos})
                return
            except _ConnectionLost:
                continue

    async def unsubscribe(self, topic_filter: str) -> None:
        """Forget ``topic_filter`` (no resubscribe after a lost session) and unsubscribe it
        at the broker; return once the broker acknowledged. Messages already received on
        it are still delivered."""
        self._subscriptions.pop(topic_filter, None)
        while True:
            await self.wait_connected()
            rc, mid = self._paho.unsubscribe(topic_filter)
            if rc != _OK or mid is None:
                await trio.lowlevel.checkpoint()
                continue
            waiter: Waiter[bool] = Waiter()
            self._pending_unsubs[mid] = waiter
            try:
                await waiter.wait()
                return
            except _ConnectionLost:
                continue  # the session may still hold it: unsubscribe again once back
            finally:
                self._pending_unsubs.pop(mid, None)

    async def receive(self) -> MqttMessage:
        """The next received message (round-robin over subscriptions).

        A burst of waiting messages is handed out without a scheduler pass each: the
        caller yields once every `_RECEIVE_BURST` messages (cancellation is still seen at
        every call), so a reader that handles messages synchronously lets what it queued
        (an engine batch, a write) happen once per burst instead of once per message.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            message = self._inbox.get_nowait()
            if message is not None:
                self._burst += 1
                if self._burst >= _RECEIVE_BURST:
                    self._burst = 0
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return message
            if self._closed:
                raise ClientClosed("MQTT client is closed")
            self._burst = 0
            await self._inbox_lot.park()

    def messages(self) -> _MessageStream:
        """``async for message in client.messages()``; ends when the client closes."""
        return _MessageStream(self)

    def set_direct(self, handler: Callable[[MqttMessage], bool] | None) -> None:
        """Hand a message that arrives while the receiver waits on an empty inbox to
        ``handler`` at once, from the reader task, instead of queueing it and waking the
        receiver (a scheduler pass per message on an idle daemon). ``handler`` returns
        False, having done nothing, to have the message queued as usual; it must not
        raise (an exception drops the message, counted and logged)."""
        self._direct = handler

    def ack(self, message: MqttMessage) -> bool:
        """PUBACK ``message`` (manual-ack mode). False when its connection is gone: the
        broker will redeliver it on the resumed session, so the caller must dedupe."""
        if message.qos == 0 or not self.settings.manual_ack:
            return True
        if not self._connected or message.connection != self._connection:
            return False
        return fastwrite.ack(self._paho, message.mid, message.qos) == _OK

    def drop_connection(self) -> None:
        """Close the socket without DISCONNECT, like a network failure (the broker then
        publishes the will). The client reconnects as usual. For tests and fault drills."""
        self._connected = False  # at once: ack() must not use this connection any more
        if self._paho.socket() is not None:
            self._paho._sock_close()

    def hold_writes(self) -> None:
        """Packets queued from now on wait for `release_writes()` (same task, no
        checkpoint between): the engine holds them while it settles a batch."""
        self._writes_held = True

    def release_writes(self) -> None:
        """Send what was queued since `hold_writes()`, from this task, in one send.

        When the writer task is idle (waiting for work, nothing of its own unsent) and
        the socket takes the bytes at once, that is all: the writer is not woken, which
        on an idle daemon saves a scheduler pass per settled batch (the batch's PUBACKs
        and publishes leave at the end of the engine's step, not one pass later).
        Otherwise the writer task is woken for it, as without the hold.
        """
        self._writes_held = False
        if not self._write_deferred:
            return
        self._write_deferred = False
        sock = self._paho._sock
        if not self._writer_idle or self._wbuf or sock is None or self._write_wanted.is_set():
            self._write_wanted.set()
            return
        self._writes_held = True  # loop_write's own register-write calls: nothing to wake
        try:
            rc = self._paho.loop_write()
        finally:
            self._writes_held = self._write_deferred = False
        if rc != _OK:
            self._lost.set()
            return
        buf = self._wbuf
        if buf:
            try:
                sent = sock.send(buf)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                sent = 0
            except OSError:
                self._lost.set()
                return
            del buf[:sent]
        if buf or self._paho.want_write():
            self._write_wanted.set()

    def _acks_due(self) -> bool:
        """Three quarters of the publish window wait for PUBACKs: read pacing stands aside.
        (At half, the 10 publishes of a 10-message batch against Mosquitto's receive
        maximum of 20 cut every window short, and the early read split the next batch.)"""
        return 4 * len(self._pending_pubs) >= 3 * self._paho._max_inflight_messages

    def _publish_tracked(self) -> None:
        """A publish now waits for its PUBACK: with 3/4 of the window waiting, read at once."""
        pause = self._pause
        if pause is not None and self._acks_due():
            pause.cancel()

    def statistics(self) -> MqttStatistics:
        return MqttStatistics(
            connected=self._connected,
            connections=self._connection,
            reconnects=max(0, self._connection - 1),
            failed_attempts=self._failed_attempts,
            published=self._published,
            received=self._received,
            dropped=self._inbox.dropped,
            oversized=self._oversized,
            in_flight=len(self._pending_pubs),
            buffered=len(self._inbox),
            read_wakeups=self._read_wakeups,
        )

    # ----------------------------------------------------------------- connection loop

    async def run_supervisor(self) -> None:
        """Connect, hold the connection, back off, reconnect; until close()."""
        failures = 0
        first = True
        while not self._closed:
            self._outage_attempts = failures
            accepted = await self._run_connection(first)
            first = False
            if self._closed:
                return
            if accepted:
                failures = 0
            else:
                self._failed_attempts += 1
            s = self.settings
            delay_s = backoff_s(failures, s.reconnect_base_s, s.reconnect_cap_s, self._rand)
            failures += 1
            log.debug("mqtt reconnect_in_s=%.3f attempt=%d", delay_s, failures)
            await trio.sleep(delay_s)

    async def _run_connection(self, first: bool) -> bool:
        s = self.settings
        self._lost = trio.Event()
        connection_before = self._connection
        try:
            connect = self._connect_first if first else self._paho.reconnect
            rc = await trio.to_thread.run_sync(connect)
        except (OSError, ValueError) as exc:  # ssl.SSLError and socket.timeout are OSErrors
            n = self._outage_attempts + 1
            if n & (n - 1) == 0:  # attempts 1, 2, 4, 8...: an outage does not flood the log
                log.warning(
                    "mqtt connect_failed host=%s port=%d error=%r attempts=%d",
                    s.host,
                    s.port,
                    exc,
                    n,
                )
            return False
        sock = self._paho.socket()
        if rc != _OK or sock is None:
            log.warning("mqtt connect_failed host=%s port=%d rc=%s", s.host, s.port, rc)
            self.drop_connection()
            return False
        # paho leaves Nagle on: a small PUBLISH written right after another small packet
        # (a PUBACK) then waits for the broker's delayed ACK, ~40 ms per request/response
        # round trip on Linux. MQTT packets are complete messages: send them at once.
        if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            async with trio.open_nursery() as nursery:
                self._conn_nursery = nursery
                nursery.start_soon(self._read_loop, sock)
                nursery.start_soon(self._write_loop, sock)
                nursery.start_soon(self._misc_loop)
                nursery.start_soon(self._connack_deadline, connection_before)
                await self._lost.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._conn_nursery = None
            self._connection_ended()
        return self._connection > connection_before

    def _connect_first(self) -> MQTTErrorCode:
        s = self.settings
        if s.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = s.session_expiry_s
            if s.manual_ack:
                # Unacked QoS 1 messages the broker may send us at once: never more than
                # one inbox queue holds, so none is dropped while it waits for its ack
                # (paho's default, 65535, lets a backlog overflow the inbox).
                props.ReceiveMaximum = min(65535, s.max_buffered_messages)
            return self._paho.connect(
                s.host, s.port, s.keepalive_s, clean_start=s.clean_start, properties=props
            )
        return self._paho.connect(s.host, s.port, s.keepalive_s)

    async def _connack_deadline(self, connection_before: int) -> None:
        await trio.sleep(self.settings.connect_timeout_s)
        if self._connection == connection_before:
            log.warning("mqtt connack_timeout after_s=%s", self.settings.connect_timeout_s)
            self._lost.set()

    async def _read_loop(self, sock: Any) -> None:
        poller = _Readiness(sock)
        reader = self._reader
        reader.reset()
        base = self.settings.read_batch_ms / 1000.0
        window = 0.0  # no pacing until traffic is dense enough to gather in a window
        burst_at = since = -1.0
        try:
            while True:
                cut = False
                if reader.buffered():
                    await trio.lowlevel.checkpoint()  # buffered packets left: no wait
                    cut = True  # the same burst, read on: the window stays as it was
                else:
                    paused = False
                    deadline = burst_at + window
                    if not window or deadline <= trio.current_time():
                        pass  # no pacing, or the window has passed: read at once
                    elif self._acks_due():
                        cut = True  # read now, for the PUBACKs: a window cut short
                    else:
                        # Read pacing (see MqttSettings.read_batch_ms): not even watching
                        # the socket until a window after the last burst began means one
                        # wake-up per window under load, and none added when traffic is
                        # slower than that (the deadline has passed by then).  Not while
                        # 3/4 of the publish window wait for PUBACKs: publishing would
                        # then stall on acks that sit unread (with Mosquitto's receive
                        # maximum of 20 that capped publishes at 20 per window), and a
                        # publish that fills 3/4 of it ends a pause under way.
                        with trio.CancelScope(deadline=deadline) as pause:
                            self._pause = pause  # _publish_tracked cuts it short
                            await trio.sleep_forever()
                        self._pause = None
                        if sock.fileno() < 0:  # closed meanwhile (by close() or paho)
                            self._lost.set()
                            return
                        paused = True
                        cut = trio.current_time() < deadline
                    # After a pause the bytes are usually there already: a poll with no
                    # wait finds them without another scheduler pass through epoll.
                    if not (paused and poller.has_data()):
                        await trio.lowlevel.wait_readable(sock)
                    since, burst_at = burst_at, trio.current_time()
                    self._read_wakeups += 1
                received = self._received
                for _ in range(_READS_PER_WAKEUP):
                    if self._paho.loop_read() != _OK:
                        self._lost.set()
                        return
                    if not reader.buffered() and not poller.has_data():
                        break
                # The next window, from this burst's messages over the time since the one
                # before began: traffic sparser than _DENSE messages per base window is read
                # at once (a window would only hold it); denser traffic waits out a base
                # window; a full burst, well above that, doubles it (bigger batches, fewer
                # commits, for at most one more base window of latency). A window cut short
                # for PUBACKs, or a burst read on, says nothing of the rate: it stays.
                if not cut:
                    burst = self._received - received
                    if burst * base < _DENSE * (burst_at - since):
                        window = 0.0
                    else:
                        window = base * 2 if burst >= _FULL_BURST else base
        except (trio.ClosedResourceError, OSError):
            self._lost.set()

    def _buffer_send(self, data: bytes | bytearray) -> int:
        """paho's ``_sock_send``: queue the bytes for ``_flush``; report them all sent."""
        if self._paho._sock is None:
            raise ConnectionError("socket is None")
        self._wbuf += data
        if data[:1] == b"\xe0":  # DISCONNECT: paho closes the socket right after it
            with suppress(OSError):
                self._paho._sock.send(self._wbuf)
            self._wbuf.clear()
        else:
            # paho also writes from inside loop_read (re-sending in-flight messages on
            # CONNACK) and then unregisters write interest: the writer must still flush
            self._on_register_write(self._paho, None, None)
        return len(data)

    async def _flush(self, sock: Any) -> None:
        buf = self._wbuf
        while buf:
            try:
                sent = sock.send(buf)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                await trio.lowlevel.wait_writable(sock)
                continue
            del buf[:sent]

    async def _write_loop(self, sock: Any) -> None:
        self._wbuf.clear()
        try:
            while True:
                if self._wbuf:
                    await self._flush(sock)
                    continue
                if not self._paho.want_write():
                    self._write_wanted = trio.Event()
                    self._writer_idle = True  # release_writes() may send in its place
                    try:
                        await self._write_wanted.wait()
                    finally:
                        self._writer_idle = False
                    continue
                if self._paho.loop_write() != _OK:
                    self._lost.set()
                    return
                await self._flush(sock)
        except (trio.ClosedResourceError, OSError):
            self._lost.set()

    async def _misc_loop(self) -> None:
        while True:
            await trio.sleep(_MISC_INTERVAL_S)
            if self._paho.loop_misc() != _OK:
                self._lost.set()
                return

    def _connection_ended(self) -> None:
        if self._paho.socket() is not None:
            self.drop_connection()
        self._connected = False
        # A SUBACK cannot arrive on a new connection: let subscribe() try again.
        for waiter in self._pending_subs.values():
            waiter.fail(_ConnectionLost())
        self._pending_subs.clear()
        for unsub in self._pending_unsubs.values():
            unsub.fail(_ConnectionLost())
        self._pending_unsubs.clear()
        self._state_lot.unpark_all()
        if not self._closing:
            log.warning(
                "mqtt connection_lost connection=%d in_flight=%d",
                self._connection,
                len(self._pending_pubs),
            )

    async def _send_subscribe(self, filters: dict[str, int]) -> None:
        rc, mid = self._paho.subscribe(subscribe_topics(filters, self.settings.protocol))
        if rc != _OK or mid is None:
            raise _ConnectionLost()
        waiter: Waiter[list[ReasonCode]] = Waiter()
        self._pending_subs[mid] = waiter
        try:
            codes = await waiter.wait()
        finally:
            self._pending_subs.pop(mid, None)
        subscription_failures(filters, codes)

    async def _resubscribe(self) -> None:
        try:
            await self._send_subscribe(dict(self._subscriptions))
            log.info("mqtt resubscribed filters=%d", len(self._subscriptions))
        except _ConnectionLost:
            pass  # the next connection tries again

    async def close(self) -> None:
        """DISCONNECT politely (bounded wait), then stop. Waiters get ClientClosed."""
        if self._closed:
            return
        self._closing = True
        if self._connected:
            self._paho.disconnect()
            with trio.move_on_after(1.0):
                await self._lost.wait()
        self._closed = True
        self._lost.set()
        for waiter in list(self._pending_pubs.values()):
            waiter.fail(ClientClosed("MQTT client closed before the broker acknowledged"))
        self._state_lot.unpark_all()
        self._inbox_lot.unpark_all()

    def _forget_paho(self) -> None:
        # Client.__del__ closes the socket and calls on_socket_close, possibly after trio.run
        # returned: unhook first, and drop the socket while still inside Trio.
        if self._paho.socket() is not None:
            self.drop_connection()
        self._paho.on_socket_close = None
        self._paho.on_socket_register_write = None

    # ----------------------------------------------------------------- paho callbacks

    def _install_callbacks(self) -> None:
        p = self._paho
        p.on_connect = self._on_connect
        p.on_disconnect = self._on_disconnect
        p.on_message = self._on_message
        p.on_publish = self._on_publish
        p.on_subscribe = self._on_subscribe
        p.on_unsubscribe = self._on_unsubscribe
        p.on_socket_close = self._on_socket_close
        p.on_socket_register_write = self._on_register_write
        # (paho's _sock_recv and _packet_read: see PacketReader.)
        # Coalesce writes: paho sends each packet with its own send(); the writer task
        # flushes everything one loop_write() produced with one send() instead (a PUBACK
        # and a PUBLISH committed together cost one syscall, not two).
        p._sock_send = self._buffer_send  # type: ignore[method-assign,assignment]

    def _in_trio(self) -> bool:
        return threading.get_ident() == self._trio_thread and trio.lowlevel.in_trio_run()

    def _on_register_write(self, client: Client, userdata: Any, sock: Any) -> None:
        # Called for every packet paho queues or writes: once the writer's event is set,
        # it will look at paho's queue and our buffer again before it sleeps, so setting
        # it again is not needed (only in the Trio thread: the writer replaces the event
        # there, with no checkpoint between its last look and the replacement).
        if self._write_wanted.is_set() and threading.get_ident() == self._trio_thread:
            return
        if self._writes_held and threading.get_ident() == self._trio_thread:
            self._write_deferred = True  # release_writes() sends it, or wakes the writer
            return
        if self._in_trio():
            self._write_wanted.set()
        else:  # from connect() in the worker thread
            with suppress(trio.RunFinishedError):
                self._token.run_sync_soon(lambda: self._write_wanted.set())

    def _on_socket_close(self, client: Client, userdata: Any, sock: Any) -> None:
        if self._in_trio():
            trio.lowlevel.notify_closing(sock)
            self._lost.set()

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("mqtt connack_refused reason=%s", reason)
            self._lost.set()
            return
        self._connection += 1
        self._connected = True
        receive_max = getattr(properties, "ReceiveMaximum", None)
        if isinstance(receive_max, int):
            # paho ignores the broker's Receive Maximum; exceeding it is a protocol error.
            # Its public setter refuses on a live connection, but this callback runs before
            # paho resends anything on this connection, the one safe moment to change it.
            client._max_inflight_messages = min(self.settings.max_inflight, receive_max)
        log.info(
            "mqtt connected client_id=%s host=%s port=%d session_present=%s connection=%d",
            self.settings.effective_client_id(),
            self.settings.host,
            self.settings.port,
            flags.session_present,
            self._connection,
        )
        if not flags.session_present and self._subscriptions and self._conn_nursery:
            self._conn_nursery.start_soon(self._resubscribe)
        self._state_lot.unpark_all()

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        log.info("mqtt disconnected reason=%s", reason)
        self._lost.set()

    def _on_publish(
        self, client: Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        self._acked(mid, reason)

    def _acked(self, mid: int, reason: ReasonCode) -> None:
        waiter = self._pending_pubs.get(mid)
        if waiter is not None:
            waiter.succeed(reason)

    def _on_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        waiter = self._pending_subs.get(mid)
        if waiter is not None:
            waiter.succeed(codes)

    def _on_unsubscribe(
        self, client: Client, userdata: Any, mid: int, codes: Any, properties: Any
    ) -> None:
        waiter = self._pending_unsubs.get(mid)
        if waiter is not None:
            waiter.succeed(True)

    def _on_message(self, client: Client, userdata: Any, raw: MQTTMessage) -> None:
        self._accept(
            raw._topic,
            bytes(raw.payload),
            raw.qos,
            bool(raw.retain),
            raw.mid,
            bool(raw.dup),
            getattr(raw, "properties", None),
        )

    def _accept(
        self,
        topic_bytes: bytes,
        payload: bytes,
        qos: int,
        retain: bool,
        mid: int,
        dup: bool,
        properties: Properties | None,
    ) -> None:
        """A received PUBLISH, from paho (``_on_message``) or from ``PacketReader``."""
        # An exception here would escape loop_read and end the connection: contain it.
        try:
            try:
                topic = topic_bytes.decode("utf-8")
            except UnicodeDecodeError:
                topic = topic_bytes.decode("utf-8", "replace")
            if len(payload) > self.settings.max_payload_bytes:
                self._oversized += 1
                log.warning("mqtt message_oversized topic=%s size_bytes=%d", topic, len(payload))
                # Acknowledge so the broker does not redeliver it forever; it is counted, logged.
                if self.settings.manual_ack and qos > 0:
                    client_ack = fastwrite.ack(self._paho, mid, qos)
                    del client_ack
                return
            message = MqttMessage(
                topic=topic,
                payload=payload,
                qos=qos,
                retain=retain,
                mid=mid,
                dup=dup,
                properties=properties,
                subscription=self._inbox.route(topic),
                connection=self._connection,
                received_at_ms=int(time.time() * 1000),
            )
            self._received += 1
            direct = self._direct
            if direct is not None and self._inbox_lot and self._inbox.empty() and direct(message):
                return  # handled at once (see set_direct)
            evicted = self._inbox.put(message)
            dropped = self._inbox.dropped
            if evicted is not None and dropped & (dropped - 1) == 0:  # 1, 2, 4...: no log flood
                log.warning(
                    "mqtt message_dropped reason=buffer_full subscription=%s topic=%s dropped=%d",
                    evicted.subscription,
                    evicted.topic,
                    self._inbox.dropped,
                )
            if self._inbox_lot:  # a receiver is parked (unpark costs even when none is)
                self._inbox_lot.unpark()
        except Exception:
            self._inbox.dropped += 1
            log.exception("mqtt message_rejected mid=%s", mid)


class _CallbackWaiter(Waiter[ReasonCode]):
    """A pending PUBACK that calls back instead of waking a task."""

    def __init__(
        self,
        client: MqttClient,
        mid: int,
        topic: str,
        done: Callable[[BaseException | None], None],
    ) -> None:
        self._client, self._mid, self._topic, self._done = client, mid, topic, done
        self._called = False

    def _finish(self, error: BaseException | None) -> None:
        if self._called:
            return
        self._called = True
        client = self._client
        client._pending_pubs.pop(self._mid, None)
        client._inflight.release()
        if error is None:
            client._published += 1
        self._done(error)

    def succeed(self, value: ReasonCode) -> None:
        if value.is_failure:
            self._finish(PublishRejected(f"broker refused publish to {self._topic}: {value}"))
        else:
            self._finish(None)

    def fail(self, error: BaseException) -> None:
        self._finish(error)

    async def wait(self) -> ReasonCode:
        raise RuntimeError("a callback waiter is not awaited")


class PendingPublish:
    """A message handed to paho by ``publish_pipelined``; ``wait()`` once for its PUBACK."""

    __slots__ = ("_client", "_mid", "_topic", "_waiter")

    def __init__(
        self, client: MqttClient, topic: str, waiter: Waiter[ReasonCode] | None, mid: int
    ) -> None:
        self._client, self._topic, self._waiter, self._mid = client, topic, waiter, mid

    async def wait(self) -> None:
        if self._waiter is None:
            return
        client = self._client
        try:
            reason = await self._waiter.wait()
        finally:
            client._pending_pubs.pop(self._mid, None)
            client._inflight.release()
            self._waiter = None
        if reason.is_failure:
            raise PublishRejected(f"broker refused publish to {self._topic}: {reason}")
        client._published += 1


class _MessageStream:
    def __init__(self, client: MqttClient) -> None:
        self._client = client

    def __aiter__(self) -> _MessageStream:
        return self

    async def __anext__(self) -> MqttMessage:
        try:
            return await self._client.receive()
        except ClientClosed:
            raise StopAsyncIteration from None


class _Readiness:
    """Whether more bytes can be read without blocking: TLS may hold decrypted bytes the
    kernel no longer reports, so ask the SSL object first, then poll the fd with no wait."""

    def __init__(self, sock: Any) -> None:
        import select

        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def has_data(self) -> bool:
        pending = getattr(self._sock, "pending", None)
        if pending is not None and pending() > 0:
            return True
        return bool(self._poll.poll(0))


@asynccontextmanager
async def open_mqtt_client(
    settings: MqttSettings, *, rand: Callable[[], float] = random.random
) -> AsyncIterator[MqttClient]:
    """Run an MqttClient for the duration of the block. Does not wait for the broker: the
    client connects (and reconnects) in the background; ``wait_connected()`` waits."""
    client = MqttClient(settings, rand=rand)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run_supervisor)
            try:
                yield client
            finally:
                with trio.CancelScope(shield=True):
                    await client.close()
                nursery.cancel_scope.cancel()
    finally:
        client._forget_paho()
